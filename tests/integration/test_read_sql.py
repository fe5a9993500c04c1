"""The SQL the PostgreSQL adapter sends for reads: one statement per embed level, keyset pages that
an index answers, and values that travel as bound parameters."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
import sqlalchemy as sa

from adapters.postgres.compile import fetch_statement
from adapters.postgres.db import read_engine
from adapters.postgres.tables import build_metadata
from depot.examples.flights.catalog import CATALOG
from entrypoints.query_string import encode_cursor, parse_read
from service_layer import reads
from tests.contract.test_reads import seed

FLIGHTS = CATALOG["flights"]


def parsed(query: str, table: str = "flights"):
    return parse_read(CATALOG, CATALOG[table], parse_qsl(query, keep_blank_values=True), None, 100)


@pytest.fixture
def statements(pg_engine):
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    engines = [pg_engine, read_engine(pg_engine)]  # reads run on the readers' own engine
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", record)
    yield seen
    for engine in engines:
        sa.event.remove(engine, "before_cursor_execute", record)


def test_embeds_cost_one_statement_per_level_not_per_row(pg_uow, statements):
    seed(pg_uow)
    statements.clear()
    read = parsed("select=id,airlines(name),from:airports!origin(name),planes(seats,manufacturers(name))")
    page = reads.read_page(pg_uow(), "flights", read)
    assert len(page.rows) == 8
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1 + 3 + 1  # the flights, three embeds, and the one nested under planes


def test_to_many_counts_are_one_grouped_statement(pg_uow, statements):
    seed(pg_uow)
    statements.clear()
    reads.read_page(pg_uow(), "airlines", parsed("select=carrier,flights(count)", "airlines"))
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2 and "GROUP BY" in selects[1]


def sql_of(query: str, after: tuple) -> str:
    read = parsed(query)
    read = type(read)(read.items, read.where, read.order, read.limit, 0, after)
    fetch = reads.plan(FLIGHTS, read).fetch
    return str(fetch_statement(build_metadata(CATALOG).tables["flights"], FLIGHTS, fetch))


def test_keyset_on_not_null_columns_in_one_direction_is_a_row_comparison():
    sql = sql_of("order=year,month,day,carrier,flight,origin", (2013, 1, 1, "AA", 1, "JFK"))
    assert "(flights.year, flights.month, flights.day, flights.carrier, flights.flight, flights.origin) > (" in sql
    assert "flights.id" not in sql.split("WHERE")[1].split("ORDER BY")[0]


def test_keyset_over_nullable_columns_is_the_expanded_chain_with_a_leading_bound():
    sql = sql_of("order=dep_delay.desc.nullslast", (5.0, 17))
    where = sql.split("WHERE")[1].split("ORDER BY")[0]
    assert "flights.dep_delay <=" in where and "flights.dep_delay IS NULL" in where and "flights.id >" in where


def test_client_text_travels_as_bound_parameters():
    sql = str(fetch_statement(build_metadata(CATALOG).tables["flights"], FLIGHTS,
                              reads.plan(FLIGHTS, parsed("carrier=eq.'; drop table flights; --")).fetch))
    assert "drop table" not in sql and "flights.carrier = :carrier_1" in sql


def test_a_deep_keyset_page_is_an_index_range_scan(pg_uow, pg_engine):
    seed(pg_uow)
    read = parsed("order=year,month,day,carrier,flight,origin&limit=2")
    after = encode_cursor(read.keyset_order(FLIGHTS), (2013, 1, 2, "UA", 202, "EWR"))
    deep = parsed(f"order=year,month,day,carrier,flight,origin&limit=2&after={after}")
    statement = fetch_statement(build_metadata(CATALOG).tables["flights"], FLIGHTS, reads.plan(FLIGHTS, deep).fetch)
    compiled = statement.compile(pg_engine, compile_kwargs={"render_postcompile": True})
    with pg_engine.begin() as connection:
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        connection.exec_driver_sql("SET LOCAL enable_sort = off")
        plan = "\n".join(r[0] for r in connection.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params))
    assert "Index" in plan and "Index Cond: (ROW(" in plan, plan
