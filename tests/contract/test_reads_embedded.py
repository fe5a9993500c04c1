"""Filtering through embeds on both adapters: embed filters, !inner, is.null anti- and semi-joins,
or= across embeds, empty emb(), spread, and per-parent order and page, with the same answers."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.test_reads import page, rows, seed, seed_into

AA, B6, UA = "American Airlines Inc.", "JetBlue Airways", "United Air Lines Inc."


@pytest.fixture
def uow(uow_factory):
    seed(uow_factory)
    return uow_factory


def test_embed_filter_narrows_the_embedded_rows_only(uow):
    got = rows(uow, "select=carrier,flights(flight)&flights.dep_delay=gt.0&order=carrier", "airlines")
    assert got == [
        {"carrier": "AA", "flights": [{"flight": 101}]},
        {"carrier": "B6", "flights": [{"flight": 301}]},
        {"carrier": "DL", "flights": []},
        {"carrier": "UA", "flights": [{"flight": 202}]},
    ]


def test_inner_drops_parents_without_matching_embedded_rows(uow):
    query = "select=carrier,flights!inner(flight)&flights.dep_delay=gt.0&order=carrier"
    assert [r["carrier"] for r in rows(uow, query, "airlines")] == ["AA", "B6", "UA"]
    assert page(uow, query, "airlines", count="exact").total == 3


@pytest.mark.parametrize(("null_filter", "expected"), [("not.is.null", ["AA", "B6", "UA"]), ("is.null", ["DL"])])
def test_embed_null_filters_are_semi_and_anti_joins_over_the_filtered_embed(uow, null_filter, expected):
    query = f"select=carrier,flights(flight)&flights.dep_delay=gt.0&flights={null_filter}&order=carrier"
    assert [r["carrier"] for r in rows(uow, query, "airlines")] == expected


def test_empty_embed_filters_without_adding_to_the_output(uow):
    got = rows(uow, "select=carrier,flights!inner()&flights.origin=eq.LGA&order=carrier", "airlines")
    assert got == [{"carrier": "AA"}, {"carrier": "B6"}]
    got = rows(uow, "select=carrier,flights()&flights=is.null", "airlines")
    assert got == [{"carrier": "DL"}]


def test_or_across_embeds_and_own_columns(uow):
    query = ("select=faa,departures:flights!origin(),arrivals:flights!dest()&departures.carrier=eq.AA"
             "&arrivals.carrier=eq.UA&or=(departures.not.is.null,arrivals.not.is.null,faa.eq.ORD)&order=faa")
    # AA leaves JFK and LGA; UA lands at ORD and LGA; ORD by its own column
    assert [r["faa"] for r in rows(uow, query, "airports")] == ["JFK", "LGA", "ORD"]
    query = "select=faa,departures:flights!origin()&departures.dep_delay=lt.0&or=(departures.is.null)&order=faa"
    assert [r["faa"] for r in rows(uow, query, "airports")] == ["JFK", "ORD"]


def test_logic_trees_inside_an_embed(uow):
    got = rows(uow, "select=carrier,flights!inner(flight)&flights.or=(flight.eq.101,flight.eq.303)&order=carrier",
               "airlines")
    assert got == [{"carrier": "AA", "flights": [{"flight": 101}]}, {"carrier": "B6", "flights": [{"flight": 303}]}]


def test_to_one_embed_filter_nulls_the_embed_and_inner_drops_the_row(uow):
    got = rows(uow, "select=id,airlines(name)&airlines.carrier=eq.AA&id=in.(1,3)")
    assert got == [{"id": 1, "airlines": {"name": AA}}, {"id": 3, "airlines": None}]
    got = rows(uow, "select=id,airlines!inner(name)&airlines.name=like.*Jet*")
    assert got == [{"id": 6, "airlines": {"name": B6}}, {"id": 7, "airlines": {"name": B6}},
                   {"id": 8, "airlines": {"name": B6}}]


def test_aliased_embeds_are_filtered_by_their_alias(uow):
    query = "select=id,from:airports!origin(faa)&from.faa=eq.JFK&from=not.is.null"
    assert [r["id"] for r in rows(uow, query)] == [1, 5, 6, 7]


def test_nested_inner_embeds_filter_every_level(uow):
    got = rows(uow, "select=carrier,flights!inner(flight,planes!inner(seats))&flights.planes.seats=gt.160",
               "airlines")
    assert got == [{"carrier": "AA", "flights": [{"flight": 102, "planes": {"seats": 180}}]}]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("flights.order=flight.desc&flights.limit=2", [[102, 101], [303, 302], [], [203, 202]]),
        ("flights.order=flight.desc&flights.limit=2&flights.offset=1", [[101], [302, 301], [], [202, 201]]),
        ("flights.order=dep_delay.desc.nullslast&flights.limit=1", [[101], [301], [], [202]]),
        ("flights.offset=2", [[], [303], [], [203]]),
        ("flights.limit=0", [[], [], [], []]),
    ],
)
def test_embed_order_and_page_apply_to_each_parent(uow, options, expected):
    got = rows(uow, f"select=carrier,flights(flight)&order=carrier&{options}", "airlines")
    assert [[f["flight"] for f in r["flights"]] for r in got] == expected


def test_embed_page_with_aggregates_inside(uow):
    query = ("select=faa,departures:flights!origin(carrier,count())&departures.order=count.desc,carrier"
             "&departures.limit=1&faa=in.(JFK,LGA,ORD)")
    got = rows(uow, query, "airports")
    assert got == [{"faa": "JFK", "departures": [{"carrier": "B6", "count": 2}]},
                   {"faa": "LGA", "departures": [{"carrier": "AA", "count": 1}]},
                   {"faa": "ORD", "departures": []}]


def test_spread_puts_a_to_one_embeds_keys_in_the_row(uow):
    got = rows(uow, "select=id,...airlines(airline:name),...planes(seats)&id=in.(1,5)")
    assert got == [{"id": 1, "airline": AA, "seats": 150}, {"id": 5, "airline": UA, "seats": None}]


def test_inner_embeds_page_by_keyset(uow):
    first = page(uow, "select=carrier,flights!inner()&flights.dep_delay=lt.0&limit=1", "airlines")
    assert first.rows == [{"carrier": "B6"}] and first.more
    assert rows(uow, "select=carrier,flights!inner()&flights.dep_delay=lt.0&carrier=gt.B6", "airlines") == [
        {"carrier": "UA"}]


def test_spread_of_a_to_many_embed_is_refused(uow):
    from domain.errors import BadRequest

    with pytest.raises(BadRequest) as caught:
        rows(uow, "select=carrier,...flights(flight)", "airlines")
    assert caught.value.code == "PGRST119"


EMBED_FILTERS = st.one_of(
    st.tuples(st.just("flights.dep_delay"), st.sampled_from(["gt.0", "lt.0", "is.null", "not.is.null", "eq.5.5"])),
    st.tuples(st.just("flights.origin"), st.sampled_from(["eq.JFK", "like.*G*", "in.(EWR,LGA)"])),
    st.tuples(st.just("flights.planes.seats"), st.sampled_from(["gt.160", "lt.160", "is.null"])),
    st.tuples(st.just("flights"), st.sampled_from(["is.null", "not.is.null"])),
    st.tuples(st.just("or"), st.sampled_from(["(flights.is.null,carrier.eq.AA)", "(flights.not.is.null)"])),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(EMBED_FILTERS, max_size=3), st.booleans(), st.booleans(),
       st.sampled_from(["", "&flights.limit=1", "&flights.order=dep_delay.desc&flights.offset=1"]))
def test_memory_answers_embed_filters_exactly_as_postgresql(memory_uow, pg_uow, filters, inner, plane_inner,
                                                            options):
    seed_into(memory_uow, pg_uow)
    planes = f"planes{'!inner' if plane_inner else ''}(seats)"
    query = (f"select=carrier,flights{'!inner' if inner else ''}(flight,dep_delay,{planes})&order=carrier"
             + options + "".join(f"&{name}={value}" for name, value in filters))
    assert page(memory_uow, query, "airlines").rows == page(pg_uow, query, "airlines").rows


# --- order by a to-one embed's column ------------------------------------------------------------


def test_order_by_a_to_one_embeds_column(uow):
    got = rows(uow, "select=id,airlines(name)&order=airlines(name).desc,id")
    assert [r["id"] for r in got] == [3, 4, 5, 6, 7, 8, 1, 2]
    got = rows(uow, "select=id,planes(seats)&order=planes(seats).desc.nullslast")
    assert [r["id"] for r in got] == [2, 1, 3, 6, 4, 5, 7, 8]


def test_order_by_an_embed_sees_the_embeds_filters(uow):
    got = rows(uow, "select=id,planes(seats)&planes.seats=gt.160&order=planes(seats).nullslast&id=lt.4")
    assert got == [{"id": 2, "planes": {"seats": 180}}, {"id": 1, "planes": None}, {"id": 3, "planes": None}]


def test_order_by_an_embed_pages_by_keyset_to_the_end(uow):
    from depot.examples.flights.catalog import CATALOG
    from entrypoints.query_string import encode_cursor, parse_read

    query = "select=id,planes(seats),from:airports!origin(name)&order=from(name).desc,planes(seats).nullsfirst"
    seen, after = [], ""
    for _ in range(10):
        current = page(uow, query + "&limit=3" + after)
        seen += [r["id"] for r in current.rows]
        if not current.more:
            break
        read = parse_read(CATALOG, CATALOG["flights"], [("select", query.split("&")[0][7:]),
                                                       ("order", query.split("order=")[1])], None, 3)
        after = "&after=" + encode_cursor(read.keyset_order(CATALOG["flights"]), current.last)
    # Newark, La Guardia, then Kennedy; within each, flights without a known plane first
    assert seen == [r["id"] for r in rows(uow, query)] == [4, 3, 8, 2, 5, 7, 1, 6]
    assert page(uow, query + "&limit=3&origin=neq.EWR", count="exact").total == 6


@pytest.mark.parametrize(
    ("query", "table", "code"),
    [
        ("select=carrier,flights(flight)&order=flights(flight)", "airlines", "PGRST118"),
        ("select=id&order=planes(seats)", "flights", "PGRST108"),
        ("select=id,planes(seats)&order=planes(nosuch)", "flights", None),
        ("select=id,planes(seats)&order=planes(seats", "flights", None),
    ],
)
def test_bad_embed_orders_are_refused(uow, query, table, code):
    from domain.errors import BadRequest

    with pytest.raises(BadRequest) as caught:
        rows(uow, query, table)
    assert code is None or caught.value.code == code
