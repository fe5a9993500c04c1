"""POST /api/_batch (memory adapter): operations in order in one transaction, answers in order,
nothing written when one fails, and bounded by DEPOT_MAX_ROWS."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entrypoints.app import create_app
from tests.unit.conftest import memory_container


@pytest.fixture
def client() -> TestClient:
    with TestClient(create_app(memory_container(max_rows=5))) as made:
        assert made.post("/api/airlines", json=[{"carrier": "AA", "name": "American"}]).status_code == 201
        yield made


def carriers(client: TestClient) -> dict[str, str]:
    return {r["carrier"]: r["name"] for r in client.get("/api/airlines").json()}


def test_a_batch_runs_in_order_and_reads_its_own_writes(client):
    response = client.post("/api/_batch", json=[
        {"method": "POST", "path": "/api/airlines", "body": {"carrier": "ZZ", "name": "Zed"},
         "headers": {"Prefer": "return=representation"}},
        {"method": "PATCH", "path": "/api/airlines?carrier=eq.AA", "body": {"name": "Am"}},
        {"method": "GET", "path": "/api/airlines?select=carrier,name&order=carrier"},
        {"method": "GET", "path": "/api/airlines/ZZ"},
        {"method": "DELETE", "path": "/api/airlines/ZZ"},
    ])
    assert response.status_code == 200
    answers = response.json()
    assert [a["status"] for a in answers] == [201, 204, 200, 200, 204]
    assert answers[0]["body"][0]["carrier"] == "ZZ"
    assert answers[2]["body"] == [{"carrier": "AA", "name": "Am"}, {"carrier": "ZZ", "name": "Zed"}]
    assert answers[3]["body"]["name"] == "Zed"
    assert carriers(client) == {"AA": "Am"}


@pytest.mark.parametrize(("failing", "status", "code"), [
    ({"method": "POST", "path": "/api/airlines", "body": {"carrier": "AA", "name": "dup"}}, 409, "23505"),
    ({"method": "GET", "path": "/api/airlines?carrier=zz.1"}, 400, "PGRST100"),
    ({"method": "DELETE", "path": "/api/airlines"}, 400, "PGRST106"),
    ({"method": "GET", "path": "/api/nope"}, 404, "PGRST205"),
    ({"method": "GET", "path": "/api/airlines?select=carrier::inet"}, 400, "PGRST100"),
])
def test_one_failing_operation_writes_nothing_and_is_named(client, failing, status, code):
    response = client.post("/api/_batch", json=[
        {"method": "POST", "path": "/api/airlines", "body": [{"carrier": "YY", "name": "Why"}]},
        failing,
    ])
    assert response.status_code == status
    assert response.json()["code"] == code
    assert response.json()["message"].startswith("Operation 1 failed, so the batch wrote nothing")
    assert carriers(client) == {"AA": "American"}


@pytest.mark.parametrize("body", [
    {"method": "GET"}, [{"method": "PUT", "path": "/api/airlines"}], [{"method": "GET", "path": "/etc/passwd"}],
    [{"method": "GET", "path": "/api/airlines", "extra": 1}], ["GET /api/airlines"],
    [{"method": "GET", "path": "/api/airlines", "headers": {"Prefer": 1}}],
    [{"method": "GET", "path": "/api/airlines", "headers": {"Préfer": "x"}}],
])
def test_malformed_batches_are_400s(client, body):
    response = client.post("/api/_batch", json=body)
    assert response.status_code == 400 and set(response.json()) == {"code", "message", "details", "hint"}


def test_a_batch_is_bounded_by_max_rows_in_operations_and_in_rows(client):
    huge = [{"method": "GET", "path": "/api/airlines"}] * 100_000
    response = client.post("/api/_batch", json=huge)
    assert response.status_code == 413
    client.post("/api/airlines", json=[{"carrier": f"A{n}", "name": "x"} for n in range(4)])
    reads = [{"method": "GET", "path": "/api/airlines"}] * 2  # 5 rows each, 10 in all, over the 5 allowed
    assert client.post("/api/_batch", json=reads).status_code == 413


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.fixed_dictionaries(
    {"method": st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT", "get"]),
     "path": st.one_of(st.text(max_size=30), st.sampled_from(
         ["/api/airlines", "/api/airlines/AA", "/api/airlines?carrier=eq.AA", "/api/flights?select=id::text",
          "/api/airlines?columns=carrier", "/api/_batch", "/api/airlines?having=n.gt.1", "/api/airlines/%00"])),
     "body": st.one_of(st.none(), st.just({"carrier": "QQ", "name": "Q"}), st.just([{"name": 1}]), st.text(max_size=5),
                       st.integers())},
    optional={"headers": st.dictionaries(st.sampled_from(["Prefer", "Range", "X", "Ü"]),
                                         st.sampled_from(["handling=strict, x", "return=representation", "0-1",
                                                          "tx=rollback", "é"]))}), max_size=6))
def test_any_batch_is_answered_or_refused_never_a_500(client, operations):
    response = client.post("/api/_batch", json=operations)
    assert response.status_code in (200, 300, 400, 404, 406, 409, 413, 422), response.text[:300]
    if response.status_code != 200:
        assert set(response.json()) == {"code", "message", "details", "hint"}
