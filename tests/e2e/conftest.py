"""A real depot server process (`depot serve`) on the session's PostgreSQL, for tests that speak HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.e2e.depot_process import DepotProcess


def _database(server_url: str, name: str) -> str:
    return make_url(server_url.replace("postgresql://", "postgresql+psycopg2://", 1)).set(
        database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def live_server(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`depot serve` on a free port, over a database of its own (created here, dropped after),
    so it never meets the truncations of the contract suite. Yields the base URL, e.g.
    http://127.0.0.1:PORT (the table API is under /api). The process is stopped at the end."""
    name = f"depot_e2e_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(_database(pg_server, "postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    depot = DepotProcess(database_url=_database(pg_server, name).replace("+psycopg2", ""), log_level="warning",
                         log_dir=tmp_path_factory.mktemp("live-server"))
    try:
        yield depot.wait_healthy().url
    finally:
        depot.stop()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
