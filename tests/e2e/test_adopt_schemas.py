"""Schemas other than `public`, through the real CLI: two schemas of one database, made by SQL, are each
adopted (`depot adopt --schema`), migrated and served by a depot process of their own, at the same
time; neither sees the other's tables, depot's own tables are in the `depot` schema that both share, and
nothing lands in `public`."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.e2e.depot_process import DepotProcess
from tests.e2e.test_adopt import depot
from tests.e2e.test_adopt_views import run_sql

SQL = [
    "CREATE SCHEMA test",
    "CREATE TABLE test.makers (code text PRIMARY KEY, name text NOT NULL)",
    "CREATE TABLE test.items (sku text PRIMARY KEY, maker text NOT NULL REFERENCES test.makers, price numeric(8,2))",
    "CREATE VIEW test.priced_items AS SELECT i.sku, m.name AS maker_name, i.price FROM test.items i "
    "JOIN test.makers m ON m.code = i.maker WHERE i.price IS NOT NULL",
    "INSERT INTO test.makers VALUES ('acme', 'Acme'), ('globex', 'Globex')",
    "INSERT INTO test.items VALUES ('a-1', 'acme', 10.50), ('g-1', 'globex', NULL), ('a-2', 'acme', 3)",
    # another application's schema, with a table of the same name
    "CREATE SCHEMA other",
    "CREATE TABLE other.items (sku text PRIMARY KEY, title text NOT NULL)",
    "INSERT INTO other.items VALUES ('x', 'Other x')",
]


def adopt_and_migrate(url: str, schema: str, tmp_path: Path) -> Path:
    project = tmp_path / schema
    adopted = depot("adopt", "--database-url", url, "--schema", schema, "--out", str(project), cwd=tmp_path)
    assert adopted.returncode == 0, adopted.stderr
    assert f'CATALOG = Catalog(schema="{schema}")' in (project / "catalog.py").read_text()
    migrated = depot("migrate", cwd=tmp_path, catalog=str(project / "catalog.py"), database_url=url)
    assert migrated.returncode == 0, migrated.stderr
    return project / "catalog.py"


def test_two_schemas_of_one_database_served_by_two_processes(tmp_path: Path, new_database):
    url = new_database().replace("+psycopg2", "")
    run_sql(url, *SQL)
    test_catalog = adopt_and_migrate(url, "test", tmp_path)
    other_catalog = adopt_and_migrate(url, "other", tmp_path)

    servers = [DepotProcess(database_url=url, catalog=str(c), log_level="warning", log_dir=tmp_path)
               for c in (test_catalog, other_catalog)]
    try:
        test, other = (s.wait_healthy() for s in servers)
        with test.client() as http:
            items = http.get("/api/items", params={"select": "sku,price,makers(name)", "order": "sku"},
                             headers={"Prefer": "count=exact"})
            assert items.status_code == 200, items.text
            assert items.json() == [{"sku": "a-1", "price": 10.5, "makers": {"name": "Acme"}},
                                    {"sku": "a-2", "price": 3, "makers": {"name": "Acme"}},
                                    {"sku": "g-1", "price": None, "makers": {"name": "Globex"}}]
            assert items.headers["content-range"] == "0-2/3"
            priced = http.get("/api/priced_items", params={"order": "price", "maker_name": "eq.Acme"})
            assert priced.json() == [{"sku": "a-2", "maker_name": "Acme", "price": 3},
                                     {"sku": "a-1", "maker_name": "Acme", "price": 10.5}]
            assert http.post("/api/items", json={"sku": "g-2", "maker": "globex"}).status_code == 201
        with other.client() as http:
            assert http.get("/api/items").json()[0]["sku"] == "x"
            assert [r["sku"] for r in http.get("/api/items").json()] == ["x"]  # not test's g-2
            assert http.get("/api/makers").status_code == 404
    finally:
        for s in servers:
            s.stop()
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            where = dict(connection.execute(sa.text(
                "SELECT tablename, string_agg(schemaname, ',' ORDER BY schemaname) FROM pg_tables "
                "WHERE tablename IN ('items', 'sources', 'alembic_version', 'makers') GROUP BY tablename")).all())
    finally:
        engine.dispose()
    # Each schema has its own history; depot's tables and history are in depot's schema, shared by both;
    # public holds nothing of either.
    assert where == {"items": "other,test", "sources": "depot", "alembic_version": "depot,other,test",
                     "makers": "test"}
