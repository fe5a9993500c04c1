"""History over HTTP (memory adapter): a row's versions, as_of reads, a batch's changes, bad input."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from entrypoints.app import create_app
from tests.unit.conftest import memory_container


@pytest.fixture
def client() -> TestClient:
    with TestClient(create_app(memory_container(max_rows=2))) as client:
        yield client


def test_a_rows_versions_newest_first_paged_with_a_next_link(client):
    assert client.post("/api/airlines", json={"carrier": "AA", "name": "v1"}).status_code == 201
    middle = None
    for n in (2, 3):
        time.sleep(0.002)
        if n == 3:
            middle = client.get("/api/airlines/AA").json()["updated_at"]
        assert client.patch("/api/airlines/AA", json={"name": f"v{n}"}).status_code == 200
    first = client.get("/api/airlines/AA/history")
    assert first.status_code == 200
    assert [(r["operation"], r["name"]) for r in first.json()] == [("update", "v3"), ("update", "v2")]
    assert first.json()[0]["valid_to"] is None and first.json()[1]["valid_to"] == first.json()[0]["updated_at"]
    link = first.headers["link"]
    rest = client.get(link[1:link.index(">")])
    assert [(r["operation"], r["name"]) for r in rest.json()] == [("insert", "v1")]
    assert client.get("/api/airlines/ZZ/history").json() == []
    # as_of through the query string, with the rest of the read language
    at = client.get("/api/airlines", params={"as_of": middle, "select": "carrier,name"})
    assert at.status_code == 200 and at.json() == [{"carrier": "AA", "name": "v2"}]


def test_as_of_refuses_what_it_cannot_read(client):
    bad = client.get("/api/airlines", params={"as_of": "yesterday"})
    assert bad.status_code == 400 and bad.json()["message"].startswith("as_of= takes an instant")
    none = client.get("/api/sources", params={"as_of": "2026-11-01T00:00:00Z"})
    assert none.status_code == 400 and "keeps none" in none.json()["message"]


def test_a_batchs_changes(client):
    report = client.post("/ingest/airlines", content="carrier,name\nAA,x\nUA,y\n",
                         headers={"content-type": "text/csv"}).json()
    changes = client.get(f"/ingest/batches/{report['batch_id']}/changes")
    assert changes.status_code == 200
    assert [c["change"] for c in changes.json()] == ["inserted", "inserted"]
    assert changes.headers["content-range"] == "0-1/2"
    assert client.get("/ingest/batches/999/changes").status_code == 404


def test_openapi_documents_the_history_routes(client):
    spec = client.get("/openapi.json").json()
    assert "/api/airlines/{key}/history" in spec["paths"]
    assert "/ingest/batches/{batch_id}/changes" in spec["paths"]
    names = [p["name"] for p in spec["paths"]["/api/airlines"]["get"]["parameters"]]
    assert "as_of" in names


def test_revert_over_http(client):
    csv = {"content-type": "text/csv"}
    client.post("/ingest/airlines", content="carrier,name\nAA,x\n", headers=csv)
    wild = client.post("/ingest/airlines", content="carrier,name\nAA,wild\nUA,y\n", headers=csv).json()
    reverted = client.post(f"/ingest/batches/{wild['batch_id']}/revert")
    assert reverted.status_code == 200
    body = reverted.json()
    assert (body["updated"], body["deleted"], body["conflicts"]) == (1, 1, [])
    assert client.get("/api/airlines").json()[0]["name"] == "x"
    again = client.post(f"/ingest/batches/{wild['batch_id']}/revert")
    assert again.status_code == 409 and "force=true" in again.json()["hint"]
    assert client.post(f"/ingest/batches/{wild['batch_id']}/revert?force=true").status_code == 200
    assert client.post("/ingest/batches/999/revert").status_code == 404
    assert client.post(f"/ingest/batches/{wild['batch_id']}/revert?force=maybe").status_code in (400, 422)
    spec = client.get("/openapi.json").json()
    assert "/ingest/batches/{batch_id}/revert" in spec["paths"]


def test_claims_over_http(client):
    client.post("/api/sources", json=[{"code": "strong", "name": "S", "priority": 5},
                                      {"code": "weak", "name": "W", "priority": 1}])
    csv = {"content-type": "text/csv"}
    client.post("/ingest/airlines?source=strong", content="carrier,name\nAA,strong\n", headers=csv)
    client.post("/ingest/airlines?source=weak", content="carrier,name\nAA,weak\n", headers=csv)
    listed = client.get("/api/airlines/AA/claims")
    assert listed.status_code == 200
    assert [(c["source"], c["stored"], c["values"]["name"]) for c in listed.json()] == [
        ("strong", True, "strong"), ("weak", False, "weak")]
    promoted = client.post("/api/airlines/AA/claims/weak/promote")
    assert promoted.status_code == 200 and promoted.json()["name"] == "weak" and promoted.headers["etag"]
    assert client.post("/api/airlines/AA/claims/nobody/promote").status_code == 404
    assert client.get("/api/airlines/ZZ/claims").status_code == 404
    assert client.get("/api/sources/manual/claims").status_code in (404, 405)  # sources keep no claims
    assert "/api/airlines/{key}/claims/{source}/promote" in client.get("/openapi.json").json()["paths"]


def test_history_prune_without_days_keeps_everything(monkeypatch):
    from typer.testing import CliRunner

    from entrypoints.cli import app

    monkeypatch.delenv("DEPOT_HISTORY_DAYS", raising=False)
    result = CliRunner().invoke(app, ["history", "prune"])
    assert result.exit_code == 2 and "keep everything" in result.output


def test_depot_promote_claims_over_http():
    with TestClient(create_app(memory_container(promote_claims=True))) as client:
        client.post("/api/sources", json=[{"code": "strong", "name": "S", "priority": 5},
                                          {"code": "weak", "name": "W", "priority": 1}])
        csv = {"content-type": "text/csv"}
        client.post("/ingest/airlines?source=strong", content="carrier,name\nAA,strong\n", headers=csv)
        client.post("/ingest/airlines?source=weak", content="carrier,name\nAA,weak\n", headers=csv)
        assert client.delete("/api/airlines/AA").status_code == 204
        row = client.get("/api/airlines/AA").json()
        assert (row["name"], row["source"]) == ("weak", "weak")
