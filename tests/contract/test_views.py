"""Views and materialized views, declared with Catalog.view, read through the whole read language on
both adapters: the database's SQL view on PostgreSQL, the declared Python definition in memory."""

from __future__ import annotations

import decimal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import pytest
from fastapi.testclient import TestClient

from domain.schema import Catalog, References
from entrypoints.app import create_app
from entrypoints.container import Container
from entrypoints.settings import Settings


def shop_catalog() -> Catalog:
    catalog = Catalog()

    @catalog.table("customers", group="primary", natural_key=("code",))
    class Customer:
        code: str
        name: str

    @catalog.table("orders", group="secondary", natural_key=("number",))
    class Order:
        number: int
        customer: Annotated[str, References("customers")]
        total: decimal.Decimal

    def order_lines(read):  # the join of the SQL below, in Python, for the memory adapter
        names = {c["code"]: c["name"] for c in read("customers")}
        return [{"number": o["number"], "customer_name": names[o["customer"]], "total": o["total"]}
                for o in read("orders")]

    @catalog.view("order_lines", key=("number",), rows=order_lines)
    class OrderLine:
        """Orders with their customer's name (a join)."""

        number: int
        customer_name: str
        total: decimal.Decimal

    @catalog.view("big_orders", key=("number",),
                  rows=lambda read: [{"number": o["number"], "customer": o["customer"]}
                                     for o in read("orders") if o["total"] >= 100])
    class BigOrder:
        """A projection of the orders' key and foreign key: embeddable both ways."""

        number: Annotated[int, References("orders")]
        customer: Annotated[str, References("customers")]

    def spending(read):
        totals: dict[str, decimal.Decimal] = {}
        for o in read("orders"):
            totals[o["customer"]] = totals.get(o["customer"], decimal.Decimal(0)) + o["total"]
        return [{"customer": k, "spent": v} for k, v in totals.items()]

    @catalog.view("spending", key=("customer",), materialized=True, rows=spending)
    class Spending:
        customer: Annotated[str, References("customers")]
        spent: decimal.Decimal

    return catalog


VIEWS_SQL = [
    "CREATE VIEW order_lines AS SELECT o.number, c.name AS customer_name, o.total "
    "FROM orders o JOIN customers c ON c.code = o.customer",
    "CREATE VIEW big_orders AS SELECT number, customer FROM orders WHERE total >= 100",
    "CREATE MATERIALIZED VIEW spending AS SELECT customer, sum(total) AS spent FROM orders GROUP BY customer",
    "CREATE UNIQUE INDEX spending_customer ON spending (customer)",
]


@contextmanager
def served_shop(storage: str, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    catalog = shop_catalog()
    container = Container()
    container.catalog.override(catalog)
    if storage == "memory":
        container.settings.override(Settings(storage="memory"))
        with TestClient(create_app(container)) as client:
            yield client
        return
    from adapters.postgres.db import create_schema, make_engine

    url = request.getfixturevalue("new_database")()
    engine = make_engine(url, pool_size=1)
    create_schema(engine, catalog)
    with engine.begin() as connection:
        for statement in VIEWS_SQL:
            connection.exec_driver_sql(statement)
    engine.dispose()
    container.settings.override(Settings(storage="postgres", database_url=url, migrate_on_start=False))
    with TestClient(create_app(container)) as client:
        yield client


@pytest.fixture(params=["memory", "postgres"])
def shop(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    with served_shop(request.param, request) as client:
        assert client.post("/api/customers", json=[{"code": "ann", "name": "Ann"},
                                                   {"code": "bob", "name": "Bob"}]).status_code == 201
        assert client.post("/api/orders", json=[
            {"number": 1, "customer": "ann", "total": 150}, {"number": 2, "customer": "bob", "total": 20},
            {"number": 3, "customer": "ann", "total": 300}, {"number": 4, "customer": "bob", "total": 120},
        ]).status_code == 201
        yield client


def test_a_joining_view_reads_with_filters_order_and_count(shop: TestClient):
    response = shop.get("/api/order_lines?customer_name=eq.Ann&order=total.desc&select=number,total",
                        headers={"Prefer": "count=exact"})
    assert response.status_code == 200
    assert response.json() == [{"number": 3, "total": 300}, {"number": 1, "total": 150}]
    assert response.headers["content-range"] == "0-1/2"


def test_a_view_shows_its_tables_as_they_are_now(shop: TestClient):
    shop.patch("/api/orders?number=eq.2", json={"total": 500})
    assert [r["number"] for r in shop.get("/api/big_orders?order=number").json()] == [1, 2, 3, 4]


def test_a_view_reads_as_csv_in_pages_and_aggregates(shop: TestClient):
    csv = shop.get("/api/order_lines?order=number&limit=2", headers={"Accept": "text/csv"})
    assert csv.text.splitlines() == ["number,customer_name,total", "1,Ann,150", "2,Bob,20"]
    paged = shop.get("/api/order_lines?order=number", headers={"Range": "2-3"})
    assert [r["number"] for r in paged.json()] == [3, 4]
    grouped = shop.get("/api/order_lines?select=customer_name,orders:count()&order=customer_name")
    assert grouped.json() == [{"customer_name": "Ann", "orders": 2}, {"customer_name": "Bob", "orders": 2}]


def test_embeds_go_from_a_view_along_its_references(shop: TestClient):
    rows = shop.get("/api/big_orders?select=number,customers(name),orders(total)&order=number").json()
    assert rows == [{"number": 1, "customers": {"name": "Ann"}, "orders": {"total": 150}},
                    {"number": 3, "customers": {"name": "Ann"}, "orders": {"total": 300}},
                    {"number": 4, "customers": {"name": "Bob"}, "orders": {"total": 120}}]


def test_embeds_go_to_a_view_from_the_table_its_reference_names(shop: TestClient):
    rows = shop.get("/api/customers?select=code,big_orders(number)&order=code").json()
    assert rows == [{"code": "ann", "big_orders": [{"number": 1}, {"number": 3}]},
                    {"code": "bob", "big_orders": [{"number": 4}]}]


def test_an_embed_without_lineage_names_the_view(shop: TestClient):
    response = shop.get("/api/order_lines?select=number,customers(name)")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "PGRST200" and "order_lines" in body["message"]
    assert "order_lines" in body["hint"] and "view" in body["hint"]


@pytest.mark.parametrize("method,path", [
    ("POST", "/api/order_lines"), ("PATCH", "/api/order_lines?number=eq.1"), ("DELETE", "/api/order_lines?number=eq.1"),
    ("PUT", "/api/order_lines"), ("POST", "/ingest/order_lines"), ("POST", "/api/order_lines/refresh"),
    ("PATCH", "/api/spending?customer=eq.ann"),
])
def test_writes_to_a_view_answer_405(shop: TestClient, method: str, path: str):
    response = shop.request(method, path, json=[{"number": 9}])
    assert response.status_code == 405, response.text
    assert set(response.json()) == {"code", "message", "details", "hint"}


def test_a_materialized_view_holds_its_last_refresh(shop: TestClient):
    assert shop.post("/api/spending/refresh").status_code == 200
    before = shop.get("/api/spending?order=customer").json()
    assert before == [{"customer": "ann", "spent": 450}, {"customer": "bob", "spent": 140}]
    shop.post("/api/orders", json={"number": 5, "customer": "bob", "total": 1000})
    assert shop.get("/api/spending?order=customer").json() == before
    refreshed = shop.post("/api/spending/refresh")
    assert refreshed.status_code == 200
    assert refreshed.json()["view"] == "spending"
    rows = shop.get("/api/spending?select=spent,customers(name)&customer=eq.bob").json()
    assert rows == [{"spent": 1140, "customers": {"name": "Bob"}}]


def test_openapi_documents_views_as_read_only(shop: TestClient):
    paths = shop.get("/openapi.json").json()["paths"]
    assert set(paths["/api/order_lines"]) == {"get"}
    assert set(paths["/api/spending/refresh"]) == {"post"}
    assert "/api/order_lines/refresh" not in paths
