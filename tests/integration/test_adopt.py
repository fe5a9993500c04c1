"""`depot adopt` on PostgreSQL: a database made by SQLAlchemy's create_all, with rows, is adopted; after
`depot migrate` its schema is what the written catalog derives (as a database made from nothing by the
same migration is), every row is still there, and a natural key its rows break stops the migration
with nothing changed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from adapters.postgres.db import generate_migration, make_engine, migrate
from adapters.postgres.schema_changes import MigrationFailed, compared_schemas
from adapters.postgres.tables import build_metadata
from entrypoints.adoption import adopt
from entrypoints.catalogs import load_catalog
from tests.e2e import legacy_shop

ADOPTED = ["authors", "countries", "publishers", "stores", "books", "editions", "reviews", "stock", "printings"]
# What the catalog cannot hold stays in the database, as `depot adopt` said: an interval column and a
# CHECK bounding a date. Everything else is as depot derives it.
KEPT_COLUMNS = {("books", "shelf_life")}
KEPT_CHECKS = {("authors", "born_after_1000")}


def adopted(new_database: Callable[[], str], tmp_path: Path, **natural_keys: tuple[str, ...]) -> tuple[str, Path]:
    url = new_database()
    legacy_shop.build(url)

    def a_view(engine: sa.Engine) -> None:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE VIEW cheap_books AS SELECT isbn FROM books WHERE price < 9")
    with_engine(url, a_view)
    result = adopt(url, tmp_path / "shop", natural_keys={"reviews": ("isbn", "reviewer"), **natural_keys})
    assert result.adopted == tuple(ADOPTED)
    # The view is adopted read-only (tests/e2e/test_adopt_views.py), and the migration keeps it as it is
    # around the tables' changes, which PostgreSQL would refuse under it.
    assert result.views == ("cheap_books",)
    assert '@CATALOG.view("cheap_books", key=("isbn",))' in result.catalog.read_text()
    return url, result.catalog


def with_engine(url: str, work):  # noqa: ANN001, ANN201
    engine = make_engine(url, pool_size=1)
    try:
        return work(engine)
    finally:
        engine.dispose()


def structure(url: str) -> dict[str, set]:
    """The adopted tables' columns, constraints (with their definitions) and indexes, as PostgreSQL has them."""
    def read(engine: sa.Engine) -> dict[str, set]:
        with engine.connect() as connection:
            columns = connection.execute(sa.text(
                "SELECT table_name, column_name, data_type, is_nullable, column_default, collation_name, "
                "is_identity FROM information_schema.columns WHERE table_schema = 'public' "
                "AND table_name = ANY(:t)"), {"t": ADOPTED}).all()
            constraints = connection.execute(sa.text(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid::regclass::text = ANY(:t)"), {"t": ADOPTED}).all()
            indexes = connection.execute(sa.text(
                "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename = ANY(:t)"),
                {"t": ADOPTED}).all()
        return {"columns": {tuple(c) for c in columns if (c[0], c[1]) not in KEPT_COLUMNS},
                "constraints": {tuple(c) for c in constraints if (c[0], c[1]) not in KEPT_CHECKS},
                "indexes": {tuple(i) for i in indexes}}
    return with_engine(url, read)


def rows(url: str) -> dict[str, list[tuple]]:
    """Every row of the legacy columns, in key order."""
    def read(engine: sa.Engine) -> dict[str, list[tuple]]:
        found = {}
        with engine.connect() as connection:
            for name, table in legacy_shop.metadata.tables.items():
                columns = [c for c in table.columns if (name, c.name) not in KEPT_COLUMNS]
                found[name] = connection.execute(sa.select(*columns).order_by(*legacy_shop.key_of(table))).all()
        return found
    return with_engine(url, read)


def test_the_adopted_schema_is_what_the_catalog_derives(new_database, tmp_path: Path):
    url, catalog_path = adopted(new_database, tmp_path)
    loaded = load_catalog(str(catalog_path))
    with_engine(url, lambda engine: migrate(engine, loaded.history))

    def differences(engine: sa.Engine) -> list:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                                    "compare_server_default": True,
                                                                    **compared_schemas(loaded.catalog)})
            return compare_metadata(context, build_metadata(loaded.catalog))
    diff = [d for d in with_engine(url, differences) if d[0] != "remove_table" or d[1].name != "alembic_version"]
    assert [(d[0], d[2], d[3].name) for d in diff] == [("remove_column", "books", "shelf_life")]

    # The same migration on an empty database creates the tables instead: both ways give one schema,
    # names and CHECK contents included.
    fresh = new_database()
    with_engine(fresh, lambda engine: migrate(engine, loaded.history))
    adopted_structure, fresh_structure = structure(url), structure(fresh)
    for part in adopted_structure:
        assert adopted_structure[part] - fresh_structure[part] == set(), part
        assert fresh_structure[part] - adopted_structure[part] == set(), part
    # ... which is the catalog's: makemigration (on that kind of database) has nothing to write.
    assert with_engine(new_database(), lambda engine: generate_migration(engine, loaded.history, "nothing")) is None


def test_no_row_is_lost_and_the_system_columns_are_filled(new_database, tmp_path: Path):
    url, catalog_path = adopted(new_database, tmp_path)
    before = rows(url)
    with_engine(url, lambda engine: migrate(engine, load_catalog(str(catalog_path)).history))
    assert rows(url) == before
    assert {name: len(r) for name, r in before.items()} == {name: len(r) for name, r in legacy_shop.ROWS.items()}

    def system_values(engine: sa.Engine) -> set:
        with engine.connect() as connection:
            return {connection.execute(sa.text(
                f'SELECT DISTINCT source, batch_id, version, created_at IS NOT NULL, updated_at = created_at '
                f'FROM "{t}"')).one() for t in ADOPTED}
    assert with_engine(url, system_values) == {("manual", None, 1, True, True)}

    def next_ids(engine: sa.Engine) -> list:
        with engine.begin() as connection:  # depot's identity ids go on after the serial's last one
            return [connection.execute(sa.text(
                "INSERT INTO authors (name) VALUES ('Someone') RETURNING id")).scalar_one(),
                connection.execute(sa.text(
                    "INSERT INTO reviews (isbn, reviewer, stars, posted_at) "
                    "VALUES ('9780156027601', 'cy', 4, now()) RETURNING id")).scalar_one()]
    assert with_engine(url, next_ids) == [4, 3]


def test_a_natural_key_the_rows_break_stops_the_migration_and_changes_nothing(new_database, tmp_path: Path):
    url, catalog_path = adopted(new_database, tmp_path, stock=("isbn",))  # two stock rows share an isbn
    before = structure(url)
    with pytest.raises(MigrationFailed, match="uq_stock_isbn"):
        with_engine(url, lambda engine: migrate(engine, load_catalog(str(catalog_path)).history))
    assert structure(url) == before


def test_tables_of_another_schema_are_adopted_in_place_by_the_catalogs_schema(new_database, tmp_path: Path):
    url = new_database()

    def legacy(engine: sa.Engine) -> None:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE SCHEMA shop")
            connection.exec_driver_sql("CREATE TABLE shop.items (sku text PRIMARY KEY, qty int CHECK (qty >= 0))")
            connection.exec_driver_sql("INSERT INTO shop.items VALUES ('a', 3)")
    with_engine(url, legacy)
    result = adopt(url, tmp_path / "shop", schema="shop")
    assert result.adopted == ("items",)
    assert 'CATALOG = Catalog(schema="shop")' in result.catalog.read_text()
    history = load_catalog(str(result.catalog)).history
    assert history.catalog.schema == "shop"
    # Even an engine that is not the catalog's (search_path public) migrates the catalog's schema: each
    # history runs with its own schema on the search_path, never an empty `items` made in public.
    with_engine(url, lambda engine: migrate(engine, history))
    with_engine(url, lambda engine: migrate(engine, history))

    def items(engine: sa.Engine) -> list:
        with engine.connect() as connection:
            return connection.exec_driver_sql("SELECT sku, qty, source, version FROM shop.items").all()
    assert with_engine(url, items) == [("a", 3, "manual", 1)]
    assert with_engine(url, lambda engine: sa.inspect(engine).get_table_names(schema="public")) == []
