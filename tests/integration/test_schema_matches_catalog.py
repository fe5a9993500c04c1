"""The migrations are the catalog: `depot migrate` on an empty database and the app's own start-up
build the same schema, and that schema is what the declarations say. A declaration changed
without a migration fails here."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import sqlalchemy as sa
from fastapi.testclient import TestClient

from adapters.postgres.db import make_engine
from adapters.postgres.schema_changes import declared_checks, differences, live_checks
from adapters.postgres.tables import build_metadata
from depot.examples.flights.catalog import CATALOG
from domain.schema import Catalog, Column, ColumnType
from entrypoints.app import create_app
from entrypoints.container import Container
from entrypoints.settings import Settings


def depot_migrate(url: str) -> subprocess.CompletedProcess:
    """The real CLI, as a user runs it."""
    return subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "depot"), "migrate"],
        env={**os.environ, "DEPOT_DATABASE_URL": url}, capture_output=True, text=True, timeout=120,
    )


def schema_of(url: str) -> dict[str, object]:
    """Columns, constraints and indexes as PostgreSQL reports them."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            columns = connection.execute(sa.text(
                "SELECT table_name, column_name, data_type, is_nullable, column_default, collation_name "
                "FROM information_schema.columns WHERE table_schema IN ('public', 'depot') ORDER BY 1, 2"
            )).all()
            constraints = connection.execute(sa.text(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE connamespace IN ('public'::regnamespace, 'depot'::regnamespace) ORDER BY 1, 2"
            )).all()
            indexes = connection.execute(sa.text(
                "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname IN ('public', 'depot') "
                "ORDER BY 1, 2"
            )).all()
            seeded = connection.execute(sa.text("SELECT code, priority FROM depot.sources")).all()
        return {"columns": columns, "constraints": constraints, "indexes": indexes, "seeded": seeded}
    finally:
        engine.dispose()


def differences_from_catalog(url: str, catalog: Catalog = CATALOG) -> list[str]:
    """Alembic's comparison (tables, columns, types, nullability, keys) and the checks' content."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            return differences(connection, catalog)
    finally:
        engine.dispose()


def checks(url: str) -> tuple[dict, dict]:
    """Every CHECK of the catalog as the database holds it, and as PostgreSQL restates the declared one."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            declared = declared_checks(connection, build_metadata(CATALOG).tables.values())
            return live_checks(connection, build_metadata(CATALOG).tables.values()), declared
    finally:
        engine.dispose()


def test_depot_migrate_builds_exactly_the_catalog(new_database):
    url = new_database()
    result = depot_migrate(url)
    assert result.returncode == 0, result.stderr
    assert differences_from_catalog(url) == []
    live, declared = checks(url)
    assert live == declared and len(live) > 10  # content, not names alone
    assert schema_of(url)["seeded"] == [("manual", 0)]


def test_app_start_up_builds_the_same_schema_as_depot_migrate(new_database):
    by_cli, by_app = new_database(), new_database()
    assert depot_migrate(by_cli).returncode == 0
    container = Container()
    container.settings.override(Settings(storage="postgres", database_url=by_app))
    with TestClient(create_app(container)) as client:
        assert client.get("/health").json()["storage"] == "postgres"
    assert schema_of(by_app) == schema_of(by_cli)


def test_a_declaration_without_its_migration_is_caught(new_database):
    """The comparison above is not vacuous: a catalog with one more column differs."""
    url = new_database()
    assert depot_migrate(url).returncode == 0
    airlines = CATALOG["airlines"]
    grown = replace(airlines, columns=(*airlines.columns, Column("alliance", ColumnType.TEXT, nullable=True)),
                    _by_name={})
    changed = Catalog([grown if t.name == "airlines" else t for t in CATALOG])
    # the history and claims tables follow their table
    assert differences_from_catalog(url, changed) == [
        "airlines.alliance: missing", "airlines_claims.alliance: missing", "airlines_history.alliance: missing"]


def test_a_check_changed_without_its_migration_is_caught(new_database):
    """Same constraint name, other content: Alembic alone sees nothing here."""
    url = new_database()
    assert depot_migrate(url).returncode == 0
    fares = CATALOG["fares"]
    cabin = replace(fares.column("cabin"), choices=("economy", "business"))
    changed = Catalog([replace(fares, columns=tuple(cabin if c.name == "cabin" else c for c in fares.columns),
                               _by_name={}) if t.name == "fares" else t for t in CATALOG])
    (found,) = differences_from_catalog(url, changed)
    assert found.startswith("fares: check ck_fares_cabin_choice is ") and "'business')" in found


def test_a_change_to_depots_own_tables_in_their_schema_is_caught(new_database):
    """The drift check looks at depot's schema too, not only at the catalog's (on the search_path)."""
    url = new_database()
    assert depot_migrate(url).returncode == 0
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE depot.sources DROP CONSTRAINT ck_sources_code_pattern")
            connection.exec_driver_sql("ALTER TABLE depot.ingest_batches DROP COLUMN disposition")
    finally:
        engine.dispose()
    found = differences_from_catalog(url)
    assert "ingest_batches.disposition: missing" in found
    assert any(d.startswith("sources: check ck_sources_code_pattern missing") for d in found), found
