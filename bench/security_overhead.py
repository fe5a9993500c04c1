"""What the security middleware (access log, key check, body limit) costs per request.

Calls the ASGI app directly (no network, no client) so the figure is the middleware's own cost:
GET /health and GET /api/airlines on the memory storage, without the middleware (the baseline,
measured in the same run), with it and no keys, and with it and 10 keys.
Run: .venv/bin/python bench/security_overhead.py
"""

from __future__ import annotations

import asyncio
import logging
import time

from entrypoints.app import create_app
from entrypoints.container import Container
from entrypoints.settings import Settings

N = 5_000
ROUNDS = 5
KEYS = ",".join(f"key-{n:02d}-{'x' * 32}:{'write' if n % 2 else 'read'}" for n in range(10))
READ_KEY = f"key-00-{'x' * 32}"


def build(*, middleware: bool, api_keys: str = ""):
    container = Container()
    container.settings.override(Settings(storage="memory", api_keys=api_keys, log_level="info"))
    app = create_app(container)
    if not middleware:
        app.user_middleware.clear()
    return app


async def requests_per_second(app, path: str, headers: list[tuple[bytes, bytes]]) -> float:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000), "state": {}}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message

    for _ in range(500):  # warm up (builds the middleware stack)
        await app(dict(scope, state={}), receive, send)
    start = time.perf_counter()
    for _ in range(N):
        await app(dict(scope, state={}), receive, send)
    return N / (time.perf_counter() - start)


def main() -> None:
    # The access log writes a line per request; to a null handler here, so the figure is its
    # formatting cost, not the terminal's.
    logging.getLogger("depot").addHandler(logging.NullHandler())
    logging.getLogger("depot").propagate = False
    auth = [(b"authorization", f"Bearer {READ_KEY}".encode())]
    cases = [
        ("baseline: no middleware", build(middleware=False), []),
        ("with middleware, no keys", build(middleware=True), []),
        ("with middleware, 10 keys", build(middleware=True, api_keys=KEYS), auth),
    ]
    for path in ("/health", "/api/airlines"):
        print(f"GET {path}: {N} requests straight into the ASGI app, best of {ROUNDS} interleaved rounds")
        best = {name: 0.0 for name, _, _ in cases}
        for _ in range(ROUNDS):
            for name, app, headers in cases:
                best[name] = max(best[name], asyncio.run(requests_per_second(app, path, headers)))
        baseline = best[cases[0][0]]
        for name, rate in best.items():
            cost_us = (1 / rate - 1 / baseline) * 1e6
            print(f"  {name:<28} {rate:>9,.0f} req/s   {cost_us:+7.1f} µs/request vs baseline")

if __name__ == "__main__":
    main()
