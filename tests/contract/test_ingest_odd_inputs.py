"""Odd inputs found in the QA round, on both adapters: they are rejected row by row, never fail a batch."""

from __future__ import annotations

from domain.query import Condition, Query
from service_layer import ingest, services
from service_layer.ingest import Chunk, IngestRequest


def rejections(uow, batch_id):
    return services.list_rows(uow, "rejected_rows", Query(where=Condition("batch_id", "eq", batch_id))).rows


def test_a_nul_character_is_rejected_with_its_row_and_the_rest_is_written(uow_factory):
    """jsonb cannot hold \\u0000: the kept payload and errors show U+FFFD in its place, on both adapters."""
    uow = uow_factory()
    rows = [{"carrier": "AA", "name": "ok"}, {"carrier": "UA", "name": "a\x00b"}, {"carrier": "B6", "x\x00": 1}]
    report = ingest.ingest_batch(uow, IngestRequest("airlines"), [Chunk(rows)])
    assert (report.status, report.inserted, report.rejected) == ("completed", 1, 2)
    kept = sorted(rejections(uow, report.batch_id), key=lambda r: r["row_number"])
    assert kept[0]["payload"] == {"carrier": "UA", "name": "a\ufffdb"}
    assert kept[1]["payload"] == {"carrier": "B6", "x\ufffd": 1}
    assert kept[1]["errors"][0]["field"] == "x\ufffd"
    assert [r["carrier"] for r in services.list_rows(uow, "airlines", Query()).rows] == ["AA"]


def test_a_nul_character_in_a_csv_record(uow_factory):
    uow = uow_factory()
    chunk = Chunk([["AA", "ok"], ["UA", "a\x00b"]], ["carrier", "name"])
    report = ingest.ingest_batch(uow, IngestRequest("airlines"), [chunk])
    assert (report.status, report.inserted, report.rejected) == ("completed", 1, 1)
    (kept,) = rejections(uow, report.batch_id)
    assert kept["payload"] == {"carrier": "UA", "name": "a\ufffdb"}


def test_an_idempotency_key_longer_than_255_characters_is_a_bad_request(uow_factory):
    """PostgreSQL's unique index cannot hold a long random key (a 500 before); both adapters refuse it first."""
    import secrets

    import pytest

    from domain.errors import BadRequest

    uow = uow_factory()
    rows = [{"carrier": "AA", "name": "ok"}]
    longest = secrets.token_hex(128)[:255]
    assert ingest.ingest_batch(uow, IngestRequest("airlines", idempotency_key=longest), [Chunk(rows)]).inserted == 1
    for key in (secrets.token_urlsafe(6000), longest + "x", ""):
        with pytest.raises(BadRequest, match="Idempotency-Key"):
            ingest.ingest_batch(uow, IngestRequest("airlines", idempotency_key=key), [Chunk(rows)])
    assert services.count_rows(uow)["ingest_batches"] == 1


def test_merge_with_on_conflict_error_reports_stored_keys_as_clashed(uow_factory):
    """The port's answer when a key got stored after the service looked (a concurrent batch): not
    written, not counted, its index in `clashed`; the same on both adapters."""
    uow = uow_factory()
    services.create_rows(uow, "airlines", [{"carrier": "UA", "name": "United"}])
    with uow:
        merged = uow.ingestion().merge(
            uow.catalog["airlines"], [{"carrier": "AA", "name": "A"}, {"carrier": "UA", "name": "Other"}],
            source="manual", priority=0, batch_id=None, now=services.utcnow(), on_conflict="error")
        uow.commit()
    assert (merged.inserted, merged.unchanged, merged.clashed) == (1, 0, [1])
    stored = {r["carrier"]: r["name"] for r in services.list_rows(uow, "airlines", Query()).rows}
    assert stored == {"AA": "A", "UA": "United"}


def test_csv_timestamps_without_an_offset_are_utc_and_meet_the_same_instant_written_otherwise(uow_factory):
    """The CSV fast path left `2013-01-01 10:00:00` naive on the memory adapter: the same instant sent
    as 05:00-05:00 was a second row there (one row on PostgreSQL), and naive and aware values mixed."""
    uow = uow_factory()
    services.create_rows(uow, "airports", [{"faa": "JFK", "name": "J", "lat": 1, "lon": 1, "alt": 1}])
    header = ["origin", "time_hour", "temp"]
    first = ingest.ingest_batch(uow, IngestRequest("weather"), [Chunk([["JFK", "2013-01-01 10:00:00", "1.5"]], header)])
    again = ingest.ingest_batch(uow, IngestRequest("weather"), [
        Chunk([{"origin": "JFK", "time_hour": "2013-01-01T05:00:00-05:00", "temp": 1.5}])])
    assert (first.inserted, again.unchanged, again.inserted) == (1, 1, 0)
    (row,) = services.list_rows(uow, "weather", Query()).rows
    assert row["time_hour"].utcoffset().total_seconds() == 0
    assert row["time_hour"].isoformat() == "2013-01-01T10:00:00+00:00"


def test_a_timestamp_sent_with_an_offset_is_stored_and_read_back_in_utc(uow_factory):
    """PostgreSQL gives a timestamptz back in the session zone (UTC); the memory adapter kept the offset
    it was sent with (-05:00), so the same row read differently on the two adapters."""
    uow = uow_factory()
    services.create_rows(uow, "airports", [{"faa": "JFK", "name": "J", "lat": 1, "lon": 1, "alt": 1}])
    header = ["origin", "time_hour", "temp"]
    report = ingest.ingest_batch(uow, IngestRequest("weather"), [
        Chunk([["JFK", "2013-01-01 00:00:00-05", "1.5"], ["JFK", "2013-01-01T01:00:00+01:00", "2"]], header),
        Chunk([{"origin": "JFK", "time_hour": "2013-01-02T00:00:00-05:00", "temp": 3}])])
    assert report.inserted == 3
    stored = [r["time_hour"].isoformat() for r in services.list_rows(uow, "weather", Query()).rows]
    assert stored == ["2013-01-01T05:00:00+00:00", "2013-01-01T00:00:00+00:00", "2013-01-02T05:00:00+00:00"]


def test_a_negative_zero_numeric_is_stored_as_zero(uow_factory):
    """PostgreSQL's numeric has no -0; the memory adapter kept Decimal('-0.00'), answered as -0.0."""
    uow = uow_factory()
    services.create_rows(uow, "airlines", [{"carrier": "UA", "name": "United"}])
    services.create_rows(uow, "airports", [{"faa": f, "name": f, "lat": 1, "lon": 1, "alt": 1} for f in ("EWR", "ORD")])
    services.create_rows(uow, "routes", [{"carrier": "UA", "origin": "EWR", "dest": "ORD"}])
    header = ["carrier", "origin", "dest", "departure_date", "cabin", "price", "currency", "observed_at"]
    report = ingest.ingest_batch(uow, IngestRequest("fares"), [Chunk(
        [["UA", "EWR", "ORD", "2013-02-01", cabin, price, "USD", "2013-01-01T00:00:00Z"]
         for cabin, price in (("economy", "-0"), ("first", "-0.001"))], header)])
    assert report.inserted == 2
    prices = [r["price"] for r in services.list_rows(uow, "fares", Query()).rows]
    assert [str(p) for p in prices] == ["0.00", "0.00"]
