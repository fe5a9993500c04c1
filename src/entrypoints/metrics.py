"""GET /metrics in Prometheus' text format (prometheus-client), right with `depot serve --workers N`.

With several workers each process writes its values to files in PROMETHEUS_MULTIPROC_DIR (which
`depot serve` creates and removes), and a scrape, whichever worker answers it, adds them up: the
library's multiprocess mode. The environment variable must be set before prometheus_client is
imported, which `depot serve` does first thing.

The read path pays one dict lookup and one histogram observe per request: the labelled children
are made once per (method, route, status) and kept. Pool and database gauges are sampled every few
seconds off the request path; statement timeouts are counted by an engine event that fires only
on errors.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("depot.metrics")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# `depot serve` says so to its workers: the database is the embedded one it started.
EMBEDDED_ENV = "DEPOT_EMBEDDED_DATABASE"
SAMPLE_SECONDS = 5.0
_MULTIPROCESS = bool(os.environ.get(MULTIPROC_ENV))
# One process: the metrics live in this registry. Several: in files, read back at scrape time.
_REGISTRY = None if _MULTIPROCESS else CollectorRegistry()
_METHODS = frozenset({"GET", "HEAD", "POST", "PATCH", "DELETE", "PUT", "OPTIONS"})
_OUTCOMES = ("inserted", "updated", "unchanged", "superseded", "rejected")

# The request count is this histogram's _count: a separate counter would double the per-request cost.
LATENCY = Histogram("depot_http_request_duration_seconds", "Time to answer an HTTP request, by method, route "
                    "template and status (its _count is the number of requests).",
                    ("method", "route", "status"), registry=_REGISTRY,
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
INGEST_ROWS = Counter("depot_ingest_rows", "Rows of ingest batches by table, source and outcome.",
                      ("table", "source", "outcome"), registry=_REGISTRY)
BATCH_DURATION = Histogram("depot_ingest_batch_duration_seconds", "Time an ingest batch ran, by table and status.",
                           ("table", "status"), registry=_REGISTRY,
                           buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
POOL = Gauge("depot_db_pool_connections", "Connections of the pools by pool (write, read) and state "
             "(in_use, idle, overflow).", ("pool", "state"), registry=_REGISTRY, multiprocess_mode="livesum")
POOL_WAITS = Counter("depot_db_pool_waits", "Checkouts that waited over 1 ms for a pooled connection.",
                     ("pool",), registry=_REGISTRY)
POOL_WAIT = Counter("depot_db_pool_wait_seconds", "Time spent waiting for a pooled connection (waits over 1 ms).",
                    ("pool",), registry=_REGISTRY)
TIMEOUTS = Counter("depot_statement_timeouts", "Statements cancelled by the statement timeout.",
                   registry=_REGISTRY)
DATABASE_UP = Gauge("depot_database_up", "1 when the database answered its last probe, by whether it is the "
                    "embedded one.", ("embedded",), registry=_REGISTRY, multiprocess_mode="max")


def registry() -> CollectorRegistry:
    if _REGISTRY is not None:
        return _REGISTRY
    from prometheus_client import multiprocess

    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)
    return collected


class RequestMetricsMiddleware:
    """Counts and times every HTTP request under the template of the route that answered it
    (`/api/flights/{key}`), never the raw path: an unmatched path is `unmatched`."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self._children: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            route = scope.get("route")
            # path_format: the template without its converters ({key}, not {key:path}). A request
            # answered before routing (401, 413) or by no route has none: `unmatched`.
            key = (scope["method"], getattr(route, "path_format", None) or "unmatched", status)
            histogram = self._children.get(key)
            if histogram is None:
                method, template, code = key
                histogram = self._children[key] = LATENCY.labels(
                    method if method in _METHODS else "other", template, str(code))
            histogram.observe(time.perf_counter() - start)


def observe_batch(report: Any, seconds: float) -> None:
    """A finished ingest batch (service_layer.ingest.BATCH_OBSERVERS): its rows by outcome, its duration."""
    for outcome in _OUTCOMES:
        count = getattr(report, outcome, 0)
        if count:
            INGEST_ROWS.labels(report.table, report.source, outcome).inc(count)
    BATCH_DURATION.labels(report.table, report.status).observe(seconds)


def _count_timeouts(context: Any) -> None:
    if getattr(context.original_exception, "pgcode", None) == "57014":
        TIMEOUTS.inc()


def _time_checkouts(pool: Any, name: str) -> None:
    """Wrap the pool's connect so a checkout that had to wait is counted; a wait is rare, its cost is not."""
    connect = pool.connect
    waits, waited = POOL_WAITS.labels(name), POOL_WAIT.labels(name)

    def timed_connect() -> Any:
        start = time.perf_counter()
        connection = connect()
        elapsed = time.perf_counter() - start
        if elapsed > 0.001:
            waits.inc()
            waited.inc(elapsed)
        return connection

    pool.connect = timed_connect


def instrument_engines(engine: Any) -> list[tuple[str, Any]]:
    """Count statement timeouts and pool waits on the writers' engine and its readers'; return the pools."""
    import sqlalchemy as sa

    from adapters.postgres.db import read_engine, replica_engine

    def primary_reader(engine: Any) -> Any:
        return read_engine(engine, primary=True) if replica_engine(engine) is not None else None

    pools = []
    for name, each in (("write", engine), ("read", read_engine(engine)), ("primary_read", primary_reader(engine))):
        if each is None:
            continue
        if each not in _INSTRUMENTED:  # an app started twice on one container (tests) counts once
            sa.event.listen(each, "handle_error", _count_timeouts)
            _time_checkouts(each.pool, name)
            _INSTRUMENTED.add(each)
        pools.append((name, each.pool))
    return pools


_INSTRUMENTED: weakref.WeakSet[Any] = weakref.WeakSet()


def sample_pools(pools: list[tuple[str, Any]]) -> None:
    for name, pool in pools:
        in_use, idle = pool.checkedout(), pool.checkedin()
        POOL.labels(name, "in_use").set(in_use)
        POOL.labels(name, "idle").set(idle)
        POOL.labels(name, "overflow").set(max(0, pool.overflow()))


REPLICA_LAG = Gauge("depot_replica_lag_seconds", "How far the read replica's replay is behind what it received "
                    "(0 when it has replayed all of it).", registry=_REGISTRY, multiprocess_mode="max")
REPLICA_LAG_BYTES = Gauge("depot_replica_lag_bytes", "WAL the read replica received and has not replayed yet.",
                          registry=_REGISTRY, multiprocess_mode="max")
_LAG_SQL = (
    "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END, "
    "coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)"
)


def _probe_replica(replica: Any) -> None:
    try:
        with replica.connect() as connection:
            seconds, lag_bytes = connection.exec_driver_sql(_LAG_SQL).one()
        REPLICA_LAG.set(float(seconds))
        REPLICA_LAG_BYTES.set(float(lag_bytes))
    except Exception:  # noqa: BLE001 - an unreachable replica: its reads fail visibly; the gauge says unknown
        REPLICA_LAG.set(float("nan"))


def _probe_database(engine: Any) -> None:
    from adapters.postgres.db import replica_engine

    replica = replica_engine(engine)
    if replica is not None:
        _probe_replica(replica)
    embedded = "true" if os.environ.get(EMBEDDED_ENV) else "false"
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        DATABASE_UP.labels(embedded).set(1)
    except Exception:  # noqa: BLE001 - down is the answer
        DATABASE_UP.labels(embedded).set(0)


@asynccontextmanager
async def sampling(container: Any) -> AsyncIterator[list[tuple[str, Any]]]:
    """While the app serves: the pools and the database probed every SAMPLE_SECONDS."""
    from service_layer.ingest import BATCH_OBSERVERS

    if observe_batch not in BATCH_OBSERVERS:
        BATCH_OBSERVERS.append(observe_batch)
    if container.settings().storage != "postgres":
        yield []
        return
    engine = container.engine()
    pools = instrument_engines(engine)

    async def sample_forever() -> None:
        while True:
            sample_pools(pools)
            await run_in_threadpool(_probe_database, engine)
            await asyncio.sleep(SAMPLE_SECONDS)

    task = asyncio.create_task(sample_forever())
    try:
        yield pools
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        if _MULTIPROCESS:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # its live gauges leave with it


def metrics_response(pools: list[tuple[str, Any]]) -> tuple[bytes, str]:
    sample_pools(pools)  # this process's pools as of now; the other workers' as of their last sample
    return generate_latest(registry()), CONTENT_TYPE_LATEST
