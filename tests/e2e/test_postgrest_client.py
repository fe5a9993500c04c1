"""depot as PostgREST's own Python client sees it: a real server process on a real PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from postgrest import APIError, SyncPostgrestClient

AIRLINES = [{"carrier": "AA", "name": "American Airlines Inc."}, {"carrier": "UA", "name": "United Air Lines Inc."},
            {"carrier": "B6", "name": "JetBlue Airways"}]
AIRPORTS = [{"faa": f, "name": n, "lat": 40.7, "lon": -73.9, "alt": 10}
            for f, n in (("JFK", "John F Kennedy Intl"), ("LGA", "La Guardia"), ("ORD", "Chicago Ohare Intl"))]


def flight(n: int, carrier: str, origin: str, dep_delay: float | None, tailnum: str | None) -> dict:
    return {"year": 2013, "month": 1, "day": 1, "sched_dep_time": 900, "sched_arr_time": 1200, "carrier": carrier,
            "flight": n, "tailnum": tailnum, "origin": origin, "dest": "ORD", "distance": 740.0, "hour": 9,
            "minute": 0, "time_hour": "2013-01-01T09:00:00Z", "dep_delay": dep_delay}


FLIGHTS = [flight(1, "AA", "JFK", 12.0, "N1"), flight(2, "AA", "LGA", None, None), flight(3, "UA", "JFK", -3.0, "N2"),
           flight(4, "UA", "LGA", 45.5, "N3"), flight(5, "B6", "JFK", 7.25, None), flight(6, "B6", "ORD", 0.0, "N4")]


@pytest.fixture(scope="module")
def client(live_server: str):
    with httpx.Client(base_url=live_server) as http:
        for table, rows in (("airlines", AIRLINES), ("airports", AIRPORTS), ("flights", FLIGHTS)):
            assert http.post(f"/api/{table}", json=rows).status_code == 201
    with SyncPostgrestClient(f"{live_server}/api") as postgrest:
        yield postgrest


def test_select_with_eq_and_order(client):
    result = client.from_("flights").select("flight,carrier").eq("carrier", "AA").order("flight").execute()
    assert result.data == [{"flight": 1, "carrier": "AA"}, {"flight": 2, "carrier": "AA"}]


def test_gt_in_and_is_filters(client):
    result = (client.from_("flights").select("flight").gt("dep_delay", 0).in_("origin", ["JFK", "LGA"])
              .order("flight").execute())
    assert [r["flight"] for r in result.data] == [1, 4, 5]
    nulls = client.from_("flights").select("flight").is_("tailnum", None).order("flight").execute()
    assert [r["flight"] for r in nulls.data] == [2, 5]


def test_order_desc_nulls_and_limit(client):
    result = client.from_("flights").select("flight,dep_delay").order("dep_delay", desc=True, nullsfirst=False) \
        .limit(3).execute()
    assert result.data == [{"flight": 4, "dep_delay": 45.5}, {"flight": 1, "dep_delay": 12.0},
                           {"flight": 5, "dep_delay": 7.25}]


def test_count_exact_comes_from_content_range(client):
    result = client.from_("flights").select("flight", count="exact").eq("origin", "JFK").limit(1).execute()
    assert result.count == 3
    assert len(result.data) == 1


def test_embeds_and_range(client):
    result = client.from_("flights").select("flight,airlines(name)").order("flight").range(1, 2).execute()
    assert result.data == [{"flight": 2, "airlines": {"name": "American Airlines Inc."}},
                           {"flight": 3, "airlines": {"name": "United Air Lines Inc."}}]


def test_single_and_its_406(client):
    one = client.from_("airlines").select("name").eq("carrier", "B6").single().execute()
    assert one.data == {"name": "JetBlue Airways"}
    with pytest.raises(APIError) as caught:
        client.from_("airlines").select("name").single().execute()
    assert caught.value.code == "PGRST116"


def test_a_bad_filter_is_an_api_error_not_a_crash(client):
    with pytest.raises(APIError) as caught:
        client.from_("flights").select("flight").eq("no_such_column", 1).execute()
    assert caught.value.code == "PGRST204"


def test_head_count_and_strip_nulls(client):
    counted = client.from_("flights").select("*", count="exact", head=True).gt("dep_delay", 0).execute()
    assert counted.count == 3
    stripped = client.from_("flights").select("flight,tailnum").eq("flight", 2).strip_nulls().execute()
    assert stripped.data == [{"flight": 2}]


# --- the read language of issue 12, through the client's own methods --------------------------------


def test_text_search_in_each_form(client):
    def faa(query, **options):
        found = client.from_("airports").select("faa").text_search("name", query, options=options).execute()
        return [r["faa"] for r in found.data]

    assert faa("intl & kennedy") == ["JFK"]
    assert faa("chicago intl", type="plain") == ["ORD"]
    assert faa("la guardia", type="phrase") == ["LGA"]
    assert faa("kennedy or guardia -la", type="web_search", config="english") == ["JFK"]


def test_filter_on_an_embedded_path_with_inner_and_is(client):
    inner = (client.from_("airlines").select("carrier,flights!inner(flight)").filter("flights.origin", "eq", "LGA")
             .order("carrier").execute())
    assert inner.data == [{"carrier": "AA", "flights": [{"flight": 2}]}, {"carrier": "UA", "flights": [{"flight": 4}]}]
    without = (client.from_("airlines").select("carrier,flights()").gt("flights.dep_delay", 10)
               .is_("flights", "null").execute())
    assert without.data == [{"carrier": "B6"}]


def test_order_and_limit_on_a_foreign_table(client):
    result = (client.from_("airlines").select("carrier,flights(flight)")
              .order("flight", desc=True, foreign_table="flights").limit(1, foreign_table="flights")
              .order("carrier").execute())
    assert result.data == [{"carrier": "AA", "flights": [{"flight": 2}]}, {"carrier": "B6", "flights": [{"flight": 6}]},
                           {"carrier": "UA", "flights": [{"flight": 4}]}]


def test_contains_contained_by_and_overlaps_on_json(client, live_server):
    stray = {**flight(99, "AA", "JFK", 1.0, None), "dest": "ZZZ", "tags": ["late", "night"]}
    with httpx.Client(base_url=live_server) as http:
        assert http.post("/ingest/flights", json=[stray]).json()["rejected"] == 1
    rejected = client.from_("rejected_rows").select("row_number")
    assert rejected.contains("payload", {"dest": "ZZZ", "carrier": "AA"}).execute().data == [{"row_number": 1}]
    superset = {**stray, "more": True}
    assert client.from_("rejected_rows").select("row_number").contained_by("payload", superset).execute().data \
        == [{"row_number": 1}]
    assert client.from_("rejected_rows").select("row_number").overlaps("payload->tags", ["night", "day"]).execute() \
        .data == [{"row_number": 1}]
    assert client.from_("rejected_rows").select("row_number").contains("payload->tags", ["day"]).execute().data == []


def test_an_ambiguous_embed_is_the_clients_api_error_with_the_candidates(client, live_server):
    with pytest.raises(APIError) as caught:
        client.from_("flights").select("flight,airports(name)").execute()
    assert caught.value.code == "PGRST201"
    with httpx.Client(base_url=live_server) as http:
        response = http.get("/api/flights?select=flight,airports(name)")
    assert response.status_code == 300
    assert [d["relationship"].split(" ")[0] for d in response.json()["details"]] == ["fk_flights_origin",
                                                                                    "fk_flights_dest"]


def test_casts_through_the_clients_select(client):
    result = client.from_("flights").select("flight::text,dep_delay::numeric,time_hour::date").eq("flight", 5) \
        .execute()
    assert result.data == [{"flight": "5", "dep_delay": 7.25, "time_hour": "2013-01-01"}]
    grouped = client.from_("flights").select("carrier,n:count()::text").order("carrier").execute()
    assert grouped.data == [{"carrier": "AA", "n": "2"}, {"carrier": "B6", "n": "2"}, {"carrier": "UA", "n": "2"}]


def test_strict_preferences_dry_runs_and_max_affected_on_a_real_database(live_server):
    with httpx.Client(base_url=live_server) as http:
        dry = http.post("/api/airlines", json={"carrier": "ZZ", "name": "Zed"},
                        headers={"Prefer": "tx=rollback, return=representation"})
        assert dry.status_code == 201 and dry.headers["preference-applied"] == "return=representation, tx=rollback"
        assert http.get("/api/airlines?carrier=eq.ZZ").json() == []
        capped = http.patch("/api/flights?origin=eq.JFK", json={"dep_delay": 0},
                            headers={"Prefer": "handling=strict, max-affected=2"})
        assert capped.status_code == 400 and capped.json()["code"] == "PGRST124"
        assert http.get("/api/flights?select=flight&dep_delay=eq.0").json() == [{"flight": 6}]
        assert http.get("/api/flights", headers={"Prefer": "handling=strict, foo"}).json()["code"] == "PGRST122"


def test_distinct_having_and_batch_on_a_real_database(live_server):
    with httpx.Client(base_url=live_server) as http:
        assert http.get("/api/flights?distinct=origin&order=origin").json() == [
            {"origin": "JFK"}, {"origin": "LGA"}, {"origin": "ORD"}]
        assert http.get("/api/flights?select=origin,n:count()&having=n.gt.1&order=n.desc").json() == [
            {"origin": "JFK", "n": 3}, {"origin": "LGA", "n": 2}]
        answers = http.post("/api/_batch", json=[
            {"method": "POST", "path": "/api/airlines", "body": {"carrier": "YY", "name": "Why"}},
            {"method": "GET", "path": "/api/airlines?carrier=eq.YY&select=name"},
            {"method": "DELETE", "path": "/api/airlines?carrier=eq.YY"},
        ])
        assert answers.json() == [{"status": 201, "body": None}, {"status": 200, "body": [{"name": "Why"}]},
                                  {"status": 204, "body": None}]
        failed = http.post("/api/_batch", json=[
            {"method": "POST", "path": "/api/airlines", "body": {"carrier": "XX", "name": "Ex"}},
            {"method": "POST", "path": "/api/airlines", "body": {"carrier": "XX", "name": "Ex"}},
        ])
        assert failed.status_code == 409 and failed.json()["message"].startswith("Operation 1 failed")
        assert http.get("/api/airlines?carrier=eq.XX").json() == []


def test_as_of_travels_in_the_clients_params(client):
    """The history's as_of= read through the client's own query parameters."""
    latest = client.from_("flights").select("updated_at").order("updated_at", desc=True).limit(1).execute()
    now = latest.data[0]["updated_at"]
    query = client.from_("flights").select("flight").eq("carrier", "AA").order("flight")
    query.request.params = query.request.params.add("as_of", now)
    assert query.execute().data == [{"flight": 1}, {"flight": 2}]
    query = client.from_("flights").select("flight")
    query.request.params = query.request.params.add("as_of", "2000-01-01T00:00:00Z")
    assert query.execute().data == []
