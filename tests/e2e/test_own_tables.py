"""A catalog of one's own, as a user meets it: `depot init`, declare five related tables, `depot
makemigration`, `depot serve`; then every route, embed, ingest, batch and replay on those tables,
with no file of depot touched."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.depot_process import DEPOT, DepotProcess, clean_env

BOOKSHOP = Path(__file__).parent / "bookshop" / "catalog.py"
DEPOT_SOURCE = Path(__file__).parents[2] / "src"


def depot(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([DEPOT, *args], cwd=cwd, env={**clean_env(), **env}, capture_output=True, text=True,
                          timeout=180)


def depot_files() -> set[Path]:
    return {p for p in DEPOT_SOURCE.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture
def database(new_database) -> str:
    return new_database().replace("+psycopg2", "")


def test_init_declare_makemigration_serve(tmp_path: Path, database: str):
    before = depot_files()
    project = tmp_path / "shop"
    made = depot("init", str(project), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert {p.name for p in project.iterdir()} == {"catalog.py", "migrations", "README.md", ".gitignore"}
    assert ".depot/" in (project / ".gitignore").read_text()
    assert depot("init", str(project), cwd=tmp_path).returncode == 2  # never over an existing project

    shutil.copy(BOOKSHOP, project / "catalog.py")
    first = depot("makemigration", "first", cwd=project)
    assert first.returncode == 0, first.stderr
    written = list((project / "migrations").glob("*_first.py"))
    assert len(written) == 1 and "create_table('stock'" in written[0].read_text()
    assert "create_table('sources'" not in written[0].read_text()  # depot's own tables are depot's history
    again = depot("makemigration", "again", cwd=project)
    assert again.returncode == 0 and "no changes" in again.stdout
    assert len(list((project / "migrations").glob("*.py"))) == 1

    server = DepotProcess(cwd=project, database_url=database, log_level="warning", log_dir=tmp_path)
    try:
        server.wait_healthy()
        with server.client() as http:
            exercise_the_bookshop(http)
    finally:
        server.stop()
    assert "catalog ./catalog.py" in server.log()
    assert depot_files() == before, "a user's catalog must not write into depot's own source"


def exercise_the_bookshop(http) -> None:
    assert http.post("/api/authors", json=[{"author_id": "le-guin", "name": "Ursula K. Le Guin"}]).status_code == 201
    assert http.post("/api/publishers", json={"code": "ACE", "name": "Ace Books"}).status_code == 201
    assert http.post("/api/stores", json={"store": "main", "city": "Lyon"}).status_code == 201
    assert http.post("/api/sources", json={"code": "scraper", "name": "A scraper", "priority": 5}).status_code == 201

    books = ("isbn,title,author_id,publisher,pages\n"
             "9780441478125,The Left Hand of Darkness,le-guin,ACE,304\n"
             "9780060512750,The Dispossessed,nobody,,387\n")
    report = http.post("/ingest/books?source=scraper", content=books, headers={"Content-Type": "text/csv"}).json()
    assert (report["inserted"], report["rejected"]) == (1, 1)
    assert report["errors"][0]["row"] == 2
    rejected = http.get(f"/ingest/batches/{report['batch_id']}/rejections").json()
    assert [r["payload"]["isbn"] for r in rejected] == ["9780060512750"]

    assert http.post("/api/authors", json={"author_id": "nobody", "name": "Somebody"}).status_code == 201
    replay = http.post(f"/ingest/batches/{report['batch_id']}/replay").json()
    assert replay["inserted"] == 1 and replay["rejected"] == 0

    stock = [{"isbn": "9780441478125", "store": "main", "observed_on": "2026-11-20", "price": "9.50"},
             {"isbn": "9780060512750", "store": "main", "observed_on": "2026-11-20", "price": "12.00"}]
    assert http.post("/ingest/stock", json=stock).json()["inserted"] == 2

    embedded = http.get("/api/stock", params={"select": "price,books(title,authors(name))", "order": "price"}).json()
    assert embedded[0] == {"price": 9.5, "books": {"title": "The Left Hand of Darkness",
                                                     "authors": {"name": "Ursula K. Le Guin"}}}
    soft = http.get("/api/books", params={"select": "isbn,publishers(name)", "isbn": "eq.9780441478125"}).json()
    assert soft == [{"isbn": "9780441478125", "publishers": {"name": "Ace Books"}}]
    by_key = http.get("/api/books/9780441478125")
    assert by_key.status_code == 200 and by_key.headers["etag"] == '"1"'
    assert by_key.json()["source"] == "scraper"
    assert http.post("/api/books", json={"isbn": "123", "title": "x", "author_id": "le-guin"}).status_code == 422

    schemas = http.get("/openapi.json").json()
    assert {"/api/authors", "/api/books", "/api/stock", "/ingest/{table}"} <= set(schemas["paths"])
    assert not any(p.startswith("/api/flights") for p in schemas["paths"])
