"""The Prefer header on writes and reads (memory adapter): handling=strict, max-affected, tx=rollback,
missing=default, each applied one echoed in Preference-Applied; and columns= on a bulk POST."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from entrypoints.app import create_app
from tests.unit.conftest import memory_container

AIRLINES = [{"carrier": "AA", "name": "American"}, {"carrier": "UA", "name": "United"},
            {"carrier": "B6", "name": "JetBlue"}]


@pytest.fixture
def client() -> TestClient:
    with TestClient(create_app(memory_container())) as made:
        assert made.post("/api/airlines", json=AIRLINES).status_code == 201
        yield made


def carriers(client: TestClient) -> dict[str, str]:
    return {r["carrier"]: r["name"] for r in client.get("/api/airlines").json()}


@pytest.mark.parametrize("prefer", ["handling=strict, foo, bar", "handling=strict, return=everything",
                                    "handling=strict, max-affected=-1", "handling=strict,timezone=UTC"])
def test_strict_handling_refuses_unknown_or_malformed_preferences(client, prefer):
    response = client.patch("/api/airlines?carrier=eq.AA", json={"name": "x"}, headers={"Prefer": prefer})
    assert response.status_code == 400
    assert response.json()["code"] == "PGRST122"
    assert response.json()["message"] == "Invalid preferences given with handling=strict"
    assert client.get("/api/airlines", headers={"Prefer": prefer}).status_code == 400
    assert carriers(client)["AA"] == "American"


def test_lenient_handling_ignores_them(client):
    response = client.patch("/api/airlines?carrier=eq.AA", json={"name": "x"}, headers={"Prefer": "foo, bar"})
    assert response.status_code == 204 and "preference-applied" not in response.headers


def test_max_affected_with_strict_handling_refuses_and_rolls_back(client):
    prefer = {"Prefer": "handling=strict, max-affected=2"}
    response = client.patch("/api/airlines?carrier=in.(AA,UA,B6)", json={"name": "x"}, headers=prefer)
    assert response.status_code == 400
    assert response.json() == {"code": "PGRST124", "message": "Query result exceeds max-affected preference "
                               "constraint", "details": "The query affects 3 rows", "hint": None}
    assert client.delete("/api/airlines?carrier=in.(AA,UA,B6)", headers=prefer).status_code == 400
    assert carriers(client) == {a["carrier"]: a["name"] for a in AIRLINES}
    response = client.delete("/api/airlines?carrier=in.(AA,UA)", headers=prefer)
    assert response.status_code == 204
    assert response.headers["preference-applied"] == "handling=strict, max-affected=2"
    # without handling=strict PostgREST ignores max-affected: so does depot, and does not echo it
    response = client.patch("/api/airlines?carrier=eq.B6", json={"name": "x"}, headers={"Prefer": "max-affected=0"})
    assert response.status_code == 204 and "preference-applied" not in response.headers


def test_tx_rollback_is_a_dry_run_of_any_write(client):
    prefer = {"Prefer": "tx=rollback, return=representation"}
    response = client.post("/api/airlines", json={"carrier": "ZZ", "name": "Zed"}, headers=prefer)
    assert response.status_code == 201 and response.json()[0]["carrier"] == "ZZ"
    assert response.headers["preference-applied"] == "return=representation, tx=rollback"
    assert client.patch("/api/airlines?carrier=eq.AA", json={"name": "x"}, headers=prefer).json()[0]["name"] == "x"
    assert client.patch("/api/airlines/UA", json={"name": "y"}, headers=prefer).json()["name"] == "y"
    assert client.delete("/api/airlines?carrier=eq.B6", headers=prefer).status_code == 200
    assert client.delete("/api/airlines/AA", headers=prefer).status_code == 200
    assert carriers(client) == {a["carrier"]: a["name"] for a in AIRLINES}


def test_missing_default_and_resolution_are_echoed_on_create(client):
    response = client.post("/api/airlines", json=[{"carrier": "AA", "name": "Again"}],
                           headers={"Prefer": "resolution=merge-duplicates, missing=default, count=exact"})
    assert response.status_code == 201
    assert response.headers["preference-applied"] == "count=exact, resolution=merge-duplicates, missing=default"
    assert carriers(client)["AA"] == "Again"


def test_reads_echo_the_count_they_applied(client):
    response = client.get("/api/airlines", headers={"Prefer": "count=exact"})
    assert response.headers["preference-applied"] == "count=exact"
    assert "preference-applied" not in client.get("/api/airlines").headers


def test_columns_takes_only_the_named_keys_of_each_row(client):
    rows = [{"carrier": "ZZ", "name": "Zed", "ignored": 1}, {"carrier": "YY", "name": "Why", "source": "x"}]
    response = client.post("/api/airlines?columns=carrier,name", json=rows)
    assert response.status_code == 201
    assert carriers(client)["ZZ"] == "Zed"
    response = client.post("/api/airlines?columns=carrier,nope", json=rows)
    assert response.status_code == 400 and response.json()["code"] == "PGRST204"
    assert client.post("/api/airlines?columns=carrier,version", json=rows).status_code == 400


def test_a_single_row_post_gives_its_location(client):
    response = client.post("/api/airlines", json={"carrier": "QQ", "name": "Q"})
    assert response.headers["location"] == "/api/airlines/QQ"
    assert "location" not in client.post("/api/airlines", json=[{"carrier": "RR", "name": "R"}]).headers
