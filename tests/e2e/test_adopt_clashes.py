"""Adopting a table whose own columns are called `version`, `source` and `created_at`, as scraped and
collected data so often has them, through the real CLI: depot moves its system columns aside
(`_depot_version`, ...), every stored value is kept, and ETags and priority rules work under the
moved names."""

from __future__ import annotations

from pathlib import Path

import psycopg2

from tests.e2e.depot_process import DepotProcess
from tests.e2e.test_adopt import depot

SQL = """
CREATE TABLE packages (
    name text PRIMARY KEY,
    version text NOT NULL,
    source text,
    created_at timestamptz NOT NULL,
    downloads integer NOT NULL DEFAULT 0
);
INSERT INTO packages VALUES
    ('numpy', '2.1.3', 'pypi', '2024-11-02 10:00:00+00', 100),
    ('pandas', '2.2.3', 'conda-forge', '2024-09-20 08:30:00+00', 50),
    ('left-pad', '1.3.0', NULL, '2016-03-22 00:00:00+00', 7);
"""


def test_a_table_with_depots_column_names_is_adopted_with_every_value_kept(tmp_path: Path, new_database):
    url = new_database().replace("+psycopg2", "")
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(SQL)
    connection.close()
    project = tmp_path / "registry"
    adopted = depot("adopt", "--database-url", url, "--out", str(project), cwd=tmp_path)
    assert adopted.returncode == 0, adopted.stderr
    assert "packages.created_at, packages.source, packages.version: named like depot's system columns" in \
        adopted.stderr
    catalog = project / "catalog.py"
    assert 'CATALOG = Catalog(system_columns="_depot_")' in catalog.read_text()
    migrated = depot("migrate", cwd=tmp_path, catalog=str(catalog), database_url=url)
    assert migrated.returncode == 0, migrated.stderr

    server = DepotProcess(database_url=url, catalog=str(catalog), log_level="warning", log_dir=tmp_path)
    try:
        server.wait_healthy()
        with server.client() as http:
            kept = http.get("/api/packages", params={"order": "name",
                                                     "select": "name,version,source,created_at,_depot_version"})
            assert kept.json() == [
                {"name": "left-pad", "version": "1.3.0", "source": None,
                 "created_at": "2016-03-22T00:00:00+00:00", "_depot_version": 1},
                {"name": "numpy", "version": "2.1.3", "source": "pypi",
                 "created_at": "2024-11-02T10:00:00+00:00", "_depot_version": 1},
                {"name": "pandas", "version": "2.2.3", "source": "conda-forge",
                 "created_at": "2024-09-20T08:30:00+00:00", "_depot_version": 1}]

            # The ETag is depot's version; the table's own `version` is data like any other column.
            read = http.get("/api/packages/numpy")
            assert read.headers["etag"] == '"1"' and read.json()["_depot_source"] == "manual"
            patched = http.patch("/api/packages/numpy", json={"version": "2.2.0"}, headers={"If-Match": '"1"'})
            assert patched.status_code == 200, patched.text
            assert (patched.headers["etag"], patched.json()["version"], patched.json()["_depot_version"]) == (
                '"2"', "2.2.0", 2)
            stale = http.patch("/api/packages/numpy", json={"downloads": 1}, headers={"If-Match": '"1"'})
            assert stale.status_code == 412 and stale.json()["details"] == {"version": 2}
            assert http.get("/api/packages/numpy", headers={"If-None-Match": '"2"'}).status_code == 304

            # Priority rules read the moved `_depot_source`; the file's `source` column is the package's.
            for code, priority in (("mirror", 1), ("official", 5)):
                assert http.post("/api/sources", json={"code": code, "name": code,
                                                       "priority": priority}).status_code == 201
            header = "name,version,source,created_at,downloads\n"
            official = http.post("/ingest/packages?source=official", headers={"Content-Type": "text/csv"},
                                 content=header + "pandas,2.2.3,conda-forge,2024-09-20T08:30:00Z,60\n").json()
            assert (official["updated"], official["superseded"]) == (1, 0)
            mirror = http.post("/ingest/packages?source=mirror", headers={"Content-Type": "text/csv"},
                               content=header + "pandas,2.2.3,mirror,2024-09-20T08:30:00Z,1\n"
                                                "scipy,1.14.1,mirror,2024-08-20T00:00:00Z,3\n").json()
            assert (mirror["inserted"], mirror["superseded"]) == (1, 1)
            pandas = http.get("/api/packages/pandas").json()
            assert (pandas["downloads"], pandas["source"], pandas["_depot_source"], pandas["_depot_version"]) == (
                60, "conda-forge", "official", 2)
            by_source = http.get("/api/packages", params={"_depot_source": "eq.mirror", "select": "name,source"})
            assert by_source.json() == [{"name": "scipy", "source": "mirror"}]
    finally:
        server.stop()
