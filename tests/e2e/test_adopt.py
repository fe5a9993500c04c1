"""Adopting a database made by SQLAlchemy's create_all, as a user does it, through the real CLI:
`depot adopt` → `depot migrate` → `depot serve`. Every row is served with its values, embeds follow
the database's foreign keys, and an ingest into an adopted table works."""

from __future__ import annotations

import datetime as dt
import decimal
import subprocess
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.e2e import legacy_shop
from tests.e2e.depot_process import DEPOT, DepotProcess, clean_env


def depot(*args: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run([DEPOT, *args], cwd=cwd, env=clean_env(**settings), capture_output=True, text=True,
                          timeout=180)


@pytest.fixture
def legacy_database(new_database) -> str:
    """A database of its own, made and filled by the legacy application (create_all, then inserts)."""
    url = new_database()
    legacy_shop.build(url)
    return url.replace("+psycopg2", "")


def as_json(value: object) -> object:
    """A value as depot's JSON answers hold it."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def legacy_rows(url: str) -> dict[str, list[dict]]:
    """What the legacy application stored, read by SQLAlchemy before the adoption, in key order."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1), poolclass=NullPool,
                              connect_args={"options": "-c timezone=UTC"})
    try:
        with engine.connect() as connection:
            return {name: [{k: as_json(v) for k, v in row._mapping.items() if k != "shelf_life"}
                           for row in connection.execute(sa.select(table).order_by(*legacy_shop.key_of(table)))]
                    for name, table in legacy_shop.metadata.tables.items()}
    finally:
        engine.dispose()


def test_adopt_migrate_serve_a_create_all_database(tmp_path: Path, legacy_database: str):
    before = legacy_rows(legacy_database)
    project = tmp_path / "shop"
    adopted = depot("adopt", "--database-url", legacy_database, "--out", str(project),
                    "--natural-key", "reviews=isbn,reviewer", cwd=tmp_path)
    assert adopted.returncode == 0, adopted.stderr
    assert "adopted 9 tables" in adopted.stdout
    # What it cannot declare is printed, and written where it belongs.
    assert "books.shelf_life: not mapped: type interval" in adopted.stderr
    assert "authors.born: not mapped: born_after_1000" in adopted.stderr
    catalog = (project / "catalog.py").read_text()
    assert "    # shelf_life: interval" in catalog
    assert "password" not in catalog and "@CATALOG.table(\"stock\"" in catalog
    assert len(list((project / "migrations").glob("*_adopt_0001_*.py"))) == 1

    again = depot("adopt", "--database-url", legacy_database, "--out", str(project), cwd=tmp_path)
    assert again.returncode == 2 and "is not empty" in again.stderr

    migrated = depot("migrate", cwd=tmp_path, catalog=str(project / "catalog.py"), database_url=legacy_database)
    assert migrated.returncode == 0, migrated.stderr
    assert "adopt_0001" in migrated.stdout

    server = DepotProcess(database_url=legacy_database, catalog=str(project / "catalog.py"), log_level="warning",
                          log_dir=tmp_path)
    try:
        server.wait_healthy()
        with server.client() as http:
            served_as_stored(http, before)
            embeds_follow_the_foreign_keys(http)
            ingest_into_an_adopted_table(http)
    finally:
        server.stop()


def served_as_stored(http, before: dict[str, list[dict]]) -> None:
    keys = {name: ",".join(c.name for c in legacy_shop.key_of(table))
            for name, table in legacy_shop.metadata.tables.items()}
    for name, rows in before.items():
        answer = http.get(f"/api/{name}", params={"order": keys[name]}, headers={"Prefer": "count=exact"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-range"].endswith(f"/{len(legacy_shop.ROWS[name])}")
        served = [{k: v for k, v in row.items() if k in rows[0]} for row in answer.json()]
        assert served == rows, name
        assert {(r["source"], r["version"], r["batch_id"]) for r in answer.json()} == {("manual", 1, None)}
    assert http.get("/api/books/9780441478125").json()["tags"] == ["sf", "classic"]


def embeds_follow_the_foreign_keys(http) -> None:
    books = http.get("/api/books", params={"select": "title,authors(name),publishers(name)",
                                           "isbn": "eq.9780441478125"}).json()
    assert books == [{"title": "The Left Hand of Darkness", "authors": {"name": "Ursula K. Le Guin"},
                      "publishers": {"name": "Ace Books"}}]
    stock = http.get("/api/stock", params={"select": "quantity,stores(city),books(title)", "order": "id",
                                           "limit": "1"}).json()
    assert stock == [{"quantity": 3, "stores": {"city": "Lyon"}, "books": {"title": "The Left Hand of Darkness"}}]
    printings = http.get("/api/printings", params={"select": "run,editions(released)", "order": "run"}).json()
    assert printings == [{"run": 1, "editions": {"released": "1969-03-01"}},
                         {"run": 2, "editions": {"released": "1969-03-01"}}]  # the composite foreign key
    authors = http.get("/api/authors", params={"select": "name,books(title)", "name": "eq.Stanisław Lem"}).json()
    assert authors == [{"name": "Stanisław Lem", "books": [{"title": "Solaris"}]}]


def ingest_into_an_adopted_table(http) -> None:
    lyon = legacy_shop.STORE_LYON
    body = ("isbn,store_id,observed_at,quantity,price\n"
            f"9780156027601,{lyon},2026-11-22T10:00:00,7,11.00\n"  # new
            f"9780441478125,{lyon},2026-11-20T08:00:00,4,9.50\n"  # the stored row of this key, changed
            f"9780000000000,{lyon},2026-11-22T10:00:00,1,1.00\n")  # no such book
    answer = http.post("/ingest/stock", content=body, headers={"Content-Type": "text/csv"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert {k: report[k] for k in ("status", "received", "inserted", "updated", "unchanged", "rejected")} == {
        "status": "completed", "received": 3, "inserted": 1, "updated": 1, "unchanged": 0, "rejected": 1}
    assert [(e["row"], e["field"], e["code"]) for e in report["errors"]] == [(3, "isbn", "reference")]
    stock = http.get("/api/stock", params={"order": "id", "select": "id,quantity,version,batch_id"}).json()
    batch = report["batch_id"]
    assert stock == [{"id": 1, "quantity": 4, "version": 2, "batch_id": batch},
                     {"id": 2, "quantity": 40, "version": 1, "batch_id": None},
                     {"id": 3, "quantity": 1, "version": 1, "batch_id": None},
                     {"id": 4, "quantity": 7, "version": 1, "batch_id": batch}]  # ids go on after the old ones
    assert http.post("/api/authors", json={"name": "Ted Chiang", "country": "US"}).status_code == 201
    assert http.get("/api/authors", params={"name": "eq.Ted Chiang", "select": "id"}).json() == [{"id": 4}]
