"""History on both adapters: every kind of write records the row's new version, and closes the one before."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from domain.query import Condition, OrderBy, Query
from service_layer import services
from service_layer.ingest import Chunk
from tests.ingesting import run

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def ticking():
    """A clock that moves one minute per call, so each write has its own instant."""
    minutes = itertools.count()
    return lambda: T0 + dt.timedelta(minutes=next(minutes))


@pytest.fixture
def uow(uow_factory):
    uow = uow_factory()
    services.create_rows(uow, "sources", [
        {"code": "low", "name": "Low", "priority": 1},
        {"code": "high", "name": "High", "priority": 5},
    ])
    return uow


def versions(uow, table, **key):
    (column, value), = key.items()
    where = Condition(column, "eq", value)
    return services.list_rows(uow, f"{table}_history", Query(where=where, order=(OrderBy("history_id"),))).rows


def summary(rows, *columns):
    return [(r["operation"], *(r[c] for c in columns)) for r in rows]


def chained(rows):
    """Each version ends where the next begins; the last is open."""
    return all(a["valid_to"] == b["updated_at"] for a, b in itertools.pairwise(rows)) and rows[-1]["valid_to"] is None


def test_table_api_writes_each_leave_a_version(uow):
    clock = ticking()
    services.create_rows(uow, "airlines", [{"carrier": "AA", "name": "American"}], clock=clock)
    services.update_row(uow, "airlines", "AA", {"name": "American Airlines"}, clock=clock)
    services.update_row(uow, "airlines", "AA", {"name": "American Airlines"}, clock=clock)  # no change: no version
    services.create_rows(uow, "airlines", [{"carrier": "AA", "name": "AA Inc"}, {"carrier": "UA", "name": "United"}],
                         resolution="merge", clock=clock)
    services.delete_row(uow, "airlines", "AA", clock=clock)
    services.create_rows(uow, "airlines", [{"carrier": "AA", "name": "Back"}], clock=clock)
    rows = versions(uow, "airlines", carrier="AA")
    assert summary(rows, "name", "version") == [
        ("insert", "American", 1), ("update", "American Airlines", 2), ("update", "AA Inc", 3),
        ("delete", "AA Inc", 3), ("insert", "Back", 1),
    ]
    assert [r["updated_at"] for r in rows] == [T0 + dt.timedelta(minutes=m) for m in (0, 1, 3, 4, 5)]
    assert chained(rows)
    assert summary(versions(uow, "airlines", carrier="UA"), "name") == [("insert", "United")]


def test_patch_with_filters_records_only_the_rows_it_changed(uow):
    clock = ticking()
    services.create_rows(uow, "airlines", [{"carrier": "AA", "name": "Same"}, {"carrier": "UA", "name": "Other"}],
                         clock=clock)
    services.update_rows(uow, "airlines", Condition("carrier", "in", ("AA", "UA")), {"name": "Same"}, clock=clock)
    assert summary(versions(uow, "airlines", carrier="AA"), "name") == [("insert", "Same")]
    assert summary(versions(uow, "airlines", carrier="UA"), "name") == [("insert", "Other"), ("update", "Same")]


AIRLINES = ["carrier", "name"]


def test_ingest_records_inserts_and_updates_but_not_unchanged_or_superseded_rows(uow):
    first = run(uow, "airlines", [], source="low", chunks=[Chunk([["AA", "a"], ["UA", "u"]], AIRLINES)])
    second = run(uow, "airlines", [], source="high", chunks=[Chunk([["AA", "a2"], ["UA", "u"], ["DL", "d"]], AIRLINES)])
    third = run(uow, "airlines", [], source="low", chunks=[Chunk([["AA", "lost"]], AIRLINES)])
    assert third.superseded == 1
    aa = versions(uow, "airlines", carrier="AA")
    assert summary(aa, "name", "source", "batch_id", "version") == [
        ("insert", "a", "low", first.batch_id, 1), ("update", "a2", "high", second.batch_id, 2)]
    assert chained(aa)
    assert summary(versions(uow, "airlines", carrier="UA"), "name", "source") == [("insert", "u", "low")]
    assert summary(versions(uow, "airlines", carrier="DL"), "batch_id") == [("insert", second.batch_id)]


def test_ingest_with_surrogate_ids_keys_history_by_id(uow):
    services.create_rows(uow, "airlines", [{"carrier": "AA", "name": "American"}])
    services.create_rows(uow, "airports", [{"faa": f, "name": f, "lat": 0, "lon": 0, "alt": 0} for f in ("JFK", "LGA")])
    columns = ["year", "month", "day", "carrier", "flight", "origin", "dest", "sched_dep_time", "sched_arr_time",
               "distance", "hour", "minute", "time_hour", "dep_delay"]
    base = ["2013", "1", "1", "AA", "1", "JFK", "LGA", "500", "800", "100", "5", "0", "2013-01-01T05:00:00Z"]
    run(uow, "flights", [], source="low", chunks=[Chunk([[*base, "1"]], columns)])
    run(uow, "flights", [], source="high", chunks=[Chunk([[*base, "9"]], columns)])
    (flight,) = services.list_rows(uow, "flights", Query()).rows
    assert summary(versions(uow, "flights", id=flight["id"]), "dep_delay", "version") == [
        ("insert", 1.0, 1), ("update", 9.0, 2)]
