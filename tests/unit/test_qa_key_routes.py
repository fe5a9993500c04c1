"""QA round: a key holding a slash is addressable at /api/{table}/{key}, where POST's Location points."""

from __future__ import annotations

from urllib.parse import quote

JSON = {"prefer": "return=representation"}


def test_the_location_of_a_key_with_a_slash_answers_every_key_route(client):
    created = client.post("/api/manufacturers", json={"name": "AIRBUS/EADS"})
    assert created.status_code == 201
    location = created.headers["location"]
    assert location == "/api/manufacturers/" + quote("AIRBUS/EADS", safe="")
    # it answered 405 (the key route did not match a decoded '/', the catch-all did)
    got = client.get(location)
    assert got.status_code == 200 and got.json()["name"] == "AIRBUS/EADS"
    assert client.head(location).status_code == 200
    assert client.patch(location, json={"name": "AIRBUS/EADS"}).status_code == 200
    assert client.delete(location).status_code == 204
    assert client.get(location).status_code == 404


def test_a_missing_key_with_a_slash_is_404_not_405(client):
    response = client.get("/api/manufacturers/NO%2FSUCH")
    assert response.status_code == 404 and response.json()["code"] == "PGRST116"


def test_head_answers_the_status_a_get_would_on_unknown_tables_and_composite_keys(client):
    # HEAD fell through to 405 where GET answers 404.
    for path in ("/api/no_such_table", "/api/no_such_table/1", "/api/routes/x"):
        assert client.get(path).status_code == 404
        assert client.head(path).status_code == 404, path
