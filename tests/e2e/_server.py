"""A depot server in its own process, on a given PostgreSQL, that a test can kill and start again.

Unlike the shared `live_server` fixture (tests/e2e/conftest.py: one process per module, its own
database), this one can be killed with SIGKILL and started again on the same database, which is
what the interruption tests need.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, database_url: str, log_path: Path, **settings: str):
        self.database_url = database_url
        self.log_path = log_path
        self.settings = settings
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> ServerProcess:
        env = {**os.environ, "DEPOT_DATABASE_URL": self.database_url, "DEPOT_LOG_LEVEL": "warning",
               "DEPOT_API_KEYS": "", **{f"DEPOT_{k.upper()}": v for k, v in self.settings.items()}}
        env.pop("DATABASE_URL", None)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "entrypoints.cli", "serve", "--port", str(self.port)],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"depot exited with {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"depot did not answer within {timeout}s; see {self.log_path}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:  # a request still open keeps a graceful shutdown waiting
                self.process.kill()
                self.process.wait(timeout=15)
        self.process = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
