"""The ingestion port on both adapters: the memory merge and the COPY + ON CONFLICT statement agree."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import pytest

from domain.errors import InvalidRows
from domain.query import Query
from domain.schema import References
from service_layer import ingest, services
from service_layer.ingest import Chunk, IngestRequest
from tests.ingesting import run
from tests.system_columns import by_role


@pytest.fixture
def uow(uow_factory):
    uow = uow_factory()
    services.create_rows(uow, "sources", [
        {"code": "low", "name": "Low", "priority": 1},
        {"code": "peer", "name": "Peer of low", "priority": 1},
        {"code": "high", "name": "High", "priority": 5},
    ])
    return uow


def counts(report):
    return {k: v for k, v in report.counts().items() if v}


def rows_of(uow, table):
    return [by_role(uow.catalog[table], r) for r in services.list_rows(uow, table, Query()).rows]


AIRPORTS = ["faa", "name", "lat", "lon", "alt", "tz", "dst", "tzone"]


def airport(faa, name="x", alt="0", tz=None):
    return [faa, name, "40.5", "-73.25", alt, tz, None, ""]


def test_insert_then_each_priority_rule(uow):
    first = run(uow, "airports", [], source="low", chunks=[Chunk([airport("AAA"), airport("BBB"), airport("CCC")],
                                                                 AIRPORTS)])
    assert counts(first) == {"received": 3, "inserted": 3}
    stored = {r["faa"]: r for r in rows_of(uow, "airports")}
    assert stored["AAA"]["tzone"] == "" and stored["AAA"]["tz"] is None  # empty string and NULL stay apart

    # equal priority, changed values: updated; identical: unchanged
    second = run(uow, "airports", [], source="peer", chunks=[Chunk([airport("AAA", "new"), airport("BBB")], AIRPORTS)])
    assert counts(second) == {"received": 2, "updated": 1, "unchanged": 1}
    after = {r["faa"]: r for r in rows_of(uow, "airports")}
    assert (after["AAA"]["name"], after["AAA"]["source"], after["AAA"]["version"]) == ("new", "peer", 2)
    assert after["AAA"]["batch_id"] == second.batch_id
    assert after["AAA"]["updated_at"] > stored["AAA"]["updated_at"]
    assert after["BBB"] == stored["BBB"]  # no version bump, no updated_at change, same source and batch

    # higher priority overwrites; then lower priority is superseded, even with equal values
    third = run(uow, "airports", [], source="high", chunks=[Chunk([airport("CCC", "official")], AIRPORTS)])
    assert counts(third) == {"received": 1, "updated": 1}
    fourth = run(uow, "airports", [], source="low",
                 chunks=[Chunk([airport("CCC", "scraped"), airport("CCC", "official")[:], airport("DDD")], AIRPORTS)])
    # CCC twice in one chunk: the last one counts, the first is superseded by it; the last loses to "high"
    assert counts(fourth) == {"received": 3, "inserted": 1, "superseded": 2}
    final = {r["faa"]: r for r in rows_of(uow, "airports")}
    assert (final["CCC"]["name"], final["CCC"]["source"], final["CCC"]["version"]) == ("official", "high", 2)


def test_on_conflict_ignore_and_error(uow):
    run(uow, "airlines", [{"carrier": "AA", "name": "American"}])
    ignored = run(uow, "airlines", [{"carrier": "AA", "name": "X"}, {"carrier": "UA", "name": "United"},
                                    {"carrier": "UA", "name": "Later twin"}], on_conflict="ignore", source="high")
    assert counts(ignored) == {"received": 3, "inserted": 1, "unchanged": 2}
    errored = run(uow, "airlines", [{"carrier": "AA", "name": "X"}, {"carrier": "DL", "name": "Delta"},
                                    {"carrier": "DL", "name": "Twin"}], on_conflict="error")
    assert counts(errored) == {"received": 3, "inserted": 1, "rejected": 2}
    assert [(e["row"], e["code"]) for e in errored.errors] == [(1, "duplicate_key"), (3, "duplicate_key")]
    names = {r["carrier"]: r["name"] for r in rows_of(uow, "airlines")}
    assert names == {"AA": "American", "UA": "United", "DL": "Delta"}


def test_references_are_checked_in_bulk_and_replayed(uow):
    run(uow, "airlines", [{"carrier": "AA", "name": "American"}])
    run(uow, "airports", [], chunks=[Chunk([airport("JFK")], AIRPORTS)])
    report = run(uow, "routes", [{"carrier": "AA", "origin": "JFK", "dest": "SJU"},
                                 {"carrier": "ZZ", "origin": "JFK", "dest": "JFK"},
                                 {"carrier": "AA", "origin": "JFK", "dest": "JFK", "distance": 0}])
    assert counts(report) == {"received": 3, "inserted": 1, "rejected": 2}
    assert {e["field"] for e in report.errors} == {"dest", "carrier"}
    run(uow, "airports", [], chunks=[Chunk([airport("SJU")], AIRPORTS)])
    replayed = ingest.replay(uow, report.batch_id)
    assert counts(replayed) == {"received": 2, "inserted": 1, "rejected": 1}
    unresolved = ingest.list_rejections(uow, report.batch_id, limit=10, offset=0, unresolved=True).rows
    assert [r["row_number"] for r in unresolved] == [2]
    assert len(rows_of(uow, "routes")) == 2


def test_composite_reference_and_typed_columns(uow):
    run(uow, "airlines", [{"carrier": "AA", "name": "American"}])
    run(uow, "airports", [], chunks=[Chunk([airport("JFK"), airport("LAX")], AIRPORTS)])
    run(uow, "routes", [{"carrier": "AA", "origin": "JFK", "dest": "LAX"}])
    fare = {"carrier": "AA", "origin": "JFK", "dest": "LAX", "departure_date": "2024-05-01", "cabin": "economy",
            "price": "199.999", "currency": "USD", "observed_at": "2024-04-01T10:00:00Z"}
    report = run(uow, "fares", [fare, {**fare, "dest": "SFO"}])
    assert counts(report) == {"received": 2, "inserted": 1, "rejected": 1}
    assert report.errors[0]["field"] == "carrier,origin,dest"
    again = run(uow, "fares", [fare])
    assert counts(again) == {"received": 1, "unchanged": 1}
    stored = rows_of(uow, "fares")[0]
    assert str(stored["price"]) == "200.00"
    assert stored["departure_date"] == dt.date(2024, 5, 1)


def test_atomic_failure_leaves_nothing(uow):
    run(uow, "airlines", [{"carrier": "AA", "name": "American"}])
    with pytest.raises(InvalidRows) as raised:
        run(uow, "airlines", [], mode="atomic", chunks=[
            Chunk([{"carrier": "AA", "name": "Changed"}, {"carrier": "UA", "name": "United"}]),
            Chunk([{"carrier": "bad!", "name": "x"}])])
    assert raised.value.details["status"] == "failed"
    assert {r["carrier"]: r["name"] for r in rows_of(uow, "airlines")} == {"AA": "American"}
    batch = ingest.get_batch(uow, raised.value.details["batch_id"])
    assert (batch["status"], batch["received"], batch["rejected"], batch["inserted"]) == ("failed", 3, 1, 0)


def test_batch_bookkeeping_and_orphans(uow):
    report = run(uow, "manufacturers", [{"name": "BOEING"}, {"name": 7}])
    batch = ingest.get_batch(uow, report.batch_id)
    assert (batch["status"], batch["inserted"], batch["rejected"]) == ("completed", 1, 1)
    assert batch["finished_at"] is not None
    rejection = ingest.list_rejections(uow, report.batch_id, limit=5, offset=0).rows[0]
    assert rejection["payload"] == {"name": 7} and rejection["errors"][0]["code"] == "type"
    with uow:
        lease = uow.ingestion().begin_batch({
            "table": "airlines", "source": "manual", "mode": "best_effort", "on_conflict": "update",
            "status": "running", "started_at": services.utcnow()})
    assert ingest.fail_orphaned_batches(uow) == []
    lease.release()
    assert ingest.fail_orphaned_batches(uow) == [lease.batch_id]


def test_reference_to_an_earlier_row_of_the_batch(uow, request):
    """A self-reference may point at a row sent earlier in the same batch, on both adapters."""
    catalog = uow.catalog.extend()

    @catalog.table("employees", group="primary", natural_key=("name",))
    class Employee:
        name: str
        manager: Annotated[str | None, References("employees")] = None

    if uow.kind == "memory":
        from adapters.memory.repository import InMemoryUnitOfWork, MemoryStore

        other = InMemoryUnitOfWork(MemoryStore(catalog))
    else:
        from adapters.postgres.db import create_schema
        from adapters.postgres.repository import SqlAlchemyUnitOfWork
        from adapters.postgres.tables import build_metadata

        engine = request.getfixturevalue("pg_engine")
        create_schema(engine, catalog)
        request.addfinalizer(lambda: build_metadata(catalog).tables["employees"].drop(engine))
        other = SqlAlchemyUnitOfWork(engine, catalog)
    chunks = [Chunk([{"name": "ada"}, {"name": "bob", "manager": "ada"}]),
              Chunk([{"name": "cy", "manager": "bob"}, {"name": "dee", "manager": "zed"}])]
    report = ingest.ingest_batch(other, IngestRequest("employees"), chunks)
    assert counts(report) == {"received": 4, "inserted": 3, "rejected": 1}


def test_idempotency_keys_on_both_adapters(uow):
    from domain.errors import DuplicateKey, IdempotencyClash

    rows = [Chunk([{"carrier": "AA", "name": "American"}, {"carrier": "?", "name": "bad"}])]
    first = ingest.ingest_batch(uow, IngestRequest("airlines", idempotency_key="k"), rows, request_hash=lambda: "h")
    again = ingest.ingest_batch(uow, IngestRequest("airlines", idempotency_key="k"), rows, request_hash=lambda: "h")
    assert again.as_dict() == first.as_dict()
    with pytest.raises(IdempotencyClash):
        ingest.ingest_batch(uow, IngestRequest("airlines", idempotency_key="k"), rows, request_hash=lambda: "other")
    assert ingest.list_batches(uow, limit=10, offset=0).total == 1
    # two requests racing with one key: the store's unique key lets only one batch exist
    with uow, pytest.raises(DuplicateKey):
        uow.ingestion().begin_batch({
            "table": "airlines", "source": "manual", "mode": "best_effort", "on_conflict": "update",
            "status": "running", "started_at": services.utcnow(), "idempotency_key": "k"})
