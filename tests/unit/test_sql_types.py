"""The DDL each declared type and check becomes on PostgreSQL, compiled without a database."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from annotated_types import Gt, Lt, MaxLen
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from adapters.postgres.tables import build_metadata
from domain.schema import Catalog, Naive, Pattern


def ddl() -> str:
    catalog = Catalog()

    @catalog.table("things", group="ingestion", natural_key=("isbn",))
    class Thing:
        isbn: Annotated[str, Pattern(r"97[89][0-9]{10}")]
        code: Annotated[str, MaxLen(8)]
        ref: uuid.UUID
        seen: Annotated[dt.datetime, Naive()]
        stamp: dt.datetime
        tags: list[str]
        counts: list[int] | None
        doc: list | None
        share: Annotated[float, Gt(0), Lt(1)]
        label: Annotated[str, Pattern(r"[[:alpha:]]+")]

    return str(CreateTable(build_metadata(catalog).tables["things"]).compile(dialect=postgresql.dialect()))


def test_each_type_becomes_its_postgresql_type():
    text = ddl()
    for expected in ('code VARCHAR(8) COLLATE "C" NOT NULL', "ref UUID NOT NULL",
                     "seen TIMESTAMP WITHOUT TIME ZONE NOT NULL", "stamp TIMESTAMP WITH TIME ZONE NOT NULL",
                     'tags TEXT[] COLLATE "C" NOT NULL', "counts INTEGER[]", "doc JSONB"):
        assert expected in text, text


def test_maxlen_is_the_type_bound_not_a_check():
    assert "char_length" not in ddl()


def test_strict_bounds_become_strict_checks():
    text = ddl()
    assert 'CHECK ("share" > 0)' in text and 'CHECK ("share" < 1)' in text


def test_colons_in_patterns_reach_the_ddl_as_written():
    text = ddl()
    assert "'^(?:97[89][0-9]{10})$'" in text, text  # not (?NULL[89]: `:97` is no bind parameter
    assert "'^(?:[[:alpha:]]+)$'" in text, text
