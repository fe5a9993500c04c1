"""Engines, schema creation and migrations for the PostgreSQL adapter."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection, Engine

from adapters.postgres.tables import build_metadata
from domain.schema import Catalog

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant will do: it only has to be the same for every depot process migrating one database.
_MIGRATION_LOCK = 7_270_447_001

SEED_SQL = (
    "INSERT INTO sources (code, name, priority, version, created_at, updated_at) "
    "VALUES ('manual', 'Manual entry', 0, 1, now(), now()) ON CONFLICT (code) DO NOTHING"
)


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"options": "-c timezone=UTC", "application_name": "depot"},
    )


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database to the newest migration; safe when several processes start at once."""
    with engine.begin() as connection:
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        command.upgrade(alembic_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def create_schema(engine: Engine, catalog: Catalog) -> None:
    """The catalog's tables straight from metadata: for catalogs no migration knows (test tables)."""
    with engine.begin() as connection:
        build_metadata(catalog).create_all(connection)
        if "sources" in catalog:
            connection.exec_driver_sql(SEED_SQL)


def drop_schema(engine: Engine, catalog: Catalog) -> None:
    with engine.begin() as connection:
        build_metadata(catalog).drop_all(connection)
        connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
