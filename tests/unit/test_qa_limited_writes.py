"""QA round: PATCH/DELETE with limit= or offset= (PostgREST's limited update/delete) are refused
instead of silently touching every matching row."""

from __future__ import annotations

import pytest

from tests.unit.test_table_api import assert_error


@pytest.fixture
def three(client):
    rows = [{"carrier": f"L{n}", "name": "same"} for n in (1, 2, 3)]
    assert client.post("/api/airlines", json=rows).status_code == 201


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
@pytest.mark.parametrize("page", ["order=carrier&limit=1", "limit=0", "offset=1", "order=carrier&limit=1&offset=1"])
def test_a_limited_write_is_refused_and_changes_nothing(client, three, method, page):
    # PostgREST changes at most `limit` rows here; depot ignored limit= and changed all three.
    response = client.request(method, f"/api/airlines?name=eq.same&{page}", json={"name": "x"} if method == "PATCH"
                              else None)
    body = assert_error(response, 400)
    assert "limit" in body["message"] or "offset" in body["message"]
    assert [r["name"] for r in client.get("/api/airlines?select=name&order=carrier").json()] == ["same"] * 3
