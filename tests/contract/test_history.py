"""History on both adapters: every kind of write records the row's new version, and closes the one before."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from domain.query import Condition, OrderBy, Query
from service_layer import services
from service_layer.ingest import Chunk
from tests.ingesting import run
from tests.system_columns import by_role

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
    history = uow.catalog[f"{table}_history"]
    rows = services.list_rows(uow, history.name, Query(where=where, order=(OrderBy("history_id"),))).rows
    return [by_role(history, r) for r in rows]


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


# --- as_of: the table as it stood then -------------------------------------------------------------


def read_at(uow, table, moment, **read):
    from domain.query import Read
    from service_layer import reads

    return reads.read_page(uow, table, Read(as_of=moment, **read)).rows


def strip(rows, *columns):
    return sorted(tuple(r[c] for c in columns) for r in rows)


def test_as_of_gives_the_table_as_rebuilt_by_hand_at_each_instant(uow):
    clock = ticking()
    by_hand = {}  # instant -> {carrier: name}, kept alongside every write
    table: dict[str, str] = {}

    def write(action, *args, **kwargs):
        action(uow, "airlines", *args, clock=clock, **kwargs)
        by_hand[T0 + dt.timedelta(minutes=len(by_hand), seconds=30)] = dict(table)

    table.update(AA="American", UA="United")
    write(services.create_rows, [{"carrier": "AA", "name": "American"}, {"carrier": "UA", "name": "United"}])
    table["AA"] = "American Airlines"
    write(services.update_row, "AA", {"name": "American Airlines"})
    del table["UA"]
    write(services.delete_row, "UA")
    table.update(UA="United again", DL="Delta")
    write(services.create_rows, [{"carrier": "UA", "name": "United again"}, {"carrier": "DL", "name": "Delta"}])
    assert read_at(uow, "airlines", T0 - dt.timedelta(days=1)) == []
    for moment, expected in by_hand.items():
        assert strip(read_at(uow, "airlines", moment), "carrier", "name") == sorted(expected.items()), moment
    # the read language works on it: filters, select, order, page
    from domain.query import Field

    at = T0 + dt.timedelta(minutes=1, seconds=30)
    rows = read_at(uow, "airlines", at, items=(Field("name"),), where=Condition("carrier", "neq", "DL"),
                   order=(OrderBy("carrier", descending=True),), limit=1)
    assert rows == [{"name": "United"}]


def test_as_of_embeds_read_the_same_instant(uow):
    from domain.query import Embed, Field

    clock = ticking()
    services.create_rows(uow, "airlines", [{"carrier": "AA", "name": "Old name"}], clock=clock)
    services.create_rows(uow, "airports", [{"faa": f, "name": f, "lat": 0, "lon": 0, "alt": 0} for f in ("JFK", "LGA")],
                         clock=clock)
    flight = {"year": 2013, "month": 1, "day": 1, "carrier": "AA", "flight": 1, "origin": "JFK", "dest": "LGA",
              "sched_dep_time": 500, "sched_arr_time": 800, "distance": 100, "hour": 5, "minute": 0,
              "time_hour": "2013-01-01T05:00:00Z"}
    services.create_rows(uow, "flights", [flight], clock=clock)
    services.update_row(uow, "airlines", "AA", {"name": "New name"}, clock=clock)
    embed = Embed(key="airlines", target="airlines", columns=("carrier",), target_columns=("carrier",),
                  many=False, items=(Field("name"),))
    items = (Field("flight"), embed)
    before = read_at(uow, "flights", T0 + dt.timedelta(minutes=2, seconds=30), items=items)
    after = read_at(uow, "flights", T0 + dt.timedelta(minutes=3, seconds=30), items=items)
    assert before == [{"flight": 1, "airlines": {"name": "Old name"}}]
    assert after == [{"flight": 1, "airlines": {"name": "New name"}}]


# --- what a batch changed ----------------------------------------------------------------------------


def test_batch_changes_tell_inserted_and_updated_rows_with_old_and_new_values(uow):
    from service_layer import history

    run(uow, "airlines", [], source="low", chunks=[Chunk([["AA", "a"], ["UA", "u"]], AIRLINES)])
    second = run(uow, "airlines", [], source="high", chunks=[Chunk([["AA", "a2"], ["UA", "u"], ["DL", "d"]], AIRLINES)])
    listing = history.batch_changes(uow, second.batch_id, limit=10, offset=0)
    assert listing.total == 2
    changes = {c["key"]["carrier"]: c for c in listing.rows}
    assert changes["AA"]["change"] == "updated" and changes["AA"]["columns"] == {"name": {"old": "a", "new": "a2"}}
    assert changes["DL"]["change"] == "inserted" and changes["DL"]["new"] == {"carrier": "DL", "name": "d"}
    assert all(c["current"] and c["source"] == "high" for c in listing.rows)


# --- revert ------------------------------------------------------------------------------------------


def rows_of(uow, name):
    """The table's rows, their system columns under their roles' names (as the catalog may prefix them)."""
    return [by_role(uow.catalog[name], r) for r in services.list_rows(uow, name, Query()).rows]


def table_of(uow, name="airlines"):
    return {r["carrier"]: (r["name"], r["source"]) for r in rows_of(uow, name)}


def test_revert_sets_every_row_back_and_is_a_batch_with_history(uow):
    from service_layer import history

    run(uow, "airlines", [], source="low", chunks=[Chunk([["AA", "a"], ["UA", "u"]], AIRLINES)])
    before = table_of(uow)
    wild = run(uow, "airlines", [], source="high", chunks=[Chunk([["AA", "wild"], ["UA", "u"], ["DL", "d"]],
                                                                 AIRLINES)])
    report = history.revert_batch(uow, wild.batch_id)
    assert (report["updated"], report["inserted"], report["deleted"], report["conflicted"]) == (1, 0, 1, 0)
    assert report["status"] == "completed" and report["reverts"] == wild.batch_id
    assert table_of(uow) == before
    aa = versions(uow, "airlines", carrier="AA")
    assert summary(aa, "name", "version", "batch_id") == [
        ("insert", "a", 1, aa[0]["batch_id"]), ("update", "wild", 2, wild.batch_id),
        ("revert", "a", 3, report["batch_id"])]
    assert chained(aa)
    assert summary(versions(uow, "airlines", carrier="DL"), "name") == [("insert", "d"), ("revert", "d")]
    changes = history.batch_changes(uow, report["batch_id"], limit=10, offset=0).rows
    assert sorted(c["change"] for c in changes) == ["reverted", "reverted"]
    # a revert is undone like any batch: the inserted row comes back, the name goes wild again
    again = history.revert_batch(uow, report["batch_id"])
    assert (again["updated"], again["inserted"], again["deleted"]) == (1, 1, 0)
    assert table_of(uow) == {"AA": ("wild", "high"), "UA": ("u", "low"), "DL": ("d", "high")}


def test_revert_leaves_rows_changed_since_as_conflicts_unless_forced(uow):
    from domain.errors import Conflict
    from service_layer import history

    run(uow, "airlines", [], source="low", chunks=[Chunk([["AA", "a"], ["UA", "u"]], AIRLINES)])
    wild = run(uow, "airlines", [], source="low", chunks=[Chunk([["AA", "wild"], ["UA", "wild"]], AIRLINES)])
    run(uow, "airlines", [], source="high", chunks=[Chunk([["UA", "later"]], AIRLINES)])
    report = history.revert_batch(uow, wild.batch_id)
    assert (report["updated"], report["conflicted"]) == (1, 1)
    (conflict,) = report["conflicts"]
    assert conflict["key"] == {"carrier": "UA"}
    assert (conflict["batch_version"]["name"], conflict["current"]["name"]) == ("wild", "later")
    assert table_of(uow) == {"AA": ("a", "low"), "UA": ("later", "high")}
    with pytest.raises(Conflict):
        history.revert_batch(uow, wild.batch_id)
    forced = history.revert_batch(uow, wild.batch_id, force=True)
    assert (forced["updated"], forced["conflicted"]) == (1, 2)  # AA changed since, by the first revert
    assert table_of(uow) == {"AA": ("a", "low"), "UA": ("u", "low")}


def test_an_edit_through_the_table_api_is_manual_and_a_revert_of_the_batch_before_meets_it_as_a_conflict(uow):
    """Found in the console: a PATCH kept the batch's source and id, so the edit looked like the batch's own
    change, and reverting the batch deleted the hand-edited row."""
    from service_layer import history

    loaded = run(uow, "airlines", [], source="low", chunks=[Chunk([["AA", "a"], ["UA", "u"]], AIRLINES)])
    services.update_row(uow, "airlines", "AA", {"name": "fixed by hand"})
    services.update_rows(uow, "airlines", Condition("carrier", "eq", "UA"), {"name": "u"})  # no change
    rows = {r["carrier"]: by_role(uow.catalog["airlines"], r)
            for r in services.list_rows(uow, "airlines", Query()).rows}
    assert (rows["AA"]["source"], rows["AA"]["batch_id"]) == ("manual", None)
    assert (rows["UA"]["source"], rows["UA"]["batch_id"]) == ("low", loaded.batch_id)  # unchanged: still the batch's
    assert summary(versions(uow, "airlines", carrier="AA"), "source", "batch_id") == [
        ("insert", "low", loaded.batch_id), ("update", "manual", None)]
    report = history.revert_batch(uow, loaded.batch_id)
    assert (report["deleted"], report["conflicted"]) == (1, 1)
    assert report["conflicts"][0]["key"] == {"carrier": "AA"}
    assert table_of(uow) == {"AA": ("fixed by hand", "manual")}


def test_revert_of_a_batch_on_a_table_with_surrogate_ids_deletes_and_restores_by_id(uow):
    from service_layer import history

    services.create_rows(uow, "airlines", [{"carrier": "AA", "name": "American"}])
    services.create_rows(uow, "airports", [{"faa": f, "name": f, "lat": 0, "lon": 0, "alt": 0} for f in ("JFK", "LGA")])
    columns = ["year", "month", "day", "carrier", "flight", "origin", "dest", "sched_dep_time", "sched_arr_time",
               "distance", "hour", "minute", "time_hour", "dep_delay"]
    base = ["2013", "1", "1", "AA", "1", "JFK", "LGA", "500", "800", "100", "5", "0", "2013-01-01T05:00:00Z"]
    run(uow, "flights", [], source="low", chunks=[Chunk([[*base, "1"]], columns)])
    first = rows_of(uow, "flights")
    second = run(uow, "flights", [], source="high", chunks=[Chunk([[*base, "9"], [*base[:4], "2", *base[5:], "3"]],
                                                                  columns)])
    assert second.inserted == 1 and second.updated == 1
    history.revert_batch(uow, second.batch_id)
    (back,) = rows_of(uow, "flights")
    data = [c for c in first[0] if c not in ("version", "updated_at", "batch_id")]
    assert {c: back[c] for c in data} == {c: first[0][c] for c in data}


# --- claims ---------------------------------------------------------------------------------------------


def claims(uow, carrier="AA"):
    from service_layer import history

    return [(c["source"], c["priority"], c["stored"], c["values"]["name"])
            for c in history.list_claims(uow, "airlines", carrier)]


def test_claims_after_two_then_three_sources_disagree(uow):
    services.create_rows(uow, "sources", [{"code": "mid", "name": "Mid", "priority": 3}])
    run(uow, "airlines", [], source="high", chunks=[Chunk([["AA", "from high"]], AIRLINES)])
    lost = run(uow, "airlines", [], source="low", chunks=[Chunk([["AA", "from low"]], AIRLINES)])
    assert lost.superseded == 1
    assert claims(uow) == [("high", 5, True, "from high"), ("low", 1, False, "from low")]
    run(uow, "airlines", [], source="mid", chunks=[Chunk([["AA", "from mid"]], AIRLINES)])
    run(uow, "airlines", [], source="low", chunks=[Chunk([["AA", "low again"]], AIRLINES)])  # replaces its claim
    assert claims(uow) == [("high", 5, True, "from high"), ("mid", 3, False, "from mid"),
                           ("low", 1, False, "low again")]
    # a claim is spent when its source's values are stored
    services.update_row(uow, "sources", "low", {"priority": 9})
    run(uow, "airlines", [], source="low", chunks=[Chunk([["AA", "low wins"]], AIRLINES)])
    assert claims(uow) == [("low", 9, True, "low wins"), ("mid", 3, False, "from mid")]


def test_promoting_a_claim_stores_it_and_keeps_the_displaced_values_as_a_claim(uow):
    from domain.errors import NotFound
    from service_layer import history

    run(uow, "airlines", [], source="high", chunks=[Chunk([["AA", "from high"]], AIRLINES)])
    run(uow, "airlines", [], source="low", chunks=[Chunk([["AA", "from low"]], AIRLINES)])
    row = by_role(uow.catalog["airlines"], history.promote_claim(uow, "airlines", "AA", "low"))
    assert (row["name"], row["source"], row["version"]) == ("from low", "low", 2)
    assert claims(uow) == [("high", 5, False, "from high"), ("low", 1, True, "from low")]
    assert summary(versions(uow, "airlines", carrier="AA"), "name", "source") == [
        ("insert", "from high", "high"), ("update", "from low", "low")]
    with pytest.raises(NotFound):
        history.promote_claim(uow, "airlines", "AA", "nobody")


# --- retention -------------------------------------------------------------------------------------------


def test_prune_deletes_versions_that_ended_before_the_cutoff_in_chunks_and_keeps_current_ones(uow):
    from service_layer import history

    clock = ticking()
    services.create_rows(uow, "airlines", [{"carrier": "AA", "name": "v0"}, {"carrier": "UA", "name": "u"}],
                         clock=clock)
    for n in range(1, 6):
        services.update_row(uow, "airlines", "AA", {"name": f"v{n}"}, clock=clock)
    # now = T0 + 3 days: keeping 0 days prunes every ended version, in chunks of 2
    pruned = history.prune_history(uow, 0, clock=lambda: T0 + dt.timedelta(days=3), chunk=2)
    assert pruned["airlines_history"] == 5
    assert summary(versions(uow, "airlines", carrier="AA"), "name") == [("update", "v5")]
    assert summary(versions(uow, "airlines", carrier="UA"), "name") == [("insert", "u")]
    # keeping a day more than has passed prunes nothing
    services.update_row(uow, "airlines", "AA", {"name": "v6"}, clock=clock)
    assert history.prune_history(uow, 1, clock=lambda: T0 + dt.timedelta(hours=1))["airlines_history"] == 0
    # the versions left are still chained: the next change closed the current one
    after = versions(uow, "airlines", carrier="AA")
    assert summary(after, "name") == [("update", "v5"), ("update", "v6")] and chained(after)


def test_with_promote_claims_a_deleted_rows_strongest_claim_takes_its_place(uow):
    services.create_rows(uow, "sources", [{"code": "mid", "name": "Mid", "priority": 3}])
    run(uow, "airlines", [], source="high", chunks=[Chunk([["AA", "from high"], ["UA", "alone"]], AIRLINES)])
    run(uow, "airlines", [], source="low", chunks=[Chunk([["AA", "from low"]], AIRLINES)])
    run(uow, "airlines", [], source="mid", chunks=[Chunk([["AA", "from mid"]], AIRLINES)])
    services.delete_rows(uow, "airlines", Condition("carrier", "in", ("AA", "UA")), promote_claims=True)
    (row,) = rows_of(uow, "airlines")
    assert (row["carrier"], row["name"], row["source"], row["version"]) == ("AA", "from mid", "mid", 2)
    assert claims(uow) == [("mid", 3, True, "from mid"), ("low", 1, False, "from low")]
    assert summary(versions(uow, "airlines", carrier="AA"), "name") == [
        ("insert", "from high"), ("delete", "from high"), ("insert", "from mid")]
    # without the setting, a deleted row stays deleted
    services.delete_row(uow, "airlines", "AA")
    assert services.list_rows(uow, "airlines", Query()).rows == []


def test_a_changed_key_ends_the_old_keys_history_and_starts_the_new_ones(uow):
    clock = ticking()
    services.create_rows(uow, "airlines", [{"carrier": "AA", "name": "American"}], clock=clock)
    services.update_row(uow, "airlines", "AA", {"carrier": "AX", "name": "Renamed"}, clock=clock)
    old = versions(uow, "airlines", carrier="AA")
    assert summary(old, "name") == [("insert", "American"), ("delete", "American")] and chained(old)
    assert summary(versions(uow, "airlines", carrier="AX"), "name", "version") == [("insert", "Renamed", 2)]


def test_revert_leaves_a_row_older_than_its_history_as_it_is(uow):
    """A row stored before its table kept history (the migration that added the history table came
    later) has no version before the batch: the revert cannot know its old values, and must not delete it."""
    from service_layer import history

    run(uow, "airlines", [], source="low", chunks=[Chunk([["AA", "a"]], AIRLINES)])
    with uow:  # AA as if it predated the history table
        uow.repository("airlines_history").delete(Condition("carrier", "eq", "AA"))
        uow.commit()
    wild = run(uow, "airlines", [], source="high", chunks=[Chunk([["AA", "wild"], ["DL", "d"]], AIRLINES)])
    report = history.revert_batch(uow, wild.batch_id)
    assert (report["deleted"], report["updated"], report["conflicted"]) == (1, 0, 1)
    assert [c["key"] for c in report["conflicts"]] == [{"carrier": "AA"}]
    assert table_of(uow) == {"AA": ("wild", "high")}  # DL, which the batch inserted, is gone; AA is kept
    forced = history.revert_batch(uow, wild.batch_id, force=True)
    assert forced["deleted"] == 0 and table_of(uow) == {"AA": ("wild", "high")}
