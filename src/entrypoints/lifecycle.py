"""Process lifetime of `depot serve --workers N`: a worker does not outlive the parent that supervises it.

uvicorn's workers are child processes. If the parent is killed with SIGKILL, nothing tells them:
they keep the port and keep serving, so a restarted depot cannot bind. On Linux a worker asks
the kernel for SIGTERM when its parent dies (PR_SET_PDEATHSIG), and then shuts down gracefully.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys

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
