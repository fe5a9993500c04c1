"""Two catalogs in two schemas of one database, served by two depot processes at once: each ingests and
reads its own tables, both share depot's own tables in the `depot` schema (one set of sources, one
ingest_batches holding both's batches), and each sees only its own batches through /ingest/batches."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.depot_process import DepotProcess
from tests.e2e.test_adopt import depot

CATALOG = '''
from depot import Catalog

CATALOG = Catalog(schema="{schema}")


@CATALOG.table("readings", group="instances", natural_key=("station",))
class Reading:
    station: str
    value: float
'''


def project(tmp_path: Path, schema: str) -> Path:
    folder = tmp_path / schema
    (folder / "migrations").mkdir(parents=True)
    (folder / "catalog.py").write_text(CATALOG.format(schema=schema))
    written = depot("makemigration", "readings", cwd=folder)
    assert written.returncode == 0, written.stderr
    migration = next((folder / "migrations").glob("*_readings.py")).read_text()
    # the catalog's history holds its own tables only, and reaches depot's in their schema
    assert "create_table('sources'" not in migration and "'depot.sources.code'" in migration
    return folder


def rows(url: str, sql: str) -> list[tuple]:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return [tuple(r) for r in connection.exec_driver_sql(sql)]
    finally:
        engine.dispose()


@pytest.fixture
def database(new_database) -> str:
    return new_database().replace("+psycopg2", "")


def test_two_catalogs_in_two_schemas_share_depots_schema(tmp_path: Path, database: str):
    folders = [project(tmp_path, schema) for schema in ("north", "south")]
    servers = [DepotProcess(cwd=f, database_url=database, log_level="warning", log_dir=tmp_path) for f in folders]
    try:
        north, south = (s.wait_healthy() for s in servers)
        with north.client() as http:
            assert http.post("/api/sources", json={"code": "scraper", "name": "A scraper", "priority": 5}) \
                .status_code == 201
        batches = {}
        for server, body in ((north, "station,value\nn1,1.5\nn2,oops\n"), (south, "station,value\ns1,7\n")):
            with server.client() as http:
                # the same idempotency key in both: keys are unique per catalog (schema) and table
                answer = http.post("/ingest/readings", params={"source": "scraper"}, content=body,
                                   headers={"Content-Type": "text/csv", "Idempotency-Key": "k1"})
                assert answer.status_code == 200, answer.text
                batches[server] = answer.json()
        assert (batches[north]["inserted"], batches[north]["rejected"]) == (1, 1)
        assert (batches[south]["inserted"], batches[south]["rejected"]) == (1, 0)
        north_id, south_id = batches[north]["batch_id"], batches[south]["batch_id"]

        with north.client() as http:
            assert [r["station"] for r in http.get("/api/readings").json()] == ["n1"]
            assert [b["id"] for b in http.get("/ingest/batches").json()] == [north_id]
            assert http.get(f"/ingest/batches/{south_id}").status_code == 404  # south's, not north's
            rejections = http.get(f"/ingest/batches/{north_id}/rejections").json()
            assert [r["row_number"] for r in rejections] == [2]
            replay = http.post(f"/ingest/batches/{north_id}/replay")  # still invalid: rejected again
            assert replay.status_code == 200 and replay.json()["rejected"] == 1
        with south.client() as http:
            assert [(r["station"], r["value"]) for r in http.get("/api/readings").json()] == [("s1", 7)]
            assert [b["id"] for b in http.get("/ingest/batches").json()] == [south_id]
            assert http.get(f"/ingest/batches/{north_id}/rejections").status_code == 404
            assert [s["code"] for s in http.get("/api/sources", params={"order": "code"}).json()] == \
                ["manual", "scraper"]  # sources are the database's: north made it, south uses it
    finally:
        for s in servers:
            s.stop()

    assert rows(database, 'SELECT schema, "table", idempotency_key FROM depot.ingest_batches '
                          "WHERE idempotency_key IS NOT NULL ORDER BY id") == [
        ("north", "readings", "k1"), ("south", "readings", "k1")]
    tables = rows(database, "SELECT schemaname, string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables "
                            "WHERE schemaname IN ('public', 'depot', 'north', 'south') GROUP BY 1 ORDER BY 1")
    assert tables == [("depot", "alembic_version,ingest_batches,rejected_rows,sources"),
                      ("north", "alembic_version,readings,readings_claims,readings_history"),
                      ("south", "alembic_version,readings,readings_claims,readings_history")]
    # a foreign key from each catalog's table reaches depot's sources
    assert rows(database, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' "
                          "AND confrelid = 'depot.sources'::regclass AND connamespace::regnamespace::text "
                          "IN ('north', 'south')")[0][0] >= 2
