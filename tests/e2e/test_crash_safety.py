"""Crash safety of `depot serve` and its embedded PostgreSQL, with real processes and real signals.

Each test runs depot in a subprocess on its own data directory, hurts it (SIGTERM, SIGKILL of depot,
SIGKILL of the postmaster), starts it again and checks what a user would: the data acknowledged
before is there, and no PostgreSQL is left behind once depot is gone.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests.e2e.depot_process import DepotProcess, pg_connect, postmaster_pid, postmasters, wait_until

pytestmark = pytest.mark.postgres

AIRLINE = {"carrier": "KK", "name": "Kill Air"}


def add_airline(depot: DepotProcess, row: dict = AIRLINE) -> None:
    with depot.client() as client:
        assert client.post("/api/airlines", json=row).status_code == 201


def airline_names(depot: DepotProcess) -> list[str]:
    with depot.client() as client:
        response = client.get("/api/airlines?order=carrier")
        assert response.status_code == 200, response.text
        return [r["name"] for r in response.json()]


def assert_no_postgres_left(depot: DepotProcess) -> None:
    assert wait_until(lambda: not postmasters(depot.pgdata)), f"a PostgreSQL outlived depot:\n{depot.log()}"
    assert not (depot.pgdata / "postmaster.pid").exists()


@pytest.fixture
def data_dir(tmp_path):
    yield tmp_path / "data"
    # Whatever a failed test left running, stop it: no server outlives the suite.
    for proc in postmasters((tmp_path / "data").resolve() / "pgdata"):
        proc.kill()


def test_sigterm_drains_in_flight_requests_then_stops_postgres(data_dir):
    depot = DepotProcess(data_dir)
    depot.wait_healthy()
    add_airline(depot)
    answers: list[int] = []
    # Hold a lock so a read is in flight for a while, then ask depot to stop while it waits.
    holder = pg_connect(depot.pgdata)
    try:
        holder.cursor().execute("LOCK TABLE airlines IN ACCESS EXCLUSIVE MODE")
        reader = threading.Thread(target=lambda: answers.append(depot.client().get("/api/airlines").status_code))
        reader.start()
        time.sleep(1.0)
        depot.process.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert depot.process.poll() is None, "depot quit with a request in flight"
        holder.rollback()
    finally:
        holder.close()
    reader.join(30)
    assert answers == [200]
    assert depot.process.wait(60) in (0, -signal.SIGTERM)
    assert_no_postgres_left(depot)
    assert "Traceback" not in depot.log()


def test_restart_after_kill_9_of_depot_adopts_the_orphan_and_keeps_the_data(data_dir):
    first = DepotProcess(data_dir)
    first.wait_healthy()
    add_airline(first)
    server = postmaster_pid(first.pgdata)
    first.kill()
    # The embedded PostgreSQL outlives a SIGKILLed depot: the wheel never heard it leave.
    assert [p.pid for p in postmasters(first.pgdata)] == [server]

    second = DepotProcess(data_dir)
    second.wait_healthy()
    assert postmaster_pid(second.pgdata) == server, "the orphan was adopted, not doubled"
    assert airline_names(second) == ["Kill Air"]
    second.terminate()
    # Adopted on purpose, so stopped on exit: the dead depot's pid no longer keeps it alive.
    assert_no_postgres_left(second)


def test_restart_after_kill_9_of_the_postmaster_recovers_from_the_stale_pid_file(data_dir):
    first = DepotProcess(data_dir)
    first.wait_healthy()
    add_airline(first)
    os.kill(postmaster_pid(first.pgdata), signal.SIGKILL)
    assert wait_until(lambda: not postmasters(first.pgdata))
    # depot stays up without its database, and says so in the error shape, not with a 500.
    with first.client() as client:
        response = client.get("/api/airlines")
    assert response.status_code == 503, response.text
    assert set(response.json()) == {"code", "message", "details", "hint"}
    first.kill()
    assert (first.pgdata / "postmaster.pid").exists(), "the pid file is stale, as after a crash"

    second = DepotProcess(data_dir)
    second.wait_healthy()
    assert airline_names(second) == ["Kill Air"]
    add_airline(second, {"carrier": "LL", "name": "Later Air"})
    assert airline_names(second) == ["Kill Air", "Later Air"]
    second.terminate()
    assert_no_postgres_left(second)


def test_workers_share_one_postgres_started_by_the_parent(data_dir):
    depot = DepotProcess(data_dir, args=("--workers", "2"))
    depot.wait_healthy()
    with depot.client() as client:
        for n in range(6):  # spread over both workers
            row = {"carrier": f"W{n}", "name": f"Worker {n}"}
            assert client.post("/api/airlines", json=row).status_code == 201
    assert len(postmasters(depot.pgdata)) == 1
    handles = (depot.pgdata / ".handle_pids.json").read_text()
    assert handles.strip() == f"[{depot.process.pid}]", "only the parent joined the server"
    assert depot.terminate() == 0
    assert_no_postgres_left(depot)


def test_kill_9_of_a_multi_worker_parent_takes_its_workers_along(data_dir):
    import httpx
    import psutil

    first = DepotProcess(data_dir, args=("--workers", "2"))
    first.wait_healthy()
    add_airline(first)
    workers = psutil.Process(first.process.pid).children()
    assert len(workers) >= 2
    first.kill()
    # Orphaned workers would go on serving the port; they get SIGTERM from the kernel instead.
    assert wait_until(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers))
    with pytest.raises(httpx.TransportError):
        httpx.get(first.url + "/health", timeout=2)

    second = DepotProcess(data_dir, args=("--workers", "2"))
    second.wait_healthy()
    assert airline_names(second) == ["Kill Air"]
    assert second.terminate() == 0
    assert_no_postgres_left(second)


def test_a_write_in_flight_at_kill_9_leaves_nothing_half_done(data_dir):
    first = DepotProcess(data_dir)
    first.wait_healthy()
    add_airline(first)
    batch = [{"carrier": f"H{n}", "name": f"Half {n}"} for n in range(3)]
    holder = pg_connect(first.pgdata)
    try:
        holder.cursor().execute("LOCK TABLE airlines IN ACCESS EXCLUSIVE MODE")
        writer = threading.Thread(target=lambda: _swallow(lambda: first.client().post("/api/airlines", json=batch)))
        writer.start()
        assert wait_until(lambda: _waiting_on_lock(holder), timeout=10), "the write never reached the database"
        first.kill()
        holder.rollback()
    finally:
        holder.close()
    writer.join(30)

    second = DepotProcess(data_dir)
    second.wait_healthy()
    assert airline_names(second) == ["Kill Air"], "the unacknowledged batch left no row"
    second.terminate()
    assert_no_postgres_left(second)


def _swallow(call) -> None:
    try:
        call()
    except Exception:  # the server died under the request: that is the point
        pass


def _waiting_on_lock(connection) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0] > 0
