"""Rejected rows one can act on, on both adapters: corrected, dismissed, replayed; failed batches keep why."""

from __future__ import annotations

import pytest

from domain.errors import BadRequest, Conflict, NotFound
from service_layer import ingest, services
from service_layer.ingest import Chunk
from tests.ingesting import run


@pytest.fixture
def uow(uow_factory):
    return uow_factory()


def rejected(uow, batch_id):
    return ingest.list_rejections(uow, batch_id, limit=10, offset=0).rows


def test_a_corrected_payload_is_what_the_next_replay_checks(uow):
    first = run(uow, "airlines", [{"carrier": "aa", "name": "American"}, {"carrier": "bad!", "name": "X"},
                                  {"carrier": "UA", "name": "United"}])
    assert first.rejected == 2
    wrong, dropped = rejected(uow, first.batch_id)
    corrected = ingest.correct_rejection(uow, wrong["id"], {"carrier": "AA", "name": "American"})
    assert corrected["payload"] == {"carrier": "AA", "name": "American"}
    dismissed = ingest.dismiss_rejection(uow, dropped["id"], "not an airline")
    assert (dismissed["dismissed_reason"], dismissed["dismissed_at"] is not None) == ("not an airline", True)

    replay = ingest.replay(uow, first.batch_id)
    assert (replay.received, replay.inserted, replay.rejected) == (1, 1, 0)
    assert {a["carrier"] for a in services.list_rows(uow, "airlines", services.Query()).rows} == {"AA", "UA"}
    assert ingest.list_rejections(uow, first.batch_id, limit=10, offset=0, unresolved=True).rows == []
    with pytest.raises(Conflict, match="resolved by a replay"):
        ingest.correct_rejection(uow, wrong["id"], {"carrier": "AA", "name": "x"})
    with pytest.raises(Conflict, match="dismissed"):
        ingest.dismiss_rejection(uow, dropped["id"], "again")


def test_bad_corrections_and_dismissals_are_refused(uow):
    first = run(uow, "airlines", [{"carrier": "bad!", "name": "X"}])
    (row,) = rejected(uow, first.batch_id)
    with pytest.raises(BadRequest, match="JSON object"):
        ingest.correct_rejection(uow, row["id"], ["AA", "x"])
    with pytest.raises(BadRequest, match="reason"):
        ingest.dismiss_rejection(uow, row["id"], "  ")
    with pytest.raises(NotFound):
        ingest.correct_rejection(uow, 999, {"carrier": "AA"})


def test_a_replay_that_accepts_nothing_makes_no_batch(uow):
    first = run(uow, "planes", [{"tailnum": "N1", "manufacturer": "NOBODY"}])
    batches = len(ingest.list_batches(uow, limit=50, offset=0).rows)
    replay = ingest.replay(uow, first.batch_id)
    assert (replay.batch_id, replay.received, replay.rejected, replay.status) == (None, 1, 1, "completed")
    assert len(ingest.list_batches(uow, limit=50, offset=0).rows) == batches
    assert rejected(uow, first.batch_id)[0]["resolved_at"] is None


def test_a_failed_batch_keeps_its_reason_and_counts(uow):
    def chunks():
        yield Chunk([{"carrier": "AA", "name": "American"}, {"carrier": "bad!", "name": "x"}])
        raise BadRequest("Malformed JSON array: the body ended before its closing ']'", code="PGRST102")

    with pytest.raises(BadRequest):
        run(uow, "airlines", [], chunks=chunks())
    (batch,) = ingest.list_batches(uow, limit=1, offset=0).rows
    # the chunk in flight when the body broke was received, and not written
    assert (batch["status"], batch["received"], batch["inserted"], batch["rejected"]) == ("failed", 2, 0, 0)
    assert batch["error"] == {"code": "PGRST102",
                              "message": "Malformed JSON array: the body ended before its closing ']'"}
    report = ingest.batch_report(uow, batch["id"])
    assert [e["code"] for e in report.errors] == ["PGRST102"]

    frozen = {"contract": {"unknown": "freeze"}}
    with pytest.raises(BadRequest, match="freeze"):
        run(uow, "airlines", [{"carrier": "AA", "name": "A", "colour": "red"}], overrides=frozen)
    batch = ingest.list_batches(uow, limit=1, offset=0).rows[0]
    assert (batch["received"], batch["error"]["code"]) == (1, "PGRST204")
