"""Engines, schema creation and migrations for the PostgreSQL adapter."""

from __future__ import annotations

import argparse
import os
import weakref
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from adapters.postgres import schema_changes
from adapters.postgres.schema_changes import MigrationFailed
from adapters.postgres.tables import build_metadata, system_table_sql
from domain.schema import Catalog

MIGRATIONS = Path(__file__).parent / "migrations"
SYSTEM_VERSIONS = MIGRATIONS / "versions"
# Two histories (Alembic's "multiple bases"): depot's own, shipped in this package, and the catalog's,
# in the user's folder. Each has its own base and branch label, and its own version table in its own
# schema: depot's in Catalog.system_schema, the catalog's in Catalog.schema. Two catalogs in two schemas
# of one database then share depot's history (and tables) without fighting over one alembic_version.
# The catalog's version table also holds a copy of depot's heads (_mirror_system_heads): its revisions
# depend on depot's (`depends_on`), and Alembic counts a dependency as applied only when its table says so.
SYSTEM_LINEAGE = "depot"
CATALOG_LINEAGE = "catalog"
# Any constant will do: it only has to be the same for every depot process migrating one database.
_MIGRATION_LOCK = 7_270_447_001
# depot before catalogs of their own kept one history for everything; its last revision stood for
# the system tables and the flights tables as they were then. It becomes the first of these that the
# histories know: flights_0001 (which depends on depot_0001) when the flights example is served.
_LEGACY_REVISIONS = {"0002_ingest": ("flights_0001", "depot_0001")}

VERSION_TABLE = "alembic_version"


def seed_sql(catalog: Catalog) -> str:
    return (f"INSERT INTO {system_table_sql(catalog, 'sources')} "
            "(code, name, priority, version, created_at, updated_at) "
            "VALUES ('manual', 'Manual entry', 0, 1, now(), now()) ON CONFLICT (code) DO NOTHING")


def make_engine(url: str, *, pool_size: int = 10, statement_timeout_ms: int | None = None,
                schema: str = "public", read_url: str | None = None) -> Engine:
    """The engine of one process, for units of work that write. Its readers' engine is read_engine(it).

    Settings that hold for every statement travel in the connection's startup packet (`options`),
    so they cost no round trip and no transaction can undo them: a `SET LOCAL` per unit of work
    was a fifth of a get-by-key's time.

    Writers keep `pool_pre_ping`: a round trip per checkout, small beside a write, and a
    connection the server dropped (it restarted) is replaced before a transaction starts on it.
    Readers do without it, where it was a quarter of a get-by-key: a read that meets a dropped
    connection fails, SQLAlchemy invalidates every pooled connection opened before it, and the
    read runs again once on a fresh one (SqlAlchemyRepository._run).

    `schema` (a catalog's, Catalog.schema) goes first on the search_path, `public` after it: depot's
    SQL names tables unqualified, so it then reads, writes and migrates that schema's tables.
    """
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    options = "-c timezone=UTC"
    if statement_timeout_ms:
        options += f" -c statement_timeout={int(statement_timeout_ms)}"
    if schema != "public":  # a plain identifier (Catalog checks it): no quoting inside `options`
        options += f" -c search_path={schema},public"
    connect_args = {"options": options, "application_name": "depot"}
    engine = sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                              connect_args=connect_args)
    # Reads run in autocommit on connections of their own, set so once when they are opened:
    # switching a shared connection in and out of autocommit cost two driver calls per read, and
    # returning it a third (the pool's rollback). Twice pool_size and no overflow: as many
    # connections at most as the writers' pool, but kept open instead of opened and closed
    # under load.
    def reader_of(target: str, size: int) -> Engine:
        if target.startswith("postgresql://") or target.startswith("postgres://"):
            target = "postgresql+psycopg2://" + target.split("://", 1)[1]
        return sa.create_engine(target, pool_size=size, max_overflow=0, connect_args=connect_args,
                                isolation_level="AUTOCOMMIT", pool_reset_on_return=None)

    # With a read replica (DEPOT_READ_DATABASE_URL) reads go there, and a small pool of primary
    # readers serves those that must see the writes just made (read_from_primary).
    reader = reader_of(read_url or url, 2 * pool_size)
    readers = [reader]
    _READERS[engine] = reader
    if read_url:
        _PRIMARY_READERS[engine] = reader_of(url, pool_size)
        readers.append(_PRIMARY_READERS[engine])
    sa.event.listen(engine, "engine_disposed", lambda _: [each.dispose() for each in readers])
    return engine


_READERS: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()
_PRIMARY_READERS: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()
# Set for a request that must read its own writes (`Prefer: read-your-writes`): its reads skip the replica.
read_from_primary: ContextVar[bool] = ContextVar("depot_read_from_primary", default=False)


def read_engine(engine: Engine, *, primary: bool = False) -> Engine | None:
    """The autocommit engine for reads that make_engine built beside `engine`, if it did: the
    replica's when there is one, unless `primary` (then the primary's own readers)."""
    if primary and engine in _PRIMARY_READERS:
        return _PRIMARY_READERS[engine]
    return _READERS.get(engine)


def replica_engine(engine: Engine) -> Engine | None:
    """The replica's readers, when make_engine was given a read_url."""
    return _READERS.get(engine) if engine in _PRIMARY_READERS else None


@dataclass(frozen=True)
class History:
    """Where a catalog's migrations live: depot's system history plus the catalog's own folder."""

    catalog: Catalog
    directory: Path | None = None  # None: the system history alone (depot's own development)

    @property
    def locations(self) -> list[Path]:
        own = [self.directory] if self.directory is not None and self.directory.is_dir() else []
        return [SYSTEM_VERSIONS, *own]


def alembic_config(history: History, connection: Connection | None = None) -> Config:
    # quiet: depot says itself what it wrote and ran (Alembic would add "Generating ... done")
    config = Config(cmd_opts=argparse.Namespace(quiet=True))
    # set_main_option interpolates %; paths are joined with the OS separator, so spaces are safe.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(p).replace("%", "%%") for p in history.locations))
    config.set_main_option(
        "file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(hour).2d%%(minute).2d_%%(rev)s_%%(slug)s"
    )
    config.attributes["connection"] = connection
    config.attributes["catalog"] = history.catalog
    # Which history's version table Alembic reads and writes: the catalog's unless told otherwise (_run_lineage).
    config.attributes["version_table_schema"] = history.catalog.schema
    return config


def migrate(engine: Engine, history: History) -> None:
    """Bring the database to the newest revision of every history; safe when several processes start at once.

    Every pending revision runs in this one transaction: a failing statement (a cast that a stored
    value refuses, say) rolls all of them back, and MigrationFailed carries PostgreSQL's message.
    """
    catalog = history.catalog
    try:
        with engine.begin() as connection:
            # Migrations are not requests: a long index build, or waiting for another process's
            # migration, must not be cut off by DEPOT_STATEMENT_TIMEOUT_MS.
            connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            for schema in (catalog.system_schema, catalog.schema):
                if schema != "public":
                    connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            config = alembic_config(history, connection)
            scripts = ScriptDirectory.from_config(config)
            _carry_legacy_history(connection, scripts, catalog.schema)
            moved = _move_system_tables(connection, catalog, scripts)
            # depot's history in its schema: its unqualified DDL lands there, and its version table is there.
            _run_lineage(config, connection, catalog.system_schema, search_path=catalog.system_schema,
                         target=f"{SYSTEM_LINEAGE}@head")
            if moved and catalog.schema != "public":  # batches run before the move were this catalog's
                connection.exec_driver_sql(
                    f"UPDATE {system_table_sql(catalog, 'ingest_batches')} SET schema = %(schema)s",
                    {"schema": catalog.schema})
            if history.directory is not None or any(not _is_system(r) for r in scripts.walk_revisions()):
                _mirror_system_heads(connection, catalog, scripts)
                # The catalog's: the system schema after its own on the path, so that a migration written
                # before depot's tables had a schema (`sa.ForeignKeyConstraint(['source'], ['sources.code'])`)
                # still finds them.
                _run_lineage(config, connection, catalog.schema,
                             search_path=f'"{catalog.schema}", "{catalog.system_schema}"', target="heads")
    except sa.exc.DBAPIError as error:
        raise MigrationFailed(_failure(engine, error)) from error
    except RuntimeError as error:  # a migration's own refusal (the adoption's checks raise one)
        raise MigrationFailed(f"a migration refused to run: nothing was changed\n  {error}") from error


def _failure(engine: Engine, error: sa.exc.DBAPIError) -> str:
    diag = getattr(error.orig, "diag", None)
    message = getattr(diag, "message_primary", None) or str(error.orig).strip().splitlines()[0]
    detail = getattr(diag, "message_detail", None)
    statement = " ".join((error.statement or "").split())
    try:  # the rows in the way, when PostgreSQL's message does not show them
        with engine.connect() as connection:
            rows = schema_changes.rows_in_the_way(connection, statement)
    except sa.exc.SQLAlchemyError:
        rows = []
    return (f"a migration failed and was rolled back: nothing was changed\n  {message}"
            + (f"\n  {detail}" if detail else "")
            + "".join(f"\n  stored: {row}" for row in rows)
            + (f"\n  while running: {statement[:300]}" if statement else ""))


def _run_lineage(config: Config, connection: Connection, version_schema: str, *, search_path: str,
                 target: str) -> None:
    """Upgrade to `target` with the version table of `version_schema`, unqualified names going by `search_path`."""
    connection.exec_driver_sql(f"SET LOCAL search_path TO {search_path}")
    # The dialect read current_schema() once, at the engine's first connection, maybe before the schema
    # existed; Alembic's and the inspector's unqualified names go by it. Set back to the catalog's after.
    previous = connection.dialect.default_schema_name
    connection.dialect.default_schema_name = version_schema
    config.attributes["version_table_schema"] = version_schema
    try:
        command.upgrade(config, target)
    finally:
        connection.dialect.default_schema_name = previous
        config.attributes["version_table_schema"] = config.attributes["catalog"].schema
    # Not in `finally`: after a failed statement the transaction takes no more, and its error is the one to tell.
    connection.exec_driver_sql("SET LOCAL search_path TO DEFAULT")


def _is_system(revision: object) -> bool:
    return Path(revision.path).parent == SYSTEM_VERSIONS  # type: ignore[attr-defined]


def _versions(connection: Connection, schema: str) -> set[str]:
    if not sa.inspect(connection).has_table(VERSION_TABLE, schema=schema):
        return set()
    return set(connection.exec_driver_sql(f'SELECT version_num FROM "{schema}".{VERSION_TABLE}').scalars())


def _create_version_table(connection: Connection, schema: str) -> None:
    # As Alembic makes it, so that it takes the table over as its own.
    connection.exec_driver_sql(f'CREATE TABLE IF NOT EXISTS "{schema}".{VERSION_TABLE} (version_num VARCHAR(32) '
                               f"NOT NULL, CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))")


def _ancestors(scripts: ScriptDirectory, revisions: set[str]) -> set[str]:
    """These revisions and every one they descend from or depend on."""
    seen: set[str] = set()
    todo = [r for r in revisions if _exists(scripts, r)]
    while todo:
        revision = todo.pop()
        if revision not in seen:
            seen.add(revision)
            todo.extend(scripts.get_revision(revision)._all_down_revisions)
    return seen


def _mirror_system_heads(connection: Connection, catalog: Catalog, scripts: ScriptDirectory) -> None:
    """The catalog's version table gets depot's current heads in place of the ones it holds, but for those
    that its own revisions depend on already (Alembic refuses heads that overlap)."""
    system = {r.revision for r in scripts.walk_revisions() if _is_system(r)}
    own = _versions(connection, catalog.schema) - system
    heads = _versions(connection, catalog.system_schema) - _ancestors(scripts, own)
    _create_version_table(connection, catalog.schema)
    table = f'"{catalog.schema}".{VERSION_TABLE}'
    connection.execute(sa.text(f"DELETE FROM {table} WHERE version_num = ANY(:system)"), {"system": list(system)})
    for head in sorted(heads):
        connection.execute(sa.text(f"INSERT INTO {table} (version_num) VALUES (:head)"), {"head": head})


def _move_system_tables(connection: Connection, catalog: Catalog, scripts: ScriptDirectory) -> bool:
    """A database that a depot before system schemas migrated has depot's tables beside the catalog's, and
    one alembic_version for both histories. Move the tables into the system schema (ALTER TABLE ... SET
    SCHEMA keeps their rows, indexes, sequences, and the foreign keys that point at them, which name
    them by OID), and give depot's history its own version table. True when it moved them; a second
    run finds nothing to move."""
    from domain.system import SYSTEM_TABLES

    # depot's revisions that the shared table says ran: its own rows, and those a catalog revision depends on.
    # None: these tables are not depot's (a table of the user's that happens to be called `sources`).
    system = {r.revision for r in scripts.walk_revisions() if _is_system(r)}
    ran = _ancestors(scripts, _versions(connection, catalog.schema)) & system
    inspector = sa.inspect(connection)
    stored = [n for n in SYSTEM_TABLES if inspector.has_table(n, schema=catalog.schema)]
    if not stored or not ran:
        return False
    there = [n for n in SYSTEM_TABLES if inspector.has_table(n, schema=catalog.system_schema)]
    if there:
        raise RuntimeError(
            f"depot's tables are in schema {catalog.schema!r} ({', '.join(stored)}) and in {catalog.system_schema!r} "
            f"({', '.join(there)}): depot will not merge them. Keep one set (or set the catalog's system_schema "
            f"to another schema) and migrate again")
    for name in stored:
        connection.exec_driver_sql(f'ALTER TABLE "{catalog.schema}"."{name}" SET SCHEMA "{catalog.system_schema}"')
    kept = ran - {a for r in ran for a in _ancestors(scripts, {r}) if a != r}
    _create_version_table(connection, catalog.system_schema)
    for revision in sorted(kept):
        connection.execute(sa.text(f'INSERT INTO "{catalog.system_schema}".{VERSION_TABLE} (version_num) '
                                   "VALUES (:revision) ON CONFLICT DO NOTHING"), {"revision": revision})
    return True


def _carry_legacy_history(connection: Connection, scripts: ScriptDirectory, schema: str) -> None:
    """Restate a database migrated by a depot of one history in the revisions of today's two."""
    stored = _versions(connection, schema)
    for legacy in stored & _LEGACY_REVISIONS.keys():
        revision = next(r for r in _LEGACY_REVISIONS[legacy] if _exists(scripts, r))
        connection.execute(sa.text(f'UPDATE "{schema}".{VERSION_TABLE} SET version_num = :new '
                                   "WHERE version_num = :old"), {"new": revision, "old": legacy})


def _exists(scripts: ScriptDirectory, revision: str) -> bool:
    try:
        return scripts.get_revision(revision) is not None
    except Exception:  # alembic raises several kinds for an unknown id
        return False


def refuse_drift(engine: Engine, catalog: Catalog) -> None:
    """SchemaDrift, naming each difference, unless the live schema is what the catalog declares."""
    with engine.connect() as connection:
        schema_changes.refuse_drift(connection, catalog)


def current_revisions(engine: Engine, catalog: Catalog | None = None) -> tuple[str, ...]:
    """The heads of both histories: depot's, from its version table in the system schema, and the catalog's
    own (its version table without the copy of depot's heads)."""
    if catalog is None:
        from domain.system import SYSTEM as catalog
    with engine.connect() as connection:
        system = _versions(connection, catalog.system_schema)
        return tuple(sorted(system | (_versions(connection, catalog.schema) - system)))


def generate_migration(
    engine: Engine, history: History, message: str, *, system: bool = False, rev_id: str | None = None,
    allow_drop: bool = False, summary: list[str] | None = None,
) -> Path | None:
    """Migrate the (scratch) database to every head, then autogenerate the revision that brings it to the catalog.

    The catalog's history holds only the catalog's own tables; `system=True` writes depot's own
    history instead (for depot's developers). Returns the new file, or None when nothing changed;
    `summary` receives one line per notable step. A column dropped where one of a compatible type is
    added raises ChangeRefused (it looks like a rename), unless `allow_drop`.
    """
    from domain.system import SYSTEM_TABLES

    if not system and history.directory is not None:
        history.directory.mkdir(parents=True, exist_ok=True)
    migrate(engine, history)
    config = alembic_config(history)
    scripts = ScriptDirectory.from_config(config)
    lineage = SYSTEM_LINEAGE if system else CATALOG_LINEAGE
    config.attributes["owns_table"] = (lambda name: name in SYSTEM_TABLES) if system else (
        lambda name: name not in SYSTEM_TABLES and name != "alembic_version")
    config.attributes["allow_drop"] = allow_drop
    config.attributes["summary"] = summary
    if system:  # depot's own history: unqualified, in its own schema (see migrate)
        config.attributes["version_table_schema"] = history.catalog.system_schema
    started = _lineage_head(scripts, lineage) is not None
    kwargs: dict = {"head": f"{lineage}@head"} if started else {
        "head": "base", "branch_label": lineage,
        "version_path": str(SYSTEM_VERSIONS if system else history.directory),
        # the catalog's tables reference sources and ingest_batches: its base needs them first
        "depends_on": None if system else _lineage_head(scripts, SYSTEM_LINEAGE),
    }
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        # depot's own tables are compared in their schema, off the search_path, as the metadata names them
        # (schema_changes.compared_schemas): on it, PostgreSQL would name their foreign keys' targets
        # without the schema and every one would look changed. Known limit, for depot's developers only:
        # what --system writes names that schema (schema='depot'); depot's history is unqualified (it runs
        # with the system schema on the search_path), so take the schema out by hand.
        script = command.revision(config, message=message, autogenerate=True, rev_id=rev_id, **kwargs)
    return Path(script.path) if script else None  # alembic answers [] when env.py dropped an empty one


def _lineage_head(scripts: ScriptDirectory, lineage: str) -> str | None:
    try:
        return scripts.revision_map.get_current_head(lineage)
    except Exception:  # no revision carries that label yet
        return None


def create_schema(engine: Engine, catalog: Catalog) -> None:
    """The catalog's tables straight from metadata: for catalogs no migration knows (test tables)."""
    with engine.begin() as connection:
        for schema in (catalog.system_schema, catalog.schema):
            connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        build_metadata(catalog).create_all(connection)
        if "sources" in catalog:
            connection.exec_driver_sql(seed_sql(catalog))


def drop_schema(engine: Engine, catalog: Catalog) -> None:
    with engine.begin() as connection:
        build_metadata(catalog).drop_all(connection)
        for schema in (catalog.system_schema, catalog.schema):
            connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{schema}".{VERSION_TABLE}')
