"""Property: whatever the query string, a read answers 200/206 or the parser's own 400, in the error shape.

Through HTTP, not the parser's functions, so it holds for any parser behind the route.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entrypoints.app import create_app
from tests.unit.conftest import memory_container

ERROR_FIELDS = {"code", "message", "details", "hint"}
FLIGHT = {
    "year": 2013, "month": 1, "day": 1, "dep_time": 517, "sched_dep_time": 515, "dep_delay": 2.0,
    "arr_time": 830, "sched_arr_time": 819, "arr_delay": 11.0, "carrier": "UA", "flight": 1545,
    "tailnum": "N14228", "origin": "EWR", "dest": "IAH", "air_time": 227.0, "distance": 1400.0,
    "hour": 5, "minute": 15, "time_hour": "2013-01-01T10:00:00Z",
}
COLUMNS = list(FLIGHT) + ["id", "source", "batch_id", "version", "created_at", "updated_at"]
WORDS = ["eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "in", "is", "not", "null", "true", "asc",
         "desc", "nullsfirst", "nullslast", "or", "and", "(", ")", ",", ".", ":", "*", '"', "\\", "!", "%",
         # the read language of issue 12: embeds and their options, JSON paths, search, operators
         "match", "imatch", "isdistinct", "fts", "plfts", "phfts", "wfts", "cs", "cd", "ov", "(any)", "(all)",
         "(english)", "->", "->>", "!inner", "!left", "...", "{", "}", "[", "]", "&", "|", "<->", "airlines",
         "planes", "airlines.name", "planes.seats", "airlines(name)", "planes()", "limit", "offset", "order",
         # and past PostgREST: casts, having, distinct
         "::", "::text", "::int", "::date", "::numeric", "count()", ".sum()", "having", "distinct", "n"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(memory_container())) as test_client:
        assert test_client.post("/api/airlines", json={"carrier": "UA", "name": "United"}).status_code == 201
        airports = [{"faa": f, "name": f, "lat": 40.0, "lon": -74.0, "alt": 10} for f in ("EWR", "IAH")]
        assert test_client.post("/api/airports", json=airports).status_code == 201
        flights = [FLIGHT, {**FLIGHT, "day": 2, "dep_delay": None, "tailnum": None}]
        assert test_client.post("/api/flights", json=flights).status_code == 201
        yield test_client


# Text made of the query language's own words and symbols, with some noise: it reaches deeper
# into the parser than uniformly random text does.
grammar_text = st.lists(st.one_of(st.sampled_from(WORDS + COLUMNS), st.text(max_size=4)), max_size=8).map("".join)
any_text = st.one_of(st.text(max_size=40), grammar_text)


def assert_answered(response) -> None:
    # 300: an ambiguous embed, answered as PostgREST does (PGRST201, in the error shape)
    assert response.status_code in (200, 206, 300, 400), (response.status_code, response.text[:300])
    if response.status_code in (300, 400):
        assert set(response.json()) == ERROR_FIELDS


@SETTINGS
@given(key=st.one_of(st.sampled_from(COLUMNS), st.text(max_size=20)), value=any_text)
def test_any_filter_is_answered_or_refused_with_400(client, key, value):
    assert_answered(client.get("/api/flights", params=[(key, value)]))


@SETTINGS
@given(name=st.sampled_from(["select", "order", "or", "and", "not.or", "limit", "offset", "on_conflict", "after",
                             "having", "distinct"]),
       value=any_text)
def test_any_select_order_or_and_paging_is_answered_or_refused_with_400(client, name, value):
    assert_answered(client.get("/api/flights", params=[(name, value)]))


@SETTINGS
@given(params=st.lists(st.tuples(st.sampled_from(COLUMNS + ["select", "order", "or", "limit"]), any_text),
                       max_size=5),
       range_header=st.one_of(st.none(), any_text.filter(str.isprintable)))
def test_any_combination_with_a_range_header_is_answered_or_refused_with_400(client, params, range_header):
    headers = {"Range": range_header.encode("utf-8")} if range_header else {}
    assert_answered(client.get("/api/flights", params=params, headers=headers))


EMBED_SELECTS = ["*,airlines(name)", "id,airlines!inner(name),planes(seats)", "id,a:airlines(),...planes(seats)",
                 "id,from:airports!origin(name,faa)", "carrier,count(),airlines(name)"]
EMBED_KEYS = ["airlines", "airlines.name", "airlines.order", "airlines.limit", "airlines.offset", "airlines.or",
              "planes", "planes.seats", "a", "a.name", "from.faa", "from", "or", "order"]


@SETTINGS
@given(select=st.sampled_from(EMBED_SELECTS),
       params=st.lists(st.tuples(st.sampled_from(EMBED_KEYS + COLUMNS), any_text), max_size=4))
def test_any_filter_order_or_page_on_embeds_is_answered_or_refused_with_400(client, select, params):
    assert_answered(client.get("/api/flights", params=[("select", select), *params]))


CAST_SELECTS = ["id::text,dep_delay::numeric", "carrier,n:count()::text,d:dep_delay.avg()", "origin,dest",
                "time_hour::date,count()", "carrier,n:count()"]
CAST_KEYS = ["having", "distinct", "order", "limit", "after", "n", "d", "carrier", "dep_delay"]


@SETTINGS
@given(select=st.sampled_from(CAST_SELECTS),
       params=st.lists(st.tuples(st.sampled_from(CAST_KEYS), any_text), max_size=4))
def test_any_having_distinct_or_order_on_casts_is_answered_or_refused_with_400(client, select, params):
    assert_answered(client.get("/api/flights", params=[("select", select), *params]))
