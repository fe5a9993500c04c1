"""History and undo on the NYC 2013 flights through a real server process and a real PostgreSQL:
a load from one source, 1,000 changed delays from a stronger one, and the revert of that batch.

The first load is the slice the other flights e2e tests use (tests/e2e/test_ingest_flights.py):
the whole file would add about a minute to the suite; bench/history.py loads and reverts all of it.
"""

from __future__ import annotations

import csv
import io

import httpx
import pytest
import sqlalchemy as sa

from tests.e2e.test_ingest_flights import SLICE, ingest, lines, load_reference_data, server  # noqa: F401

pytestmark = pytest.mark.postgres

CHANGED = 1_000
DATA_COLUMNS = ("year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time", "sched_arr_time",
                "arr_delay", "carrier", "flight", "tailnum", "origin", "dest", "air_time", "distance", "hour",
                "minute", "time_hour", "source")


def snapshot(engine) -> dict[int, tuple]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text(f"SELECT id, {', '.join(DATA_COLUMNS)} FROM flights")).all()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_a_stronger_sources_changes_reverted_value_for_value_with_three_states_in_history(server, pg_engine, lines):  # noqa: F811
    load_reference_data(server)
    for code, priority in (("bts", 1), ("airline_feed", 5)):
        assert httpx.post(f"{server.url}/api/sources", json={"code": code, "name": code,
                                                             "priority": priority}).status_code == 201
    first = ingest(server, "flights", b"".join(lines[: SLICE + 1]), source="bts").json()
    assert first["status"] == "completed" and first["inserted"] > 19_000
    before = snapshot(pg_engine)

    # 1,000 stored flights with another departure delay, from the stronger source
    rows = list(csv.DictReader(io.StringIO(b"".join(lines[: SLICE + 1]).decode())))
    stored = [r for r in rows if r["dest"] not in ("BQN", "SJU", "STT", "PSE")][:CHANGED]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    for r in stored:
        writer.writerow({**r, "dep_delay": str(float(r["dep_delay"]) + 7 if r["dep_delay"] != "NA" else 7)})
    second = ingest(server, "flights", out.getvalue().encode(), source="airline_feed").json()
    assert (second["updated"], second["inserted"], second["rejected"]) == (CHANGED, 0, 0)
    changed = snapshot(pg_engine)
    moved = [i for i in before if before[i] != changed[i]]
    assert len(moved) == CHANGED

    changes = httpx.get(f"{server.url}/ingest/batches/{second['batch_id']}/changes", params={"limit": 5})
    assert changes.headers["content-range"] == f"0-4/{CHANGED}"
    assert all(set(c["columns"]) == {"dep_delay"} and c["change"] == "updated" for c in changes.json())

    reverted = httpx.post(f"{server.url}/ingest/batches/{second['batch_id']}/revert", timeout=120)
    assert reverted.status_code == 200
    report = reverted.json()
    assert (report["updated"], report["deleted"], report["inserted"], report["conflicts"]) == (CHANGED, 0, 0, [])
    assert snapshot(pg_engine) == before  # every row back, value for value, source too

    flight = moved[0]
    states = httpx.get(f"{server.url}/api/flights/{flight}/history").json()
    assert [s["operation"] for s in states] == ["revert", "update", "insert"]
    assert [s["batch_id"] for s in states] == [report["batch_id"], second["batch_id"], first["batch_id"]]
    delays = [s["dep_delay"] for s in states]
    assert delays[0] == delays[2] == before[flight][DATA_COLUMNS.index("dep_delay")] and delays[1] != delays[0]
    # as_of between the two loads reads the first load's values
    at = states[1]["updated_at"]
    earlier = httpx.get(f"{server.url}/api/flights", params={"id": f"eq.{flight}", "as_of": states[2]["valid_to"]})
    assert earlier.json()[0]["dep_delay"] == delays[1]  # the change starts where the first version ends
    just_before = httpx.get(f"{server.url}/api/flights", params={
        "id": f"eq.{flight}", "as_of": states[2]["updated_at"], "select": "dep_delay,airlines(name)"}).json()
    assert just_before[0]["dep_delay"] == delays[2] and just_before[0]["airlines"]["name"]
    assert at == states[2]["valid_to"]
