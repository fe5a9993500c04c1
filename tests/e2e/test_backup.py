"""`depot backup` and `depot restore` round trip: every table's count and checksum are equal after a
restore into a fresh data directory; a restore into a database with tables refuses without --force."""

from __future__ import annotations

import subprocess

import pytest

from tests.e2e.depot_process import DEPOT, DepotProcess, clean_env, pg_connect, postmasters
from tests.e2e.test_ingest_flights import SLICE, flights_lines, ingest, load_reference_data

pytestmark = pytest.mark.postgres


def depot(*args: str, data_dir) -> subprocess.CompletedProcess:
    return subprocess.run([DEPOT, *args], env=clean_env(data_dir=str(data_dir)), capture_output=True, text=True,
                          timeout=180)


def fingerprint(pgdata) -> dict[str, tuple[int, str]]:
    """Each table's row count and an md5 of its rows in a stable order: the catalog's (public) and depot's own."""
    connection = pg_connect(pgdata)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT CASE schemaname WHEN 'public' THEN '' ELSE schemaname || '.' END || "
                           "quote_ident(tablename) FROM pg_tables WHERE schemaname IN ('public', 'depot')")
            tables = [name for (name,) in cursor.fetchall()]
            found = {}
            for table in tables:
                cursor.execute(f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') "
                               f"FROM {table} t")
                found[table] = cursor.fetchone()
            return found
    finally:
        connection.close()


@pytest.fixture
def dirs(tmp_path):
    yield tmp_path / "first", tmp_path / "second"
    for name in ("first", "second"):
        for proc in postmasters((tmp_path / name).resolve() / "pgdata"):
            proc.kill()


def test_round_trip_into_a_fresh_data_dir_keeps_every_row(dirs, tmp_path):
    first_dir, second_dir = dirs
    first = DepotProcess(first_dir)
    first.wait_healthy()
    with first.client() as client:
        assert client.post("/api/sources", json={"code": "scraper", "name": "A scraper", "priority": 5}).status_code \
            == 201
    # The flights data: airlines and airports whole, then a slice of flights (rows, their history, and the
    # rejections of the flights to airports the file lacks).
    load_reference_data(first)
    report = ingest(first, "flights", b"".join(flights_lines()[: SLICE + 1]), source="scraper").json()
    assert report["inserted"] > 19_000 and report["rejected"] > 0
    dump = tmp_path / "depot.dump"
    result = depot("backup", str(dump), data_dir=first_dir)  # while depot serves: pg_dump is consistent
    assert result.returncode == 0, result.stderr
    assert dump.stat().st_size > 0 and not (tmp_path / "depot.dump.partial").exists()
    before = fingerprint(first.pgdata)
    first.stop()
    assert before["flights"][0] == report["inserted"] and before["flights_history"][0] == report["inserted"]
    assert before["depot.rejected_rows"][0] == report["rejected"] and before["depot.alembic_version"][0] >= 1
    assert before["depot.sources"][0] == 2 and before["alembic_version"][0] >= 1  # and the catalog's history

    result = depot("restore", str(dump), data_dir=second_dir)
    assert result.returncode == 0, result.stderr
    second = DepotProcess(second_dir)  # starts on the restored database: migrations at head, no drift
    try:
        second.wait_healthy()
        assert fingerprint(second.pgdata) == before
        with second.client() as client:
            counted = client.get("/api/flights?select=id&limit=1", headers={"Prefer": "count=exact"})
            assert counted.headers["content-range"].endswith(f"/{report['inserted']}")
    finally:
        second.stop()
    assert "Traceback" not in second.log()

    refused = depot("restore", str(dump), data_dir=second_dir)
    assert refused.returncode == 2 and "not empty" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    forced = depot("restore", "--force", str(dump), data_dir=second_dir)
    assert forced.returncode == 0, forced.stderr
    again = DepotProcess(second_dir)
    try:
        again.wait_healthy()
        assert fingerprint(again.pgdata) == before
    finally:
        again.stop()


def test_restore_of_a_missing_file_is_one_line(tmp_path):
    result = depot("restore", str(tmp_path / "nope.dump"), data_dir=tmp_path / "data")
    assert result.returncode == 1 and "is not a file" in result.stderr and "Traceback" not in result.stderr
    for proc in postmasters((tmp_path / "data").resolve() / "pgdata"):
        proc.kill()
