"""Source profiles over HTTP, on the in-memory store: /api/sources edits them, query parameters override them."""

from __future__ import annotations

import orjson


def post(client, table, body, content_type, **params):
    return client.post(f"/ingest/{table}", params=params, content=body, headers={"Content-Type": content_type})


def test_a_profile_is_edited_through_api_sources(client):
    profile = {"columns": {"Code": "carrier", "Airline": "name"}, "record_path": "data.results"}
    assert client.post("/api/sources", json={"code": "feed", "name": "Feed", "profile": profile}).status_code == 201
    assert client.get("/api/sources/feed").json()["profile"] == profile
    body = orjson.dumps({"data": {"results": [{"Code": "AA", "Airline": "American"}]}, "next": None})
    report = post(client, "airlines", body, "application/json", source="feed").json()
    assert (report["inserted"], report["rejected"]) == (1, 0)


def test_query_parameters_override_the_profile(client):
    body = b"ID;Name\nAA,American\n".replace(b";", b",")
    report = post(client, "airlines", body, "text/csv", columns="ID:carrier,Name:name").json()
    assert report["inserted"] == 1
    body = orjson.dumps({"items": [{"carrier": "UA", "name": "United", "extra": 1}]})
    report = post(client, "airlines", body, "application/json", record_path="items", unknown="discard").json()
    assert (report["inserted"], report["rejected"]) == (1, 0)
    assert client.get("/ingest/batches/2").json()["profile"] == {"record_path": "items",
                                                                 "contract": {"unknown": "discard"}}


def test_bad_profiles_and_bodies_are_400_in_the_error_shape_and_write_nothing(client):
    refused = client.post("/api/sources", json={"code": "bad", "name": "Bad", "profile": {"colums": {}}})
    assert refused.status_code == 400
    assert set(refused.json()) == {"code", "message", "details", "hint"}
    assert "unknown key 'colums'" in refused.json()["message"]
    assert client.get("/api/sources?code=eq.bad").json() == []

    bad_pattern = post(client, "airlines", b"carrier,name\nAA,A\n", "text/csv", date_format="%d/%Q")
    assert bad_pattern.status_code == 400 and "strftime" in bad_pattern.json()["message"]
    not_there = post(client, "airlines", orjson.dumps({"data": []}), "application/json", record_path="items")
    assert not_there.status_code == 400 and "record_path 'items' is not in the body" in not_there.json()["message"]
    frozen = post(client, "airlines", b"carrier,name,colour\nAA,A,red\n", "text/csv", unknown="freeze")
    assert frozen.status_code == 400 and frozen.json()["details"] == {"column": "colour"}
    bad_pair = post(client, "airlines", b"carrier,name\nAA,A\n", "text/csv", columns="nocolon")
    assert bad_pair.status_code == 400
    assert client.get("/api/airlines").json() == []


def test_the_watermark_route(client):
    profile = {"tables": {"airlines": {"cursor": "carrier"}}}
    assert client.post("/api/sources", json={"code": "feed", "name": "Feed", "profile": profile}).status_code == 201
    post(client, "airlines", b"carrier,name\nAA,A\nUA,U\n", "text/csv", source="feed")
    mark = client.get("/ingest/sources/feed/watermark", params={"table": "airlines"})
    assert mark.json() == {"source": "feed", "table": "airlines", "cursor": "carrier", "watermark": "UA"}
    assert client.get("/ingest/sources/nobody/watermark", params={"table": "airlines"}).status_code == 404
    assert client.get("/ingest/sources/feed/watermark", params={"table": "planes"}).status_code == 400


def test_a_gzip_body_is_inflated_as_it_streams(client):
    import gzip

    body = b"carrier,name\n" + b"".join(b"C%d,Carrier %d\n" % (i, i) for i in range(10, 99))
    packed = gzip.compress(body)
    report = client.post("/ingest/airlines", content=packed,
                         headers={"Content-Type": "text/csv", "Content-Encoding": "gzip"}).json()
    assert (report["inserted"], report["rejected"]) == (89, 0)
    broken = client.post("/ingest/airlines", content=packed[:-30],
                         headers={"Content-Type": "text/csv", "Content-Encoding": "gzip"})
    assert broken.status_code == 400 and "gzip" in broken.json()["message"]
    refused = client.post("/ingest/airlines", content=body, headers={"Content-Type": "text/csv",
                                                                      "Content-Encoding": "br"})
    assert refused.status_code == 415


def test_a_gzip_body_may_not_inflate_past_the_body_limit():
    import gzip

    from fastapi.testclient import TestClient

    from entrypoints.app import create_app
    from tests.unit.conftest import memory_container

    bomb = gzip.compress(b"name\n" + b"x" * 50_000 + b"\n")
    with TestClient(create_app(memory_container(max_body_bytes=10_000))) as client:
        answer = client.post("/ingest/manufacturers", content=bomb,
                             headers={"Content-Type": "text/csv", "Content-Encoding": "gzip"})
        assert len(bomb) < 10_000 and answer.status_code == 413
        assert client.get("/api/manufacturers").json() == []


def _parquet(columns: dict, row_group_size: int = 2) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink, row_group_size=row_group_size)
    return sink.getvalue()


def test_parquet_in_and_out(client, monkeypatch):
    import datetime as dt
    import io

    import pyarrow.parquet as pq

    from entrypoints import ingest_routes

    monkeypatch.setattr(ingest_routes, "CHUNK_ROWS", 2)  # several record batches
    client.post("/api/airports", json=[{"faa": "EWR", "name": "Newark", "lat": 40.7, "lon": -74.2, "alt": 18}])
    hours = [dt.datetime(2013, 1, 1, h, tzinfo=dt.UTC) for h in range(5)]
    body = _parquet({"Station": ["EWR"] * 5, "time_hour": hours, "year": [2013] * 5, "month": [1] * 5,
                     "day": [1] * 5, "hour": list(range(5)), "temp": [1.5, None, 3.0, 4.0, 5.0]})
    report = client.post("/ingest/weather", params={"columns": "Station:origin"}, content=body,
                         headers={"Content-Type": "application/vnd.apache.parquet"}).json()
    assert (report["received"], report["inserted"], report["rejected"]) == (5, 5, 0), report

    answer = client.get("/api/weather", params={"select": "origin,time_hour,temp", "order": "time_hour"},
                        headers={"Accept": "application/vnd.apache.parquet"})
    assert answer.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(answer.content))
    assert table.column_names == ["origin", "time_hour", "temp"]
    assert table.column("time_hour").to_pylist() == hours
    assert table.column("temp").to_pylist() == [1.5, None, 3.0, 4.0, 5.0]

    broken = client.post("/ingest/weather", content=b"PAR1 not really",
                         headers={"Content-Type": "application/vnd.apache.parquet"})
    assert broken.status_code == 400 and "Parquet" in broken.json()["message"]


def test_rejections_are_corrected_and_dismissed_over_http(client):
    report = post(client, "airlines", b"carrier,name\naa,American\nbad!,X\n", "text/csv").json()
    first, second = client.get(f"/ingest/batches/{report['batch_id']}/rejections").json()
    fixed = client.patch(f"/ingest/rejections/{first['id']}", json={"carrier": "AA", "name": "American"})
    assert fixed.status_code == 200 and fixed.json()["payload"]["carrier"] == "AA"
    gone = client.post(f"/ingest/rejections/{second['id']}/dismiss", json={"reason": "test row"})
    assert gone.json()["dismissed_reason"] == "test row"
    assert client.post(f"/ingest/rejections/{second['id']}/dismiss", json={"reason": "x"}).status_code == 409
    assert client.post(f"/ingest/rejections/{second['id']}/dismiss", content=b"{oops").status_code == 400
    assert client.patch("/ingest/rejections/999", json={"carrier": "AA"}).status_code == 404
    replay = client.post(f"/ingest/batches/{report['batch_id']}/replay").json()
    assert (replay["inserted"], replay["rejected"]) == (1, 0)
    nothing = client.post(f"/ingest/batches/{report['batch_id']}/replay").json()
    assert (nothing["batch_id"], nothing["received"]) == (None, 0)


def test_odd_overrides_are_400_never_500(client):
    body = b"carrier,name\nAA,A\n"
    for params in ({"timezone": "a" * 300}, {"timezone": "\x00"}, {"date_format": "%%"}, {"date_format": "%"},
                   {"columns": "[1, 2]"}, {"columns": '{"a": 1}'}, {"set": "{oops"}, {"match": "fuzzy"},
                   {"decimal_comma": "maybe"}, {"invalid": "x"}):
        assert post(client, "airlines", body, "text/csv", **params).status_code == 400, params


def test_the_manual_source_reads_back_with_every_column(client):
    (manual,) = client.get("/api/sources", params={"code": "eq.manual", "select": "code,profile"}).json()
    assert manual == {"code": "manual", "profile": None}
