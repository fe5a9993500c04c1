"""The PostgreSQL repository and unit of work, in SQLAlchemy Core over one connection per unit of work."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine

from adapters.postgres.compile import fetch_statement, order_by, where_clause
from adapters.postgres.db import read_engine, read_from_primary
from adapters.postgres.history import record_rows
from adapters.postgres.tables import checks_of, next_id, relation, relations_metadata, stored_columns
from domain.errors import (
    BadRequest,
    Conflict,
    DuplicateKey,
    InvalidRows,
    ReferenceViolation,
    Unavailable,
    UnknownTable,
)
from domain.ingestion import data_columns
from domain.ports import AbstractIngestRepository, AbstractRepository, AbstractUnitOfWork, BulkEncoder, Row
from domain.query import Fetch, Query, Where
from domain.schema import Catalog, ColumnType, Table


def _check_columns(catalog: Catalog) -> dict[str, str]:
    return {f"ck_{t.name}_{name}": c.name for t in catalog for c in t.columns for name, _ in checks_of(c)}


@contextmanager
def translate_errors(catalog: Catalog) -> Iterator[None]:
    """PostgreSQL's refusals as domain errors, with its own words as the details."""
    try:
        yield
    except sa.exc.DBAPIError as error:
        raise domain_error(error, catalog) from None


def domain_error(error: sa.exc.DBAPIError, catalog: Catalog) -> Exception:
    orig = error.orig
    pgcode = getattr(orig, "pgcode", None) or ""
    diag = getattr(orig, "diag", None)
    message = (getattr(diag, "message_primary", None) or str(orig).splitlines()[0]).strip()
    detail = getattr(diag, "message_detail", None)
    if pgcode == "23505":
        return DuplicateKey(message, details=detail)
    if pgcode == "23503":
        return ReferenceViolation(message, details=detail)
    if pgcode in ("23514", "23502"):
        constraint = getattr(diag, "constraint_name", None)
        field = _check_columns(catalog).get(constraint or "", getattr(diag, "column_name", None) or "")
        return InvalidRows(message, code=pgcode,
                           details=[{"row": None, "field": field, "code": "check", "message": message}])
    if pgcode.startswith("22"):
        return BadRequest(message, details=detail, code=pgcode)
    if pgcode == "57014":
        return Unavailable("The statement took longer than the statement timeout and was cancelled.",
                           hint="Narrow the filter, or ask with a smaller limit.")
    if pgcode in ("40001", "40P01"):
        return Conflict(message, code=pgcode, hint="A concurrent write touched the same rows; retry.")
    if pgcode.startswith("23"):
        return Conflict(message, details=detail, code=pgcode)
    if not pgcode and (error.connection_invalidated or isinstance(error, sa.exc.OperationalError)):
        # The server is gone or unreachable (restarting, crashed): a 503 to retry, not a 500.
        return Unavailable("The database is not reachable right now", code="08006", hint="Retry in a moment.")
    return error


_OLD = "depot:old:"  # the label prefix of a row's values before an UPDATE, where they are returned


def _rows(result: sa.CursorResult) -> list[Row]:
    """Plain dicts with plain str keys (SQLAlchemy's are a str subclass, which orjson refuses)."""
    keys = [str(k) for k in result.keys()]
    return [dict(zip(keys, values, strict=True)) for values in result]


@functools.cache
def _get_sql(table: sa.Table, dialect: sa.Dialect) -> tuple[str, tuple[str, ...]]:
    """SELECT of one row by primary key, compiled for the driver, and its parameters' names."""
    names = tuple(f"key_{n}" for n in range(len(table.primary_key.columns)))
    statement = sa.select(*stored_columns(table)).where(
        *(c == sa.bindparam(name, type_=c.type) for c, name in zip(table.primary_key.columns, names, strict=True))
    )
    return str(statement.compile(dialect=dialect)), names


class SqlAlchemyRepository(AbstractRepository):
    def __init__(self, uow: SqlAlchemyUnitOfWork, table: Table):
        super().__init__(table)
        self.uow = uow
        self.sa_table: sa.Table = relation(uow.metadata, table.name)
        self._key = [self.sa_table.c[c] for c in table.primary_key]

    @property
    def connection(self) -> Connection:
        return self.uow.connection

    def _run(self, statement: sa.Executable | str, params: Any = None) -> sa.CursorResult:
        """Run a statement, or SQL already compiled for this dialect (a str, with its parameters)."""
        def run() -> sa.CursorResult:
            if isinstance(statement, str):
                return self.connection.exec_driver_sql(statement, params)
            return self.connection.execute(statement, params)

        with translate_errors(self.uow.catalog):
            try:
                return run()
            except sa.exc.DBAPIError as error:
                # A read stands alone (see SqlAlchemyUnitOfWork.reading), so one that met a
                # connection the server had dropped (it restarted) can run again on a new one.
                if not (self.uow.read_only and error.connection_invalidated):
                    raise
            self.uow.reconnect()
            return run()

    def get(self, key: tuple) -> Row | None:
        # The hottest read: its SQL is compiled once per table, not built and looked up per call
        # (SQLAlchemy's statement building and cache-key walk were most of a get's Python time),
        # and run on the driver's cursor: SQLAlchemy's execution context and result object were
        # another 7% of a get's Python time (profiled), for one row of plain values.
        sql, names = _get_sql(self.sa_table, self.uow.engine.dialect)
        params = dict(zip(names, key, strict=True))
        with translate_errors(self.uow.catalog):
            try:
                row = self._fetch_one(sql, params)
            except sa.exc.DBAPIError as error:
                if not (self.uow.read_only and error.connection_invalidated):
                    raise
                self.uow.reconnect()  # as _run: a read that met a dropped connection runs again once
                row = self._fetch_one(sql, params)
        return row

    def _fetch_one(self, sql: str, params: dict[str, Any]) -> Row | None:
        """`sql` on the driver's own cursor. A driver error goes through the Connection's own
        handling, as if SQLAlchemy had run the statement: wrapped, a dropped connection
        invalidated, and the engine's handle_error listeners told (the metrics count statement
        timeouts there). `_handle_dbapi_exception` is private; SQLAlchemy 1.4 to 2.1 keep it."""
        dbapi = self.connection.connection.dbapi_connection
        cursor = dbapi.cursor()
        try:
            cursor.execute(sql, params)
            values = cursor.fetchone()
            return None if values is None else dict(zip([d[0] for d in cursor.description], values, strict=True))
        except Exception as error:  # noqa: BLE001 - re-raised, wrapped, by SQLAlchemy
            self.connection._handle_dbapi_exception(error, sql, params, cursor, None)
        finally:
            if not cursor.closed:
                cursor.close()

    def refresh(self) -> bool:
        self._writing()
        # CONCURRENTLY keeps the view readable meanwhile, but PostgreSQL allows it only on a view
        # that has data already and a unique index on plain columns (the rows are matched by it).
        concurrently = bool(self._run(sa.text(
            "SELECT c.relispopulated AND EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid "
            "AND x.indisunique AND x.indpred IS NULL AND x.indexprs IS NULL) FROM pg_class c WHERE c.oid = "
            "CAST(:name AS regclass)"), {"name": self._quoted_name}).scalar())
        self._run(f"REFRESH MATERIALIZED VIEW {'CONCURRENTLY ' if concurrently else ''}{self._quoted_name}")
        return concurrently

    @property
    def _quoted_name(self) -> str:
        return self.connection.dialect.identifier_preparer.format_table(self.sa_table)

    def _writing(self) -> None:
        if self.uow.read_only:  # a programming error: reading() runs statements without a transaction
            raise RuntimeError("a write in a unit of work opened with reading()")

    def add(self, rows: Sequence[Row]) -> list[Row]:
        self._writing()
        if not rows:
            return []
        statement = sa.insert(self.sa_table).returning(*stored_columns(self.sa_table))
        written = _rows(self._run(statement, list(rows)))
        if self.table.history:  # a write stamps its rows with one time (services.stamp_new)
            self._record(written, "insert", written[0][self.table.system.updated_at])
        return written

    def _record(self, rows: list[Row], operation: str | Callable[[Row], str], at: dt.datetime) -> None:
        """Keep the versions these rows now have in the table's history (adapters.postgres.history)."""
        with translate_errors(self.uow.catalog):
            record_rows(self.connection, self.uow.metadata, self.table, rows, operation, at)

    def upsert(self, rows: Sequence[Row], conflict: tuple[str, ...], *, update: bool, now: dt.datetime) -> list[Row]:
        """Rows come one per conflict key, in arrival order, and are written in key order: concurrent
        upserts then lock the rows they share in one order and queue instead of deadlocking. New
        surrogate ids are drawn before, in arrival order, as the memory adapter draws them; the rows
        written come back in arrival order too."""
        self._writing()
        if not rows:
            return []
        keys = [tuple(r[c] for c in conflict) for r in rows]
        if self.table.surrogate is not None and self.table.surrogate not in conflict:
            rows = self._with_ids(rows, keys, conflict)
        arrival = {k: i for i, k in enumerate(keys)}
        by_key = [rows[i] for i in sorted(range(len(rows)), key=lambda i: tuple((v is None, v) for v in keys[i]))]
        statement = pg_insert(self.sa_table)
        if update:
            t, excluded = self.sa_table.c, statement.excluded
            written = [c for c in rows[0] if c not in self.table.kept_on_update and c not in conflict]
            changed = sa.or_(*(t[c].is_distinct_from(excluded[c]) for c in written)) if written else sa.false()
            values: dict[str, Any] = {**{c: excluded[c] for c in written}, **self._bumped(changed, now)}
            statement = statement.on_conflict_do_update(index_elements=list(conflict), set_=values)
        else:
            statement = statement.on_conflict_do_nothing(index_elements=list(conflict))
        statement = statement.returning(*stored_columns(self.sa_table))
        result = _rows(self._run(statement, by_key))
        if self.table.history:
            created, updated = self.table.system.created_at, self.table.system.updated_at
            # The rows this upsert wrote carry its time; the others it matched and left as they were.
            self._record([r for r in result if r[updated] == now],
                         lambda r: "insert" if r[created] == now else "update", now)
        # (a key PostgreSQL gave back in another form than sent, were there one, would keep its place)
        return sorted(result, key=lambda r: arrival.get(tuple(r[c] for c in conflict), len(arrival)))

    def _with_ids(self, rows: Sequence[Row], keys: list[tuple], conflict: tuple[str, ...]) -> list[Row]:
        """The rows with their surrogate id: a stored key's own (the conflict makes the row an update, and
        a drawn id would be burnt, which memory never does), else one drawn now, in arrival order."""
        surrogate = self.table.surrogate
        assert surrogate is not None
        columns = [self.sa_table.c[c] for c in conflict]
        condition = columns[0].in_([k[0] for k in keys]) if len(columns) == 1 else sa.tuple_(*columns).in_(keys)
        found = self._run(sa.select(*columns, self.sa_table.c[surrogate]).where(condition))
        stored = {tuple(r[:-1]): r[-1] for r in found}
        new = sum(k not in stored for k in keys)
        drawn = iter(())
        if new:
            table = self.connection.dialect.identifier_preparer.format_table(self.sa_table)
            drawn = iter(sorted(self._run(sa.text(
                f"SELECT {next_id(table, surrogate)} FROM generate_series(1, :n)"
            ), {"n": new}).scalars()))
        return [{**r, surrogate: stored[k] if k in stored else next(drawn)} for r, k in zip(rows, keys, strict=True)]

    def list(self, query: Query) -> list[Row]:
        statement = sa.select(*stored_columns(self.sa_table))
        if query.where is not None:
            statement = statement.where(where_clause(self.sa_table, query.where))
        statement = statement.order_by(*order_by(self.sa_table, query.order), *self._key)
        if query.offset:
            statement = statement.offset(query.offset)
        if query.limit is not None:
            statement = statement.limit(query.limit)
        return _rows(self._run(statement))

    def _fetched_rows(self, fetch: Fetch, keys: Sequence[Any], rows: Sequence[Sequence[Any]]) -> list[Row]:
        """Rows as plain dicts, zipped in C from the cursor's tuples (no per-row mapping objects)."""
        names = [str(k) for k in keys]
        out = [dict(zip(names, values, strict=True)) for values in rows]
        for label, agg in fetch.aggregates:
            if agg.function == "sum" and agg.column is not None and agg.cast is None \
                    and self.table.column(agg.column).type in (ColumnType.INTEGER, ColumnType.BIGINT):
                for row in out:  # summed as numeric(38,0) so bigint sums cannot overflow; whole numbers out
                    if row[label] is not None:
                        row[label] = int(row[label])
        return out

    def fetch(self, fetch: Fetch) -> list[Row]:
        result = self._run(fetch_statement(self.sa_table, self.table, fetch, catalog=self.uow.catalog))
        return self._fetched_rows(fetch, result.keys(), result.all())

    def fetch_batches(self, fetch: Fetch, size: int) -> Iterator[list[Row]]:
        """A server-side cursor, read `size` rows at a time: memory stays flat however many rows match."""
        statement = fetch_statement(self.sa_table, self.table, fetch, catalog=self.uow.catalog)
        with translate_errors(self.uow.catalog):
            result = self.connection.execution_options(stream_results=True, max_row_buffer=size).execute(statement)
            try:
                keys = result.keys()
                for part in result.partitions(size):
                    yield self._fetched_rows(fetch, keys, part)
            finally:
                result.close()

    def total(self, fetch: Fetch, *, planned: bool = False) -> int:
        inner = fetch_statement(self.sa_table, self.table, fetch, paged=False, catalog=self.uow.catalog)
        if not fetch.aggregates:
            inner = inner.with_only_columns(sa.literal(1), maintain_column_froms=True)
        statement = sa.select(sa.func.count()).select_from(inner.subquery())
        if not planned:
            return self._run(statement).scalar_one()
        compiled = inner.compile(self.connection, compile_kwargs={"render_postcompile": True})
        with translate_errors(self.uow.catalog):
            plan = self.connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled),
                                                   compiled.params).scalar_one()
        return int(plan[0]["Plan"]["Plan Rows"])

    def count(self, where: Where | None) -> int:
        statement = sa.select(sa.func.count()).select_from(self.sa_table)
        if where is not None:
            statement = statement.where(where_clause(self.sa_table, where))
        return self._run(statement).scalar_one()

    def update(self, where: Where | None, changes: Row, now: dt.datetime) -> list[Row]:
        self._writing()
        t = self.sa_table.c
        changed = sa.or_(*(t[c].is_distinct_from(sa.bindparam(f"new_{c}", v, type_=t[c].type))
                           for c, v in changes.items()))
        edited = {c: sa.case((changed, sa.literal(v, t[c].type)), else_=t[c])
                  for c, v in self.table.edited_stamp().items() if c not in changes}  # a promote names its own
        statement = sa.update(self.sa_table).values({**changes, **self._bumped(changed, now), **edited})
        if where is not None:
            statement = statement.where(where_clause(self.sa_table, where))
        returning = list(stored_columns(self.sa_table))
        rekeyed = self.table.history and any(k in changes for k in self.table.primary_key)
        if rekeyed:  # the rows as they were too (PostgreSQL 18's RETURNING old.*), for their old key's history
            returning += [sa.literal_column(f'old."{c.name}"').label(f"{_OLD}{c.name}") for c in self.table.columns]
        rows = _rows(self._run(statement.returning(*returning)))
        if not self.table.history:
            return rows
        changed = [r for r in rows if r[self.table.system.updated_at] == now]
        if not rekeyed:
            self._record(changed, "update", now)
            return rows
        olds = [{c.name: r[f"{_OLD}{c.name}"] for c in self.table.columns} for r in changed]
        rows = [{k: v for k, v in r.items() if not k.startswith(_OLD)} for r in rows]
        new = [r for r in rows if r[self.table.system.updated_at] == now]
        moved = [self.table.key_of(o) != self.table.key_of(n) for o, n in zip(olds, new, strict=True)]
        # A row whose key changed is, to the history, the old key's row gone and the new key's come,
        # as the memory adapter records it.
        self._record([o for o, m in zip(olds, moved, strict=True) if m], "delete", now)
        self._record(new, lambda r: "insert" if self.table.key_of(r) not in {
            self.table.key_of(o) for o in olds} else "update", now)
        return rows

    def _bumped(self, changed: sa.ColumnElement[bool], now: dt.datetime) -> dict[str, sa.ColumnElement]:
        """The version and updated_at of a written row: moved on only when a value really changed."""
        t, s = self.sa_table.c, self.table.system
        return {s.version: sa.case((changed, t[s.version] + 1), else_=t[s.version]),
                s.updated_at: sa.case((changed, sa.literal(now, t[s.updated_at].type)), else_=t[s.updated_at])}

    def delete(self, where: Where | None, now: dt.datetime | None = None) -> list[Row]:
        self._writing()
        statement = sa.delete(self.sa_table)
        if where is not None:
            statement = statement.where(where_clause(self.sa_table, where))
        rows = _rows(self._run(statement.returning(*stored_columns(self.sa_table))))
        if self.table.history:
            self._record(rows, "delete", now or dt.datetime.now(dt.UTC))
        return rows


class SqlAlchemyUnitOfWork(AbstractUnitOfWork):
    """One connection and one transaction per unit of work; leaving without commit() rolls back.

    DEPOT_STATEMENT_TIMEOUT_MS is the engine's, set once per connection (adapters.postgres.db.make_engine).
    """

    kind = "postgres"

    def __init__(self, engine: Engine, catalog: Catalog, *, writers: int = 2):
        self.engine = engine
        self.catalog = catalog
        self.writers = writers  # a batch's chunks written side by side (DEPOT_INGEST_WRITERS)
        self.metadata = relations_metadata(catalog)
        self.connection: Connection | None = None  # type: ignore[assignment]
        self._transaction: sa.Transaction | None = None
        self.read_only = False
        # Batches whose chunks met stored keys: their next chunks skip the direct COPY (ingest.py).
        self.direct_copy_missed: set[int] = set()
        self._held: Connection | None = None  # held(): the connection every transaction inside it runs on

    @contextmanager
    def held(self) -> Iterator[None]:
        """One connection for every transaction opened inside (a batch's chunks): checked out of the pool,
        and pinged, once, rather than once per chunk. Closed (back to the pool) on leaving."""
        if self._held is not None:
            yield
            return
        with translate_errors(self.catalog):
            self._held = self.engine.connect()
        try:
            yield
        finally:
            held, self._held = self._held, None
            held.close()

    def sibling(self) -> SqlAlchemyUnitOfWork | None:
        """A unit of work on the same engine, which knows the same batches' direct-COPY misses; None
        unless the engine's pool would still have a connection free for others once it took one (a
        writer more is not worth a write elsewhere waiting for the pool, or this one waiting for it)."""
        pool = self.engine.pool
        if isinstance(pool, sa.pool.QueuePool) and \
                pool.checkedout() + 2 > pool.size() + max(getattr(pool, "_max_overflow", 0), 0):
            return None
        other = SqlAlchemyUnitOfWork(self.engine, self.catalog, writers=self.writers)
        other.direct_copy_missed = self.direct_copy_missed
        return other

    def reading(self) -> SqlAlchemyUnitOfWork:
        """Reads only: the connection runs in autocommit, so each statement is sent alone, with no
        BEGIN before it and no ROLLBACK after it (two of a get-by-key's three round trips). Each
        statement sees what was committed when it began, exactly as it would inside the READ
        COMMITTED transaction it replaces."""
        self.read_only = True
        return self

    def __enter__(self) -> SqlAlchemyUnitOfWork:
        try:
            self._connect()
        except BaseException:
            self.read_only = False
            raise
        return self

    def _connect(self) -> None:
        with translate_errors(self.catalog):
            if not self.read_only:
                self.connection = self._held if self._held is not None else self.engine.connect()
                self._transaction = self.connection.begin()
                return
            reader = read_engine(self.engine, primary=read_from_primary.get())
            if reader is not None:
                self.connection = reader.connect()
            else:  # an engine that make_engine did not build: switch this connection for a while
                self.connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def reconnect(self) -> None:
        """A new connection in place of one the server dropped (reads only: nothing is lost)."""
        assert self.read_only and self.connection is not None
        self.connection.close()
        self._connect()

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.rollback()
        finally:
            self.read_only = False
            if self.connection is not None and self.connection is not self._held:
                self.connection.close()
            self.connection = None

    def repository(self, table: str) -> SqlAlchemyRepository:
        if table not in self.catalog:
            raise UnknownTable(f"Could not find the table '{table}'")
        return SqlAlchemyRepository(self, self.catalog[table])

    def ingestion(self) -> AbstractIngestRepository:
        from adapters.postgres.ingest import SqlAlchemyIngestRepository

        return SqlAlchemyIngestRepository(self)

    def bulk_encoder(self, table: Table) -> BulkEncoder | None:
        from adapters.postgres.ingest import copy_encoder

        return copy_encoder(table, data_columns(table))

    def commit(self) -> None:
        if self.read_only:
            raise RuntimeError("commit() in a unit of work opened with reading()")
        if self._transaction is not None and self._transaction.is_active:
            with translate_errors(self.catalog):
                self._transaction.commit()
        self._transaction = None

    def rollback(self) -> None:
        if self._transaction is not None and self._transaction.is_active:
            self._transaction.rollback()
        self._transaction = None
