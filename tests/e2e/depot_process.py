"""A real `depot serve` process for end-to-end tests: started on a free port, watched, stopped or killed
on purpose, and started again on the same data. Every e2e test and fixture goes through this one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

DEPOT = str(Path(sys.executable).parent / "depot")  # the console script, as a user runs it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without any DEPOT_ setting of the caller's, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPOT_") and k != "DATABASE_URL"}
    env.update({f"DEPOT_{k.upper()}": str(v) for k, v in settings.items()})
    return env


class DepotProcess:
    """`depot serve` with the given settings (as DEPOT_* variables) and arguments.

    With `data_dir` it runs its own embedded PostgreSQL there; with `database_url=...` among the
    settings it uses that server. The port stays the same across restarts.
    """

    def __init__(self, data_dir: Path | None = None, *, args: tuple[str, ...] = (), log_dir: Path | None = None,
                 cwd: Path | None = None, **settings: str):
        self.data_dir = data_dir
        self.args = args
        self.cwd = cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if data_dir is not None:
            settings = {"data_dir": str(data_dir), **settings}
        self.env = clean_env(port=str(self.port), **settings)
        folder = log_dir or (data_dir.parent if data_dir is not None else Path(tempfile.mkdtemp(prefix="depot-e2e-")))
        self.log_path = folder / f"depot-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> DepotProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([DEPOT, "serve", *self.args], env=self.env, stdout=log, stderr=log,
                                            cwd=self.cwd)
        return self

    @property
    def pgdata(self) -> Path:
        assert self.data_dir is not None, "this server runs on an external PostgreSQL"
        return self.data_dir.resolve() / "pgdata"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 60) -> DepotProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"depot exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"depot did not become healthy in {timeout}s:\n{self.log()[-4000:]}")

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    def kill(self) -> None:
        """SIGKILL, and reap it, so that its pid is really gone (not a zombie)."""
        self.process.kill()
        self.process.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, as a service manager sends it: in-flight requests drain first."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.terminate(30)
            except subprocess.TimeoutExpired:  # a request still open keeps a graceful shutdown waiting
                self.kill()


def postmaster_pid(pgdata: Path) -> int | None:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return None
    return int(pid_file.read_text().splitlines()[0])


def postmasters(pgdata: Path) -> list[psutil.Process]:
    """The running PostgreSQL servers of this data directory (their command line names it)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and proc.info["name"] == "postgres" \
                and str(pgdata) in cmdline:
            found.append(proc)
    return found


def wait_until(condition, timeout: float = 20, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def pg_connect(pgdata: Path):
    """A direct connection to the server of `pgdata`, read from its postmaster.pid (never through the
    wheel: joining its list of users would keep the server alive after depot leaves)."""
    import psycopg2

    lines = (pgdata / "postmaster.pid").read_text().splitlines()
    port, socket_dir = lines[3].strip(), lines[4].strip()
    return psycopg2.connect(host=socket_dir, port=port, user="postgres", dbname="depot")


def trickled_ndjson(stop: threading.Event, rows: int = 100_000, delay: float = 0.01, prefix: str = "R"):
    """An airlines ingest body that trickles in (a row every `delay` s) until `rows` or `stop`, so
    its batch stays open for as long as a test needs."""
    for n in range(rows):
        if stop.is_set():
            return
        yield (json.dumps({"carrier": f"{prefix}{n % 90 + 10}", "name": f"Trickle {n}"}) + "\n").encode()
        time.sleep(delay)


def ingest_in_background(depot: DepotProcess, stop: threading.Event, path: str, answers: list | None = None,
                         **trickle) -> threading.Thread:
    """POST a trickled NDJSON body to `path` in a thread; its answer (or the error) goes into `answers`."""
    def run() -> None:
        try:
            with depot.client() as client:
                response = client.post(path, content=trickled_ndjson(stop, **trickle),
                                       headers={"content-type": "application/x-ndjson"})
            if answers is not None:
                answers.append(response)
        except Exception as error:  # the server may be killed under it on purpose
            if answers is not None:
                answers.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
