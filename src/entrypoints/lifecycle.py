"""Process lifetime of `depot serve`: a worker does not outlive its parent; orphaned batches are swept.

uvicorn's workers are child processes. If the parent is killed with SIGKILL, nothing tells them:
they keep the port and keep serving, so a restarted depot cannot bind. On Linux a worker asks
the kernel for SIGTERM when its parent dies (PR_SET_PDEATHSIG), and then shuts down gracefully.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from starlette.concurrency import run_in_threadpool

PARENT_ENV = "DEPOT_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1
log = logging.getLogger("depot.lifecycle")


def die_with_parent() -> bool:
    """In a worker started by `depot serve`, SIGTERM this process when the parent dies; True if armed."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not parent.isdigit() or int(parent) == os.getpid() or not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("could not arrange to stop with the parent process (errno %s)", ctypes.get_errno())
        return False
    if os.getppid() != int(parent):  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
    return True


# Allocations of container objects between two young-generation collections (CPython's default: 700),
# and young collections per older one (default 10, 10). An ingest allocates millions of them (keys,
# lists of cells) that live for one chunk: at the defaults the collector ran thousands of times per
# load of the flights, 1.3 to 3 s of the server's CPU, holding the GIL over every thread meanwhile.
GC_THRESHOLDS = (50_000, 20, 20)


def collect_garbage_less_often() -> None:
    """Run the cycle collector at GC_THRESHOLDS. Loads of the flights, two with each on two cores: the
    server's CPU went from 9.5 and 10.7 s to 8.2 and 7.7 s, the loads from 20.5 and 22.4 s to 19.8 and
    19.0 s. Memory: at most 50,000 young objects more wait for a collection, a few megabytes."""
    gc.set_threshold(*GC_THRESHOLDS)


@asynccontextmanager
async def sweeping_orphans(container: Any) -> AsyncIterator[None]:
    """While the app serves: every DEPOT_ORPHAN_SWEEP_SECONDS, mark failed the batches whose process died.

    At start is not enough when several depot processes share a database: one that dies leaves
    its batches `running` until another restarts. The sweep takes only batches whose lease (an
    advisory lock) nobody holds, so every worker of every process may run it.
    """
    from service_layer.ingest import fail_orphaned_batches

    interval = container.settings().orphan_sweep_seconds

    async def sweep_forever() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                failed = await run_in_threadpool(fail_orphaned_batches, container.uow())
                if failed:
                    log.warning("marked failed the batches %s: the process running them is gone", failed)
            except Exception as error:  # noqa: BLE001 - the database may be away for a while; try again later
                log.warning("the sweep of orphaned batches failed: %s", str(error).splitlines()[0] if str(error) else
                            type(error).__name__)

    task = asyncio.create_task(sweep_forever()) if interval > 0 else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
