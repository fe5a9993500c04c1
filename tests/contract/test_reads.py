"""The read language on both adapters: every operator, logic trees, embeds, order, paging, keyset
and aggregates, with the same expected answers from the memory fake and from PostgreSQL."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl

import pytest

from depot.examples.flights.catalog import CATALOG
from entrypoints.query_string import parse_read
from service_layer import reads, services
from service_layer.ingest import Chunk
from tests.ingesting import run

UTC = dt.UTC


def at(hour: int, day: int = 1) -> dt.datetime:
    return dt.datetime(2013, 1, day, hour, tzinfo=UTC)


AIRLINES = [
    {"carrier": "AA", "name": "American Airlines Inc."},
    {"carrier": "B6", "name": "JetBlue Airways"},
    {"carrier": "DL", "name": "Delta Air Lines Inc."},  # no flights
    {"carrier": "UA", "name": "United Air Lines Inc."},
]
AIRPORTS = [
    {"faa": "EWR", "name": "Newark Liberty Intl", "lat": 40.69, "lon": -74.17, "alt": 18, "tz": -5},
    {"faa": "JFK", "name": "John F Kennedy Intl", "lat": 40.64, "lon": -73.78, "alt": 13, "tz": -5},
    {"faa": "LGA", "name": "La Guardia", "lat": 40.78, "lon": -73.87, "alt": 22, "tz": None},
    {"faa": "ORD", "name": "Chicago Ohare Intl", "lat": 41.98, "lon": -87.9, "alt": 668, "tz": -6},
]
PLANES = [
    {"tailnum": "N100", "manufacturer": "BOEING", "seats": 150, "year": 2004},
    {"tailnum": "N200", "manufacturer": "AIRBUS", "seats": 180, "year": None},
]


def flight(n: int, carrier: str, origin: str, dest: str, dep_delay: float | None, *, dep_time: int | None = 900,
           tailnum: str | None = None, day: int = 1, hour: int = 9, distance: float = 1000.0) -> dict:
    return {
        "year": 2013, "month": 1, "day": day, "dep_time": dep_time, "sched_dep_time": 900,
        "dep_delay": dep_delay, "arr_time": None, "sched_arr_time": 1200, "arr_delay": None,
        "carrier": carrier, "flight": n, "tailnum": tailnum, "origin": origin, "dest": dest,
        "air_time": None, "distance": distance, "hour": hour, "minute": 0, "time_hour": at(hour, day),
    }


# ids follow insertion order on both adapters: 1..8
FLIGHTS = [
    flight(101, "AA", "JFK", "ORD", 5.5, tailnum="N100", dep_time=905),
    flight(102, "AA", "LGA", "ORD", None, tailnum="N200", dep_time=None),
    flight(201, "UA", "EWR", "ORD", -2.0, tailnum="N100", dep_time=858),
    flight(202, "UA", "EWR", "LGA", 30.25, tailnum="NGHOST", dep_time=930, day=2),
    flight(203, "UA", "JFK", "LGA", None, dep_time=None, day=2, hour=14),
    flight(301, "B6", "JFK", "EWR", 5.5, tailnum="N100", dep_time=906, day=3, distance=50.5),
    flight(302, "B6", "JFK", "ORD", 0.0, dep_time=900, day=3, hour=15),
    flight(303, "B6", "LGA", "JFK", -7.75, dep_time=853, day=3, hour=16),
]


def seed_references(uow_factory) -> None:
    services.create_rows(uow_factory(), "airlines", AIRLINES)
    services.create_rows(uow_factory(), "airports", AIRPORTS)
    services.create_rows(uow_factory(), "manufacturers", [{"name": "AIRBUS"}, {"name": "BOEING"}])
    services.create_rows(uow_factory(), "planes", PLANES)


def flight_records(flights: list[dict]) -> list[dict]:
    """Flights as a client sends them (JSON values)."""
    return [{**f, "time_hour": f["time_hour"].isoformat()} for f in flights]


def seed(uow_factory) -> None:
    seed_references(uow_factory)
    services.create_rows(uow_factory(), "flights", flight_records(FLIGHTS))


def seed_into(*factories) -> None:
    """Seed each store once (hypothesis reuses a test's fixtures across its examples). The flights come
    through ingest, last first, in chunks of 3: against their key order, so the ids of each store tell
    whether both hand them out in arrival order."""
    for factory in factories:
        with factory() as uow:
            empty = uow.repository("airlines").count(None) == 0
        if empty:
            seed_references(factory)
            records = flight_records(FLIGHTS[::-1])
            chunks = [Chunk(records[i:i + 3]) for i in range(0, len(records), 3)]
            assert run(factory(), "flights", [], chunks=chunks).inserted == len(FLIGHTS)


@pytest.fixture
def uow(uow_factory):
    seed(uow_factory)
    return uow_factory


def page(uow, query: str, table: str = "flights", *, count=None, max_rows: int | None = 100) -> reads.ReadPage:
    catalog = uow().catalog  # the bundled one, or the same with its system columns prefixed
    read = parse_read(catalog, catalog[table], parse_qsl(query, keep_blank_values=True), None, max_rows)
    return reads.read_page(uow(), table, read, count=count)


def rows(uow, query: str, table: str = "flights") -> list[dict]:
    return page(uow, query, table).rows


def ids(uow, query: str) -> list[int]:
    return [r["id"] for r in rows(uow, "select=id&" + query)]


# --- operators -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("flight=eq.201", [3]),
        ("carrier=neq.UA", [1, 2, 6, 7, 8]),
        ("dep_delay=neq.5.5", [3, 4, 7, 8]),  # null is neither equal nor unequal
        ("dep_delay=gt.0", [1, 4, 6]),
        ("dep_delay=gte.0", [1, 4, 6, 7]),
        ("dep_delay=lt.0", [3, 8]),
        ("dep_delay=lte.-2", [3, 8]),
        ("dep_time=lt.900", [3, 8]),
        ("origin=like.*G*", [2, 8]),
        ("origin=like.J_K", [1, 5, 6, 7]),
        ("tailnum=like.n*", []),  # like is case-sensitive
        ("tailnum=ilike.n*0", [1, 2, 3, 6]),
        ("flight=in.(101,303,999)", [1, 8]),
        ("carrier=in.(\"UA\",B6)", [3, 4, 5, 6, 7, 8]),
        ("dep_delay=is.null", [2, 5]),
        ("dep_delay=not.is.null", [1, 3, 4, 6, 7, 8]),
        ("carrier=not.eq.UA", [1, 2, 6, 7, 8]),
        ("dep_delay=not.gt.0", [3, 7, 8]),  # not of unknown is unknown
        ("tailnum=not.in.(N100)", [2, 4]),
        ("time_hour=gte.2013-01-02T14:00:00Z", [5, 6, 7, 8]),
        ("time_hour=lt.2013-01-02", [1, 2, 3]),
        ("distance=lt.100", [6]),
        ("carrier=eq.UA&dep_delay=gt.0", [4]),
    ],
)
def test_every_operator_filters_alike(uow, query, expected):
    assert ids(uow, query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("or=(flight.eq.101,flight.eq.303)", [1, 8]),
        ("or=(dep_delay.gt.10,dep_delay.is.null)", [2, 4, 5]),
        ("and=(carrier.eq.B6,dep_delay.gte.0)", [6, 7]),
        ("or=(carrier.eq.AA,and(carrier.eq.UA,dep_delay.lt.0))", [1, 2, 3]),
        ("not.or=(carrier.eq.AA,carrier.eq.UA)", [6, 7, 8]),
        ("or=(dep_delay.not.gte.0,origin.eq.LGA)", [2, 3, 8]),
        ("or=(not.and(carrier.eq.B6,origin.eq.JFK),flight.eq.301)", [1, 2, 3, 4, 5, 6, 8]),
        ("or=(carrier.in.(AA,B6),tailnum.eq.\"NGHOST\")&dep_delay=gt.1", [1, 4, 6]),
        ("not.and=(dep_delay.gt.0,dep_delay.lt.10)", [3, 4, 7, 8]),  # unknowns stay out
    ],
)
def test_logic_trees_nest_with_three_valued_logic(uow, query, expected):
    assert ids(uow, query) == expected


# --- select and embeds ---------------------------------------------------------------------------


def test_select_with_aliases_and_star(uow):
    assert rows(uow, "select=num:flight,carrier&id=eq.1") == [{"num": 101, "carrier": "AA"}]
    full = rows(uow, "select=*&id=eq.1")[0]
    assert list(full) == list(uow().catalog["flights"].column_names)
    assert full["time_hour"] == at(9) and full["dep_delay"] == 5.5


def test_to_one_embeds_with_hint_alias_and_nesting(uow):
    got = rows(uow, "select=id,airlines(name),from:airports!origin(faa,tz),to:dest(name),"
                    "planes(seats,manufacturers(name))&id=in.(1,2,4,5)")
    assert got == [
        {"id": 1, "airlines": {"name": "American Airlines Inc."}, "from": {"faa": "JFK", "tz": -5},
         "to": {"name": "Chicago Ohare Intl"}, "planes": {"seats": 150, "manufacturers": {"name": "BOEING"}}},
        {"id": 2, "airlines": {"name": "American Airlines Inc."}, "from": {"faa": "LGA", "tz": None},
         "to": {"name": "Chicago Ohare Intl"}, "planes": {"seats": 180, "manufacturers": {"name": "AIRBUS"}}},
        {"id": 4, "airlines": {"name": "United Air Lines Inc."}, "from": {"faa": "EWR", "tz": -5},
         "to": {"name": "La Guardia"}, "planes": None},  # a soft reference may point at nothing
        {"id": 5, "airlines": {"name": "United Air Lines Inc."}, "from": {"faa": "JFK", "tz": -5},
         "to": {"name": "La Guardia"}, "planes": None},  # or be null
    ]


def test_to_many_embeds_list_rows_and_counts(uow):
    got = rows(uow, "select=carrier,flights(flight),n:flights(count)&order=carrier", table="airlines")
    assert got == [
        {"carrier": "AA", "flights": [{"flight": 101}, {"flight": 102}], "n": [{"count": 2}]},
        {"carrier": "B6", "flights": [{"flight": 301}, {"flight": 302}, {"flight": 303}], "n": [{"count": 3}]},
        {"carrier": "DL", "flights": [], "n": [{"count": 0}]},
        {"carrier": "UA", "flights": [{"flight": 201}, {"flight": 202}, {"flight": 203}], "n": [{"count": 3}]},
    ]


def test_to_many_embed_with_aggregates_grouped_inside(uow):
    got = rows(uow, "select=faa,departures:flights!origin(carrier,count(),avg:dep_delay.avg())&faa=in.(JFK,ORD)",
               table="airports")
    assert got == [
        {"faa": "JFK", "departures": [
            {"carrier": "AA", "count": 1, "avg": 5.5},
            {"carrier": "B6", "count": 2, "avg": 2.75},
            {"carrier": "UA", "count": 1, "avg": None},
        ]},
        {"faa": "ORD", "departures": []},
    ]


# --- order and paging ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("dep_delay", [8, 3, 7, 1, 6, 4, 2, 5]),
        ("dep_delay.asc.nullsfirst", [2, 5, 8, 3, 7, 1, 6, 4]),
        ("dep_delay.desc", [2, 5, 4, 1, 6, 7, 3, 8]),
        ("dep_delay.desc.nullslast", [4, 1, 6, 7, 3, 8, 2, 5]),
        ("carrier.desc,dep_time.nullsfirst", [5, 3, 4, 8, 7, 6, 2, 1]),
        ("tailnum.nullsfirst,flight.desc", [8, 7, 5, 6, 3, 1, 2, 4]),
    ],
)
def test_order_places_nulls_like_postgresql(uow, order, expected):
    assert ids(uow, f"order={order}") == expected


def test_text_orders_bytewise(uow):
    services.create_rows(uow(), "manufacturers", [{"name": "airbus lower"}, {"name": "Zeppelin"}])
    assert [r["name"] for r in rows(uow, "order=name", table="manufacturers")] == [
        "AIRBUS", "BOEING", "Zeppelin", "airbus lower"]
    assert [r["name"] for r in rows(uow, "name=ilike.AIRBUS*&order=name.desc", table="manufacturers")] == [
        "airbus lower", "AIRBUS"]


def test_limit_offset_and_exact_count(uow):
    got = page(uow, "select=id&order=flight.desc&limit=3&offset=2", count="exact")
    assert [r["id"] for r in got.rows] == [6, 5, 4]
    assert (got.start, got.total, got.more) == (2, 8, True)
    last = page(uow, "select=id&order=flight.desc&limit=3&offset=6", count="exact")
    assert [r["id"] for r in last.rows] == [2, 1] and not last.more
    for method in ("planned", "estimated"):
        estimate = page(uow, "select=id&carrier=in.(UA,AA)&origin=like.*K&dep_delay=gt.-100", count=method)
        assert estimate.total >= 0 and [r["id"] for r in estimate.rows] == [1]
    assert page(uow, "select=carrier,count()", count="planned").total >= 1


KEYSET_ORDERS = ["", "order=dep_delay.desc.nullslast", "order=dep_delay.nullsfirst", "order=tailnum,dep_time.desc",
                 "order=origin.desc,dest", "order=time_hour.desc", "order=year,month,day,carrier,flight,origin",
                 "order=day.desc,carrier.desc,flight.desc,origin.desc,year.desc,month.desc",
                 "order=day,carrier.desc,flight,origin,year,month"]


@pytest.mark.parametrize("order", KEYSET_ORDERS)
@pytest.mark.parametrize("size", [1, 3])
def test_keyset_pages_walk_the_whole_order_once(uow, order, size):
    from entrypoints.query_string import encode_cursor

    expected = ids(uow, order)
    table = CATALOG["flights"]
    seen, cursor = [], ""
    for _ in range(20):
        got = page(uow, f"select=id&{order}&limit={size}{cursor}")
        seen += [r["id"] for r in got.rows]
        if not got.more:
            break
        read = parse_read(CATALOG, table, parse_qsl(order), None, size)
        cursor = "&after=" + encode_cursor(read.keyset_order(table), got.last)
    assert seen == expected


def test_keyset_page_knows_its_start_when_counting(uow):
    from entrypoints.query_string import encode_cursor

    first = page(uow, "select=id&order=dep_delay.desc.nullslast&limit=3")
    order = parse_read(CATALOG, CATALOG["flights"], [("order", "dep_delay.desc.nullslast")], None, 3)
    after = encode_cursor(order.keyset_order(CATALOG["flights"]), first.last)
    second = page(uow, f"select=id&order=dep_delay.desc.nullslast&limit=3&after={after}", count="exact")
    assert [r["id"] for r in second.rows] == [7, 3, 8]
    assert (second.start, second.total) == (3, 8)


# --- aggregates ----------------------------------------------------------------------------------


def test_aggregates_grouped_by_the_plain_columns_ordered_by_alias(uow):
    got = rows(uow, "select=carrier,n:count(),delays:dep_delay.count(),total:dep_delay.sum(),"
                    "mean:dep_delay.avg(),dep_delay.min(),dep_delay.max(),flights:flight.sum(),"
                    "t:dep_time.avg()&order=mean.desc.nullslast")
    assert got == [
        {"carrier": "UA", "n": 3, "delays": 2, "total": 28.25, "mean": 14.125, "min": -2.0, "max": 30.25,
         "flights": 606, "t": 894.0},
        {"carrier": "AA", "n": 2, "delays": 1, "total": 5.5, "mean": 5.5, "min": 5.5, "max": 5.5,
         "flights": 203, "t": 905.0},
        {"carrier": "B6", "n": 3, "delays": 3, "total": -2.25, "mean": -0.75, "min": -7.75, "max": 5.5,
         "flights": 906, "t": 886.3333333333334},
    ]
    assert isinstance(got[0]["flights"], int) and isinstance(got[0]["t"], float)


def test_a_lone_count_counts_the_whole_table(uow):
    """count() alone names no column: the statement must still read the table (it once read no table: 1)."""
    assert rows(uow, "select=count()") == [{"count": 8}]
    assert rows(uow, "select=n:count()") == [{"n": 8}]


def test_aggregates_over_no_rows_and_all_nulls(uow):
    assert rows(uow, "select=count(),dep_delay.sum(),dep_delay.avg()&carrier=eq.DL") == [
        {"count": 0, "sum": None, "avg": None}]
    assert rows(uow, "select=flight,dep_delay.max()&dep_delay=is.null&order=flight") == [
        {"flight": 102, "max": None}, {"flight": 203, "max": None}]


def test_aggregates_on_text_and_timestamps_with_filters(uow):
    got = rows(uow, "select=origin,first:time_hour.min(),last:dest.max()&dep_delay=not.is.null&order=origin.desc")
    assert got == [
        {"origin": "LGA", "first": at(16, 3), "last": "JFK"},
        {"origin": "JFK", "first": at(9), "last": "ORD"},
        {"origin": "EWR", "first": at(9), "last": "ORD"},
    ]


def test_aggregate_reads_count_groups_and_page_by_offset(uow):
    got = page(uow, "select=origin,count()&order=count.desc,origin&limit=2", count="exact")
    assert got.rows == [{"origin": "JFK", "count": 4}, {"origin": "EWR", "count": 2}]
    assert (got.total, got.more) == (3, True)
    rest = page(uow, "select=origin,count()&order=count.desc,origin&limit=2&offset=2")
    assert rest.rows == [{"origin": "LGA", "count": 2}] and not rest.more


def test_embed_next_to_aggregates_uses_the_group_column(uow):
    assert rows(uow, "select=carrier,airlines(name),count()&order=carrier&carrier=neq.UA") == [
        {"carrier": "AA", "airlines": {"name": "American Airlines Inc."}, "count": 2},
        {"carrier": "B6", "airlines": {"name": "JetBlue Airways"}, "count": 3},
    ]


def test_stream_rows_yields_every_row_in_batches(uow):
    read = parse_read(CATALOG, CATALOG["flights"], [("select", "id,airlines(carrier)"), ("order", "id.desc")],
                      None, None)
    batches = list(reads.stream_rows(uow(), "flights", read, batch=3))
    assert [len(b) for b in batches] == [3, 3, 2]
    assert [r["id"] for b in batches for r in b] == [8, 7, 6, 5, 4, 3, 2, 1]
    assert batches[0][0]["airlines"] == {"carrier": "B6"}


def test_numeric_sums_stay_exact_and_averages_are_floats(uow):
    import decimal

    services.create_rows(uow(), "routes", [{"carrier": "AA", "origin": "JFK", "dest": "ORD", "distance": 740}])
    services.create_rows(uow(), "fares", [
        {"carrier": "AA", "origin": "JFK", "dest": "ORD", "departure_date": "2013-02-01", "cabin": cabin,
         "price": price, "currency": "USD", "observed_at": "2013-01-01T00:00:00Z"}
        for cabin, price in (("economy", "10.10"), ("business", "20.25"), ("first", "0.33"))])
    got = rows(uow, "select=carrier,origin,dest,total:price.sum(),mean:price.avg(),cheapest:price.min(),"
                    "routes(distance)", table="fares")
    assert got == [{"carrier": "AA", "origin": "JFK", "dest": "ORD", "total": decimal.Decimal("30.68"),
                    "mean": 30.68 / 3, "cheapest": decimal.Decimal("0.33"), "routes": {"distance": 740.0}}]


def test_rows_nested_by_to_many_embeds_count_towards_the_row_cap(uow):
    """flights(airlines(flights(id))) is flights squared: refused before it is built into JSON."""
    from domain.errors import BadRequest

    def nested(query: str, max_rows: int) -> reads.ReadPage:
        read = parse_read(CATALOG, CATALOG["airlines"], parse_qsl(query), None, max_rows)
        return reads.read_page(uow(), "airlines", read, max_rows=max_rows)

    squared = "select=carrier,flights(id,airlines(flights(id)))&carrier=eq.UA"  # 3 flights, each with 3
    assert len(nested(squared, 13).rows[0]["flights"]) == 3  # 1 airline + 3 flights + 3 x 3 nested
    with pytest.raises(BadRequest, match="13 rows in one response"):
        nested(squared, 12)
    # to-one embeds widen a row rather than add one; counts are one row each
    assert nested("select=carrier,flights(id,airlines(name))&carrier=eq.UA", 4).rows[0]["carrier"] == "UA"
    assert nested("select=carrier,flights(count)", 8).rows[0]["flights"] == [{"count": 2}]  # 4 airlines + 4 counts
