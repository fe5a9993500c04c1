"""Schema changes that keep data, on PostgreSQL: each test declares a small catalog, changes it, lets
makemigration write the migration (on a scratch database) and migrates a database that holds rows,
then looks at the rows."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapters.postgres.db import current_revisions, generate_migration, make_engine, migrate
from adapters.postgres.schema_changes import ChangeRefused, MigrationFailed, differences
from entrypoints.catalogs import load_catalog

HEAD = """
    import decimal
    from typing import Annotated
    from depot import BigInt, Catalog, Ge, OneOf, Pattern, References, Renamed, Searchable

    CATALOG = Catalog()
"""


class Project:
    """A catalog in a folder, changed version by version; a scratch database for makemigration and a
    database with rows that each migration is applied to."""

    def __init__(self, folder: Path, new_database) -> None:  # noqa: ANN001
        self.folder = folder
        self.scratch = make_engine(new_database(), pool_size=1)
        self.engine = make_engine(new_database(), pool_size=1)
        self.version = 0
        self.history = None

    def declare(self, tables: str):  # noqa: ANN201
        self.version += 1  # a file per version: a loaded catalog file is cached by its path
        path = self.folder / f"catalog_v{self.version}.py"
        path.write_text(textwrap.dedent(HEAD) + textwrap.dedent(tables))
        self.history = load_catalog(str(path), self.folder / "migrations").history
        return self.history

    def change(self, tables: str, message: str = "change", **options) -> tuple[Path | None, list[str]]:
        """Declare, write the migration, apply it. Returns the file (None: no changes) and its summary."""
        self.declare(tables)
        summary: list[str] = []
        written = generate_migration(self.scratch, self.history, message, summary=summary, **options)
        migrate(self.engine, self.history)
        return written, summary

    def sql(self, statement: str, **params) -> list[tuple]:
        with self.engine.begin() as connection:
            result = connection.execute(sa.text(statement), params)
            return [tuple(r) for r in result] if result.returns_rows else []

    def columns(self, table: str) -> dict[str, str]:
        return {c["name"]: str(c["type"]).lower() for c in sa.inspect(self.engine).get_columns(table)}

    def dispose(self) -> None:
        self.scratch.dispose()
        self.engine.dispose()


@pytest.fixture
def project(tmp_path: Path, new_database):
    made = Project(tmp_path, new_database)
    yield made
    made.dispose()


BOOKS = """
    @CATALOG.table("books", group="primary", natural_key=("isbn",))
    class Book:
        isbn: str
        {column}
"""


def books(column: str) -> str:
    return BOOKS.format(column=column)


def test_a_declared_rename_keeps_the_values_and_its_check(project: Project):
    project.change(books("pages: Annotated[int, Ge(1)]"))
    project.sql("INSERT INTO books (isbn, pages) VALUES ('a', 304), ('b', 12)")

    written, summary = project.change(books('page_count: Annotated[int, Ge(1), Renamed("pages")]'), "rename")
    text = written.read_text()
    assert "new_column_name='page_count'" in text and "drop_column" not in text and "add_column" not in text
    assert "books.pages: renamed to page_count" in summary
    assert project.sql("SELECT isbn, page_count FROM books ORDER BY isbn") == [("a", 304), ("b", 12)]
    assert "pages" not in project.columns("books")
    with pytest.raises(sa.exc.IntegrityError, match="ck_books_page_count_ge"):  # the check follows, renamed
        project.sql("INSERT INTO books (isbn, page_count) VALUES ('c', 0)")

    stale, _ = project.change(books('page_count: Annotated[int, Ge(1), Renamed("pages")]'), "again")
    assert stale is None  # a Renamed that was migrated writes nothing more
    assert "new_column_name='pages'" in text.split("def downgrade")[1]  # the downgrade renames it back


def test_a_rename_with_a_type_change_renames_then_casts(project: Project):
    project.change(books("pages: int"))
    project.sql("INSERT INTO books (isbn, pages) VALUES ('a', 304)")
    written, _ = project.change(books('page_count: Annotated[int, BigInt(), Renamed("pages")]'), "rename")
    text = written.read_text()
    assert text.index("new_column_name='page_count'") < text.index("postgresql_using='\"page_count\"::BIGINT'")
    assert project.columns("books")["page_count"] == "bigint"
    assert project.sql("SELECT page_count FROM books") == [(304,)]


def test_a_lost_and_a_gained_column_of_one_kind_is_refused_until_the_user_says(project: Project):
    project.change(books("pages: int"))
    project.sql("INSERT INTO books (isbn, pages) VALUES ('a', 304)")
    project.declare(books("page_count: int | None = None"))
    with pytest.raises(ChangeRefused) as refused:
        generate_migration(project.scratch, project.history, "oops")
    message = str(refused.value)
    assert "'pages'" in message and "'page_count'" in message
    assert 'Renamed(\'pages\')' in message and "--allow-drop" in message
    assert not list((project.folder / "migrations").glob("*_oops.py"))

    written, summary = project.change(books("page_count: int | None = None"), "drop", allow_drop=True)
    assert "drop_column('books', 'pages')" in written.read_text()
    assert any("drop column books.pages" in line for line in summary)
    assert project.sql("SELECT isbn, page_count FROM books") == [("a", None)]


def test_a_column_of_another_kind_is_dropped_and_added_without_asking(project: Project):
    project.change(books("pages: int | None = None"))
    written, _ = project.change(books("title: str | None = None"), "replace")
    assert "drop_column('books', 'pages')" in written.read_text()


def test_type_changes_cast_the_stored_values(project: Project):
    project.change(books("copies: int\n        code: str"))
    project.sql("INSERT INTO books (isbn, copies, code) VALUES ('a', 2147483647, '12'), ('b', -3, ' 7')")

    written, summary = project.change(books("copies: Annotated[int, BigInt()]\n        code: int"), "widen")
    text = written.read_text()
    assert "postgresql_using='\"copies\"::BIGINT'" in text and "postgresql_using='\"code\"::INTEGER'" in text
    assert any("text -> integer" in line for line in summary)
    assert project.columns("books")["copies"] == "bigint" and project.columns("books")["code"] == "integer"
    assert project.sql("SELECT isbn, copies, code FROM books ORDER BY isbn") == [("a", 2147483647, 12), ("b", -3, 7)]
    project.sql("INSERT INTO books (isbn, copies, code) VALUES ('c', 2 ^ 40, 1)")


def test_a_cast_that_a_stored_value_refuses_rolls_the_whole_migration_back(project: Project):
    project.change(books("code: str"))
    project.sql("INSERT INTO books (isbn, code) VALUES ('a', '12'), ('b', 'twelve')")
    before = current_revisions(project.engine)

    project.declare(books("code: int\n        note: str | None = None"))
    written = generate_migration(project.scratch, project.history, "narrow")
    assert written is not None  # the scratch database has no rows: the cast passes there
    with pytest.raises(MigrationFailed) as failed:
        migrate(project.engine, project.history)
    message = str(failed.value)
    assert '"twelve"' in message and "rolled back" in message and "ALTER TABLE books" in message
    assert current_revisions(project.engine) == before
    assert project.columns("books")["code"].startswith("text")
    assert "note" not in project.columns("books")  # nothing half-changed
    assert project.sql("SELECT isbn, code FROM books ORDER BY isbn") == [("a", "12"), ("b", "twelve")]


def test_a_value_out_of_the_new_range_is_named_too(project: Project):
    """PostgreSQL says only "integer out of range": depot looks for the values itself."""
    project.change(books("copies: Annotated[int, BigInt()]"))
    project.sql("INSERT INTO books (isbn, copies) VALUES ('a', 1), ('b', 3000000000)")
    project.declare(books("copies: int"))
    generate_migration(project.scratch, project.history, "narrow")
    with pytest.raises(MigrationFailed, match=r"out of range(.|\n)*stored: books\.copies = '3000000000'"):
        migrate(project.engine, project.history)
    assert project.sql("SELECT copies FROM books ORDER BY isbn") == [(1,), (3000000000,)]


STORES = """
    @CATALOG.table("stores", group="primary", natural_key=("store",))
    class Store:
        store: str
        kind: Annotated[str, OneOf({kinds!r})] = "shop"
"""


def test_a_changed_one_of_is_migrated_and_takes_effect(project: Project):
    project.change(STORES.format(kinds=("shop", "online")))
    project.sql("INSERT INTO stores (store, kind) VALUES ('main', 'shop'), ('web', 'online')")
    with pytest.raises(sa.exc.IntegrityError, match="ck_stores_kind_choice"):
        project.sql("INSERT INTO stores (store, kind) VALUES ('gare', 'kiosk')")

    written, summary = project.change(STORES.format(kinds=("shop", "online", "kiosk")), "kiosks")
    text = written.read_text().split("def downgrade")[0]
    assert "drop_constraint(op.f('ck_stores_kind_choice')" in text and "create_check_constraint" in text
    assert any("kiosk" in line for line in summary)
    project.sql("INSERT INTO stores (store, kind) VALUES ('gare', 'kiosk')")  # accepted now

    again, _ = project.change(STORES.format(kinds=("shop", "online", "kiosk")), "nothing")
    assert again is None

    project.change(STORES.format(kinds=("kiosk", "online", "shop")), "reordered")  # same set, new order
    project.sql("DELETE FROM stores WHERE kind = 'online'")
    project.change(STORES.format(kinds=("shop", "kiosk")), "no more online")
    with pytest.raises(sa.exc.IntegrityError, match="ck_stores_kind_choice"):
        project.sql("INSERT INTO stores (store, kind) VALUES ('web', 'online')")  # refused now
    assert project.sql("SELECT store FROM stores ORDER BY store") == [("gare",), ("main",)]


def test_bounds_added_to_an_existing_column_are_migrated(project: Project):
    project.change(books("pages: int"))
    written, _ = project.change(books("pages: Annotated[int, Ge(1)]"), "bounded")
    assert "create_check_constraint(op.f('ck_books_pages_ge')" in written.read_text()
    with pytest.raises(sa.exc.IntegrityError, match="ck_books_pages_ge"):
        project.sql("INSERT INTO books (isbn, pages) VALUES ('a', 0)")


SHOP = """
    @CATALOG.table("stores", group="primary", natural_key=("store",))
    class Store:
        store: str
"""
AUTHORS = """
    @CATALOG.table("authors", group="primary", natural_key=("author_id",))
    class Author:
        author_id: str
"""
WRITTEN_BY = """
    @CATALOG.table("books", group="secondary", natural_key=("isbn",))
    class Book:
        isbn: str
        author_id: Annotated[str, References("authors")]
"""
LOOSE_BOOKS = """
    @CATALOG.table("books", group="secondary", natural_key=("isbn",))
    class Book:
        isbn: str
        author_id: str
"""


def test_a_referenced_table_is_dropped_after_the_table_that_references_it(project: Project):
    project.change(SHOP + AUTHORS + WRITTEN_BY)
    project.sql("INSERT INTO stores (store) VALUES ('main')")
    project.sql("INSERT INTO authors (author_id) VALUES ('le-guin')")
    project.sql("INSERT INTO books (isbn, author_id) VALUES ('1', 'le-guin')")

    written, summary = project.change(SHOP, "only stores")
    text = written.read_text().split("def downgrade")[0]
    assert text.index("drop_table('books')") < text.index("drop_table('authors')")
    own = [line for line in summary if not line.endswith(("_history", "_claims"))]  # derived tables go too
    assert own[-2:] == ["drop table books", "drop table authors"]
    assert not {"books", "authors"} & set(sa.inspect(project.engine).get_table_names())
    assert project.sql("SELECT store FROM stores") == [("main",)]


def test_a_referenced_table_is_dropped_while_the_referencing_one_stays(project: Project):
    project.change(AUTHORS + WRITTEN_BY)
    project.sql("INSERT INTO authors (author_id) VALUES ('le-guin')")
    project.sql("INSERT INTO books (isbn, author_id) VALUES ('1', 'le-guin')")

    written, _ = project.change(LOOSE_BOOKS, "no more authors")  # the reference goes with the table
    text = written.read_text().split("def downgrade")[0]
    assert text.index("drop_constraint(op.f('fk_books_author_id')") < text.index("drop_table('authors')")
    assert project.sql("SELECT isbn, author_id FROM books") == [("1", "le-guin")]
    project.sql("INSERT INTO books (isbn, author_id) VALUES ('2', 'anyone')")  # no foreign key left


def test_drift_names_each_difference(project: Project):
    project.change(STORES.format(kinds=("shop", "online")) + books("pages: int\n        note: str | None = None"))
    changed = project.declare(STORES.format(kinds=("shop", "kiosk")) + books(
        "pages: Annotated[int, BigInt()]\n        note: str\n        title: str") + AUTHORS)
    with project.engine.connect() as connection:
        found = differences(connection, changed.catalog)
    assert "table authors: missing" in found
    assert "books.title: missing" in found
    assert "books.pages: type integer -> bigint" in found
    assert "books.note: becomes NOT NULL" in found
    assert "stores: check ck_stores_kind_choice is (kind = ANY (ARRAY['shop'::text, 'online'::text])) in the " \
           "database, \"kind\" IN ('shop', 'kiosk') in the catalog" in found
    own = [f for f in found if "_history" not in f and "_claims" not in f]  # the derived tables follow theirs
    assert len(own) == 5, found  # and nothing else: the system tables match
    assert "books_history.title: missing" in found and "table authors_history: missing" in found


def test_no_drift_after_migrating(project: Project):
    project.change(STORES.format(kinds=("shop", "online")) + SHOP.replace("stores", "shops").replace("Store", "Shop"))
    with project.engine.connect() as connection:
        assert differences(connection, project.history.catalog) == []


def test_a_check_depot_did_not_name_is_kept_and_one_it_named_is_drift(project: Project):
    project.change(books("pages: int"))
    project.sql("ALTER TABLE books ADD CONSTRAINT legacy_pages CHECK (pages < 10000)")  # as adopt leaves one
    with project.engine.connect() as connection:
        assert differences(connection, project.history.catalog) == []
    project.sql("ALTER TABLE books ADD CONSTRAINT ck_books_pages_ge CHECK (pages >= 1)")
    with project.engine.connect() as connection:
        assert differences(connection, project.history.catalog) == [
            "books: check ck_books_pages_ge ((pages >= 1)) is not in the catalog"]


def test_a_changed_pattern_with_digits_after_its_wrapper_reaches_postgresql_intact(project: Project):
    project.change(books('code: Annotated[str, Pattern(r"[0-9]{13}")]'))
    written, _ = project.change(books('code: Annotated[str, Pattern(r"97[89][0-9]{10}")]'))  # "(?:97" holds ":97"
    assert written is not None
    (definition,) = project.sql("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = "
                                "'ck_books_code_pattern'")[0]
    assert "'^(?:97[89][0-9]{10})$'" in definition
    project.sql("INSERT INTO books (isbn, code) VALUES ('a', '9781234567897')")
    with project.engine.connect() as connection:
        assert differences(connection, project.history.catalog) == []


def test_the_app_refuses_to_start_on_a_drifted_store(project: Project):
    from fastapi.testclient import TestClient

    from entrypoints.app import StoreRefused, create_app
    from entrypoints.container import Container
    from entrypoints.settings import Settings

    project.change(books("pages: int"))
    drifted = project.declare(books("pages: int\n        title: str"))
    container = Container()
    container.catalog.override(drifted.catalog)
    container.settings.override(Settings(storage="postgres", database_url=project.engine.url.render_as_string(
        hide_password=False), migrate_on_start=False))
    with pytest.raises(StoreRefused, match=r"books\.title: missing(.|\n)*depot makemigration"):
        with TestClient(create_app(container)):
            pass


def test_a_renamed_reference_column_keeps_its_values_and_its_foreign_key(project: Project):
    project.change(AUTHORS + WRITTEN_BY)
    project.sql("INSERT INTO authors (author_id) VALUES ('le-guin')")
    project.sql("INSERT INTO books (isbn, author_id) VALUES ('1', 'le-guin')")
    project.change(AUTHORS + WRITTEN_BY.replace('author_id: Annotated[str, References("authors")]',
                                                'writer: Annotated[str, References("authors"), Renamed("author_id")]'))
    assert project.sql("SELECT isbn, writer FROM books") == [("1", "le-guin")]
    with pytest.raises(sa.exc.IntegrityError, match="fk_books_writer"):
        project.sql("INSERT INTO books (isbn, writer) VALUES ('2', 'nobody')")


def test_a_text_column_with_a_pattern_becomes_a_bounded_number(project: Project):
    """The old check cannot stay through the cast (text ~ pattern on an integer): it goes first."""
    project.change(books('code: Annotated[str, Pattern(r"[0-9]+")]'))
    project.sql("INSERT INTO books (isbn, code) VALUES ('a', '12'), ('b', '007')")
    project.change(books("code: Annotated[int, Ge(0)]"))
    assert project.sql("SELECT isbn, code FROM books ORDER BY isbn") == [("a", 12), ("b", 7)]
    with pytest.raises(sa.exc.IntegrityError, match="ck_books_code_ge"):
        project.sql("INSERT INTO books (isbn, code) VALUES ('c', -1)")


def test_a_table_still_referenced_from_outside_the_change_is_not_dropped_half_way(project: Project):
    """makemigration's own scratch database never has such a table; a safety net, tested directly."""
    from alembic.operations import ops

    from adapters.postgres.schema_changes import refine
    from adapters.postgres.tables import build_metadata

    project.sql("CREATE TABLE authors (author_id text PRIMARY KEY)")
    project.sql("CREATE TABLE fan_mail (author_id text CONSTRAINT fk_fan_mail_author REFERENCES authors)")
    catalog = project.declare(SHOP).catalog
    drop = ops.DropTableOp.from_table(sa.Table("authors", sa.MetaData(), autoload_with=project.engine))
    with project.engine.connect() as connection, pytest.raises(ChangeRefused) as refused:
        refine(ops.UpgradeOps([drop]), connection, catalog, build_metadata(catalog))
    assert str(refused.value).startswith("table authors cannot be dropped: fan_mail still references it")


def test_moving_the_system_columns_aside_is_a_migration_that_keeps_their_values(project: Project):
    project.change(books("pages: int"))
    project.sql("INSERT INTO books (isbn, pages, version, source) VALUES ('a', 304, 7, 'manual')")
    prefixed = ('\n    CATALOG = Catalog(system_columns="_depot_")\n'
                + books("pages: int\n        version: str | None = None"))

    written, summary = project.change(prefixed, "move depot's columns aside")
    text = written.read_text().split("def downgrade")[0]
    assert "new_column_name='_depot_version'" in text and "drop_column" not in text
    assert "books.version: renamed to _depot_version" in summary and "add column books.version" in summary
    assert project.sql("SELECT isbn, _depot_version, _depot_source, version FROM books") == [("a", 7, "manual", None)]
    with project.engine.connect() as connection:
        assert differences(connection, project.history.catalog) == []  # keys, indexes and references follow


def test_system_columns_renamed_there_and_back_keep_their_values(project: Project):
    project.change(books("pages: int"))
    project.sql("INSERT INTO books (isbn, pages, version) VALUES ('a', 304, 7)")
    project.change('\n    CATALOG = Catalog(system_columns="sys_")\n' + books("pages: int"), "prefix")
    assert project.sql("SELECT sys_version, sys_source FROM books") == [(7, "manual")]
    written, _ = project.change(books("pages: int"), "and back")
    assert "drop_column" not in written.read_text().split("def downgrade")[0]
    assert project.sql("SELECT version, source FROM books") == [(7, "manual")]
    with project.engine.connect() as connection:
        assert differences(connection, project.history.catalog) == []


def test_a_searchable_column_gets_a_generated_tsvector_with_a_gin_index(project: Project):
    written, _ = project.change(books("title: Annotated[str | None, Searchable()] = None"), "searchable")
    text = written.read_text()
    assert "title_tsv" in text and "Computed(" in text and "postgresql_using='gin'" in text
    project.sql("INSERT INTO books (isbn, title) VALUES ('a', 'The Quick Fox'), ('b', NULL)")
    assert project.sql("SELECT isbn FROM books WHERE title_tsv @@ to_tsquery('simple', 'fox')") == [("a",)]
    with project.engine.connect() as connection:
        assert differences(connection, project.history.catalog) == []
    again, _ = project.change(books("title: Annotated[str | None, Searchable()] = None"), "again")
    assert again is None  # a generated column and its index compare equal once migrated


def test_a_history_table_added_to_a_table_with_rows_starts_with_their_current_values(project: Project):
    project.change(books("pages: int").replace('natural_key=("isbn",))', 'natural_key=("isbn",), history=False)'))
    project.sql("INSERT INTO books (isbn, pages) VALUES ('a', 304), ('b', 12)")
    written, _ = project.change(books("pages: int"), "history")
    assert "INSERT INTO \"books_history\"" in written.read_text().split("def downgrade")[0]
    assert project.sql("SELECT operation, isbn, pages, version, valid_to FROM books_history ORDER BY isbn") == [
        ("insert", "a", 304, 1, None), ("insert", "b", 12, 1, None)]


def test_turning_soft_delete_on_later_adds_deleted_at_and_moving_it_aside_renames_it(project: Project):
    project.change(books("pages: int"))
    project.sql("INSERT INTO books (isbn, pages) VALUES ('a', 304)")
    soft = books("pages: int").replace('natural_key=("isbn",))', 'natural_key=("isbn",), soft_delete=True)')

    written, summary = project.change(soft, "soft delete")
    text = written.read_text().split("def downgrade")[0]
    assert "add_column('books'" in text and "deleted_at" in text and "drop_column" not in text
    assert project.sql("SELECT isbn, deleted_at FROM books") == [("a", None)]  # live, not deleted at migration
    assert "deleted_at" in project.columns("books_history")  # versions keep when a row was deleted
    project.sql("UPDATE books SET deleted_at = '2026-11-27T00:00:00Z'")

    written, summary = project.change('\n    CATALOG = Catalog(system_columns="_depot_")\n' + soft, "aside")
    assert "new_column_name='_depot_deleted_at'" in written.read_text().split("def downgrade")[0]
    assert "books.deleted_at: renamed to _depot_deleted_at" in summary
    assert project.sql("SELECT count(*) FROM books WHERE _depot_deleted_at IS NOT NULL") == [(1,)]
    with project.engine.connect() as connection:
        assert differences(connection, project.history.catalog) == []


SIGHTINGS = """
    @CATALOG.table("sightings", group="instances", natural_key=("species",), surrogate_id=True{options})
    class Sighting:
        species: str
"""


def test_a_natural_key_that_stops_being_unique_loses_its_constraint_and_keeps_an_index(project: Project):
    project.change(SIGHTINGS.format(options=""))
    project.sql("INSERT INTO sightings (species) VALUES ('wren')")
    with pytest.raises(sa.exc.IntegrityError):
        project.sql("INSERT INTO sightings (species) VALUES ('wren')")

    written, _ = project.change(SIGHTINGS.format(options=", unique_natural_key=False"), "repeatable")
    text = written.read_text().split("def downgrade")[0]
    assert "drop_constraint(op.f('uq_sightings_species')" in text
    assert "create_index(op.f('ix_sightings_species')" in text
    assert "drop_table('sightings_claims')" in text  # a row appended is never superseded: nothing to claim
    project.sql("INSERT INTO sightings (species) VALUES ('wren')")
    assert project.sql("SELECT species FROM sightings ORDER BY id") == [("wren",), ("wren",)]
    with project.engine.connect() as connection:
        assert differences(connection, project.history.catalog) == []
    again, _ = project.change(SIGHTINGS.format(options=", unique_natural_key=False"), "again")
    assert again is None
