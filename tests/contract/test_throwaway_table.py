"""One declaration is all a table needs: a table declared here, in the test, gets working CRUD,
validation and documentation through HTTP on both adapters, with no other code."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Annotated

import pytest
from annotated_types import Ge
from fastapi.testclient import TestClient

from depot.examples.flights.catalog import CATALOG
from domain.schema import Catalog, Pattern, References
from tests.serving import served


def gadget_catalog() -> Catalog:
    catalog = CATALOG.extend()

    @catalog.table("gadgets", group="secondary", natural_key=("sku",))
    class Gadget:
        """Things a test invents."""

        sku: Annotated[str, Pattern(r"[A-Z]{3}-[0-9]{3}")]
        weight: Annotated[float, Ge(0)]
        maker: Annotated[str, References("manufacturers")]
        released: dt.date | None = None

    return catalog


@pytest.fixture(params=["memory", "postgres"])
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    with served(gadget_catalog(), request.param, request) as test_client:
        yield test_client


def test_a_declared_table_gets_crud_validation_and_docs(client: TestClient):
    assert client.post("/api/manufacturers", json={"name": "ACME"}).status_code == 201

    created = client.post(
        "/api/gadgets",
        json=[{"sku": "ABC-001", "weight": 1.5, "maker": "ACME", "released": "2026-01-31"},
              {"sku": "ABC-002", "weight": 0, "maker": "ACME"}],
        headers={"Prefer": "return=representation"},
    )
    assert created.status_code == 201, created.text
    assert [g["version"] for g in created.json()] == [1, 1]

    listed = client.get("/api/gadgets", params={"weight": "gt.1", "order": "sku.desc"})
    assert [g["sku"] for g in listed.json()] == ["ABC-001"]
    assert listed.json()[0]["released"] == "2026-01-31"

    one = client.get("/api/gadgets/ABC-002")
    assert one.status_code == 200 and one.headers["etag"] == '"1"'

    patched = client.patch("/api/gadgets/ABC-002", json={"weight": 2.25}, headers={"If-Match": '"1"'})
    assert patched.status_code == 200 and patched.json()["version"] == 2
    stale = client.patch("/api/gadgets/ABC-002", json={"weight": 3}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412

    assert client.delete("/api/gadgets", params={"sku": "eq.ABC-001"}).status_code == 204
    assert [g["sku"] for g in client.get("/api/gadgets").json()] == ["ABC-002"]


def test_a_declared_table_refuses_bad_rows_by_its_declaration(client: TestClient):
    client.post("/api/manufacturers", json={"name": "ACME"})
    bad = client.post("/api/gadgets", json={"sku": "abc", "weight": -1, "maker": "ACME", "colour": "red"})
    assert bad.status_code == 422
    assert {(d["field"], d["code"]) for d in bad.json()["details"]} == {
        ("sku", "pattern"), ("weight", "out_of_range"), ("colour", "unknown_column")
    }
    dangling = client.post("/api/gadgets", json={"sku": "ABC-003", "weight": 1, "maker": "Nobody"})
    assert dangling.status_code == 409 and dangling.json()["code"] == "23503"


def test_a_declared_table_is_documented_with_its_own_columns(client: TestClient):
    spec = client.get("/openapi.json").json()
    assert {"/api/gadgets", "/api/gadgets/{key}"} <= set(spec["paths"])
    insert = spec["components"]["schemas"]["GadgetsInsert"]
    assert set(insert["properties"]) == {"sku", "weight", "maker", "released"}
    assert insert["required"] == ["sku", "weight", "maker"]
    assert insert["properties"]["weight"]["minimum"] == 0
