"""Mangled reads on both adapters: a domain error (a 4xx) or an answer, never anything else."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depot.examples.flights.catalog import CATALOG
from domain.errors import DepotError
from entrypoints.query_string import parse_read
from service_layer import reads

VALUES = st.one_of(st.text(max_size=12), st.sampled_from(["\\", "a\\", "%00", "\x00", "1e400", "-0", "2013-13-01",
                                                           "99999999999", "(1,2", "*\\", "null", "NaN", "inf"]))
FILTERS = st.tuples(st.sampled_from(["carrier", "flight", "dep_delay", "time_hour", "tailnum", "id"]),
                    st.sampled_from(["eq", "neq", "gt", "lt", "like", "ilike", "in", "is", "not.eq", "not.like"]),
                    VALUES)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(FILTERS, min_size=1, max_size=3), st.sampled_from(["", "dep_delay.desc", "carrier,flight.desc"]))
def test_any_filter_value_is_an_answer_or_a_domain_error(uow_factory, filters, order):
    params = [(column, f"{op}.{value}") for column, op, value in filters] + ([("order", order)] if order else [])
    try:
        read = parse_read(CATALOG, CATALOG["flights"], params, None, 10)
        reads.read_page(uow_factory(), "flights", read, count="exact")
    except DepotError:
        pass


ORDERS = st.sampled_from(["", "dep_delay.desc", "tailnum.nullsfirst,flight.desc", "time_hour,dep_time.desc.nullslast"])
TEXTS = st.sampled_from(["A*", "*a*", "N_00", "n*", "*\\_*", "*\\*", "U", "ß", "%", "_", "*6", "\\N*"])
DIFF_FILTERS = st.one_of(
    st.tuples(st.sampled_from(["carrier", "tailnum", "origin"]), st.sampled_from(["like", "ilike", "not.ilike"]),
              TEXTS),
    st.tuples(st.sampled_from(["dep_delay", "dep_time", "flight"]),
              st.sampled_from(["eq", "neq", "gt", "gte", "lt", "lte", "not.gt"]),
              st.sampled_from(["0", "5.5", "-2", "900", "202", "-7.75"])),
    st.tuples(st.sampled_from(["dep_delay", "tailnum", "arr_time"]), st.sampled_from(["is", "not.is"]),
              st.just("null")),
)
SELECTS = st.sampled_from(["id", "id,airlines(name)", "carrier,count(),dep_delay.avg(),dep_time.sum()",
                           "origin,dep_delay.min(),time_hour.max(),tailnum.count()"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(DIFF_FILTERS, max_size=3), ORDERS, SELECTS, st.booleans())
def test_memory_answers_exactly_as_postgresql(memory_uow, pg_uow, filters, order, select, disjunction):
    from tests.contract.test_reads import seed_into

    seed_into(memory_uow, pg_uow)
    if disjunction and filters:
        params = [("or", "(" + ",".join(f'{c}.{op}."{v}"' for c, op, v in filters) + ")")]
    else:
        params = [(c, f"{op}.{v}") for c, op, v in filters]
    params.append(("select", select))
    grouped = "()" in select
    if order and not grouped:
        params.append(("order", order))
    try:
        read = parse_read(CATALOG, CATALOG["flights"], params, None, 100)
    except DepotError:
        return
    memory = reads.read_page(memory_uow(), "flights", read, count="exact")
    postgres = reads.read_page(pg_uow(), "flights", read, count="exact")
    if grouped:  # groups come in the order of their columns; compare them as sets of rows
        assert sorted(map(repr, memory.rows)) == sorted(map(repr, postgres.rows))
    else:
        assert memory.rows == postgres.rows
    assert memory.total == postgres.total
