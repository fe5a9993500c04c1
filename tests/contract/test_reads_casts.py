"""`::type` in select and on aggregates, on both adapters with the same values: a fixed list of casts
that cannot fail on a stored value; anything else, and any cast in a filter or an order, is a 400."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import BadRequest
from tests.contract.documents import both_documents, documents  # noqa: F401 - the fixtures
from tests.contract.documents import page as document_page
from tests.contract.test_reads import page, rows, seed, seed_into


@pytest.fixture
def uow(uow_factory):
    seed(uow_factory)
    return uow_factory


def test_columns_cast_in_select_keep_their_key_or_take_an_alias(uow):
    got = rows(uow, "select=id::text,delay:dep_delay::text,distance::numeric,time_hour::date,when:time_hour::text"
                    "&id=in.(1,2,6)&order=id")
    assert got == [
        {"id": "1", "delay": "5.5", "distance": decimal.Decimal("1000"), "time_hour": dt.date(2013, 1, 1),
         "when": "2013-01-01 09:00:00+00"},
        {"id": "2", "delay": None, "distance": decimal.Decimal("1000"), "time_hour": dt.date(2013, 1, 1),
         "when": "2013-01-01 09:00:00+00"},
        {"id": "6", "delay": "5.5", "distance": decimal.Decimal("50.5"), "time_hour": dt.date(2013, 1, 3),
         "when": "2013-01-03 09:00:00+00"},
    ]
    assert rows(uow, "select=seats::float,year::bigint&order=tailnum", "planes") == [
        {"seats": 150.0, "year": 2004}, {"seats": 180.0, "year": None}]


def test_aggregates_cast_their_result_and_group_by_a_cast(uow):
    got = rows(uow, "select=time_hour::date,n:count()::text,total:dep_delay.sum()::numeric,flight.sum()::text")
    assert sorted(got, key=lambda r: r["time_hour"]) == [
        {"time_hour": dt.date(2013, 1, 1), "n": "3", "total": decimal.Decimal("3.5"), "sum": "404"},
        {"time_hour": dt.date(2013, 1, 2), "n": "2", "total": decimal.Decimal("30.25"), "sum": "405"},
        {"time_hour": dt.date(2013, 1, 3), "n": "3", "total": decimal.Decimal("-2.25"), "sum": "906"},
    ]


def test_json_values_and_members_cast_to_text(documents):  # noqa: F811
    got = document_page(documents, "select=name,data->n::text,data->>s::text,d:data::text&name=in.(a,c,f)"
                                   "&order=name").rows
    assert got == [
        {"name": "a", "n": "1", "s": "x",
         "d": '{"n": 1, "s": "x", "flag": true, "tags": ["red", "blue"], "nested": {"k": "v1"}}'},
        {"name": "c", "n": '"3"', "s": None, "d": '{"n": "3", "s": null, "tags": [], "nested": {"k": null}}'},
        {"name": "f", "n": None, "s": None, "d": '[1, "two", {"three": 3}]'},
    ]


@pytest.mark.parametrize(("query", "code"), [
    ("select=id::regclass", "PGRST100"),  # not on the list
    ("select=id::text::int", "PGRST100"),
    ("select=*::text", "PGRST100"),
    ("select=...airlines(name)::text", "PGRST100"),
    ("select=::text", "PGRST100"),
    ("select=origin::integer", "42846"),  # text to a number could fail on a stored value
    ("select=dep_delay::int", "42846"),  # narrowing
    ("select=dep_delay.avg()::int", "42846"),
    ("select=airlines(name)::text", "PGRST100"),
    ("select=id&id::text=eq.1", "PGRST100"),  # casts in filters are refused plainly
    ("select=id&or=(id::text.eq.1)", "PGRST100"),
    ("select=id&order=id::text", "PGRST100"),
    ("select=id::" + "x" * 10_000, "PGRST100"),
])
def test_casts_outside_the_list_or_outside_select_are_400s(uow, query, code):
    with pytest.raises(BadRequest) as caught:
        page(uow, query)
    assert caught.value.code == code


CASTABLE = st.sampled_from([
    "id::text", "dep_delay::text", "dep_delay::numeric", "distance::text", "time_hour::text", "time_hour::date",
    "flight::bigint", "flight::float", "dep_time::numeric", "carrier::text", "dep_delay::float8",
])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(CASTABLE, min_size=1, max_size=4, unique=True))
def test_memory_casts_exactly_as_postgresql(memory_uow, pg_uow, items):
    seed_into(memory_uow, pg_uow)
    query = "select=" + ",".join(f"c{n}:{item}" for n, item in enumerate(items)) + "&order=id"
    assert rows(memory_uow, query) == rows(pg_uow, query)


FLOATS = [0.1, 1.0, -0.0, 2.5e-5, 1e15, 123456789012345.6, 1e-4, 1.7976931348623157e308, 5e-324, 3.0000000000000004]


def test_float_text_and_numeric_agree_with_postgresql(pg_uow):
    from adapters.memory.evaluate import cast
    from domain.schema import ColumnType

    with pg_uow() as unit:
        for value in FLOATS:
            text, number = unit.connection.exec_driver_sql(
                "SELECT %(v)s::float8::text, %(v)s::float8::numeric", {"v": repr(value)}).one()
            assert cast(ColumnType.TEXT, ColumnType.FLOAT, value) == text, value
            assert cast(ColumnType.NUMERIC, ColumnType.FLOAT, value) == number, value
