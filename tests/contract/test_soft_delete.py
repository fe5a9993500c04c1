"""Tables declared soft_delete=True, over HTTP on both adapters: deletes, retirements and delete batches
mark rows (`deleted_at`), every read leaves them out unless include_deleted=true, a later batch
revives them, and a revert brings them back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import pytest
from fastapi.testclient import TestClient

from depot.examples.flights.catalog import CATALOG
from domain.schema import Catalog, References
from tests.serving import STORES, served_on
from tests.system_columns import by_role


def shop_catalog(prefix: str | None) -> Catalog:
    catalog = CATALOG.extend()

    @catalog.table("shops", group="primary", natural_key=("code",), soft_delete=True, system_columns=prefix)
    class Shop:
        code: str
        name: str

    @catalog.table("prices", group="instances", natural_key=("shop", "item"), surrogate_id=True,
                   soft_delete=True, system_columns=prefix)
    class Price:
        shop: Annotated[str, References("shops")]
        item: str
        price: float

    return catalog


@pytest.fixture(params=STORES)
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    with served_on(request, shop_catalog) as test_client:
        yield test_client


def spec(client: TestClient, name: str):
    return client.spec[name]  # type: ignore[attr-defined]


def rows(client: TestClient, name: str, **params) -> list[dict]:
    answer = client.get(f"/api/{name}", params=params)
    assert answer.status_code == 200, answer.text
    return [by_role(spec(client, name), r) for r in answer.json()]


def ingest(client: TestClient, name: str, body: list[dict], **params) -> dict:
    answer = client.post(f"/ingest/{name}", json=body, params={"source": "scraper", **params})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture
def stocked(client: TestClient) -> TestClient:
    assert client.post("/api/sources", json=[{"code": "scraper", "name": "S", "priority": 1},
                                              {"code": "official", "name": "O", "priority": 5}]).status_code == 201
    ingest(client, "shops", [{"code": "a", "name": "A"}, {"code": "b", "name": "B"}])
    ingest(client, "prices", [{"shop": "a", "item": "tea", "price": 2.0}, {"shop": "a", "item": "jam", "price": 3.5},
                              {"shop": "b", "item": "tea", "price": 2.5}])
    return client


def test_a_soft_delete_table_has_deleted_at_as_a_system_column(client: TestClient):
    shops = spec(client, "shops")
    assert shops.soft_delete and shops.system.role_of(shops.system.deleted_at) == "deleted_at"
    assert shops.column(shops.system.deleted_at).nullable and not shops.column(shops.system.deleted_at).writable
    assert not spec(client, "airlines").soft_delete


def test_delete_marks_rows_that_every_read_then_leaves_out(stocked: TestClient):
    client = stocked
    tea_b = next(r for r in rows(client, "prices") if r["shop"] == "b")
    assert client.delete("/api/prices", params={"shop": "eq.b"}).status_code == 204
    assert {(r["shop"], r["item"]) for r in rows(client, "prices")} == {("a", "tea"), ("a", "jam")}
    assert client.get(f"/api/prices/{tea_b['id']}").status_code == 404
    counted = client.get("/api/prices", headers={"Prefer": "count=exact"})
    assert counted.headers["content-range"] == "0-1/2"
    assert rows(client, "prices", select="n:count()") == [{"n": 2}]
    embedded = rows(client, "shops", select="code,prices(item)", order="code")
    assert [(r["code"], sorted(p["item"] for p in r["prices"])) for r in embedded] == [("a", ["jam", "tea"]), ("b", [])]
    assert [r["code"] for r in rows(client, "shops", select="code,prices!inner(item)")] == ["a"]
    assert [r["code"] for r in rows(client, "shops", select="code,prices()", prices="is.null")] == ["b"]
    csv = client.get("/api/prices", headers={"Accept": "text/csv"}, params={"select": "shop,item"})
    assert csv.status_code == 200 and ",b," not in csv.text and "b,tea" not in csv.text

    everything = rows(client, "prices", include_deleted="true", shop="eq.b")
    assert len(everything) == 1 and everything[0]["deleted_at"] is not None
    assert everything[0]["version"] == tea_b["version"] + 1
    one = client.get(f"/api/prices/{tea_b['id']}", params={"include_deleted": "true"})
    assert one.status_code == 200 and by_role(spec(client, "prices"), one.json())["deleted_at"] is not None
    # a second delete finds nothing to delete; a PATCH finds nothing to change
    assert client.delete("/api/prices", params={"shop": "eq.b"},
                         headers={"Prefer": "return=representation"}).json() == []
    assert client.patch(f"/api/prices/{tea_b['id']}", json={"price": 9}).status_code == 404


def test_a_deleted_row_is_left_out_of_embeds_both_ways(stocked: TestClient):
    client = stocked
    assert client.delete("/api/shops/b").status_code == 204  # its prices stay: only marked, nothing cascades
    assert [r["code"] for r in rows(client, "shops")] == ["a"]
    by_shop = {(r["shop"], r["item"]): r["shops"] for r in rows(client, "prices", select="shop,item,shops(name)")}
    assert by_shop[("b", "tea")] is None and by_shop[("a", "tea")] == {"name": "A"}
    inner = rows(client, "prices", select="shop,item,shops!inner(name)")
    assert {r["shop"] for r in inner} == {"a"}
    assert {r["code"] for r in rows(client, "shops", include_deleted="true")} == {"a", "b"}
    embedded = rows(client, "prices", select="shop,shops(name)", include_deleted="true", shop="eq.b")
    assert embedded == [{"shop": "b", "shops": {"name": "B"}}]
    by_shop_embed = rows(client, "shops", select="code,prices(item)", order="code")
    assert by_shop_embed == [{"code": "a", "prices": by_shop_embed[0]["prices"]}]
    assert sorted(p["item"] for p in by_shop_embed[0]["prices"]) == ["jam", "tea"]


def test_include_deleted_takes_true_or_false(stocked: TestClient):
    for url in ("/api/prices", "/api/prices/1"):
        bad = stocked.get(url, params={"include_deleted": "yes"})
        assert bad.status_code == 400, bad.text
        assert set(bad.json()) == {"code", "message", "details", "hint"}
        assert "include_deleted" in bad.json()["message"]
    assert stocked.get("/api/prices", params={"include_deleted": "false"}).status_code == 200


def test_a_delete_batch_marks_rows_and_a_later_batch_revives_them(stocked: TestClient):
    client = stocked
    before = {(r["shop"], r["item"]): r for r in rows(client, "prices")}
    deleted = ingest(client, "prices", [{"shop": "a", "item": "tea", "price": 0}], disposition="delete")
    assert deleted["deleted"] == 1
    assert ("a", "tea") not in {(r["shop"], r["item"]) for r in rows(client, "prices")}
    marked = rows(client, "prices", include_deleted="true", item="eq.tea", shop="eq.a")[0]
    assert marked["batch_id"] == deleted["batch_id"] and marked["deleted_at"] is not None

    # insert_only does not bring it back: a replay leaves deleted what was deleted
    ignored = ingest(client, "prices", [{"shop": "a", "item": "tea", "price": 2.0}], disposition="insert_only")
    assert (ignored["inserted"], ignored["updated"], ignored["unchanged"]) == (0, 0, 1)
    assert ("a", "tea") not in {(r["shop"], r["item"]) for r in rows(client, "prices")}

    # the same values again: revived (counted updated), with its id, created_at and a new version
    revived = ingest(client, "prices", [{"shop": "a", "item": "tea", "price": 2.0}])
    assert (revived["inserted"], revived["updated"], revived["unchanged"]) == (0, 1, 0)
    back = {(r["shop"], r["item"]): r for r in rows(client, "prices")}[("a", "tea")]
    old = before[("a", "tea")]
    assert (back["id"], back["created_at"], back["deleted_at"]) == (old["id"], old["created_at"], None)
    assert back["version"] == old["version"] + 2

    changes = client.get(f"/ingest/batches/{deleted['batch_id']}/changes").json()
    assert [c["change"] for c in changes] == ["deleted"]
    assert [c["change"] for c in client.get(f"/ingest/batches/{revived['batch_id']}/changes").json()] == ["revived"]
    history = [by_role(spec(client, "prices_history"), h)
               for h in client.get(f"/api/prices/{old['id']}/history").json()]
    assert [(h["operation"], h["deleted_at"] is None) for h in history] == [
        ("update", True), ("update", False), ("insert", True)]
    assert history[1]["batch_id"] == deleted["batch_id"]


def test_a_natural_key_stays_taken_by_a_deleted_row(stocked: TestClient):
    client = stocked
    assert client.delete("/api/shops/b").status_code == 204
    clash = client.post("/api/shops", json={"code": "b", "name": "B again"})
    assert clash.status_code == 409 and clash.json()["code"] == "23505"
    merged = client.post("/api/shops", json={"code": "b", "name": "B again"},
                         headers={"Prefer": "resolution=merge-duplicates,return=representation"})
    assert merged.status_code == 201, merged.text
    assert {r["code"]: r["name"] for r in rows(client, "shops")} == {"a": "A", "b": "B again"}


def test_replace_partition_retires_by_marking_under_the_priority_rule(stocked: TestClient):
    client = stocked
    ingest(client, "prices", [{"shop": "a", "item": "rum", "price": 20.0}], source="official")
    report = ingest(client, "prices", [{"shop": "a", "item": "tea", "price": 2.0}],
                    disposition="replace_partition", partition="shop")
    assert report["retired"] == 1  # jam; rum belongs to the stronger source
    assert {r["item"] for r in rows(client, "prices", shop="eq.a")} == {"tea", "rum"}
    deleted_at = spec(client, "prices").system.deleted_at
    retired = rows(client, "prices", include_deleted="true", **{deleted_at: "not.is.null"})
    assert [(r["item"], r["batch_id"]) for r in retired] == [("jam", report["batch_id"])]
    assert [c["change"] for c in client.get(f"/ingest/batches/{report['batch_id']}/changes").json()] == ["retired"]

    reverted = client.post(f"/ingest/batches/{report['batch_id']}/revert")
    assert reverted.status_code == 200, reverted.text
    assert reverted.json()["updated"] == 1
    assert {r["item"] for r in rows(client, "prices", shop="eq.a")} == {"tea", "jam", "rum"}
    assert rows(client, "prices", include_deleted="true", **{deleted_at: "not.is.null"}) == []


def test_the_watermark_leaves_deleted_rows_out(stocked: TestClient):
    client = stocked
    assert client.patch("/api/sources", params={"code": "eq.scraper"},
                        json={"profile": {"cursor": "price"}}).status_code == 204
    mark = client.get("/ingest/sources/scraper/watermark", params={"table": "prices"})
    assert mark.status_code == 200 and mark.json()["watermark"] == 3.5
    assert client.delete("/api/prices", params={"item": "eq.jam"}).status_code == 204
    assert client.get("/ingest/sources/scraper/watermark", params={"table": "prices"}).json()["watermark"] == 2.5


def test_openapi_documents_include_deleted_and_the_column(client: TestClient):
    document = client.get("/openapi.json").json()
    deleted_at = spec(client, "prices").system.deleted_at
    listed = document["paths"]["/api/prices"]["get"]["parameters"]
    assert "include_deleted" in {p["name"] for p in listed}
    one = document["paths"]["/api/prices/{key}"]["get"].get("parameters", [])
    assert "include_deleted" in {p["name"] for p in one}
    assert "include_deleted" not in {p["name"] for p in document["paths"]["/api/airlines"]["get"]["parameters"]}
    schemas = document["components"]["schemas"]
    row = next(s for name, s in schemas.items() if name.lower().startswith("price") and deleted_at in s.get(
        "properties", {}))
    assert deleted_at in row["properties"]


def test_a_deleted_row_still_satisfies_references(stocked: TestClient):
    client = stocked
    assert client.delete("/api/shops/b").status_code == 204
    report = ingest(client, "prices", [{"shop": "b", "item": "rum", "price": 9.0}])
    assert (report["inserted"], report["rejected"]) == (1, 0)  # the row is there for the foreign key
    rum = rows(client, "prices", select="item,shops(code)", item="eq.rum")
    assert rum == [{"item": "rum", "shops": None}]
