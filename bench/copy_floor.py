"""How fast a first load could be: PostgreSQL's own share of depot's writes, against the COPY baseline.

    .venv/bin/python bench/copy_floor.py          # embedded PostgreSQL in a scratch directory

`make bench` compares `POST /ingest/flights` with one COPY of the file into a copy of flights. depot
writes more than that COPY does: each row also carries its batch id (a foreign key, checked row by
row), its version and timestamps, and goes into flights_history too, in one transaction per chunk.
This script times those writes with no Python in the way (the file's own lines, cut into depot's
5,000-row chunks and COPYed by psycopg2), beside the baseline COPY in the same run: one chunk after
another, then two at a time on two connections as depot writes them (DEPOT_INGEST_WRITERS=2). The
last ratio is the best a first load through depot could reach on this machine; on two cores, depot's
own Python shares them with the two PostgreSQL processes.
"""

from __future__ import annotations

import io
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import ingest as ingest_bench  # noqa: E402  (bench/ingest.py: the data and the baseline COPY)

from adapters.postgres.db import make_engine, migrate  # noqa: E402
from entrypoints.catalogs import load_catalog  # noqa: E402

CHUNK = 5_000
ROUNDS = 2


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="depot-bench-floor-"))
    from adapters.postgres.embedded import start_embedded

    database = start_embedded(scratch / "pg")
    try:
        engine = make_engine(database.url, pool_size=2)
        migrate(engine, load_catalog().history)
        flights = scratch / "flights.csv"
        with zipfile.ZipFile(ingest_bench.DATA / "flights.csv.zip") as archive:
            flights.write_bytes(archive.read("flights.csv"))
        header, body = flights.read_text().split("\n", 1)
        lines = body.splitlines(keepends=True)
        raw = engine.raw_connection()
        cursor = raw.cursor()
        batches, sources = ingest_bench.depot_table("ingest_batches"), ingest_bench.depot_table("sources")
        cursor.execute(f"INSERT INTO {sources} (code, name, priority) VALUES ('bench', 'bench', 0)")
        for table in ("airlines", "airports"):
            with open(ingest_bench.DATA / f"{table}.csv") as f:
                columns = f.readline().strip()
                cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv, NULL 'NA')", f)
        cursor.execute("INSERT INTO airports (faa, name, lat, lon, alt) VALUES "
                       + ", ".join(f"('{code}', '{code}', 18, -66, 0)" for code in ingest_bench.MISSING_AIRPORTS))
        raw.commit()

        def chunked(*, provenance: bool, history: bool, batch_id: bool = True, history_by: str = "copy",
                    writers: int = 1) -> float:
            cursor.execute("TRUNCATE flights, flights_history")
            raw.commit()
            firsts: queue.SimpleQueue[int] = queue.SimpleQueue()  # the chunks, taken in turn by the writers
            for first in range(0, len(lines), CHUNK):
                firsts.put(first)
            failures: list[BaseException] = []

            def write(connection) -> None:  # noqa: ANN001
                own = connection.cursor()
                while True:
                    try:
                        first = firsts.get_nowait()
                    except queue.Empty:
                        return
                    part = lines[first:first + CHUNK]
                    columns = header
                    if provenance:
                        own.execute(f"INSERT INTO {batches} (\"table\", schema, source, mode, on_conflict, status, "
                                    "started_at) VALUES ('flights', 'public', 'bench', 'best_effort', 'update', "
                                    "'running', now()) RETURNING id")
                        batch = own.fetchone()[0]
                        stamp = batch if batch_id else "NA"  # NULL (the NULL string), never checked by the key
                        columns = f"id,{header},source,batch_id,version,created_at,updated_at"
                        part = [f"{first + n + 1},{line[:-1]},bench,{stamp},1,2026-11-27,2026-11-27\n"
                                for n, line in enumerate(part)]
                    text = io.StringIO("".join(part))
                    copies = history and history_by == "copy"
                    for target in ("flights", *(["flights_history"] if copies else [])):
                        text.seek(0)
                        own.copy_expert(f"COPY {target} ({columns}) FROM STDIN WITH (FORMAT csv, NULL 'NA')", text)
                    if history and not copies:  # the chunk's rows, read back from the table just written
                        own.execute(f"INSERT INTO flights_history ({columns}) SELECT {columns} FROM flights "
                                    "WHERE id BETWEEN %s AND %s", (first + 1, first + len(part)))
                    if provenance:
                        own.execute(f"UPDATE {batches} SET received = received + %s WHERE id = %s", (len(part), batch))
                    connection.commit()

            def writing(connection) -> None:  # noqa: ANN001
                try:
                    write(connection)
                except BaseException as error:  # noqa: BLE001 - raised again below, in the main thread
                    failures.append(error)

            connections = [raw, *(engine.raw_connection() for _ in range(writers - 1))]
            threads = [threading.Thread(target=writing, args=(c,)) for c in connections]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            for connection in connections[1:]:
                connection.close()
            if failures:
                raise failures[0]
            return elapsed

        rows = [
            ("chunks of 5,000, each its own transaction", dict(provenance=False, history=False)),
            ("+ ids, source, version, timestamps (batch_id null)",
             dict(provenance=True, history=False, batch_id=False)),
            ("+ batch_id (a foreign key, checked row by row)", dict(provenance=True, history=False)),
            ("+ the same rows into flights_history (depot's writes)", dict(provenance=True, history=True)),
            ("the same, history by INSERT ... SELECT from flights", dict(provenance=True, history=True,
                                                                        history_by="select")),
            ("depot's writes, two chunks at a time on two connections (DEPOT_INGEST_WRITERS=2)",
             dict(provenance=True, history=True, writers=2)),
        ]
        times: dict[str, list[float]] = {name: [] for name, _ in rows}
        baseline: list[float] = []
        for number in range(1, ROUNDS + 1):
            print(f"round {number} of {ROUNDS} ...", file=sys.stderr)
            cursor.execute("TRUNCATE flights, flights_history")
            raw.commit()
            baseline.append(ingest_bench.baseline_copy(engine, flights, missing_airports=False))
            for name, options in rows:
                times[name].append(chunked(**options))
        raw.close()
        base = statistics.median(baseline)
        print(f"\n{len(lines):,} flights, medians of {ROUNDS} rounds\n")
        print("| COPY of | seconds | rows/s | baseline ÷ this |\n|---|---|---|---|")
        print(f"| the file into a copy of flights, one COPY (the baseline) | {base:.1f} | "
              f"{len(lines) / base:,.0f} | 1.00 |")
        for name, _ in rows:
            median = statistics.median(times[name])
            print(f"| {name} | {median:.1f} | {len(lines) / median:,.0f} | {base / median:.2f} |")
    finally:
        database.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
