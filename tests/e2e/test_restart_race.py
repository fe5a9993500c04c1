"""The restart race of issue 13: depot killed in the middle of an atomic ingest, its orphaned postmaster
told to stop, and depot started again at once. The start must wait for the stopping server, then come
back with the data as it was acknowledged, the half-done batch failed and no traceback anywhere."""

from __future__ import annotations

import os
import signal
import subprocess
import threading

import pytest

from tests.e2e.depot_process import (
    DEPOT,
    DepotProcess,
    clean_env,
    ingest_in_background,
    pg_connect,
    postmaster_pid,
    postmasters,
    wait_until,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def data_dir(tmp_path):
    yield tmp_path / "data"
    for proc in postmasters((tmp_path / "data").resolve() / "pgdata"):
        proc.kill()


def _query(pgdata, sql: str):
    connection = pg_connect(pgdata)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()
    finally:
        connection.close()


def _running_batches(pgdata) -> int:
    try:
        return _query(pgdata, "SELECT count(*) FROM depot.ingest_batches WHERE status = 'running'")[0][0]
    except Exception:
        return 0


def test_restart_right_after_sigterm_of_the_orphan_comes_back_ten_times_in_a_row(data_dir):
    depot = DepotProcess(data_dir)
    depot.wait_healthy()
    with depot.client() as client:
        assert client.post("/api/airlines", json={"carrier": "KK", "name": "Kept"}).status_code == 201
    for attempt in range(10):
        stop = threading.Event()
        writer = ingest_in_background(depot, stop, '/ingest/airlines?mode=atomic')
        assert wait_until(lambda: _running_batches(depot.pgdata) == 1, timeout=30), depot.log()[-3000:]
        orphan = postmaster_pid(depot.pgdata)
        depot.kill()
        os.kill(orphan, signal.SIGTERM)
        depot.start()  # at once: the orphan is still stopping, or just gone
        stop.set()
        writer.join(30)
        depot.wait_healthy(timeout=90)
        rows = _query(depot.pgdata, "SELECT carrier FROM airlines ORDER BY carrier")
        assert rows == [("KK",)], f"attempt {attempt}: the atomic batch left rows behind"
        statuses = _query(depot.pgdata, "SELECT status, count(*) FROM depot.ingest_batches GROUP BY status")
        assert dict(statuses) == {"failed": attempt + 1}, f"attempt {attempt}: {statuses}"
    depot.terminate()
    assert wait_until(lambda: not postmasters(depot.pgdata))
    assert "Traceback" not in depot.log()


def test_start_waits_for_a_stopping_postmaster_and_says_so(data_dir):
    """Deterministic: a client that stays connected keeps the orphan in `stopping` (smart shutdown)."""
    first = DepotProcess(data_dir)
    first.wait_healthy()
    holder = pg_connect(first.pgdata)
    try:
        orphan = postmaster_pid(first.pgdata)
        first.kill()
        os.kill(orphan, signal.SIGTERM)
        assert wait_until(lambda: (first.pgdata / "postmaster.pid").read_text().splitlines()[7].strip() == "stopping")
        second = DepotProcess(data_dir)
        assert wait_until(lambda: "which is stopping" in second.log(), timeout=30), second.log()
        assert second.process.poll() is None, "the start gave up instead of waiting"
    finally:
        holder.close()  # the last client leaves: the orphan finishes stopping
    second.wait_healthy(timeout=90)
    assert postmaster_pid(second.pgdata) != orphan
    second.terminate()
    assert "Traceback" not in second.log()


def test_a_postmaster_that_never_finishes_stopping_is_one_line_after_the_bound(data_dir):
    first = DepotProcess(data_dir)
    first.wait_healthy()
    holder = pg_connect(first.pgdata)
    try:
        orphan = postmaster_pid(first.pgdata)
        first.kill()
        os.kill(orphan, signal.SIGTERM)
        result = subprocess.run([DEPOT, "serve"], capture_output=True, text=True, timeout=60,
                                env=clean_env(data_dir=str(data_dir), start_timeout_seconds="2"))
    finally:
        holder.close()
    assert result.returncode == 2, result.stderr
    assert "still stopping after 2s" in result.stderr and "log is" in result.stderr
    assert "Traceback" not in result.stderr
    assert wait_until(lambda: not postmasters(first.pgdata), timeout=30)


def test_an_unexpected_failure_of_depot_serve_is_one_line_and_the_traceback_goes_to_the_log(tmp_path):
    # The data folder cannot be made (a file is in the way): nothing depot expects, so the
    # traceback goes to the failure log, which is beside the data folder's parent here.
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    result = subprocess.run([DEPOT, "serve"], capture_output=True, text=True, timeout=60,
                            env=clean_env(data_dir=str(blocker / "inner")))
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("depot: unexpected failure in depot serve: "), result.stderr
    assert "Traceback" not in result.stderr


def test_the_failure_log_keeps_the_traceback(tmp_path):
    from entrypoints.failures import failure_log, record_failure

    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError as error:
        line = record_failure(tmp_path, error, "at start")
    assert line == f"unexpected failure at start: RuntimeError: boom; the traceback is in {failure_log(tmp_path)}"
    logged = failure_log(tmp_path).read_text()
    assert "Traceback (most recent call last)" in logged and "second line" in logged
