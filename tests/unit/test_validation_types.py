"""Validation of the declaration language's newer types: uuid, bounded text, naive timestamps,
arrays, strict bounds, and what an empty CSV cell means in a column with a default."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

import pytest
from annotated_types import Gt, Lt, MaxLen

from domain.schema import Catalog, Column, ColumnType, Naive
from domain.validation import ValueRefused, coerce_value, parse_value, validate_records

REF = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")


def catalog() -> Catalog:
    declared = Catalog()

    @declared.table("things", group="ingestion", natural_key=("code",))
    class Thing:
        code: Annotated[str, MaxLen(4)]
        ref: uuid.UUID
        seen: Annotated[dt.datetime, Naive()]
        tags: list[str]
        counts: list[int] | None = None
        share: Annotated[float, Gt(0), Lt(1)] = 0.5
        status: str = "new"
        note: str | None = "none given"

    return declared


THINGS = catalog()["things"]


def column(name: str) -> Column:
    return THINGS.column(name)


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("ref", str(REF), REF),
    ("ref", str(REF).upper(), REF),
    ("ref", REF.hex, REF),
    ("ref", "{" + str(REF) + "}", REF),
    ("ref", REF, REF),
    ("seen", "2024-05-01T10:30:00", dt.datetime(2024, 5, 1, 10, 30)),
    ("seen", "2024-05-01 10:30", dt.datetime(2024, 5, 1, 10, 30)),
    ("seen", dt.datetime(2024, 5, 1), dt.datetime(2024, 5, 1)),
    ("tags", ["a", "b"], ["a", "b"]),
    ("tags", '["a", "b,c"]', ["a", "b,c"]),
    ("tags", '{a,"b,c", d ,"e \\"f\\"","NULL"}', ["a", "b,c", "d", 'e "f"', "NULL"]),
    ("tags", "{}", []),
    ("tags", "[]", []),
    ("counts", "{1, 2,-3}", [1, 2, -3]),
    ("counts", "[1, 2]", [1, 2]),
    ("counts", ["4"], [4]),
    ("code", "abcd", "abcd"),
    ("share", "0.25", 0.25),
])
def test_new_types_are_parsed_from_json_and_text(name: str, raw, expected):
    assert coerce_value(column(name), raw) == expected


@pytest.mark.parametrize(("name", "raw", "code"), [
    ("ref", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", "type"),
    ("ref", "urn:uuid:" + str(REF), "type"),  # Python's UUID() takes it, PostgreSQL does not
    ("ref", "{" + str(REF), "type"),
    ("ref", 12, "type"),
    ("seen", "2024-05-01T10:30:00Z", "type"),
    ("seen", "2024-05-01T10:30:00+02:00", "type"),
    ("seen", dt.datetime(2024, 5, 1, tzinfo=dt.UTC), "type"),
    ("tags", "a,b", "type"),
    ("tags", "{a,{b}}", "type"),
    ("tags", "{a,NULL}", "not_null"),
    ("tags", ["a", None], "not_null"),
    ("tags", [["a"]], "type"),
    ("tags", [1], "type"),
    ("tags", '{"a}', "type"),
    ("tags", "{a,,b}", "type"),
    ("tags", "[1,", "type"),
    ("tags", ["a\x00"], "type"),
    ("counts", "{1,x}", "type"),
    ("counts", [2**31], "out_of_range"),
    ("code", "abcde", "too_long"),
    ("share", 0, "out_of_range"),
    ("share", 1, "out_of_range"),
])
def test_bad_values_of_new_types_are_refused_with_a_stable_code(name: str, raw, code: str):
    with pytest.raises(ValueRefused) as refused:
        coerce_value(column(name), raw)
    assert refused.value.code == code


def test_an_offset_on_a_naive_timestamp_is_refused_with_the_reason():
    with pytest.raises(ValueRefused, match="timestamp without time zone"):
        coerce_value(column("seen"), "2024-05-01T10:30:00+02:00")


def test_filter_values_of_arrays_take_either_written_form():
    assert parse_value(column("tags"), "{a,b}") == parse_value(column("tags"), '["a","b"]') == ["a", "b"]


def test_empty_csv_cells_take_the_default_of_a_not_null_column_only():
    header = ["code", "ref", "seen", "tags", "share", "status", "note"]
    records = [["a1", str(REF), "2024-05-01T10:00:00", "{x}", None, None, None]]
    checked = validate_records(THINGS, header, records)
    assert checked.errors == {}
    (row,) = checked.rows
    # share and status are NOT NULL with a default: the default; note is nullable: the NULL it was sent
    assert (row["share"], row["status"], row["note"]) == (0.5, "new", None)


def test_an_empty_csv_cell_without_a_default_is_still_refused():
    header = ["code", "ref", "seen", "tags"]
    checked = validate_records(THINGS, header, [["a1", None, "2024-05-01T10:00:00", "{x}"]])
    assert [(e.field, e.code) for e in checked.errors[0]] == [("ref", "not_null")]


def test_new_types_take_the_per_value_road_of_the_csv_path_with_the_same_results():
    header = ["code", "ref", "seen", "tags", "counts", "share"]
    records = [
        ["a1", str(REF), "2024-05-01T10:00:00", '{x,"y z"}', "[1,2]", "0.1"],
        ["a2", "nope", "2024-05-01T10:00:00+01:00", "x", "{1}", "2"],
    ]
    checked = validate_records(THINGS, header, records)
    assert checked.rows[0]["tags"] == ["x", "y z"] and checked.rows[0]["counts"] == [1, 2]
    assert sorted((e.field, e.code) for e in checked.errors[1]) == [
        ("ref", "type"), ("seen", "type"), ("share", "out_of_range"), ("tags", "type")]


def test_type_names_in_messages_name_the_array_type():
    with pytest.raises(ValueRefused, match=r"expected integer\[\]"):
        coerce_value(Column("n", ColumnType.ARRAY, item=ColumnType.INTEGER), 3)
