"""An unchanged row costs the merge a key lookup and a comparison, never a write: not even the
row lock that ON CONFLICT DO UPDATE takes when its WHERE declines the update."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from domain.query import Query
from service_layer import services
from tests.ingesting import run

pytestmark = pytest.mark.postgres


def lockers(engine) -> dict[str, str]:
    """Each airline's xmax: 0 unless some transaction updated, deleted or locked the row version."""
    with engine.connect() as connection:
        return dict(connection.execute(sa.text("SELECT carrier, xmax::text FROM airlines ORDER BY carrier")).all())


def test_unchanged_rows_are_neither_rewritten_nor_locked(pg_uow, pg_engine):
    uow = pg_uow()
    rows = [{"carrier": c, "name": f"Airline {c}"} for c in ("AA", "B6", "DL", "UA")]
    assert run(uow, "airlines", rows).inserted == 4
    again = run(uow, "airlines", rows)
    assert (again.inserted, again.updated, again.unchanged, again.superseded) == (0, 0, 4, 0)
    assert set(lockers(pg_engine).values()) == {"0"}
    assert {r["version"] for r in services.list_rows(uow, "airlines", Query()).rows} == {1}


def test_a_chunk_of_unchanged_changed_new_and_superseded_rows_counts_each_once(pg_uow, pg_engine):
    uow = pg_uow()
    services.create_rows(uow, "sources", [{"code": "low", "name": "Low", "priority": 1},
                                          {"code": "high", "name": "High", "priority": 9}])
    run(uow, "airlines", [{"carrier": "AA", "name": "American"}, {"carrier": "UA", "name": "United"}],
        source="low")
    run(uow, "airlines", [{"carrier": "DL", "name": "Delta"}], source="high")
    report = run(uow, "airlines", [
        {"carrier": "AA", "name": "American"},  # unchanged
        {"carrier": "UA", "name": "United Airlines"},  # updated
        {"carrier": "B6", "name": "JetBlue"},  # inserted
        {"carrier": "DL", "name": "Delta"},  # equal, but the stored source outranks this one: superseded
    ], source="low")
    assert (report.inserted, report.updated, report.unchanged, report.superseded) == (1, 1, 1, 1)
    stored = {r["carrier"]: r for r in services.list_rows(uow, "airlines", Query()).rows}
    assert stored["UA"]["name"] == "United Airlines" and stored["UA"]["version"] == 2
    assert (stored["AA"]["version"], stored["DL"]["source"]) == (1, "high")
    assert lockers(pg_engine)["AA"] == "0"
