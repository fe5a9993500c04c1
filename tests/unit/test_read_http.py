"""The read route over HTTP (memory adapter): headers, representations, caps, errors."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from entrypoints.app import create_app
from tests.unit.conftest import memory_container


def seed(client: TestClient, flights: int = 7) -> None:
    assert client.post("/api/airlines", json=[{"carrier": "AA", "name": "American, Inc."},
                                              {"carrier": "UA", "name": "United"}]).status_code == 201
    assert client.post("/api/airports", json=[
        {"faa": "JFK", "name": "Kennedy", "lat": 40.6, "lon": -73.8, "alt": 13},
        {"faa": "ORD", "name": "O'Hare", "lat": 41.9, "lon": -87.9, "alt": 668}]).status_code == 201
    rows = [{"year": 2013, "month": 1, "day": 1, "sched_dep_time": 500, "sched_arr_time": 800,
             "carrier": "AA" if n % 2 else "UA", "flight": n, "origin": "JFK", "dest": "ORD", "distance": 740,
             "hour": 5, "minute": 0, "time_hour": "2013-01-01T05:00:00Z", "dep_delay": None if n == 3 else n * 1.5}
            for n in range(1, flights + 1)]
    assert client.post("/api/flights", json=rows).status_code == 201


@pytest.fixture
def small() -> TestClient:
    with TestClient(create_app(memory_container(max_rows=3))) as client:
        seed(client)
        yield client


def next_url(response) -> str | None:
    link = response.headers.get("link")
    if link is None:
        return None
    assert link.endswith('>; rel="next"')
    return link[1:link.index(">")]


def test_max_rows_caps_json_and_content_range_tells_the_truth(small):
    response = small.get("/api/flights?select=id", headers={"Prefer": "count=exact"})
    assert response.status_code == 206
    assert [r["id"] for r in response.json()] == [1, 2, 3]
    assert response.headers["content-range"] == "0-2/7"


def test_without_count_the_total_is_a_star(small):
    response = small.get("/api/flights?select=id&limit=2&offset=1")
    assert response.status_code == 200
    assert response.headers["content-range"] == "1-2/*"


def test_range_header_pages(small):
    response = small.get("/api/flights?select=id", headers={"Range": "4-5", "Prefer": "count=exact"})
    assert [r["id"] for r in response.json()] == [5, 6]
    assert response.headers["content-range"] == "4-5/7"


def test_link_next_walks_every_row_once_and_stops(small):
    url, seen, pages = "/api/flights?select=id,dep_delay&order=dep_delay.desc.nullslast", [], 0
    while url is not None:
        response = small.get(url)
        assert response.status_code == 200
        seen += [r["id"] for r in response.json()]
        url, pages = next_url(response), pages + 1
    assert seen == [7, 6, 5, 4, 2, 1, 3]
    assert pages == 3
    assert "after=" in small.get("/api/flights?select=id").headers["link"]


def test_no_link_when_the_page_holds_the_last_row(small):
    assert "link" not in small.get("/api/flights?select=id&flight=gt.5").headers


def test_aggregate_reads_link_by_offset(small):
    first = small.get("/api/flights?select=flight,count()&order=flight")
    assert "offset=3" in first.headers["link"] and "after=" not in first.headers["link"]


def test_tampered_cursor_is_a_400(small):
    url = next_url(small.get("/api/flights?select=id"))
    response = small.get(url.replace("after=", "after=x"))
    assert response.status_code == 400
    assert response.json()["message"].startswith("Malformed after=")


def test_csv_streams_every_row_without_the_cap(small):
    response = small.get("/api/flights?select=id,carrier,airlines(name)&order=id.desc", headers={"Accept": "text/csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    records = list(csv.reader(io.StringIO(response.text)))
    assert records[0] == ["id", "carrier", "airlines"]
    assert len(records) == 8 and records[1][:2] == ["7", "AA"]
    assert records[1][2] == '{"name":"American, Inc."}'


def test_csv_of_nothing_is_a_header(small):
    response = small.get("/api/flights?select=id,dep_delay&flight=gt.100", headers={"Accept": "text/csv"})
    assert response.text == "id,dep_delay\n"


def test_csv_errors_before_the_first_row_are_proper_errors(small):
    response = small.get("/api/flights?select=nope", headers={"Accept": "text/csv"})
    assert response.status_code == 400


def test_object_representation_needs_exactly_one_row(small):
    one = small.get("/api/flights?flight=eq.2&select=flight,airlines(name)",
                    headers={"Accept": "application/vnd.pgrst.object+json"})
    assert one.status_code == 200
    assert one.headers["content-type"].startswith("application/vnd.pgrst.object+json")
    assert one.json() == {"flight": 2, "airlines": {"name": "United"}}
    for query in ("flight=gt.2", "flight=gt.100"):
        many = small.get(f"/api/flights?{query}", headers={"Accept": "application/vnd.pgrst.object+json"})
        assert many.status_code == 406
        assert many.json()["code"] == "PGRST116"


def test_unsupported_accept_is_a_406(small):
    assert small.get("/api/flights", headers={"Accept": "application/xml"}).status_code == 406
    assert small.get("/api/flights?limit=1", headers={"Accept": "text/html,*/*;q=0.8"}).status_code == 200


def test_aggregates_over_http(small):
    response = small.get("/api/flights?select=carrier,n:count(),avg:dep_delay.avg()&order=n.desc")
    assert response.json() == [{"carrier": "AA", "n": 4, "avg": 6.5}, {"carrier": "UA", "n": 3, "avg": 6.0}]


@pytest.mark.parametrize("query", [
    "select=id;drop table flights", "order=id;drop", "or=(flight.eq.1", "flight=eq.1 or 1=1", "limit=-1",
    "flight=xx.1", "select=airports!origin(nme)", "dep_delay=gt.%27%20OR%201%3D1--", "after=%00%00",
])
def test_hostile_queries_get_400_with_the_error_shape(small, query):
    response = small.get(f"/api/flights?{query}")
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message", "details", "hint"}


def test_estimated_and_planned_counts_on_memory_are_exact(small):
    for method in ("planned", "estimated"):
        response = small.get("/api/flights?select=id&limit=1", headers={"Prefer": f"count={method}"})
        assert response.headers["content-range"] == "0-0/7"


def test_head_answers_the_headers_of_get_without_a_body(small):
    response = small.head("/api/flights?carrier=eq.AA", headers={"Prefer": "count=exact"})
    assert response.status_code == 206
    assert response.headers["content-range"] == "0-2/4"
    assert response.content == b""


def test_limit_zero_is_an_empty_page_without_a_next_link(small):
    response = small.get("/api/flights?limit=0", headers={"Prefer": "count=exact"})
    assert response.json() == []
    assert "link" not in response.headers
    assert response.headers["content-range"] == "*/7"


def test_nulls_stripped_leaves_out_null_members(small):
    response = small.get("/api/flights?select=flight,dep_delay&flight=in.(2,3)&order=flight",
                         headers={"Accept": "application/vnd.pgrst.array+json;nulls=stripped"})
    assert response.json() == [{"flight": 2, "dep_delay": 3.0}, {"flight": 3}]



def test_an_ambiguous_embed_answers_300_with_each_candidate_as_postgrest_does(small):
    response = small.get("/api/flights?select=id,airports(name)")
    assert response.status_code == 300
    body = response.json()
    assert body["code"] == "PGRST201"
    assert body["message"] == ("Could not embed because more than one relationship was found for 'flights' "
                               "and 'airports'")
    assert body["details"] == [
        {"cardinality": "many-to-one", "embedding": "flights with airports",
         "relationship": "fk_flights_origin using flights(origin) and airports(faa)"},
        {"cardinality": "many-to-one", "embedding": "flights with airports",
         "relationship": "fk_flights_dest using flights(dest) and airports(faa)"},
    ]
    assert "'airports!origin', 'airports!dest'" in body["hint"]
    reverse = small.get("/api/airports?select=faa,flights(id)").json()
    assert [d["cardinality"] for d in reverse["details"]] == ["one-to-many", "one-to-many"]
    assert reverse["details"][0]["relationship"] == "fk_flights_origin using flights(origin) and airports(faa)"
    assert small.get("/api/flights?select=id,airports!origin(name)&limit=1").status_code == 200
