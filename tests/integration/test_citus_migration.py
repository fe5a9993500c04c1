"""A catalog with Citus declarations: makemigration writes the Citus DDL into the migration, and the
migration runs on plain PostgreSQL (where the DDL does nothing). No Citus server runs here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_schema_changes import Project

pytestmark = pytest.mark.postgres

TABLES = """
    @CATALOG.table("regions", group="primary", natural_key=("code",), reference=True)
    class Region:
        code: str

    @CATALOG.table("readings", group="instances", natural_key=("station", "taken_at"), surrogate_id=True,
                   distribute_by="station")
    class Reading:
        station: str
        taken_at: int
        region: Annotated[str, References("regions")]
        value: float
"""


@pytest.fixture
def project(tmp_path: Path, new_database):
    made = Project(tmp_path, new_database)
    yield made
    made.dispose()


def test_the_migration_carries_the_citus_ddl_and_runs_on_plain_postgresql(project: Project):
    written, _ = project.change(TABLES, "citus tables")
    text = written.read_text().replace("\\'", "'")  # Alembic writes the statement as a Python literal
    assert "create_reference_table('regions')" in text and "create_reference_table('depot.sources')" in text
    assert "create_distributed_table('readings', 'station')" in text
    assert text.index("create_reference_table('regions')") < text.index("create_distributed_table('readings'")
    # On plain PostgreSQL the blocks do nothing: the tables are as declared, and they take rows.
    project.sql("INSERT INTO regions (code, source, version, created_at, updated_at) "
                "VALUES ('EU', 'manual', 1, now(), now())")
    project.sql("INSERT INTO readings (station, taken_at, region, value, source, version, created_at, updated_at) "
                "VALUES ('S1', 1, 'EU', 2.5, 'manual', 1, now(), now())")
    assert project.sql("SELECT station, region FROM readings") == [("S1", "EU")]
    primary_key = project.sql("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'pk_readings'")
    assert primary_key == [("PRIMARY KEY (id)",)]
