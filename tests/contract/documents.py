"""A small catalog of its own for the read-language tests that need JSON and free text: one
`documents` table, declared here, with the same rows on both adapters."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated
from urllib.parse import parse_qsl

import pytest

from depot.examples.flights.catalog import CATALOG
from domain.ports import AbstractUnitOfWork
from domain.schema import Catalog, Searchable
from entrypoints.query_string import parse_read
from service_layer import reads, services


def documents_catalog() -> Catalog:
    catalog = CATALOG.extend()

    @catalog.table("documents", group="primary", natural_key=("name",))
    class Document:
        """Rows with a JSON value and a text to search."""

        name: str
        data: dict | None = None
        body: str | None = None
        tags: list[str] | None = None
        scores: list[int] | None = None
        abstract: Annotated[str | None, Searchable()] = None  # body again, searched through its tsvector

    return catalog


DOCUMENTS = documents_catalog()

ROWS = [
    {"name": "a", "data": {"n": 1, "s": "x", "tags": ["red", "blue"], "nested": {"k": "v1"}, "flag": True},
     "body": "The quick brown fox jumps over the lazy dog", "tags": ["red", "blue"], "scores": [1, 2]},
    {"name": "b", "data": {"n": 2.5, "s": "y", "tags": ["blue"], "nested": {"k": "v2"}, "flag": False},
     "body": "A lazy afternoon with quick naps", "tags": ["blue"], "scores": [2, 3, 3]},
    {"name": "c", "data": {"n": "3", "s": None, "tags": [], "nested": {"k": None}},
     "body": "Foxes and dogs are friends, the fox said", "tags": [], "scores": []},
    {"name": "d", "data": {"s": "Z", "tags": ["green", "red"]}, "body": None,
     "tags": ["green", "red", "a,b"], "scores": [-1]},
    {"name": "e", "data": {"n": 10, "nested": {"k": {"deep": 1}}, "list": [1, 2, 3]},
     "body": "quick quick brown-eyed fox"},
    {"name": "f", "data": [1, "two", {"three": 3}], "body": ""},
]


for _row in ROWS:
    _row["abstract"] = _row["body"]


def memory_documents() -> Callable[[], AbstractUnitOfWork]:
    from adapters.memory.repository import InMemoryUnitOfWork, MemoryStore

    store = MemoryStore(DOCUMENTS)
    factory: Callable[[], AbstractUnitOfWork] = lambda: InMemoryUnitOfWork(store)  # noqa: E731
    services.create_rows(factory(), "documents", ROWS)
    return factory


@contextmanager
def postgres_documents(request: pytest.FixtureRequest) -> Iterator[Callable[[], AbstractUnitOfWork]]:
    from adapters.postgres.repository import SqlAlchemyUnitOfWork
    from adapters.postgres.tables import build_metadata

    engine = request.getfixturevalue("pg_engine")
    request.getfixturevalue("pg_uow")  # a clean database with the catalog migrated
    metadata = build_metadata(DOCUMENTS)
    derived = ("documents", "documents_history", "documents_claims")
    tables = [metadata.tables[n] for n in derived if n in metadata.tables]
    metadata.drop_all(engine, tables=tables, checkfirst=True)
    metadata.create_all(engine, tables=tables)
    try:
        factory = lambda: SqlAlchemyUnitOfWork(engine, DOCUMENTS)  # noqa: E731
        services.create_rows(factory(), "documents", ROWS)
        yield factory
    finally:
        metadata.drop_all(engine, tables=tables)


@pytest.fixture(params=["memory", "postgres"])
def documents(request: pytest.FixtureRequest) -> Iterator[Callable[[], AbstractUnitOfWork]]:
    """Units of work over the documents catalog, seeded with ROWS, on each adapter."""
    if request.param == "memory":
        yield memory_documents()
        return
    with postgres_documents(request) as factory:
        yield factory


@pytest.fixture
def both_documents(request: pytest.FixtureRequest):
    """(memory, postgres) units of work over the same documents, for tests that compare them."""
    with postgres_documents(request) as factory:
        yield memory_documents(), factory


def page(uow, query: str, *, max_rows: int | None = 100) -> reads.ReadPage:
    read = parse_read(DOCUMENTS, DOCUMENTS["documents"], parse_qsl(query, keep_blank_values=True), None, max_rows)
    return reads.read_page(uow(), "documents", read)


def names(uow, query: str) -> list[str]:
    return [r["name"] for r in page(uow, "select=name&" + query).rows]
