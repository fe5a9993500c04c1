"""The PostgREST query-string parser: what it builds, and the 400s it gives hostile or broken input."""

from __future__ import annotations

import base64
import datetime as dt
from urllib.parse import parse_qsl

import pytest

from depot.examples.flights.catalog import CATALOG
from domain.errors import BadRequest
from domain.query import Aggregate, BoolExpr, Condition, Embed, Field, OrderBy
from entrypoints.query_string import decode_cursor, encode_cursor, parse_filters, parse_read, split_top

FLIGHTS = CATALOG["flights"]


def read(query: str, table: str = "flights", max_rows: int | None = 100, range_header: str | None = None):
    return parse_read(CATALOG, CATALOG[table], parse_qsl(query, keep_blank_values=True), range_header, max_rows)


def refused(query: str, table: str = "flights", range_header: str | None = None) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        read(query, table, range_header=range_header)
    return caught.value


def test_filters_are_typed_by_their_column():
    where = read("dep_delay=gt.2.5&time_hour=lt.2013-01-02T00:00:00Z&carrier=in.(AA,\"U,A\")").where
    assert where == BoolExpr("and", (
        Condition("dep_delay", "gt", 2.5),
        Condition("time_hour", "lt", dt.datetime(2013, 1, 2, tzinfo=dt.UTC)),
        Condition("carrier", "in", ("AA", "U,A")),
    ))


def test_like_star_becomes_percent_and_not_negates():
    assert read("origin=not.like.J*").where == Condition("origin", "like", "J%", negated=True)


def test_logic_trees_nest_and_unquote_their_values():
    where = read('not.or=(carrier.eq."A,B",and(flight.gt.1,dep_delay.not.is.null),flight.in.(1,2))').where
    assert where == BoolExpr("or", (
        Condition("carrier", "eq", "A,B"),
        BoolExpr("and", (Condition("flight", "gt", 1), Condition("dep_delay", "is", None, negated=True))),
        Condition("flight", "in", (1, 2)),
    ), negated=True)


def test_select_builds_fields_aggregates_and_embeds():
    items = read("select=n:flight,count(),avg_delay:dep_delay.avg()").items
    assert items == (Field("flight", "n"), Aggregate("count"), Aggregate("avg", "dep_delay", "avg_delay"))
    embeds = read("select=origin_airport:airports!origin(name),planes(seats),to:dest(*)").items
    assert embeds[0] == Embed("origin_airport", "airports", ("origin",), ("faa",), False, (Field("name"),))
    assert embeds[1] == Embed("planes", "planes", ("tailnum",), ("tailnum",), False, (Field("seats"),))
    assert embeds[2].key == "to" and embeds[2].target == "airports" and len(embeds[2].items) > 5


def test_aggregates_next_to_an_embed_need_its_column_grouped():
    assert "origin" in refused("select=count(),airports!origin(name)").message


def test_to_many_embed_with_bare_count():
    (embed,) = read("select=flights(count)", table="airlines").items[:1]
    assert embed == Embed("flights", "flights", ("carrier",), ("carrier",), True, (Aggregate("count"),))


def test_order_limit_offset_and_range():
    got = read("order=dep_delay.desc.nullslast,id&limit=5000", max_rows=100)
    assert got.order == (OrderBy("dep_delay", True, False), OrderBy("id"))
    assert got.limit == 100
    ranged = read("", range_header="10-19")
    assert (ranged.offset, ranged.limit) == (10, 10)


def test_order_may_name_an_aggregate_alias():
    assert read("select=carrier,n:count()&order=n.desc").order == (OrderBy("n", True),)


def test_cursor_round_trips_typed_values():
    order = read("order=time_hour.desc,dep_delay").keyset_order(FLIGHTS)
    values = (dt.datetime(2013, 1, 1, 5, tzinfo=dt.UTC), None, 17)
    assert decode_cursor(FLIGHTS, order, encode_cursor(order, values)) == values
    cursor = encode_cursor(order, values)
    assert read(f"order=time_hour.desc,dep_delay&after={cursor}").after == values


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("select=id;drop table flights", "id;drop table flights"),
        ("select=id,(select 1)", "select 1"),
        ("select=id,pg_sleep(10)", "pg_sleep"),
        ("select=\"id\"", '"id"'),
        ("select=id,x:dep_delay.sum();drop()", "drop"),
        ("select=airlines(name;drop)", "name;drop"),
        ("select=id::inet", "Casts: text"),
        ("select=name->>x", "->"),
        ("id;delete from flights=eq.1", "id;delete from flights"),
        ("id=eq.1;drop table flights", "1;drop table flights"),
        ("flight=in.(1,2) or 1=1", "in operator"),
        ("order=id;drop table flights", "id;drop table flights"),
        ("order=id.desc,(select 1)", "(select 1)"),
        ("order=id.sideways", "sideways"),
        ("order=id.desc.asc.nullsfirst", "Too many"),
        ("dep_delay=eq.1e999", "1e999"),
        ("dep_delay=gt.NaN'--", "NaN'--"),
        ("time_hour=gt.yesterday", "yesterday"),
        ("carrier=is.maybe", "maybe"),
        ("carrier=is.true", "boolean"),
        ("flight=like.1*", "text column"),
        ("flight=regex.1", "regex"),
        ("flight=eq", "operator"),
        ("or=(flight.eq.1", "parentheses"),
        ("or=flight.eq.1)", "parentheses"),
        ("or=(flight.eq.1))", "parentheses"),
        ("or=(flight.eq.1,)", "Empty term"),
        ("or=(flight)", "Malformed term"),
        ("or=(flight.xx.1)", "operator"),
        ('or=(carrier.eq."AA)', "quotes"),
        ("select=airlines(name", "parentheses"),
        ("select=airlines(name))", "parentheses"),
        ("select=id,,flight", "Empty item"),
        ("select=airports(name)", "airports!origin"),
        ("select=nosuch(name)", "nosuch"),
        ("select=airlines!dest(name)", "relationship"),
        ("select=carrier.median()", "median"),
        ("select=*,airlines!inner!left(name)", "!inner or !left"),
        ("select=*,airlines(name)&airlines=eq.x", "is.null"),
        ("select=*,airlines(name)&or=(airlines.eq.x)", "is.null"),
        ("select=*,airlines(name)&planes.seats=eq.1", "not an embedded resource"),
        ("select=*,airlines(name)&airlines.nosuch=eq.1", "nosuch"),
        ("select=*,airlines(name)&airlines.limit=x", "whole number"),
        ("select=*,airlines(name)&airlines.order=nosuch", "nosuch"),
        ("select=*,airlines()&airlines.order=name", "no order"),
        ("select=*,airlines(name)&airlines.limit=1&airlines.limit=2", "more than once"),
        ("select=...airports!origin()", "adds nothing"),
        ("select=...al:airlines(name)", "without alias"),
        ("select=sum()", "needs a column"),
        ("select=carrier.avg()", "numeric"),
        ("select=id,id", "more than once"),
        ("select=carrier,count()&order=flight", "neither selected nor an aggregate"),
        ("select=count()&after=abc", "aggregate"),
        ("limit=-1", "negative"),
        ("limit=ten", "whole number"),
        ("offset=-5", "negative"),
        ("offset=99999999999999999999999", "too large"),
        ("after=not-a-cursor!!", "Malformed after"),
        ("after=eyJvIjoiaWQuYXNjLm5sIiwidiI6WyJ4Il19", "Malformed after"),
        ("airlines.name=eq.x", "embedded"),
        ("limit=1&limit=2", "more than once"),
    ],
)
def test_hostile_and_malformed_input_is_a_400_naming_the_part(query, names):
    error = refused(query)
    assert names.lower() in f"{error.message} {error.details} {error.hint}".lower()


def test_keyset_order_appends_the_key_unless_a_unique_key_is_covered():
    assert [o.column for o in read("order=dep_delay").keyset_order(FLIGHTS)] == ["dep_delay", "id"]
    natural = "order=year,month,day,carrier,flight,origin"
    assert [o.column for o in read(natural).keyset_order(FLIGHTS)] == list(FLIGHTS.natural_key)
    grouped = read("select=carrier,origin,count()&order=count.desc").keyset_order(FLIGHTS)
    assert [o.column for o in grouped] == ["count", "carrier", "origin"]


@pytest.mark.parametrize("query", ["payload=eq.{}", "payload=in.(1)", "errors=like.*x*", "order=payload"])
def test_json_columns_take_only_is_null_and_no_order(query):
    refused(query, table="rejected_rows")
    assert read("payload=is.null", table="rejected_rows").where == Condition("payload", "is", None)


def test_a_cursor_for_another_order_is_refused():
    cursor = encode_cursor(read("").keyset_order(CATALOG["flights"]), (5,))
    assert "another order" in refused(f"order=dep_delay&after={cursor}").message


def test_forged_cursor_values_are_typed_not_trusted():
    forged = base64.urlsafe_b64encode(b'{"o":"id.asc.nl","v":["1; drop table flights"]}').decode().rstrip("=")
    assert "Malformed after" in refused(f"after={forged}").message


def test_sql_in_a_text_value_stays_a_value():
    assert read("carrier=eq.'; drop table flights; --").where == Condition("carrier", "eq", "'; drop table flights; --")


@pytest.mark.parametrize("header", ["abc", "5-2", "-3", "1-x"])
def test_malformed_range_is_a_400(header):
    assert "Range" in refused("", range_header=header).message


def test_deep_nesting_is_refused():
    deep = "or=" + "(or" * 40 + "(flight.eq.1)" + ")" * 40
    with pytest.raises(BadRequest):
        parse_filters(FLIGHTS, [tuple(deep.split("=", 1))])


def test_split_top_respects_quotes_and_parentheses():
    assert split_top('a,b(c,d),"e,f"', "x") == ["a", "b(c,d)", '"e,f"']
