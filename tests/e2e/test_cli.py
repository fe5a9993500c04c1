"""The `depot` command as a user runs it."""

from __future__ import annotations

import subprocess

from depot.examples.flights.catalog import CATALOG
from tests.e2e.depot_process import DEPOT, clean_env


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([DEPOT, *args], env={**clean_env(), **env}, capture_output=True, text=True, timeout=120)


def test_tables_lists_every_table_with_its_group_and_row_count(pg_server: str, pg_uow):
    result = run("tables", DEPOT_DATABASE_URL=pg_server)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    assert set(lines) == set(CATALOG.names)
    assert lines["sources"] == ["primary", "1"]
    assert lines["flights"] == ["instances", "0"]


def test_tables_works_on_memory_storage_too():
    result = run("tables", "--storage", "memory")
    assert result.returncode == 0 and "rejected_rows" in result.stdout


def test_conventional_database_url_is_honoured(pg_server: str, pg_uow):
    result = run("migrate", DATABASE_URL=pg_server)
    assert result.returncode == 0, result.stderr
    assert "revision" in result.stdout


def test_serve_refuses_memory_storage_with_several_workers():
    result = run("serve", "--storage", "memory", "--workers", "2")
    assert result.returncode != 0 and "--workers 1" in result.stderr
