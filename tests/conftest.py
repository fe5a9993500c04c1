"""Shared fixtures: the catalog, fakes, and one embedded PostgreSQL for the whole session."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import psycopg2
import pytest
import sqlalchemy as sa

from adapters.memory.repository import InMemoryUnitOfWork, MemoryStore
from depot.examples.flights.catalog import CATALOG
from domain.ports import AbstractUnitOfWork
from domain.schema import Catalog
from entrypoints.catalogs import load_catalog

UowFactory = Callable[[], AbstractUnitOfWork]


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook, called in the controlling process
def pytest_xdist_node_collection_finished(node, ids: list[str]) -> None:
    """Refuse a pytest-xdist run by file or scope over tests that share a node id: those schedulers
    send tests by node id, so such tests would run once, not once each, and say nothing. Schemathesis
    names all of tests/fuzz/test_openapi.py's operations alike: `make test` runs it without xdist."""
    if node.config.option.dist not in ("loadfile", "loadscope", "loadgroup"):
        return
    shared = sorted(nodeid for nodeid, count in Counter(ids).items() if count > 1)
    if shared:
        pytest.exit(f"{', '.join(shared)}: tests of one node id would run only once under --dist "
                    f"{node.config.option.dist}; run them with -p no:xdist, as make test does",
                    returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture
def catalog() -> Catalog:
    return CATALOG


@pytest.fixture
def memory_store(catalog: Catalog) -> MemoryStore:
    return MemoryStore(catalog)


@pytest.fixture
def memory_uow(memory_store: MemoryStore) -> UowFactory:
    return lambda: InMemoryUnitOfWork(memory_store)


# --- PostgreSQL ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server():
    """An embedded PostgreSQL, or DEPOT_TEST_DATABASE_URL's server when that is set."""
    external = os.environ.get("DEPOT_TEST_DATABASE_URL")
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ... under pytest-xdist (make test)
    if external and worker:  # workers share that server: a database each, made here, dropped after
        yield from _database_of_its_own(external, f"depot_test_{worker}")
        return
    if external:
        yield external
        return
    from adapters.postgres.embedded import start_embedded

    # Not under pytest's numbered tmp dirs: a concurrent pytest run may prune those.
    data_dir = tempfile.mkdtemp(prefix="depot-test-pg-")
    server = start_embedded(data_dir)
    yield server.url
    server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_engine(pg_server: str) -> Iterator[sa.Engine]:
    """The catalog's schema, built by the real migrations, once per session."""
    from adapters.postgres.db import drop_schema, make_engine, migrate

    engine = make_engine(pg_server, pool_size=5)
    drop_schema(engine, CATALOG)
    migrate(engine, load_catalog().history)
    yield engine
    engine.dispose()


def truncate_all(engine: sa.Engine, catalog: Catalog) -> None:
    from adapters.postgres.db import seed_sql

    names = ", ".join(f'"{catalog.schema_of(t.name)}"."{t.name}"' for t in catalog)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        connection.exec_driver_sql(seed_sql(catalog))


@pytest.fixture
def pg_uow(pg_engine: sa.Engine, catalog: Catalog) -> Iterator[UowFactory]:
    """A clean database for each test; units of work over it."""
    from adapters.postgres.repository import SqlAlchemyUnitOfWork

    truncate_all(pg_engine, catalog)
    yield lambda: SqlAlchemyUnitOfWork(pg_engine, catalog)


# The bundled catalog with depot's system columns moved aside, as a catalog whose data has its own
# `version` or `source` declares it: the contract suite runs on it too, so no layer names them literally.
PREFIXED = CATALOG.with_system_columns("_depot_")
PREFIXED_DATABASE = "depot_prefixed_" + os.environ.get("PYTEST_XDIST_WORKER", "main")  # one per worker


@pytest.fixture(scope="session")
def prefixed_engine(pg_server: str) -> Iterator[sa.Engine]:
    """A database of its own whose tables are the prefixed catalog's, made from its metadata."""
    from adapters.postgres.db import create_schema, make_engine

    admin = psycopg2.connect(_with_database(pg_server, "postgres").replace("+psycopg2", ""))
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{PREFIXED_DATABASE}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{PREFIXED_DATABASE}"')
    engine = make_engine(_with_database(pg_server, PREFIXED_DATABASE), pool_size=5)
    create_schema(engine, PREFIXED)
    yield engine
    engine.dispose()
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE "{PREFIXED_DATABASE}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def prefixed_uow(prefixed_engine: sa.Engine) -> UowFactory:
    from adapters.postgres.repository import SqlAlchemyUnitOfWork

    truncate_all(prefixed_engine, PREFIXED)
    return lambda: SqlAlchemyUnitOfWork(prefixed_engine, PREFIXED)


@pytest.fixture(params=["memory", "postgres", "postgres_prefixed"])
def uow_factory(request: pytest.FixtureRequest) -> UowFactory:
    """The contract suite's parameter: every test runs on both adapters, and on PostgreSQL once more
    with the system columns named `_depot_source`, `_depot_version`, ..."""
    if request.param == "memory":
        return request.getfixturevalue("memory_uow")
    if request.param == "postgres_prefixed":
        return request.getfixturevalue("prefixed_uow")
    return request.getfixturevalue("pg_uow")


def _database_of_its_own(url: str, name: str) -> Iterator[str]:
    admin = psycopg2.connect(_with_database(url, "postgres").replace("+psycopg2", ""))
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(url, name)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _with_database(url: str, name: str) -> str:
    head, _, query = url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}?{query}"


@pytest.fixture
def new_database(pg_server: str) -> Iterator[Callable[[], str]]:
    """Makes empty databases on the session's server; drops them afterwards."""
    admin = psycopg2.connect(_with_database(pg_server, "postgres").replace("+psycopg2", ""))
    admin.autocommit = True
    made: list[str] = []

    def make() -> str:
        name = f"depot_schema_{uuid.uuid4().hex[:8]}"
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return _with_database(pg_server, name)

    yield make
    with admin.cursor() as cursor:
        for name in made:
            cursor.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()
