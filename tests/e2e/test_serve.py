"""The real thing: `depot serve` as a process, its own embedded PostgreSQL, real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

DEPOT = str(Path(sys.executable).parent / "depot")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args: str, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("DEPOT_") and k != "DATABASE_URL"}
        self.process = subprocess.Popen(
            [DEPOT, "serve", "--port", str(self.port), *args],
            env={**clean, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"depot serve exited: {self.process.stdout.read().decode()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("depot serve did not become healthy in 60 s")

    def stop(self) -> int:
        """SIGTERM, as a service manager sends it; the exit status is uvicorn's (0 or -SIGTERM)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()


def postgres_running_on(data_dir: Path) -> bool:
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "depot-data"


def test_data_written_survives_a_restart_on_the_embedded_postgres(data_dir: Path):
    server = Server(env={"DEPOT_DATA_DIR": str(data_dir)})
    try:
        assert httpx.get(f"{server.url}/health").json()["storage"] == "postgres"
        created = httpx.post(f"{server.url}/api/airlines", json={"carrier": "AA", "name": "American"})
        assert created.status_code == 201
    finally:
        assert server.stop() in (0, -signal.SIGTERM)
    assert (data_dir / "pgdata" / "PG_VERSION").exists()
    assert not postgres_running_on(data_dir), "SIGTERM left the embedded PostgreSQL running"

    again = Server(env={"DEPOT_DATA_DIR": str(data_dir)})
    try:
        row = httpx.get(f"{again.url}/api/airlines/AA")
        assert row.status_code == 200 and row.json()["name"] == "American"
    finally:
        again.stop()
    assert not postgres_running_on(data_dir)


def test_memory_storage_serves_the_same_api(tmp_path: Path):
    server = Server("--storage", "memory", env={"DEPOT_DATA_DIR": str(tmp_path / "unused")})
    try:
        assert httpx.get(f"{server.url}/health").json()["storage"] == "memory"
        assert httpx.post(f"{server.url}/api/airlines", json={"carrier": "AA", "name": "American"}).status_code == 201
        duplicate = httpx.post(f"{server.url}/api/airlines", json={"carrier": "AA", "name": "American"})
        assert duplicate.status_code == 409 and duplicate.json()["code"] == "23505"
        assert [r["carrier"] for r in httpx.get(f"{server.url}/api/airlines").json()] == ["AA"]
    finally:
        server.stop()
    assert not (tmp_path / "unused").exists()


def test_the_full_write_cycle_over_http_on_postgres(pg_server: str):
    """Against the session's PostgreSQL (DEPOT_DATABASE_URL), as with an external server."""
    server = Server(env={"DEPOT_DATABASE_URL": pg_server})
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
