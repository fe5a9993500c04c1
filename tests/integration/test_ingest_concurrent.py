"""Concurrent batches on PostgreSQL: overlapping natural keys in any order queue, they never deadlock."""

from __future__ import annotations

import random
import threading

import pytest
import sqlalchemy as sa

from service_layer import ingest
from service_layer.ingest import Chunk, IngestRequest

pytestmark = pytest.mark.postgres


def test_batches_of_overlapping_keys_in_different_orders_do_not_deadlock(pg_uow, pg_engine):
    names = [f"M{i:04d}" for i in range(1500)]
    rng = random.Random(7)
    errors: list[BaseException] = []
    reports = []

    def one(order: list[str]) -> None:
        try:
            reports.append(ingest.ingest_batch(pg_uow(), IngestRequest("manufacturers"),
                                               [Chunk([{"name": n} for n in order])]))
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    for _ in range(3):
        orders = [list(names), list(reversed(names))] + [rng.sample(names, len(names)) for _ in range(2)]
        threads = [threading.Thread(target=one, args=(order,)) for order in orders]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert all(r.status == "completed" for r in reports) and len(reports) == 12
    assert sum(r.inserted for r in reports) == len(names)
    with pg_engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM manufacturers")).scalar_one() == len(names)


def test_on_conflict_error_rejects_a_key_another_batch_inserted_meanwhile(pg_uow, pg_engine):
    """Two batches racing to insert the same new keys with on_conflict=error: every key is inserted once
    and rejected (duplicate_key) once; none is counted `unchanged`, which on_conflict=error never is."""
    names = [f"R{i:04d}" for i in range(3000)]
    barrier = threading.Barrier(2)
    reports = []

    def one() -> None:
        barrier.wait()
        reports.append(ingest.ingest_batch(pg_uow(), IngestRequest("manufacturers", on_conflict="error"),
                                           [Chunk([{"name": n} for n in names])]))

    for _ in range(3):
        with pg_engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM manufacturers"))
        reports.clear()
        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(reports) == 2
        assert sum(r.unchanged for r in reports) == 0
        assert sum(r.inserted for r in reports) == len(names)
        assert sum(r.rejected for r in reports) == len(names)


@pytest.fixture
def readings_uow(pg_uow, pg_engine):
    """Units of work over a catalog with a table of surrogate ids whose key has two columns."""
    from adapters.postgres.repository import SqlAlchemyUnitOfWork
    from adapters.postgres.tables import build_metadata
    from tests.contract.test_ingest_ids import readings_catalog

    catalog = readings_catalog()
    metadata = build_metadata(catalog)
    tables = [metadata.tables[n] for n in ("readings", "readings_history", "readings_claims") if n in metadata.tables]
    metadata.create_all(pg_engine, tables=tables)
    yield lambda: SqlAlchemyUnitOfWork(pg_engine, catalog)
    metadata.drop_all(pg_engine, tables=tables)


def test_batches_drawing_ids_in_arrival_order_still_lock_in_key_order(readings_uow, pg_engine):
    """Ids are drawn in file order, yet each chunk is inserted in key order: overlapping batches in
    opposite orders, over several chunks, queue and never deadlock; every key is stored once."""
    keys = [{"station": f"S{i % 7}", "seq": i, "level": i % 3} for i in range(1200)]
    rng = random.Random(16)
    errors: list[BaseException] = []
    reports = []

    def one(rows: list[dict]) -> None:
        chunks = [Chunk(rows[i:i + 300]) for i in range(0, len(rows), 300)]
        try:
            reports.append(ingest.ingest_batch(readings_uow(), IngestRequest("readings"), chunks))
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    for level in range(2):  # the second round updates every stored row
        batch = [{**k, "level": k["level"] + level} for k in keys]
        threads = [threading.Thread(target=one, args=(order,))
                   for order in (batch, batch[::-1], rng.sample(batch, len(batch)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert sum(r.inserted for r in reports) == len(keys)
    with pg_engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT count(*), count(DISTINCT id) FROM readings")).one()
    assert tuple(stored) == (len(keys), len(keys))
