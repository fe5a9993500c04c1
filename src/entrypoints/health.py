"""Probes for a supervisor (Kubernetes, systemd, a load balancer): /live and /ready.

/live answers 200 while the process can answer at all. /ready answers 200 only once the store is
migrated and answers a query, and 503 again from the moment SIGTERM arrives, so a load balancer
stops sending new requests while the ones in flight drain. Both are open without a key, as
/health is, and both are outside the API's description.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from entrypoints.http import JSONResponse

log = logging.getLogger("depot.health")
PROBE_PATHS = frozenset({"/live", "/ready"})


class Readiness:
    """Whether this process should get new requests: prepared and not draining."""

    def __init__(self) -> None:
        self.prepared = False
        self.draining = False

    def drain_on_sigterm(self) -> None:
        """Chain onto the SIGTERM handler the server installed (uvicorn's graceful shutdown), so the
        flag flips the moment the signal arrives, before the drain begins. Only the main thread can
        install one; elsewhere (a test client's thread) draining starts at the lifespan's end."""
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)

        def handler(signum: int, frame: Any) -> None:
            self.draining = True
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)

        signal.signal(signal.SIGTERM, handler)


def _store_answers(container: Any) -> str | None:
    """None when the store answers a query, else why not (one line)."""
    if container.settings().storage != "postgres":
        return None
    try:
        with container.engine().connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except Exception as error:  # noqa: BLE001 - any failure means: not ready
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    return None


def install_probes(app: FastAPI, container: Any, readiness: Readiness) -> None:
    @app.get("/live", tags=["service"], operation_id="live", include_in_schema=False)
    async def live() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/ready", tags=["service"], operation_id="ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        if readiness.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        if not readiness.prepared:
            return JSONResponse({"status": "starting"}, status_code=503)
        problem = await run_in_threadpool(_store_answers, container)
        if problem is not None:
            return JSONResponse({"status": "store unavailable", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ready"})
