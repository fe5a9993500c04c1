"""Inputs that made depot answer 500 before, found by the fuzzers in tests/fuzz; each now has its 4xx."""

from __future__ import annotations

from urllib.parse import unquote


def test_a_key_outside_latin_1_gets_a_percent_encoded_location(client):
    response = client.post("/api/manufacturers", json={"name": "Ünïcode ✈ Works"})
    assert response.status_code == 201
    location = response.headers["location"]
    assert unquote(location) == "/api/manufacturers/Ünïcode ✈ Works"
    assert client.get(location).json()["name"] == "Ünïcode ✈ Works"


def test_a_numeric_too_big_for_decimal_is_a_422(client):
    fare = {"carrier": "AA", "origin": "JFK", "dest": "LAX", "departure_date": "2013-01-01", "cabin": "first",
            "price": -1e26, "currency": "USD", "observed_at": "2013-01-01T00:00:00Z"}
    response = client.post("/api/fares", json=fare)
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "price"


def test_a_timestamp_before_year_1_in_utc_is_a_422(client):
    weather = {"origin": "JFK", "year": 1, "month": 1, "day": 1, "hour": 0, "time_hour": "0001-01-01T00:00:00+00:01"}
    response = client.post("/api/weather", json=weather)
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "time_hour"
