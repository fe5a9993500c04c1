"""`Prefer: read-your-writes`: a read that must see the writes just made is sent to the primary.

Installed only when DEPOT_READ_DATABASE_URL names a replica, so without one no request pays for
the header scan. A replica replays the primary's changes a little later (the lag is in /metrics);
a client that wrote and reads back at once asks for the primary with this preference.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.postgres.db import read_from_primary

PREFERENCE = b"read-your-writes"


class ReadYourWritesMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not any(
                key == b"prefer" and PREFERENCE in value.lower() for key, value in scope["headers"]):
            await self.app(scope, receive, send)
            return
        # The thread pool runs the route in a copy of this task's context, so the flag reaches the
        # unit of work that opens the read connection.
        token = read_from_primary.set(True)
        try:
            await self.app(scope, receive, send)
        finally:
            read_from_primary.reset(token)
