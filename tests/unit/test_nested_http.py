"""Nested writes over HTTP (memory adapter): POST a row with its embeds as nested objects."""

from __future__ import annotations

from fastapi.testclient import TestClient

from entrypoints.app import create_app
from tests.unit.conftest import memory_container


def test_post_with_nested_embeds_writes_every_level_or_nothing():
    with TestClient(create_app(memory_container(max_rows=3))) as client:
        response = client.post("/api/planes", json={"tailnum": "N1", "manufacturers": {"name": "NEWCO"}},
                               headers={"Prefer": "return=representation"})
        assert response.status_code == 201 and response.json()[0]["manufacturer"] == "NEWCO"
        assert client.get("/api/manufacturers?select=name").json() == [{"name": "NEWCO"}]
        failed = client.post("/api/planes", json={"tailnum": "N2", "manufacturers": {"name": "NEWCO"}})
        assert failed.status_code == 409 and failed.json()["message"].startswith("At planes[0].manufacturers[0]:")
        too_many = client.post("/api/manufacturers", json={"name": "M", "planes": [{"tailnum": f"T{n}"}
                                                                                   for n in range(5)]})
        assert too_many.status_code == 400 and "DEPOT_MAX_ROWS" in too_many.json()["message"]
        wrong = client.post("/api/manufacturers", json={"name": "M2", "planes": {"tailnum": "N3"}})
        assert wrong.status_code == 400 and "manufacturers[0].planes is a to-many embed" in wrong.json()["message"]
        assert client.post("/api/planes", json={"tailnum": "N3", "nope": 1}).status_code == 422  # flat, as before
        assert [r["tailnum"] for r in client.get("/api/planes").json()] == ["N1"]


def test_a_nested_write_deeper_than_the_limit_is_a_400_not_a_crash():
    body: dict = {"tailnum": "N0", "manufacturers": {"name": "M0"}}
    for n in range(1, 60):  # planes -> manufacturers -> planes -> ... 120 levels
        body = {"tailnum": f"N{n}", "manufacturers": {"name": f"M{n}", "planes": [body]}}
    with TestClient(create_app(memory_container())) as client:
        response = client.post("/api/planes", json=body)
        assert response.status_code == 400 and "levels deep" in response.json()["message"]
        assert client.get("/api/planes").json() == []
