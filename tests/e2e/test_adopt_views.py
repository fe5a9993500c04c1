"""Adopting a database's views through the real CLI: the bookshop of legacy_shop.py plus views made by
SQL. `depot adopt` declares them (with the references their lineage gives), `depot migrate` keeps them
as they were around the tables' changes, and `depot serve` reads them, embeds through them, refuses
writes, and refreshes the materialized one."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.e2e.depot_process import DepotProcess
from tests.e2e.test_adopt import depot, legacy_database  # noqa: F401 - the fixture

VIEWS = [
    # a join: books with their author's and publisher's names
    "CREATE VIEW book_details AS SELECT b.isbn, b.title, a.name AS author, p.name AS publisher, b.price "
    "FROM books b JOIN authors a ON a.id = b.author_id LEFT JOIN publishers p ON p.code = b.publisher",
    # a projection of stock's key and foreign keys, renamed, and a computed column
    "CREATE VIEW stock_levels AS SELECT s.id AS stock_id, s.isbn AS book, s.store_id, s.quantity, "
    "s.quantity * 2 AS doubled FROM stock s WHERE s.quantity > 0",
    # a view over that view: its lineage is followed down to stock
    "CREATE VIEW big_stock AS SELECT stock_id, book FROM stock_levels WHERE quantity >= 3",
    "CREATE MATERIALIZED VIEW copies_by_book AS SELECT isbn, sum(quantity)::integer AS copies "
    "FROM stock GROUP BY isbn",
    "CREATE UNIQUE INDEX copies_by_book_isbn ON copies_by_book (isbn)",
    "COMMENT ON VIEW book_details IS 'Books as the shop shows them.'",
]

LEFT_HAND, HADRIEN = "9780441478125", "9782070368754"


def run_sql(url: str, *statements: str) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def test_adopt_migrate_serve_views(tmp_path: Path, legacy_database: str):  # noqa: F811
    run_sql(legacy_database, *VIEWS)
    project = tmp_path / "shop"
    adopted = depot("adopt", "--database-url", legacy_database, "--out", str(project),
                    "--natural-key", "reviews=isbn,reviewer", cwd=tmp_path)
    assert adopted.returncode == 0, adopted.stderr
    assert "and 4 views (read-only): book_details, copies_by_book, stock_levels, big_stock" in adopted.stdout
    catalog = (project / "catalog.py").read_text()
    assert '@CATALOG.view("copies_by_book", key=("isbn",), materialized=True)' in catalog
    assert '    book: Annotated[str | None, MaxLen(13), References("books")]' in catalog
    assert '    stock_id: Annotated[int | None, BigInt(), References("stock", "id")]' in catalog
    assert '"""Books as the shop shows them."""' in catalog

    migrated = depot("migrate", cwd=tmp_path, catalog=str(project / "catalog.py"), database_url=legacy_database)
    assert migrated.returncode == 0, migrated.stderr

    server = DepotProcess(database_url=legacy_database, catalog=str(project / "catalog.py"), log_level="warning",
                          log_dir=tmp_path, api_keys="reader:read,writer:write")
    try:
        server.wait_healthy()
        with server.client(headers={"Authorization": "Bearer writer"}) as http:
            reads_with_filters_order_and_count(http)
            embeds_through_the_projecting_view(http)
            writes_are_refused(http)
            refresh_shows_the_tables_as_they_are(http)
        with server.client(headers={"Authorization": "Bearer reader"}) as http:
            refused = http.post("/api/copies_by_book/refresh")
            assert refused.status_code == 403 and set(refused.json()) == {"code", "message", "details", "hint"}
    finally:
        server.stop()


def reads_with_filters_order_and_count(http) -> None:
    answer = http.get("/api/book_details", params={"price": "not.is.null", "order": "price.desc",
                                                   "select": "title,author,publisher"},
                      headers={"Prefer": "count=exact"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == [
        {"title": "The Left Hand of Darkness", "author": "Ursula K. Le Guin", "publisher": "Ace Books"},
        {"title": "Mémoires d'Hadrien", "author": "Marguerite Yourcenar", "publisher": "Gallimard"}]
    assert answer.headers["content-range"] == "0-1/2"
    csv = http.get("/api/stock_levels", params={"select": "book,quantity", "order": "quantity", "limit": "1"},
                   headers={"Accept": "text/csv"})
    assert csv.text.splitlines() == ["book,quantity", f"{HADRIEN},1"]


def embeds_through_the_projecting_view(http) -> None:
    levels = http.get("/api/stock_levels", params={"select": "quantity,books(title),stores(city),stock(observed_at)",
                                                   "order": "stock_id", "limit": "1"}).json()
    assert levels == [{"quantity": 3, "books": {"title": "The Left Hand of Darkness"}, "stores": {"city": "Lyon"},
                       "stock": {"observed_at": "2026-11-20T08:00:00"}}]
    books = http.get("/api/books", params={"select": "isbn,stock_levels(quantity)", "isbn": f"eq.{LEFT_HAND}",
                                           "stock_levels.order": "quantity"}).json()
    assert books == [{"isbn": LEFT_HAND, "stock_levels": [{"quantity": 3}, {"quantity": 40}]}]
    deep = http.get("/api/big_stock", params={"select": "book,books(title)", "order": "stock_id"}).json()
    assert deep == [{"book": LEFT_HAND, "books": {"title": "The Left Hand of Darkness"}}] * 2
    unrelated = http.get("/api/book_details", params={"select": "title,authors(name)"})
    assert unrelated.status_code == 400
    assert "book_details" in unrelated.json()["message"] and "view" in unrelated.json()["hint"]


def writes_are_refused(http) -> None:
    for method, path in [("POST", "/api/book_details"), ("PATCH", "/api/stock_levels?book=eq.x"),
                         ("DELETE", "/api/stock_levels?book=eq.x"), ("POST", "/ingest/book_details"),
                         ("POST", "/api/book_details/refresh")]:
        answer = http.request(method, path, json={"title": "x"})
        assert answer.status_code == 405, (method, path, answer.text)
        assert set(answer.json()) == {"code", "message", "details", "hint"}


def refresh_shows_the_tables_as_they_are(http) -> None:
    assert http.get("/api/copies_by_book", params={"isbn": f"eq.{HADRIEN}"}).json() == [
        {"isbn": HADRIEN, "copies": 1}]
    assert http.patch("/api/stock", params={"isbn": f"eq.{HADRIEN}"}, json={"quantity": 6}).status_code == 204
    assert http.get("/api/copies_by_book", params={"isbn": f"eq.{HADRIEN}"}).json()[0]["copies"] == 1
    refreshed = http.post("/api/copies_by_book/refresh")
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json() == {"view": "copies_by_book", "concurrently": True}
    assert http.get("/api/copies_by_book", params={"isbn": f"eq.{HADRIEN}", "select": "copies,books(title)"}
                    ).json() == [{"copies": 6, "books": {"title": "Mémoires d'Hadrien"}}]
