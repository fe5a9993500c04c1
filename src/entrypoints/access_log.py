"""One structured (JSON) log line per request, with a request id that the answer carries in X-Request-Id.

The line holds the method, the path without its query string (query values can hold anything),
the status, the duration and the caller's role; never a header's value, never a body.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
import time
import uuid

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("depot.access")

# An incoming id is kept when it is short and tame, so ids can be followed across services.
_SANE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


# A new id is this process's random half and a counter: unique as uuid4's 32 hex digits are, without
# uuid4's os.urandom call per request (1.5% of a get-by-key's Python time, profiled). A forked child
# draws a half of its own (uvicorn's workers are spawned, but a fork must not repeat the parent's ids).
def _new_process_id() -> None:
    global _PROCESS_ID, _NEXT
    _PROCESS_ID, _NEXT = uuid.uuid4().hex[:16], itertools.count(1)


_new_process_id()
os.register_at_fork(after_in_child=_new_process_id)


def request_id_of(scope: Scope) -> str:
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id" and _SANE_ID.match(value):
            return value.decode("ascii")
    return f"{_PROCESS_ID}{next(_NEXT):016x}"


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status = 500  # what the client sees if the app dies before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode("ascii"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info(orjson.dumps({
                    "ts": time.time(),
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - start) * 1000, 2),
                    "role": scope.get("state", {}).get("role"),
                }).decode())


def configure_access_log(level: str) -> None:
    """Send the lines to stderr, message only (each is a JSON object), unless logging is set up already."""
    logger = logging.getLogger("depot")
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
