"""depot against what people would use instead, every pair measured in the same run: one table.

    make bench                       # or: .venv/bin/python bench/compare.py [--rounds 3] [--seconds 5]

Loads the 336,776 NYC 2013 flights through `POST /ingest/flights` (CSV, streamed, one worker),
then the same file again (every row unchanged), and times a plain `COPY` of the file into a
table made `LIKE flights INCLUDING ALL` with the same five foreign keys, in the same database,
before and after depot's loads (the mean of the two is the baseline).
Then it serves depot, FastCRUD (bench/peers.py, the `bench` extra) and a bare FastAPI route,
each with one uvicorn worker on loopback, and loads them with wrk (2 threads, 16 connections),
taking turns round by round so that the machine's noise falls on both sides of each ratio; the
figures are the medians over the rounds. Needs wrk (Debian: apt-get install wrk). About four
minutes on two cores. Everything runs in a scratch directory with its own embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import ingest as ingest_bench  # noqa: E402  (bench/ingest.py: the ingest and COPY halves)

from adapters.postgres.db import make_engine, migrate  # noqa: E402
from entrypoints.catalogs import load_catalog  # noqa: E402

ROOT = BENCH.parent
GET_IDS = 1000
DEPTH = 300_000


@dataclass
class Load:
    rps: float
    p99_ms: float


def start(command: list[str], port: int, env: dict[str, str], log: Path, health: str) -> subprocess.Popen:
    with log.open("ab") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT)
    for _ in range(900):
        if process.poll() is not None:
            raise SystemExit(f"{command} exited; see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{health}", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{command} did not come up; see {log}")


def depot(url: str, scratch: Path, *, workers: int = 1) -> tuple[subprocess.Popen, int]:
    port = ingest_bench.free_port()
    env = {**os.environ, "DEPOT_DATABASE_URL": url, "DEPOT_LOG_LEVEL": "warning", "DEPOT_API_KEYS": ""}
    env.pop("DATABASE_URL", None)
    command = [sys.executable, "-m", "entrypoints.cli", "serve", "--port", str(port), "--workers", str(workers)]
    return start(command, port, env, scratch / f"depot-{workers}.log", "/health"), port


def uvicorn(factory: str, url: str, scratch: Path, health: str) -> tuple[subprocess.Popen, int]:
    port = ingest_bench.free_port()
    env = {**os.environ, "BENCH_DATABASE_URL": url, "PYTHONPATH": str(BENCH)}
    command = [sys.executable, "-m", "uvicorn", "--factory", f"peers:{factory}", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning", "--no-access-log"]
    return start(command, port, env, scratch / f"{factory}.log", health), port


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


def lua(scratch: Path, name: str, paths: list[str]) -> Path:
    """A wrk script that sends GETs of `paths` in turn."""
    script = scratch / f"{name}.lua"
    listed = ",\n".join(f'  "{p}"' for p in paths)
    script.write_text(f"local paths = {{\n{listed}\n}}\nlocal n = 0\n"
                      "request = function()\n  n = n + 1\n  return wrk.format(\"GET\", paths[n % #paths + 1])\nend\n")
    return script


def wrk(port: int, script: Path, seconds: int) -> Load:
    out = subprocess.run(["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", "-s", str(script),
                          f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
    rps = float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")))
    p99 = next(line.split()[1] for line in out.splitlines() if line.strip().startswith("99%"))
    if "Non-2xx" in out:
        raise SystemExit(f"{script.name} on port {port} got errors:\n{out}")
    return Load(rps, _ms(p99))


def _ms(text: str) -> float:
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    raise ValueError(text)


def median(loads: list[Load]) -> Load:
    return Load(statistics.median(x.rps for x in loads), statistics.median(x.p99_ms for x in loads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="turns of every read pair (medians are taken)")
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench/compare.py needs wrk on the PATH (Debian: apt-get install wrk)")
    scratch = Path(tempfile.mkdtemp(prefix="depot-bench-compare-"))
    from adapters.postgres.embedded import start_embedded

    database = start_embedded(scratch / "pg")
    processes: list[subprocess.Popen] = []
    try:
        rows = run(database.url, scratch, args, processes)
    finally:
        for process in processes:
            if process.poll() is None:
                stop(process)
        database.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    print_table(rows, args)


def run(url: str, scratch: Path, args: argparse.Namespace, processes: list[subprocess.Popen]) -> list[tuple]:
    engine = make_engine(url, pool_size=2)
    migrate(engine, load_catalog().history)
    flights = scratch / "flights.csv"
    with zipfile.ZipFile(ingest_bench.DATA / "flights.csv.zip") as archive:
        flights.write_bytes(archive.read("flights.csv"))
    received = sum(1 for _ in flights.open("rb")) - 1

    print("ingest: a plain COPY, depot's first load, the same file again, the COPY again ...", file=sys.stderr)
    server, port = depot(url, scratch)
    processes.append(server)
    base = f"http://127.0.0.1:{port}"
    for table in ("airlines", "airports"):
        ingest_bench.post_file(base, table, ingest_bench.DATA / f"{table}.csv")
    # The COPY before and after depot's loads, their mean the baseline: a single COPY's time moved from 11.6
    # to 18.5 s between runs on this machine (the checkpoints it meets), which moved the ratios with it.
    copies = [ingest_bench.baseline_copy(engine, flights)]
    sampler = ingest_bench.PeakRss(server.pid)
    sampler.start()
    first, first_s = ingest_bench.post_file(base, "flights", flights)
    again, again_s = ingest_bench.post_file(base, "flights", flights)
    sampler.running = False
    sampler.join()
    assert again["unchanged"] == first["inserted"], (first, again)
    copies.append(ingest_bench.baseline_copy(engine, flights))
    copy_s = statistics.mean(copies)
    print(f"ingest: depot {first_s:.1f} s, again {again_s:.1f} s, COPY {copies[0]:.1f} and {copies[1]:.1f} s, "
          f"peak RSS {sampler.peak / 2**20:,.0f} MiB", file=sys.stderr)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE bench_flights, bench_airports, bench_airlines")
        connection.exec_driver_sql("ANALYZE flights")
        ids = [r[0] for r in connection.exec_driver_sql(
            f"SELECT id FROM flights ORDER BY id LIMIT {GET_IDS} OFFSET 1000")]
    engine.dispose()
    after = httpx.get(f"{base}/api/flights?select=id&limit=100&offset={DEPTH - 100}").headers["link"]
    cursor = after[after.index("after=") + 6:after.index(">")].split("&")[0]

    print("reads: starting FastCRUD, the bare route and depot --workers 2 ...", file=sys.stderr)
    fastcrud, fastcrud_port = uvicorn("fastcrud_app", url, scratch, "/flights/1")
    bare, bare_port = uvicorn("bare_app", url, scratch, "/fixed")
    two, two_port = depot(url, scratch, workers=2)
    processes += [fastcrud, bare, two]

    scripts = {
        "get": lua(scratch, "get", [f"/api/flights/{i}" for i in ids]),
        "get_fastcrud": lua(scratch, "get_fastcrud", [f"/flights/{i}" for i in ids]),
        "bare": lua(scratch, "bare", ["/fixed"]),
        "list": lua(scratch, "list", ["/api/flights?carrier=eq.UA&order=id&limit=100"]),
        "list_fastcrud": lua(scratch, "list_fastcrud", ["/flights?carrier=UA&sort=id&offset=0&limit=100"]),
        "embed": lua(scratch, "embed", ["/api/flights?select=*,airlines(name)&carrier=eq.UA&order=id&limit=100"]),
        "embed_fastcrud": lua(scratch, "embed_fastcrud",
                              ["/flights_with_airline?carrier=UA&sort=id&offset=0&limit=100"]),
        "page1": lua(scratch, "page1", ["/api/flights?limit=100"]),
        "deep": lua(scratch, "deep", [f"/api/flights?limit=100&after={cursor}"]),
    }
    pairs = [("get", port), ("get_fastcrud", fastcrud_port), ("bare", bare_port), ("list", port),
             ("list_fastcrud", fastcrud_port), ("embed", port), ("embed_fastcrud", fastcrud_port),
             ("page1", port), ("deep", port), ("get_workers2", two_port)]
    loads: dict[str, list[Load]] = {name: [] for name, _ in pairs}
    for number in range(1, args.rounds + 1):
        print(f"reads: round {number} of {args.rounds} ...", file=sys.stderr)
        for name, target in pairs:
            loads[name].append(wrk(target, scripts["get" if name == "get_workers2" else name], args.seconds))
    r = {name: median(values) for name, values in loads.items()}

    def reads(load: Load) -> str:
        return f"{load.rps:,.0f} req/s, p99 {load.p99_ms:,.0f} ms"

    ingest_rate, again_rate, copy_rate = received / first_s, received / again_s, received / copy_s
    return [
        ("`POST /ingest/flights` (CSV, first load)", f"{ingest_rate:,.0f} rows/s",
         "`COPY` into a table `LIKE flights INCLUDING ALL` + the same 5 foreign keys", f"{copy_rate:,.0f} rows/s",
         ingest_rate / copy_rate, "≥ 0.8×", ingest_rate / copy_rate >= 0.8),
        ("the same file again (all `unchanged`)", f"{again_rate:,.0f} rows/s", "the same `COPY`",
         f"{copy_rate:,.0f} rows/s", again_rate / copy_rate, "≥ 1.5×", again_rate / copy_rate >= 1.5),
        (f"`GET /api/flights/{{id}}`, {GET_IDS:,} ids in turn", reads(r["get"]), "FastCRUD 0.23 (asyncpg), get",
         reads(r["get_fastcrud"]), r["get"].rps / r["get_fastcrud"].rps, "≥ 3×",
         r["get"].rps >= 3 * r["get_fastcrud"].rps),
        ("the same", reads(r["get"]), "a bare FastAPI sync route returning fixed bytes", reads(r["bare"]),
         r["get"].rps / r["bare"].rps, "≥ 0.5×", r["get"].rps >= 0.5 * r["bare"].rps),
        ("`?carrier=eq.UA&order=id&limit=100`", reads(r["list"]), "FastCRUD's list, same filter and order",
         reads(r["list_fastcrud"]), r["list"].rps / r["list_fastcrud"].rps, "≥ 5×",
         r["list"].rps >= 5 * r["list_fastcrud"].rps),
        ("the same with `select=*,airlines(name)`", reads(r["embed"]), "FastCRUD's join, same",
         reads(r["embed_fastcrud"]), r["embed"].rps / r["embed_fastcrud"].rps, "≥ 4×",
         r["embed"].rps >= 4 * r["embed_fastcrud"].rps),
        (f"keyset page {DEPTH:,} rows deep (`after=`)", reads(r["deep"]), "depot's page 1", reads(r["page1"]),
         r["page1"].rps / r["deep"].rps, "≤ 2× (time)", r["page1"].rps <= 2 * r["deep"].rps),
        ("`GET /api/flights/{id}`, `depot serve --workers 2`", reads(r["get_workers2"]), "`--workers 1` (above)",
         reads(r["get"]), r["get_workers2"].rps / r["get"].rps, "(none)", None),
        ("server peak RSS during both ingests", f"{sampler.peak / 2**20:,.0f} MiB", "", "", None, "≤ 400 MB",
         sampler.peak <= 400e6),
        ("p99 of every depot read below FastCRUD's", "", "", "", None, "yes",
         all(r[n].p99_ms < r[f"{n}_fastcrud"].p99_ms for n in ("get", "list", "embed"))),
    ]


def print_table(rows: list[tuple], args: argparse.Namespace) -> None:
    print(f"\nmedians of {args.rounds} rounds of {args.seconds} s; wrk -t2 -c16 on loopback; one uvicorn worker each\n")
    print("| work | depot | compared with | that | ratio | target | met |")
    print("|---|---|---|---|---|---|---|")
    for work, figure, peer, theirs, ratio, target, met in rows:
        shown = f"{ratio:.2f}×" if ratio is not None else ""
        verdict = "" if met is None else ("yes" if met else "**no**")
        print(f"| {work} | {figure} | {peer} | {theirs} | {shown} | {target} | {verdict} |")


if __name__ == "__main__":
    main()
