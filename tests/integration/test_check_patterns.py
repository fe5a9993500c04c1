"""A Pattern holding `:word` (as `(?:97...` does once wrapped) reaches PostgreSQL as written, both
from the metadata and from a migration Alembic's autogenerate renders: SQLAlchemy would otherwise
read `:97` as a bind parameter and send `(?NULL[89]...`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

import pytest
import sqlalchemy as sa
from alembic.autogenerate import produce_migrations, render_python_code
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects import postgresql

from adapters.postgres.db import make_engine
from adapters.postgres.tables import build_metadata, render_item
from domain.schema import Catalog, Pattern

PATTERNS = {
    "isbn": r"97[89][0-9]{10}",
    "urn": r"(urn|isbn)-[0-9]+(:[a-z]+)?",  # a colon before a word, not only after the wrapper's "(?"
    "escaped": r"a\:b",  # a backslash-colon of the user's own stays one
}


def books() -> Catalog:
    catalog = Catalog()

    @catalog.table("books", group="ingestion", natural_key=("isbn",))
    class Book:
        isbn: Annotated[str, Pattern(PATTERNS["isbn"])]
        urn: Annotated[str | None, Pattern(PATTERNS["urn"])] = None
        escaped: Annotated[str | None, Pattern(PATTERNS["escaped"])] = None

    return catalog


def check_definitions(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'books'::regclass AND contype = 'c'"
        ))
        return dict(rows.all())


def assert_intended_checks(engine: sa.Engine) -> None:
    definitions = check_definitions(engine)
    for column, regex in PATTERNS.items():
        assert f"'^(?:{regex})$'" in definitions[f"ck_books_{column}_pattern"], definitions
    with engine.begin() as connection:  # validation bypassed: the CHECK alone decides
        connection.execute(sa.text("INSERT INTO books (isbn, urn, escaped) VALUES "
                                   "('9781234567897', 'isbn-42:ab', 'a:b')"))
    for column, value in [("isbn", "1234567890123"), ("urn", "isbn-42:"), ("escaped", "ab")]:
        values = {"isbn": "9790000000000", "urn": None, "escaped": None, column: value}
        with pytest.raises(sa.exc.IntegrityError) as refused, engine.begin() as connection:
            connection.execute(sa.text("INSERT INTO books (isbn, urn, escaped) VALUES (:isbn, :urn, :escaped)"),
                               values)
        assert refused.value.orig.pgcode == "23514"
        assert f"ck_books_{column}_pattern" in str(refused.value.orig)


@pytest.fixture
def engine(new_database: Callable[[], str]) -> Iterator[sa.Engine]:
    """An empty database of its own, so the table's checks are the only ones named `ck_books_*`."""
    engine = make_engine(new_database(), pool_size=1)
    yield engine
    engine.dispose()


def test_patterns_with_colons_give_the_intended_check_from_the_metadata(engine: sa.Engine):
    build_metadata(books()).create_all(engine)
    assert_intended_checks(engine)


def test_a_migration_rendered_by_autogenerate_gives_the_same_checks(engine: sa.Engine):
    with engine.begin() as connection:
        context = MigrationContext.configure(connection)
        script = produce_migrations(context, build_metadata(books()))
        # With the hook `depot makemigration` renders with (migrations/env.py).
        code = render_python_code(script.upgrade_ops, render_item=render_item)
        assert "97[89]" in code
        # What `depot makemigration` writes is this text; run it as `alembic upgrade` would, each
        # line at the top level (the rendering indents all but its first comment for a def's body).
        body = "\n".join(line.strip() for line in code.splitlines())
        # The system tables come with every Catalog: their JSONB renders as postgresql.JSONB(astext_type=Text()).
        exec(body, {"op": Operations(context), "sa": sa, "postgresql": postgresql, "Text": sa.Text})  # noqa: S102 - the code we just rendered
    assert_intended_checks(engine)

