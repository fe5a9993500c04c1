"""Engines, schema creation and migrations for the PostgreSQL adapter."""

from __future__ import annotations

import weakref
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


def make_engine(url: str, *, pool_size: int = 10, statement_timeout_ms: int | None = None) -> Engine:
    """The engine of one process, for units of work that write. Its readers' engine is read_engine(it).

    Settings that hold for every statement travel in the connection's startup packet (`options`),
    so they cost no round trip and no transaction can undo them: a `SET LOCAL` per unit of work
    was a fifth of a get-by-key's time.

    Writers keep `pool_pre_ping`: a round trip per checkout, small beside a write, and a
    connection the server dropped (it restarted) is replaced before a transaction starts on it.
    Readers do without it, where it was a quarter of a get-by-key: a read that meets a dropped
    connection fails, SQLAlchemy invalidates every pooled connection opened before it, and the
    read runs again once on a fresh one (SqlAlchemyRepository._run).
    """
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    options = "-c timezone=UTC"
    if statement_timeout_ms:
        options += f" -c statement_timeout={int(statement_timeout_ms)}"
    connect_args = {"options": options, "application_name": "depot"}
    engine = sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                              connect_args=connect_args)
    # Reads run in autocommit on connections of their own, set so once when they are opened:
    # switching a shared connection in and out of autocommit cost two driver calls per read, and
    # returning it a third (the pool's rollback). Twice pool_size and no overflow: as many
    # connections at most as the writers' pool, but kept open instead of opened and closed
    # under load.
    reader = sa.create_engine(url, pool_size=2 * pool_size, max_overflow=0, connect_args=connect_args,
                              isolation_level="AUTOCOMMIT", pool_reset_on_return=None)
    _READERS[engine] = reader
    sa.event.listen(engine, "engine_disposed", lambda _: reader.dispose())
    return engine


_READERS: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def read_engine(engine: Engine) -> Engine | None:
    """The autocommit engine for reads that make_engine built beside `engine`, if it did."""
    return _READERS.get(engine)


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database to the newest migration; safe when several processes start at once."""
    with engine.begin() as connection:
        # Migrations are not requests: a long index build, or waiting for another process's
        # migration, must not be cut off by DEPOT_STATEMENT_TIMEOUT_MS.
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
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
