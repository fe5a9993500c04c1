"""Declared views and migrations: makemigration never creates, alters nor drops a view, and the start-up
drift check sees that each declared view exists, of its kind, with its columns."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from adapters.postgres.db import migrate
from adapters.postgres.schema_changes import differences
from tests.integration.test_schema_changes import Project, books
from tests.integration.test_schema_changes import project as project  # the fixture

SHELF = """
    @CATALOG.view("long_books", key=("isbn",){materialized})
    class LongBook:
        isbn: Annotated[str, References("books")]
        pages: int
"""


def shelf(materialized: bool = False) -> str:
    return SHELF.format(materialized=", materialized=True" if materialized else "")


def test_makemigration_writes_nothing_for_a_declared_view(project: Project):
    project.change(books("pages: int"))
    project.sql("CREATE VIEW long_books AS SELECT isbn, pages FROM books WHERE pages > 500")
    migrate(project.scratch, project.history)
    with project.scratch.begin() as connection:  # makemigration's scratch database has the view too
        connection.exec_driver_sql("CREATE VIEW long_books AS SELECT isbn, pages FROM books WHERE pages > 500")

    written, summary = project.change(books("pages: int") + shelf(), "a view")
    assert written is None, written.read_text() if written else ""
    assert summary == []
    with project.engine.connect() as connection:
        assert differences(connection, project.history.catalog) == []


def test_makemigration_on_a_scratch_database_without_the_view_writes_nothing_either(project: Project):
    written, _ = project.change(books("pages: int") + shelf(materialized=True), "tables and a view")
    assert written is not None
    text = written.read_text()
    assert "long_books" not in text  # the table is created, the view is not
    assert project.sql("SELECT count(*) FROM pg_class WHERE relname = 'long_books'") == [(0,)]


@pytest.mark.parametrize("sql,difference", [
    (None, "long_books: the view is missing from the database"),
    ("CREATE VIEW long_books AS SELECT isbn FROM books", "long_books: the view has no column pages"),
    ("CREATE VIEW long_books AS SELECT isbn, pages::bigint AS pages FROM books",
     "long_books.pages: bigint in the database, integer in the catalog"),
    ("CREATE MATERIALIZED VIEW long_books AS SELECT isbn, pages FROM books",
     "long_books: declared as a view, the database has a materialized view"),
])
def test_drift_names_a_missing_or_different_view(project: Project, sql: str | None, difference: str):
    project.change(books("pages: int"))
    if sql:
        project.sql(sql)
    catalog = project.declare(books("pages: int") + shelf()).catalog
    with project.engine.connect() as connection:
        found = differences(connection, catalog)
    assert found and found[0].startswith(difference), found
    assert len(found) == 1


def test_a_view_in_the_database_is_not_a_table_to_depot(project: Project):
    project.change(books("pages: int"))
    project.sql("CREATE VIEW long_books AS SELECT isbn, pages FROM books WHERE pages > 500")
    # Without a declaration it is not served, and not drift either.
    with project.engine.connect() as connection:
        assert differences(connection, project.history.catalog) == []
    assert sa.inspect(project.engine).get_view_names() == ["long_books"]
