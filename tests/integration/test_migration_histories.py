"""depot's history and the catalog's history share one database without clashing: in either upgrade
order, and from a database that a depot of one single history migrated."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from adapters.postgres import db
from adapters.postgres.db import History, alembic_config, current_revisions, generate_migration, make_engine, migrate
from entrypoints.catalogs import load_catalog

NOTES = """
    from depot import Catalog

    CATALOG = Catalog()

    @CATALOG.table("notes", group="primary", natural_key=("slug",))
    class Note:
        slug: str
        text: str
"""

NEWER_DEPOT = '''
"""a system table of a newer depot"""
from alembic import op
import sqlalchemy as sa

revision = "depot_9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("depot_future", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("depot_future")
'''


@pytest.fixture
def engine_of(new_database):
    engines = []

    def make() -> sa.Engine:
        engines.append(make_engine(new_database(), pool_size=1))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


def notes_project(folder: Path, source: str = NOTES, name: str = "catalog.py") -> History:
    (folder / name).write_text(textwrap.dedent(source))
    return load_catalog(str(folder / name)).history


def depot_head() -> str:
    """The newest revision of depot's own history, as the catalog's first migration depends on it."""
    revisions = ScriptDirectory(str(db.MIGRATIONS), version_locations=[str(db.SYSTEM_VERSIONS)])
    return revisions.get_revision("depot@head").revision


def tables(engine: sa.Engine, schema: str | None = None) -> set[str]:
    return set(sa.inspect(engine).get_table_names(schema=schema))


def test_the_catalogs_first_migration_depends_on_depots_and_both_apply(tmp_path: Path, engine_of):
    history = notes_project(tmp_path)
    written = generate_migration(engine_of(), history, "notes")
    assert written is not None and written.parent == tmp_path / "migrations"
    assert f"depends_on: str | Sequence[str] | None = '{depot_head()}'" in written.read_text()
    engine = engine_of()
    migrate(engine, history)
    assert {"sources", "ingest_batches", "rejected_rows", "alembic_version"} == tables(engine, "depot")
    assert "notes" in tables(engine) and not {"sources", "ingest_batches", "rejected_rows"} & tables(engine)
    # each history in its own version table: depot's head in depot's, the catalog's alone in its own (it
    # depends on depot's head, so Alembic records it alone)
    assert current_revisions(engine) == tuple(sorted((depot_head(), written.name.split("_")[4])))
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT version_num FROM depot.alembic_version").scalars().all() == [
            depot_head()]
        assert connection.exec_driver_sql("SELECT version_num FROM public.alembic_version").scalars().all() == [
            written.name.split("_")[4]]
    migrate(engine, history)  # idempotent


def test_a_newer_depot_under_an_older_catalog_history(tmp_path: Path, engine_of, monkeypatch):
    history = notes_project(tmp_path)
    generate_migration(engine_of(), history, "notes")
    engine = engine_of()
    migrate(engine, history)
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO notes (slug, text) VALUES ('a', 'kept')")

    newer = tmp_path / "newer-depot-versions"
    shutil.copytree(db.SYSTEM_VERSIONS, newer)
    (newer / "depot_9001_future.py").write_text(NEWER_DEPOT.replace("{head}", depot_head()))
    monkeypatch.setattr(db, "SYSTEM_VERSIONS", newer)
    migrate(engine, history)
    assert "depot_future" in tables(engine, "depot")  # depot's history makes its tables in its schema
    assert "depot_9001" in current_revisions(engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT text FROM notes").scalar() == "kept"


def test_a_catalog_history_that_grows_under_the_same_depot(tmp_path: Path, engine_of):
    history = notes_project(tmp_path)
    scratch = engine_of()
    generate_migration(scratch, history, "notes")
    engine = engine_of()
    migrate(engine, history)

    grown = notes_project(tmp_path, NOTES + "        stars: int = 0\n", "grown.py")  # same folder, same history
    second = generate_migration(scratch, grown, "stars")
    assert second is not None and "add_column('notes'" in second.read_text()
    assert generate_migration(scratch, grown, "nothing") is None
    migrate(engine, grown)
    assert "stars" in {c["name"] for c in sa.inspect(engine).get_columns("notes")}


def test_a_database_of_the_single_history_is_carried_over_with_its_rows(engine_of):
    flights = load_catalog().history
    engine = engine_of()
    with engine.begin() as connection:  # the tables as that history left them: flights_0001, not later ones
        command.upgrade(alembic_config(flights, connection), "flights_0001")
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO airlines (carrier, name) VALUES ('AA', 'American')")
        # what a depot of one history left: one revision standing for the system and flights tables
        connection.exec_driver_sql("DELETE FROM alembic_version")
        connection.exec_driver_sql("INSERT INTO alembic_version VALUES ('0002_ingest')")
    migrate(engine, flights)
    head = ScriptDirectory.from_config(alembic_config(flights)).revision_map.get_current_head("catalog")
    # flights_0001, then whatever the example gained since; depot's head too, once it is past the one flights_0001
    # depends on
    assert set(current_revisions(engine)) - {depot_head()} == {head}
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT name FROM airlines").scalar() == "American"


def old_layout(engine: sa.Engine, history: History, schema: str) -> None:
    """What a depot before system schemas left: its tables beside the catalog's in `schema`, one
    alembic_version there for both histories, at depot_0003 (the last revision before the move)."""
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        connection.exec_driver_sql(f"SET LOCAL search_path TO {schema}")
        connection.dialect.default_schema_name = schema
        command.upgrade(alembic_config(history, connection), "catalog@head")  # and depot_0003, which it needs
        connection.dialect.default_schema_name = "public"


@pytest.mark.parametrize("schema", ["public", "shop"])
def test_an_old_layout_is_moved_into_the_system_schema_with_every_row(tmp_path: Path, engine_of, schema):
    source = NOTES.replace("Catalog()", f'Catalog(schema="{schema}")')
    history = notes_project(tmp_path, source)
    written = generate_migration(engine_of(), history, "notes")
    # as the depot of that layout wrote it: depot's tables unqualified, after depot_0003
    written.write_text(written.read_text().replace("'depot.", "'").replace(f"'{depot_head()}'", "'depot_0003'"))
    engine = engine_of()
    old_layout(engine, history, schema)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"SET LOCAL search_path TO {schema}")
        assert tables(engine, "depot") == set()
        connection.exec_driver_sql("INSERT INTO sources (code, name, priority) VALUES ('scraper', 'S', 5)")
        batch = connection.exec_driver_sql(
            "INSERT INTO ingest_batches (\"table\", source, mode, on_conflict, status, started_at, idempotency_key) "
            "VALUES ('notes', 'scraper', 'best_effort', 'update', 'completed', now(), 'k') RETURNING id").scalar()
        connection.exec_driver_sql("INSERT INTO rejected_rows (batch_id, row_number, payload, errors) "
                                   f"VALUES ({batch}, 2, '{{\"slug\": 1}}', '[]')")
        connection.exec_driver_sql(f"INSERT INTO notes (slug, text, source, batch_id) VALUES ('a', 'kept', 'scraper', "
                                   f"{batch})")
    before = {name: rows_of(engine, f'"{schema}"."{name}"') for name in ("sources", "ingest_batches", "rejected_rows")}

    migrate(engine, history)
    migrate(engine, history)  # and again: nothing more to move
    assert tables(engine, "depot") == {"sources", "ingest_batches", "rejected_rows", "alembic_version"}
    assert not {"sources", "ingest_batches", "rejected_rows"} & tables(engine, schema)
    after = {name: rows_of(engine, f"depot.{name}") for name in before}
    assert after["sources"] == before["sources"] and after["rejected_rows"] == before["rejected_rows"]
    # the batch gained the schema of the catalog that ran it, and nothing else changed
    assert [r["schema"] for r in after["ingest_batches"]] == [schema]
    assert [{k: r[k] for k in before["ingest_batches"][0]} for r in after["ingest_batches"]] == before["ingest_batches"]
    # each history in its version table; the notes keep their row, and their foreign keys follow the move
    assert rows_of(engine, "depot.alembic_version") == [{"version_num": depot_head()}]
    assert depot_head() in current_revisions(engine, history.catalog)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"SET LOCAL search_path TO {schema}")
        assert connection.exec_driver_sql("SELECT text, source FROM notes").one() == ("kept", "scraper")
        with pytest.raises(sa.exc.IntegrityError, match="fk_notes_source"):
            with connection.begin_nested():
                connection.exec_driver_sql("INSERT INTO notes (slug, text, source) VALUES ('b', 'x', 'nobody')")
        refs = connection.exec_driver_sql("SELECT confrelid::regclass::text FROM pg_constraint "
                                          "WHERE conname IN ('fk_notes_source', 'fk_notes_batch_id') ORDER BY 1")
        assert refs.scalars().all() == ["depot.ingest_batches", "depot.sources"]


def rows_of(engine: sa.Engine, table: str) -> list[dict]:
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY 1")]


def test_a_users_own_table_named_like_depots_is_left_where_it_is(tmp_path: Path, engine_of):
    history = notes_project(tmp_path)
    generate_migration(engine_of(), history, "notes")
    engine = engine_of()
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE public.sources (url text PRIMARY KEY)")
        connection.exec_driver_sql("INSERT INTO public.sources VALUES ('https://example.org')")
    migrate(engine, history)
    assert rows_of(engine, "public.sources") == [{"url": "https://example.org"}]
    assert [r["code"] for r in rows_of(engine, "depot.sources")] == ["manual"]


def test_depots_own_history_compares_its_tables_in_their_schema(engine_of):
    """makemigration --system (depot's developers): the system tables, found in their schema, are as
    depot's history makes them, so there is nothing to write."""
    from domain.system import SYSTEM

    before = set(db.SYSTEM_VERSIONS.iterdir())
    try:
        written = generate_migration(engine_of(), History(SYSTEM), "nothing", system=True)
        assert written is None, written.read_text()
    finally:
        for stray in set(db.SYSTEM_VERSIONS.iterdir()) - before:  # never leave a file in depot's own source
            stray.unlink()
