"""The real thing: `depot serve` as a process, its own embedded PostgreSQL, real HTTP."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.e2e.depot_process import DepotProcess, postmasters


def postgres_running_on(data_dir: Path) -> bool:
    return bool(postmasters(data_dir.resolve() / "pgdata"))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "depot-data"


def test_data_written_survives_a_restart_on_the_embedded_postgres(data_dir: Path):
    server = DepotProcess(data_dir).wait_healthy()
    try:
        assert httpx.get(f"{server.url}/health").json()["storage"] == "postgres"
        created = httpx.post(f"{server.url}/api/airlines", json={"carrier": "AA", "name": "American"})
        assert created.status_code == 201
    finally:
        assert server.terminate() in (0, -signal.SIGTERM)
    assert (data_dir / "pgdata" / "PG_VERSION").exists()
    assert not postgres_running_on(data_dir), "SIGTERM left the embedded PostgreSQL running"

    again = DepotProcess(data_dir).wait_healthy()
    try:
        row = httpx.get(f"{again.url}/api/airlines/AA")
        assert row.status_code == 200 and row.json()["name"] == "American"
    finally:
        again.stop()
    assert not postgres_running_on(data_dir)


def test_memory_storage_serves_the_same_api(tmp_path: Path):
    server = DepotProcess(tmp_path / "unused", args=("--storage", "memory")).wait_healthy()
    try:
        assert httpx.get(f"{server.url}/health").json()["storage"] == "memory"
        assert httpx.post(f"{server.url}/api/airlines", json={"carrier": "AA", "name": "American"}).status_code == 201
        duplicate = httpx.post(f"{server.url}/api/airlines", json={"carrier": "AA", "name": "American"})
        assert duplicate.status_code == 409 and duplicate.json()["code"] == "23505"
        assert [r["carrier"] for r in httpx.get(f"{server.url}/api/airlines").json()] == ["AA"]
    finally:
        server.stop()
    assert not (tmp_path / "unused").exists()


def test_the_full_write_cycle_over_http_on_postgres(pg_server: str, tmp_path: Path):
    """Against the session's PostgreSQL (DEPOT_DATABASE_URL), as with an external server."""
    server = DepotProcess(database_url=pg_server, log_dir=tmp_path).wait_healthy()
    base = server.url
    try:
        client = httpx.Client(base_url=base, timeout=10)
        client.delete("/api/flights", params={"id": "gte.0"})
        for table, key in (("routes", "carrier"), ("airports", "faa"), ("airlines", "carrier")):
            client.delete(f"/api/{table}", params={key: "not.is.null"})
        assert client.post("/api/airlines", json={"carrier": "AA", "name": "American"}).status_code == 201
        airports = [{"faa": f, "name": f, "lat": 40, "lon": -73, "alt": 10} for f in ("JFK", "LAX")]
        assert client.post("/api/airports", json=airports).status_code == 201
        flight = {"year": 2013, "month": 1, "day": 1, "sched_dep_time": 515, "sched_arr_time": 819,
                  "carrier": "AA", "flight": 1, "origin": "JFK", "dest": "LAX", "distance": 2475,
                  "hour": 5, "minute": 15, "time_hour": "2013-01-01T10:00:00Z"}
        created = client.post("/api/flights", json=flight, headers={"Prefer": "return=representation"})
        assert created.status_code == 201, created.text
        flight_id = created.json()[0]["id"]
        assert created.headers["location"] == f"/api/flights/{flight_id}"

        read = client.get(f"/api/flights/{flight_id}")
        assert read.json()["time_hour"] == "2013-01-01T10:00:00+00:00" and read.headers["etag"] == '"1"'
        patched = client.patch(f"/api/flights/{flight_id}", json={"dep_delay": 12.5}, headers={"If-Match": '"1"'})
        assert patched.status_code == 200 and patched.json()["version"] == 2
        assert client.patch(f"/api/flights/{flight_id}", json={"dep_delay": 0}, headers={"If-Match": '"1"'}
                            ).status_code == 412
        assert client.post("/api/flights", json=flight).status_code == 409
        assert client.post("/api/flights", json={**flight, "flight": 2, "dest": "SJU"}).json()["code"] == "23503"
        assert client.delete("/api/airports/JFK").status_code == 409  # still referenced
        assert client.delete(f"/api/flights/{flight_id}", headers={"If-Match": '"2"'}).status_code == 204
        assert client.get(f"/api/flights/{flight_id}").status_code == 404
    finally:
        server.stop()
