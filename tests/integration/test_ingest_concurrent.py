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
