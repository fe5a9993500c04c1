"""The generated table API over HTTP (in-memory storage): status codes, headers, the error shape."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from domain.ports import AbstractUnitOfWork
from entrypoints.settings import Settings

JSON = {"content-type": "application/json"}


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details", "hint"}
    assert body["message"]
    if code is not None:
        assert body["code"] == code
    return body


@pytest.fixture
def airlines(client):
    response = client.post("/api/airlines", json=[{"carrier": "AA", "name": "American"},
                                                  {"carrier": "UA", "name": "United"}])
    assert response.status_code == 201


def test_the_routes_receive_a_real_unit_of_work_not_a_wiring_marker(container):
    from entrypoints import dependencies
    from entrypoints.app import create_app

    request = SimpleNamespace(app=create_app(container))  # what the dependencies read of a request
    assert isinstance(asyncio.run(dependencies.get_uow(request)), AbstractUnitOfWork)
    assert isinstance(asyncio.run(dependencies.get_settings(request)), Settings)


def test_health_reports_storage_and_version(client):
    assert client.get("/health").json() == {"status": "ok", "storage": "memory", "version": "0.1.0"}


def test_post_returns_201_and_the_rows_on_request(client):
    created = client.post("/api/airlines", json={"carrier": "DL", "name": "Delta"},
                          headers={"Prefer": "return=representation"})
    assert created.status_code == 201
    assert created.headers["location"] == "/api/airlines/DL"
    assert [r["carrier"] for r in created.json()] == ["DL"]
    minimal = client.post("/api/airlines", json={"carrier": "B6", "name": "JetBlue"})
    assert minimal.status_code == 201 and minimal.content == b""


def test_post_accepts_csv(client):
    response = client.post("/api/airlines", content=b"carrier,name\r\nB6,JetBlue Airways\r\n9E,Endeavor\r\n",
                           headers={"content-type": "text/csv", "prefer": "return=representation"})
    assert response.status_code == 201
    assert [r["carrier"] for r in response.json()] == ["B6", "9E"]


def test_get_by_key_carries_an_etag_and_honours_if_none_match(client, airlines):
    one = client.get("/api/airlines/AA")
    assert one.status_code == 200 and one.json()["name"] == "American"
    assert client.get("/api/airlines/AA", headers={"if-none-match": one.headers["etag"]}).status_code == 304


def test_list_answers_an_array_with_content_range(client, airlines):
    response = client.get("/api/airlines", params={"order": "carrier.desc"})
    assert [r["carrier"] for r in response.json()] == ["UA", "AA"]
    assert response.headers["content-range"] == "0-1/*"
    counted = client.get("/api/airlines", params={"limit": 1}, headers={"Prefer": "count=exact"})
    assert counted.status_code == 206 and counted.headers["content-range"] == "0-0/2"


def test_object_representation_needs_exactly_one_row(client, airlines):
    accept = {"accept": "application/vnd.pgrst.object+json"}
    one = client.get("/api/airlines", params={"carrier": "eq.AA"}, headers=accept)
    assert one.json()["carrier"] == "AA"
    assert_error(client.get("/api/airlines", headers=accept), 406)


def test_patch_and_delete_with_filters(client, airlines):
    patched = client.patch("/api/airlines", params={"carrier": "in.(AA,UA)"}, json={"name": "Same"},
                           headers={"Prefer": "return=representation"})
    assert [r["version"] for r in patched.json()] == [2, 2]
    assert client.delete("/api/airlines", params={"carrier": "eq.UA"}).status_code == 204
    assert [r["carrier"] for r in client.get("/api/airlines").json()] == ["AA"]


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_patch_and_delete_without_a_filter_are_refused(client, airlines, method):
    kwargs = {"json": {"name": "everyone"}} if method == "patch" else {}
    assert_error(getattr(client, method)("/api/airlines", **kwargs), 400, "PGRST106")
    assert len(client.get("/api/airlines").json()) == 2


def test_wrong_type_is_422_with_per_field_details(client):
    body = assert_error(client.post("/api/airports", json={"faa": "JFK", "name": "JFK", "lat": "north",
                                                           "lon": 0, "alt": 1}), 422)
    assert body["details"] == [{"row": 1, "field": "lat", "code": "type", "message": "expected float, got 'north'"}]


def test_out_of_range_value_is_422(client):
    body = assert_error(client.post("/api/airports", json={"faa": "JFK", "name": "JFK", "lat": 91, "lon": 0,
                                                           "alt": 1}), 422)
    assert body["details"][0]["code"] == "out_of_range"


def test_unknown_column_in_body_is_422_and_in_filter_is_400(client):
    assert assert_error(client.post("/api/airlines", json={"carrier": "AA", "name": "x", "ceo": "y"}),
                        422)["details"][0]["code"] == "unknown_column"
    assert_error(client.get("/api/airlines", params={"ceo": "eq.y"}), 400, "PGRST204")


def test_unknown_table_is_404(client):
    assert_error(client.get("/api/planets"), 404, "PGRST205")
    assert_error(client.post("/api/planets", json={}), 404, "PGRST205")
    assert_error(client.get("/api/planets/earth"), 404, "PGRST205")


@pytest.mark.parametrize("body", [b"{", b"[1,", b"", b"nul", b'"just a string"', b"42"])
def test_malformed_json_is_400(client, body):
    assert_error(client.post("/api/airlines", content=body, headers=JSON), 400, "PGRST102")


def test_a_row_that_is_not_an_object_is_422(client):
    assert assert_error(client.post("/api/airlines", json=[1]), 422)["details"][0]["code"] == "type"


def test_unsupported_media_type_is_415(client):
    assert_error(client.post("/api/airlines", content=b"<xml/>", headers={"content-type": "application/xml"}), 415)


def test_malformed_csv_is_400(client):
    assert_error(client.post("/api/airlines", content=b"carrier,name\nAA\n", headers={"content-type": "text/csv"}),
                 400)


def test_duplicate_key_is_409(client, airlines):
    assert_error(client.post("/api/airlines", json={"carrier": "AA", "name": "again"}), 409, "23505")


def test_dangling_hard_reference_is_409(client, airlines):
    body = assert_error(client.post("/api/routes", json={"carrier": "AA", "origin": "JFK", "dest": "LAX"}),
                        409, "23503")
    assert "airports" in body["details"]


def test_stale_etag_is_412_and_nothing_changes(client, airlines):
    assert client.patch("/api/airlines/AA", json={"name": "AAL"}, headers={"If-Match": '"1"'}).status_code == 200
    assert_error(client.patch("/api/airlines/AA", json={"name": "lost"}, headers={"If-Match": '"1"'}), 412)
    assert_error(client.delete("/api/airlines/AA", headers={"If-Match": '"1"'}), 412)
    assert_error(client.patch("/api/airlines/AA", json={"name": "lost"}, headers={"If-Match": "garbage"}), 412)
    assert client.get("/api/airlines/AA").json()["name"] == "AAL"


def test_missing_row_is_404(client):
    assert_error(client.get("/api/airlines/ZZ"), 404)
    assert_error(client.get("/api/flights/not-a-number"), 404)
    assert_error(client.delete("/api/airlines/ZZ"), 404)


def test_bad_filter_value_and_operator_are_400(client):
    assert_error(client.get("/api/flights", params={"month": "eq.january"}), 400, "22P02")
    assert_error(client.get("/api/flights", params={"month": "about.1"}), 400)
    assert_error(client.get("/api/flights", params={"limit": "-1"}), 400)
    assert_error(client.get("/api/flights", params={"order": "month.sideways"}), 400)


def test_read_only_tables_refuse_writes_with_405(client):
    assert_error(client.post("/api/ingest_batches", json={}), 405)
    assert client.get("/api/ingest_batches").json() == []


def test_composite_key_tables_have_no_key_route(client):
    assert_error(client.get("/api/routes/AA"), 404, "PGRST125")


def test_openapi_documents_each_table_with_its_own_columns(client):
    spec = client.get("/openapi.json").json()
    flights = spec["components"]["schemas"]["Flights"]
    assert list(flights["properties"])[:4] == ["id", "year", "month", "day"]
    assert spec["components"]["schemas"]["AirportsInsert"]["properties"]["lat"]["maximum"] == 90
    post = spec["paths"]["/api/flights"]["post"]
    assert "FlightsInsert" in str(post["requestBody"])
    assert "/api/routes/{key}" not in spec["paths"] and "/api/airlines/{key}" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_upsert_on_the_generated_id_is_400_not_500(client):
    """No row can send an id (depot sets it), so on_conflict=id could never match: refused, with the
    natural key as the hint, instead of failing on the missing value."""
    weather = {"origin": "JFK", "time_hour": "2013-01-01T00:00:00Z", "year": 2013, "month": 1, "day": 1, "hour": 0}
    response = client.post("/api/weather", json=weather, params={"on_conflict": "id"},
                           headers={"Prefer": "resolution=merge-duplicates"})
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"code", "message", "details", "hint"}
    assert "depot sets" in body["message"] and "origin, time_hour" in body["hint"]
