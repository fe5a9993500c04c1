"""What only PostgreSQL can show: rows the merge rules keep are not touched at all, and the lease."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from service_layer import ingest, services
from service_layer.ingest import Chunk, IngestRequest

pytestmark = pytest.mark.postgres


def xmins(engine) -> dict[str, str]:
    with engine.connect() as connection:
        return dict(connection.execute(sa.text("SELECT carrier, xmin::text FROM airlines")).all())


def test_unchanged_and_superseded_rows_are_not_rewritten(pg_uow, pg_engine):
    uow = pg_uow()
    services.create_rows(uow, "sources", [{"code": "low", "name": "Low", "priority": 1},
                                          {"code": "high", "name": "High", "priority": 9}])
    rows = [{"carrier": "AA", "name": "American"}, {"carrier": "UA", "name": "United"}]
    ingest.ingest_batch(uow, IngestRequest("airlines", source="high"), [Chunk(rows)])
    before = xmins(pg_engine)
    report = ingest.ingest_batch(uow, IngestRequest("airlines", source="low"),
                                 [Chunk([rows[0], {"carrier": "UA", "name": "Changed"}])])
    assert (report.superseded, report.updated) == (2, 0)
    same = ingest.ingest_batch(uow, IngestRequest("airlines", source="high"), [Chunk(rows)])
    assert same.unchanged == 2
    assert xmins(pg_engine) == before  # no new row version: no UPDATE happened


def test_a_running_batch_holds_its_lease_on_its_own_connection(pg_uow, pg_engine):
    uow = pg_uow()
    with uow:
        lease = uow.ingestion().begin_batch({
            "table": "airlines", "source": "manual", "mode": "best_effort", "on_conflict": "update",
            "status": "running", "started_at": services.utcnow()})
    with pg_engine.connect() as connection:
        held = connection.execute(sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :id AND granted"),
            {"id": lease.batch_id}).scalar_one()
    assert held == 1
    assert ingest.fail_orphaned_batches(uow) == []
    lease.release()
    assert ingest.fail_orphaned_batches(uow) == [lease.batch_id]
