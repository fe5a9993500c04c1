"""Two `depot serve` processes on one PostgreSQL: the second through DEPOT_DATABASE_URL set to the first's
`depot db-url`. Their ingests run side by side without either sweeping the other's live batch, and
killing one leaves the other serving, which marks the dead one's batch failed on its next sweep."""

from __future__ import annotations

import subprocess
import threading

import pytest

from tests.e2e.depot_process import (
    DEPOT,
    DepotProcess,
    clean_env,
    ingest_in_background,
    pg_connect,
    postmasters,
    wait_until,
)

pytestmark = pytest.mark.postgres


def batches(pgdata) -> dict[int, str]:
    connection = pg_connect(pgdata)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, status FROM depot.ingest_batches ORDER BY id")
            return dict(cursor.fetchall())
    finally:
        connection.close()


def test_two_processes_share_one_database(tmp_path):
    first = DepotProcess(tmp_path / "data", orphan_sweep_seconds="0.5")
    second = None
    try:
        first.wait_healthy()
        url = subprocess.run([DEPOT, "db-url"], env=clean_env(data_dir=str(tmp_path / "data")), capture_output=True,
                             text=True, timeout=60).stdout.strip()
        assert url.startswith("postgresql://")
        second = DepotProcess(database_url=url, orphan_sweep_seconds="0.5", log_dir=tmp_path)
        second.wait_healthy()
        assert second.port != first.port

        # Two trickled ingests at once, one through each, each lasting over several sweeps of the other.
        answers: list = []
        stop = threading.Event()
        writers = [ingest_in_background(depot, stop, "/ingest/airlines?source=manual", answers, rows=60,
                                        delay=0.05, prefix=prefix) for depot, prefix in ((first, "A"), (second, "B"))]
        for writer in writers:
            writer.join(60)
        assert [getattr(a, "status_code", a) for a in answers] == [200, 200]
        assert {a.json()["status"] for a in answers} == {"completed"}, "a sweep took a live batch"
        assert {a.json()["inserted"] for a in answers} == {60}
        with first.client() as client:  # what one wrote, the other reads
            assert len(client.get("/api/airlines?carrier=like.B*").json()) == 60

        # Kill the second in the middle of a batch: the first sweeps it, and serves on.
        stop = threading.Event()
        ingest_in_background(second, stop, "/ingest/airlines?source=manual", prefix="C")
        assert wait_until(lambda: "running" in batches(first.pgdata).values(), timeout=30)
        orphan = next(i for i, status in batches(first.pgdata).items() if status == "running")
        second.kill()
        stop.set()
        assert wait_until(lambda: batches(first.pgdata)[orphan] == "failed", timeout=15), batches(first.pgdata)
        with first.client() as client:
            assert client.get("/api/airlines?limit=1").status_code == 200
            assert client.get("/ready").status_code == 200
        assert "marked failed the batches" in first.log()
    finally:
        if second is not None:
            second.stop()
        first.stop()
        for proc in postmasters((tmp_path / "data").resolve() / "pgdata"):
            proc.kill()
