"""GET /api/{table}/{key} is answered by a bare ASGI app (routes._lean_get), not FastAPI's wrapper:
it must answer exactly as the documented route did, reach the container's unit of work, and keep
the error shape. Request ids are a per-process random half and a counter instead of uuid4s."""

from __future__ import annotations

import os
import re

from adapters.memory.repository import InMemoryUnitOfWork, MemoryStore
from entrypoints import access_log
from service_layer import services


def test_get_by_key_answers_the_row_its_etag_and_the_json_media_type(client):
    client.post("/api/airlines", json={"carrier": "AA", "name": "American"})
    response = client.get("/api/airlines/AA")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["etag"] == '"1"'
    assert response.json()["name"] == "American"
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_get_by_key_errors_keep_postgrest_s_shape(client):
    missing = client.get("/api/airlines/ZZ")
    assert missing.status_code == 404 and set(missing.json()) == {"code", "message", "details", "hint"}
    garbled = client.get("/api/flights/not-a-number")  # no id can be that: 404, with the reason in details
    assert garbled.status_code == 404 and garbled.json()["details"]
    composite = client.get("/api/routes/AA")
    assert composite.status_code in (400, 404) and set(composite.json()) == {"code", "message", "details", "hint"}


def test_get_by_key_reads_through_the_container_s_unit_of_work(container, client):
    other = MemoryStore(container.catalog())
    services.create_rows(InMemoryUnitOfWork(other), "airlines", [{"carrier": "XX", "name": "Only in the override"}])
    assert client.get("/api/airlines/XX").status_code == 404
    with container.uow.override(InMemoryUnitOfWork(other)):
        assert client.get("/api/airlines/XX").json()["name"] == "Only in the override"


def test_get_by_key_stays_documented_with_its_row_schema(client):
    operation = client.get("/openapi.json").json()["paths"]["/api/airlines/{key}"]["get"]
    assert operation["operationId"] == "get_airlines"
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Airlines"}


def test_request_ids_are_unique_and_a_forked_child_draws_its_own():
    first, second = access_log.request_id_of({}), access_log.request_id_of({})
    assert first != second and first[:16] == second[:16]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write its id and leave at once, without pytest's teardown
        os.write(write, access_log.request_id_of({}).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 32 and child[:16] != first[:16]


def test_a_select_star_page_answers_the_same_rows_as_a_listed_select(client):
    """select=* hands the fetched rows over as they are (reads._shape); a listed select copies them."""
    client.post("/api/airlines", json=[{"carrier": "AA", "name": "American"}, {"carrier": "UA", "name": "United"}])
    star = client.get("/api/airlines?order=carrier").json()
    columns = list(star[0])
    listed = client.get(f"/api/airlines?order=carrier&select={','.join(reversed(columns))}").json()
    assert star == listed and [list(r) for r in listed] == [columns[::-1]] * 2
    assert [list(r) for r in star] == [columns] * 2
    first = client.get("/api/airlines?order=carrier&limit=1")  # a keyset page: no hidden column leaks out
    link = first.headers["link"]
    second = client.get(link[link.index("<") + 1:link.index(">")])
    assert first.json() + second.json() == star


def test_two_apps_in_one_process_each_reach_their_own_store():
    """The routes find their container through their app, not through a per-process wiring that the
    last app created would own (the fuzz tests' app read another test's store under pytest-xdist)."""
    from fastapi.testclient import TestClient

    from entrypoints.app import create_app
    from tests.unit.conftest import memory_container

    with TestClient(create_app(memory_container())) as first, TestClient(create_app(memory_container())) as second:
        assert first.post("/api/airlines", json=[{"carrier": "AA", "name": "A"}]).status_code == 201
        assert first.get("/api/airlines/AA").status_code == 200  # the lean GET
        assert second.get("/api/airlines/AA").status_code == 404
        assert second.get("/api/airlines").json() == []
        assert first.get("/api/airlines", params={"select": "carrier"}).json() == [{"carrier": "AA"}]
