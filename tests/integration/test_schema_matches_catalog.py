"""The migrations are the catalog: `depot migrate` on an empty database and the app's own start-up
build the same schema, and that schema is what the declarations say. A declaration changed
without a migration fails here."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient

from adapters.postgres.db import make_engine
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
                "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2"
            )).all()
            constraints = connection.execute(sa.text(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
            )).all()
            indexes = connection.execute(sa.text(
                "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2"
            )).all()
            seeded = connection.execute(sa.text("SELECT code, priority FROM sources")).all()
        return {"columns": columns, "constraints": constraints, "indexes": indexes, "seeded": seeded}
    finally:
        engine.dispose()


def differences_from_catalog(url: str) -> list:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, build_metadata(CATALOG))
    finally:
        engine.dispose()


def check_names(url: str) -> set[str]:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            return set(connection.execute(sa.text(
                "SELECT conname FROM pg_constraint WHERE contype = 'c' AND connamespace = 'public'::regnamespace"
            )).scalars())
    finally:
        engine.dispose()


def declared_check_names() -> set[str]:
    return {c.name for t in build_metadata(CATALOG).tables.values() for c in t.constraints
            if isinstance(c, sa.CheckConstraint)}


def test_depot_migrate_builds_exactly_the_catalog(new_database):
    url = new_database()
    result = depot_migrate(url)
    assert result.returncode == 0, result.stderr
    assert differences_from_catalog(url) == []
    assert check_names(url) == declared_check_names()
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
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, build_metadata(changed))
    finally:
        engine.dispose()
    assert [d[0] for d in diff] == ["add_column"]
