"""A batch's chunks written side by side (DEPOT_INGEST_WRITERS, two by default) against one writer:
the same stores, ids and reports, whichever chunk's work ends first; commits in file order; a chunk
that fails takes the chunks after it down with it."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from adapters.postgres.db import make_engine
from adapters.postgres.ingest import SqlAlchemyIngestRepository
from adapters.postgres.repository import SqlAlchemyUnitOfWork
from service_layer import ingest
from service_layer.ingest import Chunk, IngestRequest
from tests.conftest import truncate_all
from tests.integration.test_ingest_direct_copy import AIRLINES, AIRPORTS, NOW, WRITTEN, dump, flight, relation

pytestmark = pytest.mark.postgres

PAUSE = 0.3  # how long a paused chunk waits for the next to come beside it (not at all, with one writer)

# (table, chunks, on_conflict). Flight numbers mark the chunks; those in SLOW_BEFORE pause before their
# merge (the next chunk waits for them to draw ids), those in SLOW_AFTER after it (it waits to commit).
BATCHES = [
    ("airlines", [AIRLINES], "update"),
    ("airports", [AIRPORTS[:2], AIRPORTS[2:]], "update"),
    ("flights", [  # a first load: ids drawn by the probe, history ids with them
        [flight(1, 1), flight(1, 2), flight(2, 3)],
        [flight(3, 4), flight(1, 5, month=13), flight(4, 6, dest="XXX")],  # an invalid row, a dangling one
        [flight(1, 2, dep_delay=9.0), flight(5, 7)],  # shares a key with the first chunk: never beside it
        [flight(6, 8), flight(7, 9)],
    ], "update"),
    ("flights", [  # a re-load: unchanged, changed and new rows, merged
        [flight(1, 1), flight(8, 10)],
        [flight(3, 4, dep_delay=1.5), flight(9, 11)],
        [flight(10, 12), flight(6, 8)],
    ], "update"),
    ("airports", [[{**AIRPORTS[0], "alt": 14}], [{"faa": "SFO", "name": "San Francisco", "lat": 37.6,
                                                   "lon": -122.4, "alt": 4}]], "update"),
    ("airlines", [[{"carrier": "B6", "name": "JetBlue"}], [{"carrier": "DL", "name": "Delta"}]], "update"),
    ("flights", [[flight(11, 13), flight(1, 1)], [flight(12, 14)]], "error"),  # a stored key: a duplicate
]
SLOW_BEFORE = {1, 10}
SLOW_AFTER = {4, 13}


@pytest.fixture
def watched(monkeypatch):
    """Pause the marked chunks' merges until the next flights chunk has come to its merge (or for PAUSE,
    when none can: one writer), and note which flights chunks were merging at the same time."""
    merge = SqlAlchemyIngestRepository.merge
    came = threading.Condition()
    active: list[frozenset] = []
    together: list[tuple[frozenset, frozenset]] = []
    arrivals = 0

    def pause(arrived: int) -> None:
        with came:
            came.wait_for(lambda: arrivals > arrived, timeout=PAUSE)

    def watching(self, table, rows, **options):
        nonlocal arrivals
        if table.name != "flights":
            return merge(self, table, rows, **options)
        numbers = frozenset(r["flight"] for r in rows)
        with came:
            together.extend((other, numbers) for other in active)
            active.append(numbers)
            arrivals += 1
            arrived = arrivals
            came.notify_all()
        try:
            if numbers & SLOW_BEFORE:
                pause(arrived)
            merged = merge(self, table, rows, **options)
            if numbers & SLOW_AFTER:
                pause(arrived)
            return merged
        finally:
            with came:
                active.remove(numbers)

    monkeypatch.setattr(SqlAlchemyIngestRepository, "merge", watching)
    return together


def load(engine, catalog, writers: int) -> list[dict]:
    return [ingest.ingest_batch(SqlAlchemyUnitOfWork(engine, catalog, writers=writers),
                                IngestRequest(table, on_conflict=on_conflict),
                                [Chunk(rows) for rows in chunks], clock=lambda: NOW).as_dict()
            for table, chunks, on_conflict in BATCHES]


def test_chunks_written_side_by_side_end_as_one_writer_would(pg_uow, pg_engine, catalog, watched):
    alone = load(pg_engine, catalog, writers=1)
    expected = dump(pg_engine)
    assert not watched  # one writer: no two merges at once
    truncate_all(pg_engine, catalog)

    side_by_side = load(pg_engine, catalog, writers=2)

    assert side_by_side == alone
    stored = dump(pg_engine)
    for table in WRITTEN:  # ids, history ids and rejection ids included
        assert stored[table] == expected[table], table
    assert [(r["inserted"], r["updated"], r["unchanged"], r["rejected"]) for r in alone[2:4]] == [
        (7, 1, 0, 2), (3, 1, 2, 0)]
    # The paused chunks were overtaken: the chunk after each merged beside it, but never one sharing a key.
    assert {frozenset({1, 2, 3}), frozenset({4})} in [set(pair) for pair in watched]  # 5, 6 rejected
    assert {frozenset({10, 1}), frozenset({4, 11})} in [set(pair) for pair in watched]
    assert not [pair for pair in watched if set().union(*pair) >= {1, 2, 3, 7}]


def test_a_chunk_that_fails_takes_the_chunks_after_it_down(pg_uow, pg_engine, monkeypatch):
    """The second chunk fails after the third has written its rows (waiting for its turn to commit): the
    store holds the first chunk only, and the batch, failed, counts it alone."""
    ingest.ingest_batch(pg_uow(), IngestRequest("airlines"), [Chunk(AIRLINES)])
    ingest.ingest_batch(pg_uow(), IngestRequest("airports"), [Chunk(AIRPORTS)])
    merge = SqlAlchemyIngestRepository.merge
    third_written = threading.Event()

    def failing(self, table, rows, **options):
        merged = merge(self, table, rows, **options)
        if rows[0]["flight"] == 5:  # the third chunk, written
            third_written.set()
        if rows[0]["flight"] == 3:  # the second chunk, once the third has written
            assert third_written.wait(10)
            raise RuntimeError("the disk is full")
        return merged

    monkeypatch.setattr(SqlAlchemyIngestRepository, "merge", failing)
    chunks = [[flight(1, 1), flight(1, 2)], [flight(2, 3), flight(2, 4)], [flight(3, 5), flight(3, 6, month=13)]]
    with pytest.raises(RuntimeError, match="the disk is full"):
        ingest.ingest_batch(SqlAlchemyUnitOfWork(pg_engine, pg_uow().catalog, writers=3), IngestRequest("flights"),
                            [Chunk(rows) for rows in chunks])

    with pg_engine.connect() as connection:
        flights = connection.execute(sa.text("SELECT flight FROM flights ORDER BY flight")).scalars().all()
        history = connection.execute(sa.text("SELECT flight FROM flights_history ORDER BY flight")).scalars().all()
        batch = connection.execute(sa.text(f"SELECT status, received, inserted, rejected FROM "
                                           f"{relation('ingest_batches')} WHERE \"table\" = 'flights'")).one()
        rejected = connection.execute(sa.text(f"SELECT count(*) FROM {relation('rejected_rows')}")).scalar_one()
    assert (flights, history) == ([1, 2], [1, 2])
    assert tuple(batch) == ("failed", 6, 2, 0)
    assert rejected == 0  # the third chunk's invalid row went down with it


def test_the_wait_for_the_chunk_before_is_not_cut_by_the_statement_timeout(pg_uow, pg_engine, catalog,
                                                                           monkeypatch):
    """A chunk waits for the one before it to end, however long that takes: the first chunk holds its
    transaction open for three statement timeouts once the second has begun to wait, and the wait is
    not cut; the timeout is back for the second chunk's own statements."""
    timeout_ms = 100
    timed = make_engine(pg_engine.url.render_as_string(hide_password=False), pool_size=3,
                        statement_timeout_ms=timeout_ms)
    merge, await_turn = SqlAlchemyIngestRepository.merge, SqlAlchemyIngestRepository.await_turn
    second_waits = threading.Event()
    after_wait = []

    def first_holds_on(self, table, rows, **options):
        merged = merge(self, table, rows, **options)
        if table.name == "flights" and rows[0]["flight"] == 4:  # the first chunk, written, not committed
            assert second_waits.wait(10)
            time.sleep(3 * timeout_ms / 1000)
        return merged

    def waiting(self, batch_id, number):
        started = time.perf_counter()
        second_waits.set()
        await_turn(self, batch_id, number)
        after_wait.append((time.perf_counter() - started,
                           self.connection.exec_driver_sql("SHOW statement_timeout").scalar()))

    monkeypatch.setattr(SqlAlchemyIngestRepository, "merge", first_holds_on)
    monkeypatch.setattr(SqlAlchemyIngestRepository, "await_turn", waiting)
    try:
        for table, rows in (("airlines", AIRLINES), ("airports", AIRPORTS)):
            ingest.ingest_batch(SqlAlchemyUnitOfWork(timed, catalog), IngestRequest(table), [Chunk(rows)])
        report = ingest.ingest_batch(SqlAlchemyUnitOfWork(timed, catalog, writers=2), IngestRequest("flights"),
                                     [Chunk([flight(1, 4)]), Chunk([flight(2, 5)])])
        assert (report.status, report.inserted) == ("completed", 2)
        [(waited, then)] = after_wait
        # The wait began before the first chunk's three timeouts, and ended with its commit, after them.
        assert (waited > 3 * timeout_ms / 1000, then) == (True, f"{timeout_ms}ms")
    finally:
        timed.dispose()


def test_a_pool_with_no_connection_to_spare_writes_one_chunk_at_a_time(pg_uow, pg_engine, catalog, watched):
    """The pool's two connections (pool size 1) hold the batch's lease and its first writer: no second
    writer is taken, which would wait for the pool, and the chunks go one after another."""
    small = make_engine(pg_engine.url.render_as_string(hide_password=False), pool_size=1)
    try:
        for table, rows in (("airlines", AIRLINES), ("airports", AIRPORTS)):
            ingest.ingest_batch(SqlAlchemyUnitOfWork(small, catalog), IngestRequest(table), [Chunk(rows)])
        report = ingest.ingest_batch(SqlAlchemyUnitOfWork(small, catalog, writers=2), IngestRequest("flights"),
                                     [Chunk([flight(1, 4)]), Chunk([flight(2, 5)]), Chunk([flight(3, 6)])])
        assert (report.status, report.inserted, watched) == ("completed", 3, [])
    finally:
        small.dispose()
