"""What the contract tests over HTTP share: the app served on either adapter, for a catalog of the test's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from depot.examples.flights.catalog import CATALOG
from domain.schema import Catalog
from entrypoints.app import create_app
from entrypoints.container import Container
from entrypoints.settings import Settings


@contextmanager
def served(catalog: Catalog, storage: str, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """A client of the app on `storage` (memory or postgres). On PostgreSQL the database is clean and
    migrated, and the tables the catalog adds to the bundled one are created for the test, then dropped."""
    container = Container()
    container.catalog.override(catalog)
    if storage == "memory":
        container.settings.override(Settings(storage="memory"))
        with TestClient(create_app(container)) as client:
            yield client
        return
    from adapters.postgres.db import make_engine
    from adapters.postgres.tables import build_metadata

    url = request.getfixturevalue("pg_server")
    request.getfixturevalue("pg_uow")  # a clean database with the catalog migrated
    engine = make_engine(url, pool_size=2)
    added = [t for t in build_metadata(catalog).tables.values() if t.name not in CATALOG]
    for table in added:
        table.create(engine)
    container.settings.override(Settings(storage="postgres", database_url=url, migrate_on_start=False))
    try:
        with TestClient(create_app(container)) as client:
            yield client
    finally:
        for table in reversed(added):
            table.drop(engine)
        engine.dispose()


STORES = ["memory", "postgres", "postgres_prefixed"]  # a fixture's params: the contract suite's three stores


@contextmanager
def served_on(request: pytest.FixtureRequest, declare: Callable[[str | None], Catalog]) -> Iterator[TestClient]:
    """`served` on the store `request.param` (one of STORES) names, for the catalog `declare` makes
    with the system-column prefix of that store; the client's `spec` is that catalog."""
    catalog = declare("_depot_" if request.param == "postgres_prefixed" else None)
    with served(catalog, "memory" if request.param == "memory" else "postgres", request) as client:
        client.spec = catalog  # type: ignore[attr-defined]
        yield client
