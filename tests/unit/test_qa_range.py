"""QA round: an offset past the counted total is 416 PGRST103, as in PostgREST."""

from __future__ import annotations

import pytest

from tests.unit.test_table_api import assert_error


@pytest.fixture
def airlines(client):
    rows = [{"carrier": c, "name": c} for c in ("AA", "B6", "UA")]
    assert client.post("/api/airlines", json=rows).status_code == 201


@pytest.mark.parametrize(("query", "headers"), [
    ("offset=5&limit=2", {}),
    ("", {"range": "4-9"}),
])
def test_an_offset_past_the_exact_count_is_416(client, airlines, query, headers):
    response = client.get(f"/api/airlines?select=carrier&{query}", headers={"prefer": "count=exact", **headers})
    body = assert_error(response, 416, "PGRST103")
    assert body["message"] == "Requested range not satisfiable"
    assert body["details"].startswith("An offset of ") and body["details"].endswith("there are only 3 rows.")


def test_an_offset_at_the_total_or_uncounted_is_an_empty_page(client, airlines):
    at_end = client.get("/api/airlines?select=carrier&offset=3", headers={"prefer": "count=exact"})
    assert at_end.status_code in (200, 206) and at_end.json() == []
    assert at_end.headers["content-range"] == "*/3"
    uncounted = client.get("/api/airlines?select=carrier&offset=5")
    assert uncounted.status_code == 200 and uncounted.json() == []
