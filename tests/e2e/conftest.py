"""A real depot server process (`depot serve`) on the session's PostgreSQL, for tests that speak HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _database(server_url: str, name: str) -> str:
    return make_url(server_url.replace("postgresql://", "postgresql+psycopg2://", 1)).set(
        database=name).render_as_string(hide_password=False)


def wait_for_health(base: str, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"depot serve exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"depot serve did not answer /health within {timeout}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def live_server(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`depot serve` on a free port, over a database of its own (created here, dropped after),
    so it never meets the truncations of the contract suite. Yields the base URL, e.g.
    http://127.0.0.1:PORT (the table API is under /api). The process is stopped at the end."""
    name = f"depot_e2e_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(_database(pg_server, "postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("live-server") / "depot.log"
    env = {**os.environ, "DEPOT_DATABASE_URL": _database(pg_server, name).replace("+psycopg2", ""),
           "DEPOT_LOG_LEVEL": "warning", "DEPOT_API_KEYS": ""}
    env.pop("DATABASE_URL", None)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--storage", "postgres"],
            env=env, stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        wait_for_health(base, process, log)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
