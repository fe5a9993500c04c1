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


def test_a_catalog_that_cannot_load_is_one_line_and_exit_2(tmp_path):
    missing = run("tables", "--storage", "memory", "--catalog", str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "broken.py").write_text("from depot import Catalog\nCATALOG = Catalog()\n1/0\n")
    broken = run("serve", "--catalog", str(tmp_path / "broken.py"))
    assert broken.returncode == 2 and "ZeroDivisionError" in broken.stderr and "broken.py:3" in broken.stderr
    assert "Traceback" not in broken.stderr


def test_db_url_names_the_embedded_socket_and_psql_reaches_it(tmp_path):
    url = run("db-url", DEPOT_DATA_DIR=str(tmp_path / "data"))
    assert url.returncode == 0 and url.stdout.strip() == f"postgresql://postgres@/depot?host={tmp_path}/data/pgdata"
    assert "not running" in url.stderr
    psql = run("psql", "-At", "-c", "select current_database()", DEPOT_DATA_DIR=str(tmp_path / "data"))
    assert psql.returncode == 0 and psql.stdout.strip() == "depot", psql.stderr
    failing = run("psql", "-c", "select nope", DEPOT_DATA_DIR=str(tmp_path / "data"))
    assert failing.returncode != 0 and 'column "nope" does not exist' in failing.stderr  # psql's own status
