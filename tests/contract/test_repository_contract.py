"""The repository contract: the same tests on the in-memory adapter and on PostgreSQL.

If the fake drifts from PostgreSQL, one of these fails on one adapter only.
"""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from domain.errors import DuplicateKey, InvalidRows, ReferenceViolation
from domain.query import BoolExpr, Condition, OrderBy, Query
from service_layer.services import stamp_new
from tests.system_columns import by_role

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(hours=1)


def stamped(uow_factory, table: str, *rows: dict) -> list[dict]:
    spec = uow_factory().catalog[table]
    return [stamp_new(spec, r, NOW) for r in rows]


def add(uow_factory, table: str, *rows: dict) -> list[dict]:
    with uow_factory() as uow:
        written = uow.repository(table).add(stamped(uow_factory, table, *rows))
        uow.commit()
    return written


def read(uow_factory, table: str, query: Query = Query()) -> list[dict]:
    with uow_factory() as uow:
        return roles(uow_factory, table, uow.repository(table).list(query))


def roles(uow_factory, table: str, rows: list[dict]) -> list[dict]:
    spec = uow_factory().catalog[table]
    return [by_role(spec, r) for r in rows]


AIRPORTS = [
    {"faa": "JFK", "name": "John F Kennedy Intl", "lat": 40.64, "lon": -73.78, "alt": 13, "tz": -5,
     "dst": "A", "tzone": "America/New_York"},
    {"faa": "LAX", "name": "Los Angeles Intl", "lat": 33.94, "lon": -118.41, "alt": 126, "tz": -8,
     "dst": "A", "tzone": None},
    {"faa": "EWR", "name": "Newark Liberty Intl", "lat": 40.69, "lon": -74.17, "alt": 18, "tz": None,
     "dst": None, "tzone": None},
]


@pytest.fixture
def airports(uow_factory):
    add(uow_factory, "airlines", {"carrier": "AA", "name": "American Airlines Inc."},
        {"carrier": "UA", "name": "United Air Lines Inc."})
    return add(uow_factory, "airports", *AIRPORTS)


def test_added_rows_come_back_typed_with_their_system_columns(uow_factory, airports):
    row = read(uow_factory, "airports", Query(where=Condition("faa", "eq", "JFK")))[0]
    assert row["lat"] == 40.64 and isinstance(row["alt"], int)
    assert row["source"] == "manual" and row["version"] == 1 and row["batch_id"] is None
    assert row["created_at"] == NOW and row["created_at"].tzinfo is not None


def test_stored_rows_come_back_in_the_declared_column_order(uow_factory, airports):
    written = add(uow_factory, "flights", flight(1))
    assert tuple(written[0]) == uow_factory().catalog["flights"].column_names
    with uow_factory() as uow:
        assert tuple(uow.repository("flights").list(Query())[0]) == uow.catalog["flights"].column_names


def test_generated_ids_are_assigned_in_order(uow_factory, airports):
    add(uow_factory, "routes", {"carrier": "AA", "origin": "JFK", "dest": "LAX", "distance": 2475.0})
    written = add(uow_factory, "flights", *[flight(n) for n in (1, 2)])
    assert [r["id"] for r in written] == sorted(r["id"] for r in written)
    assert all(isinstance(r["id"], int) for r in written)


def flight(number: int, **overrides) -> dict:
    row = {
        "year": 2013, "month": 1, "day": 1, "dep_time": 517, "sched_dep_time": 515, "dep_delay": 2.0,
        "arr_time": 830, "sched_arr_time": 819, "arr_delay": 11.0, "carrier": "AA", "flight": number,
        "tailnum": "N14228", "origin": "JFK", "dest": "LAX", "air_time": 227.0, "distance": 1400.0,
        "hour": 5, "minute": 15, "time_hour": dt.datetime(2013, 1, 1, 10, tzinfo=dt.UTC),
    }
    row.update(overrides)
    return row


def test_duplicate_primary_key_is_refused_and_nothing_of_the_batch_stays(uow_factory, airports):
    with pytest.raises(DuplicateKey):
        add(uow_factory, "airlines", {"carrier": "DL", "name": "Delta"}, {"carrier": "AA", "name": "again"})
    assert [r["carrier"] for r in read(uow_factory, "airlines")] == ["AA", "UA"]


def test_duplicate_natural_key_of_an_instance_table_is_refused(uow_factory, airports):
    add(uow_factory, "flights", flight(1))
    with pytest.raises(DuplicateKey):
        add(uow_factory, "flights", flight(1, dep_delay=99.0))


def test_dangling_hard_reference_is_refused(uow_factory, airports):
    with pytest.raises(ReferenceViolation):
        add(uow_factory, "flights", flight(1, dest="XXX"))


def test_soft_reference_may_dangle(uow_factory, airports):
    add(uow_factory, "flights", flight(1, tailnum="N-NOWHERE"))
    assert read(uow_factory, "flights")[0]["tailnum"] == "N-NOWHERE"


def test_composite_hard_reference_is_enforced(uow_factory, airports):
    fare = {"carrier": "AA", "origin": "JFK", "dest": "LAX", "departure_date": dt.date(2026, 3, 1),
            "cabin": "economy", "price": decimal.Decimal("199.99"), "currency": "USD", "observed_at": NOW}
    with pytest.raises(ReferenceViolation):
        add(uow_factory, "fares", fare)
    add(uow_factory, "routes", {"carrier": "AA", "origin": "JFK", "dest": "LAX", "distance": None})
    written = add(uow_factory, "fares", fare)
    assert written[0]["price"] == decimal.Decimal("199.99")


def test_check_constraints_hold_even_when_the_service_is_bypassed(uow_factory, airports):
    with pytest.raises(InvalidRows):
        add(uow_factory, "airports", {**AIRPORTS[0], "faa": "BOS", "lat": 123.0})
    with pytest.raises(InvalidRows):
        add(uow_factory, "airlines", {"carrier": "lower", "name": "bad code"})


def test_deleting_a_referenced_row_is_refused(uow_factory, airports):
    add(uow_factory, "flights", flight(1))
    with uow_factory() as uow, pytest.raises(ReferenceViolation):
        uow.repository("airports").delete(Condition("faa", "eq", "JFK"))
    assert len(read(uow_factory, "airports")) == 3


def test_changing_a_referenced_key_is_refused(uow_factory, airports):
    add(uow_factory, "flights", flight(1))
    with uow_factory() as uow, pytest.raises(ReferenceViolation):
        uow.repository("airlines").update(Condition("carrier", "eq", "AA"), {"carrier": "AX"}, LATER)


def test_leaving_without_commit_rolls_back(uow_factory, airports):
    with uow_factory() as uow:
        uow.repository("airlines").add(stamped(uow_factory, "airlines", {"carrier": "DL", "name": "Delta"}))
        uow.repository("airlines").delete(Condition("carrier", "eq", "AA"))
    assert [r["carrier"] for r in read(uow_factory, "airlines")] == ["AA", "UA"]


def test_update_bumps_version_only_when_a_value_changes(uow_factory, airports):
    with uow_factory() as uow:
        repo = uow.repository("airlines")
        same = repo.update(Condition("carrier", "eq", "AA"), {"name": "American Airlines Inc."}, LATER)
        changed = repo.update(Condition("carrier", "eq", "UA"), {"name": "United"}, LATER)
        uow.commit()
    same, changed = roles(uow_factory, "airlines", same), roles(uow_factory, "airlines", changed)
    assert (same[0]["version"], same[0]["updated_at"]) == (1, NOW)
    assert (changed[0]["version"], changed[0]["updated_at"], changed[0]["name"]) == (2, LATER, "United")


def test_update_and_delete_return_the_rows_they_touched(uow_factory, airports):
    where = Condition("faa", "in", ("LAX", "EWR"))
    with uow_factory() as uow:
        updated = uow.repository("airports").update(where, {"alt": 0}, LATER)
        deleted = uow.repository("airports").delete(Condition("faa", "eq", "EWR"))
        uow.commit()
    assert sorted(r["faa"] for r in updated) == ["EWR", "LAX"]
    assert [r["faa"] for r in deleted] == ["EWR"]
    assert [r["faa"] for r in read(uow_factory, "airports")] == ["JFK", "LAX"]


def test_upsert_merges_on_the_natural_key(uow_factory, airports):
    rows = stamped(uow_factory, "airlines", {"carrier": "AA", "name": "American"}, {"carrier": "DL", "name": "Delta"})
    with uow_factory() as uow:
        written = uow.repository("airlines").upsert(rows, ("carrier",), update=True, now=LATER)
        uow.commit()
    by_carrier = {r["carrier"]: r for r in roles(uow_factory, "airlines", written)}
    assert by_carrier["AA"]["name"] == "American" and by_carrier["AA"]["version"] == 2
    assert by_carrier["AA"]["created_at"] == NOW and by_carrier["AA"]["updated_at"] == LATER
    assert by_carrier["DL"]["version"] == 1


def test_upsert_with_identical_values_does_not_bump_version(uow_factory, airports):
    rows = stamped(uow_factory, "airlines", {"carrier": "AA", "name": "American Airlines Inc."})
    with uow_factory() as uow:
        written = uow.repository("airlines").upsert(rows, ("carrier",), update=True, now=LATER)
        uow.commit()
    written = roles(uow_factory, "airlines", written)
    assert (written[0]["version"], written[0]["updated_at"]) == (1, NOW)


def test_upsert_ignoring_duplicates_writes_only_new_rows(uow_factory, airports):
    rows = stamped(uow_factory, "airlines", {"carrier": "AA", "name": "ignored"}, {"carrier": "DL", "name": "Delta"})
    with uow_factory() as uow:
        written = uow.repository("airlines").upsert(rows, ("carrier",), update=False, now=LATER)
        uow.commit()
    assert [r["carrier"] for r in written] == ["DL"]
    assert read(uow_factory, "airlines", Query(where=Condition("carrier", "eq", "AA")))[0]["name"] != "ignored"


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (Condition("tz", "eq", -5), ["JFK"]),
        (Condition("tz", "neq", -5), ["LAX"]),  # NULL is neither equal nor unequal
        (Condition("tz", "is", None), ["EWR"]),
        (Condition("tz", "is", None, negated=True), ["JFK", "LAX"]),
        (Condition("alt", "gt", 13), ["EWR", "LAX"]),
        (Condition("alt", "lte", 18), ["EWR", "JFK"]),
        (Condition("name", "like", "%Intl"), ["EWR", "JFK", "LAX"]),
        (Condition("name", "like", "%intl"), []),
        (Condition("name", "ilike", "%INTL"), ["EWR", "JFK", "LAX"]),
        (Condition("name", "ilike", "los_angeles%"), ["LAX"]),
        (Condition("faa", "in", ("JFK", "EWR", "BOS")), ["EWR", "JFK"]),
        (Condition("dst", "in", ("A",), negated=True), []),  # NOT (NULL IN ...) is unknown
        (BoolExpr("or", (Condition("tz", "eq", -8), Condition("tz", "is", None))), ["EWR", "LAX"]),
        (BoolExpr("and", (Condition("tz", "lt", 0), Condition("alt", "gt", 100)), negated=True), ["EWR", "JFK"]),
    ],
)
def test_filters_follow_sql_semantics(uow_factory, airports, where, expected):
    assert sorted(r["faa"] for r in read(uow_factory, "airports", Query(where=where))) == expected


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ((OrderBy("tz"),), ["LAX", "JFK", "EWR"]),  # nulls last ascending by default
        ((OrderBy("tz", descending=True),), ["EWR", "JFK", "LAX"]),  # nulls first descending
        ((OrderBy("tz", nulls_first=True),), ["EWR", "LAX", "JFK"]),
        ((OrderBy("tz", descending=True, nulls_first=False),), ["JFK", "LAX", "EWR"]),
        ((OrderBy("dst"), OrderBy("faa", descending=True)), ["LAX", "JFK", "EWR"]),
        ((), ["EWR", "JFK", "LAX"]),  # no order: the key's
    ],
)
def test_ordering_places_nulls_like_postgres(uow_factory, airports, order, expected):
    assert [r["faa"] for r in read(uow_factory, "airports", Query(order=order))] == expected


def test_text_sorts_by_code_point(uow_factory, airports):
    add(uow_factory, "manufacturers", *[{"name": n} for n in ("airbus", "Boeing", "AIRBUS", "Émbraer", "_x")])
    names = [r["name"] for r in read(uow_factory, "manufacturers", Query(order=(OrderBy("name"),)))]
    assert names == ["AIRBUS", "Boeing", "_x", "airbus", "Émbraer"]


def test_limit_and_offset_slice_the_ordered_rows(uow_factory, airports):
    rows = read(uow_factory, "airports", Query(order=(OrderBy("faa"),), limit=1, offset=1))
    assert [r["faa"] for r in rows] == ["JFK"]


def test_count_agrees_with_the_filter(uow_factory, airports):
    with uow_factory() as uow:
        repo = uow.repository("airports")
        assert repo.count(None) == 3
        assert repo.count(Condition("tz", "is", None)) == 1


def test_manual_source_is_seeded(uow_factory):
    sources = read(uow_factory, "sources")
    assert [(s["code"], s["priority"]) for s in sources] == [("manual", 0)]
