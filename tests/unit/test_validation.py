"""Validation derived from the declarations: types, ranges, patterns, required and unknown columns."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from depot.examples.flights.catalog import CATALOG
from domain.validation import RowInvalid, RowValidator, ValueRefused, coerce_value, validate_rows

flights = CATALOG["flights"]
fares = CATALOG["fares"]
airports = CATALOG["airports"]


@pytest.mark.parametrize(
    ("table", "column", "raw", "expected"),
    [
        (flights, "year", 2013, 2013),
        (flights, "year", "2013", 2013),
        (flights, "year", 2013.0, 2013),
        (flights, "dep_delay", "-3.5", -3.5),
        (flights, "dep_delay", 2, 2.0),
        (flights, "dep_delay", None, None),
        (flights, "time_hour", "2013-01-01T10:00:00Z", dt.datetime(2013, 1, 1, 10, tzinfo=dt.UTC)),
        (flights, "time_hour", "2013-01-01 05:00:00-05:00", dt.datetime(2013, 1, 1, 10, tzinfo=dt.UTC)),
        (flights, "time_hour", "2013-01-01T10:00:00", dt.datetime(2013, 1, 1, 10, tzinfo=dt.UTC)),
        (fares, "departure_date", "2026-03-01", dt.date(2026, 3, 1)),
        (fares, "price", "19.999", decimal.Decimal("20.00")),
        (fares, "price", 12.5, decimal.Decimal("12.50")),
    ],
)
def test_values_are_typed_by_their_column(table, column, raw, expected):
    assert coerce_value(table.column(column), raw) == expected


@pytest.mark.parametrize(
    ("table", "column", "raw", "code"),
    [
        (flights, "year", "twenty", "type"),
        (flights, "year", True, "type"),
        (flights, "year", 1.5, "type"),
        (flights, "year", 2**31, "out_of_range"),
        (flights, "month", 13, "out_of_range"),
        (flights, "carrier", 42, "type"),
        (flights, "carrier", None, "not_null"),
        (flights, "carrier", "A\x00A", "type"),
        (flights, "time_hour", "yesterday", "type"),
        (flights, "dep_delay", "NaN", "out_of_range"),
        (airports, "lat", 90.5, "out_of_range"),
        (airports, "faa", "jfk", "pattern"),
        (fares, "cabin", "steerage", "choice"),
        (fares, "price", "-1", "out_of_range"),
        (fares, "price", "12345678901", "out_of_range"),
        (fares, "departure_date", "2026-02-30", "type"),
        (fares, "currency", "usd", "pattern"),
        (flights, "year", "2_013", "type"),
        (flights, "year", "\u0662\u0660\u0661\u0663", "type"),  # Arabic-Indic digits: int() takes them
        (flights, "dep_delay", "1_0.5", "type"),
        (fares, "price", "1_000", "type"),
        (CATALOG["rejected_rows"], "payload", {"k\x00": 1}, "type"),
        (CATALOG["rejected_rows"], "errors", [{"message": "a\x00b"}], "type"),
    ],
)
def test_bad_values_are_refused_with_a_stable_code(table, column, raw, code):
    with pytest.raises(ValueRefused) as refused:
        coerce_value(table.column(column), raw)
    assert refused.value.code == code


def test_a_row_reports_every_problem_at_once():
    with pytest.raises(RowInvalid) as invalid:
        RowValidator(CATALOG["airlines"])({"carrier": "toolong", "nickname": "x", "version": 9})
    assert {(e.field, e.code) for e in invalid.value.errors} == {
        ("carrier", "pattern"), ("nickname", "unknown_column"), ("version", "read_only"), ("name", "missing"),
    }


def test_missing_optional_columns_get_their_defaults():
    row = RowValidator(CATALOG["sources"])({"code": "scraper", "name": "A scraper"})
    assert row == {"code": "scraper", "name": "A scraper", "priority": 0, "url": None, "profile": None}


def test_a_partial_row_needs_no_required_column_but_at_least_one():
    patch = RowValidator(CATALOG["airlines"], partial=True)
    assert patch({"name": "New"}) == {"name": "New"}
    with pytest.raises(RowInvalid):
        patch({})


def test_validate_rows_numbers_the_problems_by_row():
    good, problems = validate_rows(CATALOG["airlines"], [
        {"carrier": "AA", "name": "ok"}, "not an object", {"carrier": "UA"},
    ])
    assert [r["carrier"] for r in good] == ["AA"]
    assert [(p["row"], p["code"]) for p in problems] == [(2, "type"), (3, "missing")]


def test_the_csv_fast_path_refuses_what_the_coercer_refuses():
    from domain.validation import validate_records

    checked = validate_records(flights, ["year", "dep_delay"], [["2013", "1.5"], ["2_013", "2"], ["2014", "\u0661"]])
    assert [r["year"] for r in checked.rows] == [2013]
    assert {i: [e.field for e in errs] for i, errs in checked.errors.items()} == {1: ["year"], 2: ["dep_delay"]}
