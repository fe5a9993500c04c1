"""The ingestion rules on the in-memory adapter: priority, unchanged, on_conflict, atomic, references,
replay, idempotency."""

from __future__ import annotations

from typing import Annotated

import pytest

from adapters.memory.repository import InMemoryUnitOfWork, MemoryStore
from domain.errors import BadRequest, Conflict, IdempotencyClash, InvalidRows, UnknownTable
from domain.ingestion import Outcome, merge_outcome, one_per_key
from domain.schema import References
from service_layer import ingest, services
from service_layer.ingest import Chunk, IngestRequest
from tests.ingesting import run


@pytest.fixture
def uow(memory_uow):
    uow = memory_uow()
    services.create_rows(uow, "sources", [
        {"code": "scraper", "name": "A scraper", "priority": 1},
        {"code": "official", "name": "The airline itself", "priority": 5},
        {"code": "other", "name": "Another scraper", "priority": 1},
    ])
    return uow


def airline(uow, carrier):
    return services.get_row(uow, "airlines", carrier)


def test_new_rows_are_inserted_and_stamped(uow):
    report = run(uow, "airlines", [{"carrier": "AA", "name": "American"}, {"carrier": "UA", "name": "United"}],
                 source="scraper")
    assert (report.status, report.received, report.inserted) == ("completed", 2, 2)
    row = airline(uow, "AA")
    assert (row["source"], row["batch_id"], row["version"]) == ("scraper", report.batch_id, 1)


def test_higher_priority_source_overwrites(uow):
    run(uow, "airlines", [{"carrier": "AA", "name": "American"}], source="scraper")
    report = run(uow, "airlines", [{"carrier": "AA", "name": "American Airlines"}], source="official")
    assert report.updated == 1
    row = airline(uow, "AA")
    assert (row["name"], row["source"], row["version"]) == ("American Airlines", "official", 2)


def test_equal_priority_source_overwrites(uow):
    run(uow, "airlines", [{"carrier": "AA", "name": "American"}], source="scraper")
    report = run(uow, "airlines", [{"carrier": "AA", "name": "AA Inc"}], source="other")
    assert report.updated == 1
    assert airline(uow, "AA")["source"] == "other"


def test_lower_priority_source_does_not_overwrite(uow):
    first = run(uow, "airlines", [{"carrier": "AA", "name": "American Airlines"}], source="official")
    report = run(uow, "airlines", [{"carrier": "AA", "name": "Amrican"}], source="scraper")
    assert (report.superseded, report.updated) == (1, 0)
    row = airline(uow, "AA")
    assert (row["name"], row["source"], row["batch_id"], row["version"]) == (
        "American Airlines", "official", first.batch_id, 1)


def test_identical_values_are_unchanged_without_a_version_bump(uow):
    run(uow, "airlines", [{"carrier": "AA", "name": "American"}], source="scraper")
    before = airline(uow, "AA")
    report = run(uow, "airlines", [{"carrier": "AA", "name": "American"}], source="other")
    assert (report.unchanged, report.updated) == (1, 0)
    after = airline(uow, "AA")
    assert after == before  # same version, updated_at, source and batch_id


def test_on_conflict_ignore_keeps_the_stored_row(uow):
    run(uow, "airlines", [{"carrier": "AA", "name": "American"}], source="scraper")
    report = run(uow, "airlines", [{"carrier": "AA", "name": "Other"}, {"carrier": "UA", "name": "United"}],
                 source="official", on_conflict="ignore")
    assert (report.inserted, report.unchanged, report.updated) == (1, 1, 0)
    assert airline(uow, "AA")["name"] == "American"


def test_on_conflict_error_rejects_stored_keys(uow):
    run(uow, "airlines", [{"carrier": "AA", "name": "American"}])
    report = run(uow, "airlines", [{"carrier": "AA", "name": "Other"}, {"carrier": "UA", "name": "United"}],
                 on_conflict="error")
    assert (report.inserted, report.rejected) == (1, 1)
    assert report.errors[0]["row"] == 1 and report.errors[0]["code"] == "duplicate_key"
    assert airline(uow, "AA")["name"] == "American"


def test_best_effort_keeps_invalid_rows_with_their_reasons(uow):
    report = run(uow, "airlines", [{"carrier": "AA", "name": "American"}, {"carrier": "a", "name": "bad"},
                                   {"carrier": "UA"}])
    assert (report.inserted, report.rejected) == (1, 2)
    listing = ingest.list_rejections(uow, report.batch_id, limit=10, offset=0)
    assert [r["row_number"] for r in listing.rows] == [2, 3]
    assert listing.rows[0]["payload"] == {"carrier": "a", "name": "bad"}
    assert listing.rows[0]["errors"][0]["code"] == "pattern"
    assert listing.rows[1]["errors"][0] == {"field": "name", "code": "missing", "message": "is required"}


def test_atomic_batch_with_one_bad_row_writes_nothing(uow):
    with pytest.raises(InvalidRows) as raised:
        run(uow, "airlines", [{"carrier": "AA", "name": "American"}, {"carrier": "??", "name": "bad"}],
            mode="atomic")
    report = raised.value.details
    assert (report["status"], report["received"], report["rejected"], report["inserted"]) == ("failed", 2, 1, 0)
    assert report["errors"][0]["row"] == 2
    assert services.list_rows(uow, "airlines", services.Query()).rows == []
    assert ingest.get_batch(uow, report["batch_id"])["status"] == "failed"


def test_a_failed_atomic_batch_keeps_its_first_rejections_answers_again_and_cannot_be_replayed(uow):
    rows = [{"carrier": "AA", "name": "American"}, {"carrier": "??", "name": "bad"}]
    request = IngestRequest("airlines", mode="atomic", idempotency_key="k")
    with pytest.raises(InvalidRows) as first:
        ingest.ingest_batch(uow, request, [Chunk(rows)], request_hash=lambda: "h")
    batch_id = first.value.details["batch_id"]
    assert [r["row_number"] for r in ingest.list_rejections(uow, batch_id, limit=10, offset=0).rows] == [2]
    with pytest.raises(InvalidRows) as again:
        ingest.ingest_batch(uow, request, [Chunk(rows)], request_hash=lambda: "h")
    assert again.value.details == first.value.details
    with pytest.raises(Conflict):
        ingest.replay(uow, batch_id)


def test_atomic_batch_of_valid_rows_commits(uow):
    chunks = [Chunk([{"carrier": "AA", "name": "American"}]), Chunk([{"carrier": "UA", "name": "United"}])]
    report = run(uow, "airlines", [], mode="atomic", chunks=chunks)
    assert (report.status, report.inserted) == ("completed", 2)


def _airports(uow, *codes):
    run(uow, "airports", [{"faa": c, "name": c, "lat": 40, "lon": -73, "alt": 0} for c in codes])


def test_unknown_reference_is_rejected_and_known_one_accepted(uow):
    run(uow, "airlines", [{"carrier": "AA", "name": "American"}])
    _airports(uow, "JFK", "LAX")
    report = run(uow, "routes", [{"carrier": "AA", "origin": "JFK", "dest": "LAX"},
                                 {"carrier": "AA", "origin": "JFK", "dest": "SJU"}])
    assert (report.inserted, report.rejected) == (1, 1)
    assert report.errors[0] == {"row": 2, "field": "dest", "code": "reference",
                                "message": "(dest)=(SJU) is not present in table 'airports'"}


def test_reference_to_a_row_earlier_in_the_batch(memory_store):
    """A self-reference may point at a row sent earlier in the same batch (even in an earlier chunk)."""
    catalog = memory_store.catalog.extend()

    @catalog.table("employees", group="primary", natural_key=("name",))
    class Employee:
        name: str
        manager: Annotated[str | None, References("employees")] = None

    uow = InMemoryUnitOfWork(MemoryStore(catalog))
    chunks = [Chunk([{"name": "ada"}, {"name": "bob", "manager": "ada"}]),
              Chunk([{"name": "cy", "manager": "bob"}, {"name": "dee", "manager": "zed"},
                     {"name": "eve", "manager": "fay"}, {"name": "fay"}])]
    report = ingest.ingest_batch(uow, IngestRequest("employees"), chunks)
    assert (report.inserted, report.rejected) == (4, 2)
    assert [e["row"] for e in report.errors] == [4, 5]  # fay comes after eve: not earlier


def test_replay_after_the_missing_reference_arrives(uow):
    run(uow, "airlines", [{"carrier": "AA", "name": "American"}])
    _airports(uow, "JFK")
    first = run(uow, "routes", [{"carrier": "AA", "origin": "JFK", "dest": "SJU", "distance": "1598"}])
    assert first.rejected == 1
    still = ingest.replay(uow, first.batch_id)
    assert (still.received, still.inserted, still.rejected) == (1, 0, 1)
    _airports(uow, "SJU")
    replayed = ingest.replay(uow, first.batch_id)
    assert (replayed.received, replayed.inserted, replayed.rejected, replayed.status) == (1, 1, 0, "completed")
    route = services.list_rows(uow, "routes", services.Query()).rows[0]
    assert (route["distance"], route["batch_id"]) == (1598.0, replayed.batch_id)
    rejection = ingest.list_rejections(uow, first.batch_id, limit=10, offset=0).rows[0]
    assert rejection["resolved_at"] is not None
    assert ingest.replay(uow, first.batch_id).received == 0  # nothing left to replay


def test_duplicate_keys_in_a_batch_last_one_wins(uow):
    report = run(uow, "airlines", [{"carrier": "AA", "name": "one"}, {"carrier": "AA", "name": "two"}])
    assert (report.inserted, report.superseded) == (1, 1)
    assert airline(uow, "AA")["name"] == "two"


def test_duplicate_keys_in_a_batch_with_on_conflict_error_reject_the_later(uow):
    report = run(uow, "airlines", [{"carrier": "AA", "name": "one"}, {"carrier": "AA", "name": "two"}],
                 on_conflict="error")
    assert (report.inserted, report.rejected) == (1, 1)
    assert airline(uow, "AA")["name"] == "one"


def test_idempotency_key_same_body_returns_the_first_report(uow):
    rows = [{"carrier": "AA", "name": "American"}, {"carrier": "x", "name": "bad"}]
    first = ingest.ingest_batch(uow, IngestRequest("airlines", idempotency_key="k1"), [Chunk(rows)],
                                request_hash=lambda: "h1")
    services.update_row(uow, "airlines", "AA", {"name": "Changed since"})
    again = ingest.ingest_batch(uow, IngestRequest("airlines", idempotency_key="k1"), [Chunk(rows)],
                                request_hash=lambda: "h1")
    assert again.as_dict() == first.as_dict()
    assert airline(uow, "AA")["name"] == "Changed since"  # nothing written the second time
    assert ingest.list_batches(uow, limit=10, offset=0).total == 1


def test_idempotency_key_with_another_body_is_a_clash(uow):
    ingest.ingest_batch(uow, IngestRequest("airlines", idempotency_key="k1"),
                        [Chunk([{"carrier": "AA", "name": "American"}])], request_hash=lambda: "h1")
    with pytest.raises(IdempotencyClash):
        ingest.ingest_batch(uow, IngestRequest("airlines", idempotency_key="k1"),
                            [Chunk([{"carrier": "AA", "name": "Other"}])], request_hash=lambda: "h2")
    assert airline(uow, "AA")["name"] == "American"
    # the key is per table
    report = ingest.ingest_batch(uow, IngestRequest("manufacturers", idempotency_key="k1"),
                                 [Chunk([{"name": "BOEING"}])], request_hash=lambda: "h2")
    assert report.inserted == 1


def test_unknown_source_table_and_options_are_refused(uow):
    with pytest.raises(BadRequest, match="Unknown source"):
        run(uow, "airlines", [], source="nobody")
    with pytest.raises(UnknownTable):
        run(uow, "nope", [])
    with pytest.raises(BadRequest):
        run(uow, "airlines", [], mode="sometimes")
    with pytest.raises(BadRequest):
        run(uow, "ingest_batches", [])
    assert ingest.list_batches(uow, limit=10, offset=0).total == 0


def test_csv_chunks_are_validated_column_wise(uow):
    header = ["faa", "name", "lat", "lon", "alt", "tz", "dst", "tzone"]
    records = [["JFK", "Kennedy", "40.6", "-73.7", "13", "-5", "A", "America/New_York"],
               ["LGA", "La Guardia", "40.7", "-73.8", "22", None, None, None],
               ["BAD", "Bad", "91", "0", "x", "0", "A", None],
               ["EWR", "Newark"]]
    report = run(uow, "airports", [], chunks=[Chunk(records, header)])
    assert (report.inserted, report.rejected) == (2, 2)
    codes = {(e["row"], e["field"], e["code"]) for e in report.errors}
    assert codes == {(3, "lat", "out_of_range"), (3, "alt", "type"), (4, "", "field_count")}
    assert services.get_row(uow, "airports", "LGA")["tz"] is None


def test_a_csv_header_naming_unknown_columns_fails_the_batch(uow):
    with pytest.raises(BadRequest, match="header"):
        run(uow, "airlines", [], chunks=[Chunk([["AA", "x"]], ["carrier", "nom"])])
    batches = ingest.list_batches(uow, limit=10, offset=0).rows
    assert [b["status"] for b in batches] == ["failed"]


def test_an_interrupted_batch_keeps_its_committed_chunks_and_is_failed(uow):
    def chunks():
        yield Chunk([{"carrier": "AA", "name": "American"}])
        yield Chunk([{"carrier": "UA", "name": "United"}])
        yield Chunk([{"carrier": "DL", "name": "Delta"}])
        raise ConnectionError("the client went away")

    with pytest.raises(ConnectionError):
        ingest.ingest_batch(uow, IngestRequest("airlines"), chunks())
    batch = ingest.list_batches(uow, limit=1, offset=0).rows[0]
    # the chunk still being validated when the body broke off is not written; the others are, and counted
    assert (batch["status"], batch["inserted"]) == ("failed", 2)
    assert services.count_rows(uow)["airlines"] == 2


def test_orphaned_running_batches_are_failed(uow):
    with uow:
        lease = uow.ingestion().begin_batch({
            "table": "airlines", "source": "manual", "mode": "best_effort", "on_conflict": "update",
            "status": "running", "started_at": services.utcnow()})
    assert ingest.fail_orphaned_batches(uow) == []  # its lease is held
    lease.release()  # as if its process died
    assert ingest.fail_orphaned_batches(uow) == [lease.batch_id]
    assert ingest.get_batch(uow, lease.batch_id)["status"] == "failed"


def test_merge_outcome_rule_order():
    common = {"columns": ("name",), "on_conflict": "update"}
    old, new = {"name": "a"}, {"name": "b"}
    assert merge_outcome(None, new, stored_priority=9, priority=0, **common) is Outcome.INSERTED
    assert merge_outcome(old, old, stored_priority=9, priority=0, **common) is Outcome.SUPERSEDED
    assert merge_outcome(old, old, stored_priority=0, priority=0, **common) is Outcome.UNCHANGED
    assert merge_outcome(old, new, stored_priority=0, priority=0, **common) is Outcome.UPDATED
    assert merge_outcome(old, new, stored_priority=0, priority=9, columns=("name",),
                         on_conflict="ignore") is Outcome.UNCHANGED


def test_a_soft_deleted_row_sent_again_is_revived_unless_a_stronger_source_holds_it_or_it_is_ignored():
    common = {"columns": ("name",), "deleted": True}
    old = {"name": "a"}
    assert merge_outcome(old, old, stored_priority=0, priority=0, on_conflict="update", **common) is Outcome.UPDATED
    assert merge_outcome(old, old, stored_priority=9, priority=0, on_conflict="update", **common) is Outcome.SUPERSEDED
    assert merge_outcome(old, old, stored_priority=0, priority=0, on_conflict="ignore", **common) is Outcome.UNCHANGED


def test_one_per_key_keeps_last_or_first():
    rows = [{"k": 1, "v": "a"}, {"k": 2, "v": "b"}, {"k": 1, "v": "c"}]
    last = one_per_key(rows, ("k",), keep_last=True)
    # the last row of a key, in the place its key first came: that is where a new key's id is drawn
    assert ([r["v"] for r in last.rows], last.numbers, last.dropped) == (["c", "b"], [2, 1], [0])
    first = one_per_key(rows, ("k",), keep_last=False)
    assert ([r["v"] for r in first.rows], first.dropped) == (["a", "b"], [2])


def test_a_store_error_mid_batch_fails_the_batch(uow, monkeypatch):
    from adapters.memory.ingest import InMemoryIngestRepository
    from domain.errors import InvalidRows as StoreRefusal

    def refuse(self, *args, **kwargs):
        raise StoreRefusal("a check constraint refused a row", code="23514")

    monkeypatch.setattr(InMemoryIngestRepository, "merge", refuse)
    for mode in ("best_effort", "atomic"):
        with pytest.raises(StoreRefusal):
            run(uow, "airlines", [{"carrier": "AA", "name": "American"}], mode=mode)
    assert [b["status"] for b in ingest.list_batches(uow, limit=5, offset=0).rows] == ["failed", "failed"]
