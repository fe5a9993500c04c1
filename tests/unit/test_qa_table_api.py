"""Defects found by the QA round on the table API and the read language (memory storage, over HTTP)."""

from __future__ import annotations

import pytest

from tests.unit.test_table_api import assert_error

OBJECT = {"accept": "application/vnd.pgrst.object+json"}


@pytest.fixture
def airlines(client):
    response = client.post("/api/airlines", json=[{"carrier": "AA", "name": "American"},
                                                  {"carrier": "UA", "name": "United"}])
    assert response.status_code == 201


@pytest.mark.parametrize("query", ["", "?carrier=eq.ZZ"])
def test_a_singular_read_that_is_not_one_row_is_pgrst116_as_in_postgrest(client, airlines, query):
    # PostgREST answers 406 PGRST116 ("Cannot coerce the result to a single JSON object"); clients
    # (supabase's maybeSingle, user code) look for that code. PGRST107 is the unsupported media type.
    body = assert_error(client.get(f"/api/airlines{query}", headers=OBJECT), 406, "PGRST116")
    assert body["message"] == "Cannot coerce the result to a single JSON object"


def test_a_singular_write_representation_that_is_not_one_row_is_pgrst116(client, airlines):
    response = client.patch("/api/airlines?carrier=in.(AA,UA)", json={"name": "Same"},
                            headers={**OBJECT, "prefer": "return=representation"})
    assert_error(response, 406, "PGRST116")


def test_an_unsupported_accept_is_still_pgrst107(client, airlines):
    assert_error(client.get("/api/airlines", headers={"accept": "application/xml"}), 406, "PGRST107")



@pytest.mark.parametrize(("method", "url", "body"), [
    ("PATCH", "/api/airlines?carrier=in.(AA,UA)", {"name": "Same"}),
    ("DELETE", "/api/airlines?carrier=in.(AA,UA)", None),
    ("POST", "/api/airlines", [{"carrier": "B6", "name": "JetBlue"}, {"carrier": "DL", "name": "Delta"}]),
])
def test_a_refused_singular_write_leaves_the_table_as_it_was(client, airlines, method, url, body):
    # It answered 406 and kept the change: an error response must not have written anything.
    before = client.get("/api/airlines?select=carrier,name").json()
    response = client.request(method, url, json=body, headers={**OBJECT, "prefer": "return=representation"})
    assert_error(response, 406, "PGRST116")
    assert client.get("/api/airlines?select=carrier,name").json() == before


@pytest.mark.parametrize("representation", ["return=representation", "return=minimal"])
def test_writes_tell_how_many_rows_they_touched_when_asked_to_count(client, airlines, representation):
    # PostgREST answers Prefer: count=exact on POST/PATCH/DELETE with Content-Range: */N, which
    # clients read as the count (insert(..., count="exact") in the postgrest package); it was absent.
    prefer = {"prefer": f"{representation},count=exact"}
    created = client.post("/api/airlines", json=[{"carrier": "B6", "name": "JetBlue"}, {"carrier": "DL", "name": "D"}],
                          headers=prefer)
    assert created.status_code == 201 and created.headers["content-range"] == "*/2"
    patched = client.patch("/api/airlines?carrier=in.(AA,UA,B6)", json={"name": "x"}, headers=prefer)
    assert patched.headers["content-range"] == "*/3"
    deleted = client.delete("/api/airlines?carrier=eq.ZZ", headers=prefer)
    assert deleted.headers["content-range"] == "*/0"
    uncounted = client.delete("/api/airlines?carrier=eq.DL", headers={"prefer": representation})
    assert uncounted.headers["content-range"] == "*/*"
