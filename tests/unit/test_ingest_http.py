"""POST /ingest/{table} and the /ingest/batches routes, on the in-memory store."""

from __future__ import annotations

import orjson
import pytest

from entrypoints import ingest_routes
from tests.unit.conftest import memory_container

AIRLINES_CSV = b"carrier,name\nAA,American Airlines Inc.\nUA,NA\nbad,Nope\n"


@pytest.fixture
def sources(client):
    response = client.post("/api/sources", json=[{"code": "scraper", "name": "S", "priority": 1},
                                                 {"code": "official", "name": "O", "priority": 5}])
    assert response.status_code == 201


def post(client, table, body, content_type, headers=None, **params):
    return client.post(f"/ingest/{table}", params=params, content=body,
                       headers={"Content-Type": content_type, **(headers or {})})


def test_csv_body_with_a_null_token(client, sources):
    response = post(client, "airlines", AIRLINES_CSV, "text/csv", source="scraper", csv_null="NA")
    assert response.status_code == 200
    report = response.json()
    assert {k: report[k] for k in ("status", "received", "inserted", "rejected")} == {
        "status": "completed", "received": 3, "inserted": 1, "rejected": 2}
    assert [(e["row"], e["field"], e["code"]) for e in report["errors"]] == [
        (2, "name", "not_null"), (3, "carrier", "pattern")]
    rejections = client.get(f"/ingest/batches/{report['batch_id']}/rejections")
    assert rejections.headers["content-range"] == "0-1/2"
    assert rejections.json()[0]["payload"] == {"carrier": "UA", "name": None}


def test_json_array_and_ndjson_bodies(client, sources):
    array = orjson.dumps([{"carrier": "AA", "name": "American"}, 5, {"carrier": "DL", "name": "Delta"}])
    report = post(client, "airlines", array, "application/json").json()
    assert (report["inserted"], report["rejected"]) == (2, 1)
    ndjson = b'{"carrier": "AA", "name": "American"}\n{not json\n\n{"carrier": "UA", "name": "United"}\n'
    report = post(client, "airlines", ndjson, "application/x-ndjson", source="official").json()
    assert (report["received"], report["updated"], report["inserted"], report["rejected"]) == (3, 0, 1, 1)
    assert report["unchanged"] == 1
    assert report["errors"][0]["row"] == 2


def test_many_chunks_stream_through(client, sources, monkeypatch):
    monkeypatch.setattr(ingest_routes, "CHUNK_ROWS", 7)
    lines = b"".join(b"M%d\n" % i for i in range(100))
    report = post(client, "manufacturers", b"name\n" + lines, "text/csv").json()
    assert (report["received"], report["inserted"]) == (100, 100)
    batch = client.get(f"/ingest/batches/{report['batch_id']}").json()
    assert (batch["status"], batch["inserted"]) == ("completed", 100)


def test_refusals(client, sources):
    assert post(client, "airlines", AIRLINES_CSV, "text/csv", source="nobody").status_code == 400
    assert post(client, "nowhere", AIRLINES_CSV, "text/csv").status_code == 404
    assert post(client, "airlines", AIRLINES_CSV, "text/csv", mode="sometimes").status_code == 400
    assert post(client, "airlines", AIRLINES_CSV, "application/xml").status_code == 415
    assert post(client, "airlines", b'{"carrier": "AA"}', "application/json").status_code == 400
    assert post(client, "airlines", b'[{"carrier": "AA"', "application/json").status_code == 400
    bad_header = post(client, "airlines", b"carrier,nom\nAA,x\n", "text/csv")
    assert bad_header.status_code == 400 and bad_header.json()["details"][0]["code"] == "unknown_column"
    assert client.get("/ingest/batches/999").status_code == 404
    assert client.get("/api/airlines").json() == []


def test_atomic_failure_is_422_with_the_report_under_details(client, sources):
    response = post(client, "airlines", AIRLINES_CSV, "text/csv", mode="atomic", csv_null="NA")
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"code", "message", "details", "hint"}
    assert (body["details"]["status"], body["details"]["rejected"], body["details"]["inserted"]) == ("failed", 2, 0)
    assert client.get("/api/airlines").json() == []


def test_idempotency_key(client, sources):
    headers = {"Idempotency-Key": "abc"}
    first = post(client, "airlines", AIRLINES_CSV, "text/csv", headers, csv_null="NA")
    client.patch("/api/airlines/AA", json={"name": "Renamed"})
    again = post(client, "airlines", AIRLINES_CSV, "text/csv", headers, csv_null="NA")
    assert again.status_code == 200 and again.json() == first.json()
    assert client.get("/api/airlines/AA").json()["name"] == "Renamed"
    clash = post(client, "airlines", b"carrier,name\nAA,Other\n", "text/csv", headers)
    assert clash.status_code == 409
    assert len(client.get("/ingest/batches").json()) == 1


def test_body_too_large_is_413():
    from fastapi.testclient import TestClient

    from entrypoints.app import create_app

    with TestClient(create_app(memory_container(max_body_bytes=100))) as small:
        response = post(small, "manufacturers", b"name\n" + b"x" * 200 + b"\n", "text/csv")
        assert response.status_code == 413
        # streamed without a length: refused while reading, and the batch is failed, not running
        response = small.post("/ingest/manufacturers", content=iter([b"name\n", b"y" * 60 + b"\n", b"z" * 60]),
                              headers={"Content-Type": "text/csv"})
        assert response.status_code == 413
        assert [b["status"] for b in small.get("/ingest/batches").json()] == ["failed"]


def test_batches_listing_pages_and_replay(client, sources):
    for _ in range(3):
        post(client, "routes", b"carrier,origin,dest\nAA,JFK,LAX\n", "text/csv")
    listing = client.get("/ingest/batches", params={"limit": 2, "offset": 1})
    assert listing.headers["content-range"] == "1-2/3"
    assert [b["id"] for b in listing.json()] == [2, 1]
    post(client, "airlines", b"carrier,name\nAA,American\n", "text/csv")
    post(client, "airports", b"faa,name,lat,lon,alt\nJFK,Kennedy,40.6,-73.7,13\nLAX,LA,33.9,-118.4,38\n", "text/csv")
    replayed = client.post("/ingest/batches/1/replay")
    assert replayed.status_code == 200
    assert (replayed.json()["inserted"], replayed.json()["rejected"]) == (1, 0)
    assert client.get("/ingest/batches/1/rejections", params={"unresolved": "true"}).json() == []


def test_openapi_documents_the_ingest_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/ingest/{table}", "/ingest/batches", "/ingest/batches/{batch_id}",
            "/ingest/batches/{batch_id}/rejections", "/ingest/batches/{batch_id}/replay"} <= set(paths)
    assert set(paths["/ingest/{table}"]["post"]["requestBody"]["content"]) == {
        "text/csv", "application/json", "application/x-ndjson", "application/vnd.apache.parquet"}
