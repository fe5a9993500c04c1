"""Reads over HTTP against a real server on PostgreSQL: keyset Links, streamed CSV, counts."""

from __future__ import annotations

import csv
import io

import httpx
import pytest


@pytest.fixture(scope="module")
def http(live_server: str):
    with httpx.Client(base_url=live_server) as client:
        assert client.post("/api/airlines", json=[{"carrier": "AA", "name": "American"}]).status_code == 201
        assert client.post("/api/airports", json=[{"faa": "JFK", "name": "Kennedy", "lat": 40.6, "lon": -73.8,
                                                   "alt": 13}]).status_code == 201
        rows = [{"year": 2013, "month": 1, "day": 1 + n % 28, "sched_dep_time": 900, "sched_arr_time": 1200,
                 "carrier": "AA", "flight": n, "origin": "JFK", "dest": "JFK", "distance": 1.0, "hour": 9,
                 "minute": 0, "time_hour": "2013-01-01T09:00:00Z", "dep_delay": None if n % 7 == 0 else n % 5}
                for n in range(1, 251)]
        assert client.post("/api/flights", json=rows).status_code == 201
        yield client


def test_keyset_links_walk_every_row_once_in_order(http):
    url, seen = "/api/flights?select=flight,dep_delay&order=dep_delay.desc.nullsfirst,day&limit=40", []
    while url:
        response = http.get(url)
        assert response.status_code == 200
        seen += [(r["dep_delay"], r["flight"]) for r in response.json()]
        link = response.headers.get("link")
        url = link[1:link.index(">")] if link else None
    everything = http.get("/api/flights?select=flight,dep_delay&order=dep_delay.desc.nullsfirst,day&limit=1000")
    assert seen == [(r["dep_delay"], r["flight"]) for r in everything.json()]
    assert len(seen) == 250


def test_csv_streams_all_rows_from_postgres(http):
    response = http.get("/api/flights?select=flight,airlines(name)&order=flight", headers={"Accept": "text/csv"})
    records = list(csv.reader(io.StringIO(response.text)))
    assert records[0] == ["flight", "airlines"]
    assert [int(r[0]) for r in records[1:]] == list(range(1, 251))


def test_planned_count_is_an_estimate_and_exact_is_exact(http):
    exact = http.get("/api/flights?select=flight&limit=1", headers={"Prefer": "count=exact"})
    assert exact.headers["content-range"] == "0-0/250"
    planned = http.get("/api/flights?select=flight&limit=1", headers={"Prefer": "count=planned"})
    assert int(planned.headers["content-range"].split("/")[1]) > 0


def test_numeric_values_keep_their_digits_in_json(http):
    """numeric is exact: its JSON is the stored digits (19.90, not the float 19.9), as PostgREST writes it."""
    assert http.post("/api/routes", json=[{"carrier": "AA", "origin": "JFK", "dest": "JFK"}]).status_code == 201
    fare = {"carrier": "AA", "origin": "JFK", "dest": "JFK", "departure_date": "2013-02-01", "cabin": "economy",
            "price": "1234567890.10", "currency": "USD", "observed_at": "2013-01-01T00:00:00Z"}
    created = http.post("/api/fares", json=fare, headers={"Prefer": "return=representation"})
    assert created.status_code == 201 and b'"price":1234567890.10' in created.content
    listed = http.get("/api/fares?select=price&price=eq.1234567890.1")
    assert listed.content == b'[{"price":1234567890.10}]'
    assert http.get("/api/fares?select=total:price.sum()").content == b'[{"total":1234567890.10}]'
