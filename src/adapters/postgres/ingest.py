"""The ingestion port on PostgreSQL: COPY into a staging table, then one set-based upsert.

The merge is one `INSERT ... SELECT ... ON CONFLICT (natural key) DO UPDATE ... WHERE` whose WHERE
holds domain.ingestion's rules (the stored row's source has no higher priority, and some data
column differs), so a row the rules keep is not touched at all: no version bump, no new
updated_at, no dead tuple. RETURNING (xmax = 0) tells inserted rows from updated ones; the
staged rows that came back neither way are counted as superseded (their stored source has the
higher priority) or unchanged by one join. Rows are inserted in key order, but surrogate ids are
drawn in arrival order first (see _insert_sql), so both adapters give the same rows the same ids.

A batch's lease is a session-level advisory lock on its id, held by a connection of its own:
when the process holding it dies, PostgreSQL drops the connection and the lock with it.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from functools import cache
from operator import itemgetter
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import psycopg2
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from adapters.postgres.history import history_items, revert_sql
from adapters.postgres.repository import translate_errors
from adapters.postgres.tables import next_id, relation, sql_type, system_table_sql
from domain.ingestion import (
    REPORTED_CONFLICTS,
    MergeCounts,
    RawCells,
    Reverted,
    column_of,
    conflict_of,
    data_columns,
    keys_of,
)
from domain.ports import AbstractIngestRepository, BatchLease, Row
from domain.schema import CLAIMED_AT, HISTORY_ID, HISTORY_VALID_TO, Catalog, ColumnType, Table

if TYPE_CHECKING:
    from adapters.postgres.repository import SqlAlchemyUnitOfWork

log = logging.getLogger("depot.ingest")

# The first key of the two-int advisory locks that lease batches (the second is the batch id).
LEASE_NAMESPACE = 7_270_447
# What copy_expert reads from the buffer per call. Its default, 8 KiB, is a GIL release and
# re-acquisition per 8 KiB: thousands per chunk, each a wait behind the parser and validator
# threads on a busy machine.
_COPY_BLOCK = 1 << 20
_LOCK = "SELECT pg_advisory_lock(%s, mod(%s, 2147483647)::int)"
_UNLOCK = "SELECT pg_advisory_unlock(%s, mod(%s, 2147483647)::int)"
# A staged row's place in its chunk, for tables with a surrogate id; no declared column can be named so.
_ARRIVAL = '"depot:arrival"'
# Whether the merge inserted a row, beside the row's own columns in its RETURNING.
_INSERTED = '"depot:inserted"'


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresLease(BatchLease):
    def __init__(self, connection: sa.Connection, batch_id: int):
        self.connection = connection
        self.batch_id = batch_id

    def release(self) -> None:
        try:
            self.connection.exec_driver_sql(_UNLOCK, (LEASE_NAMESPACE, self.batch_id))
            self.connection.commit()
        finally:
            self.connection.close()


class SqlAlchemyIngestRepository(AbstractIngestRepository):
    def __init__(self, uow: SqlAlchemyUnitOfWork):
        self.uow = uow
        self.phases: dict[str, float] = {}  # seconds by step of the current merge (_phase)
        self.drawing: AbstractContextManager[None] = nullcontext()  # the current merge's (merge, _draw)
        self._draws = ExitStack()
        self._drawing_entered = False

    @property
    def connection(self) -> sa.Connection:
        return self.uow.connection

    def present_keys(self, table: str, columns: tuple[str, ...], keys: set[tuple]) -> set[tuple]:
        if not keys:
            return set()
        sa_table = relation(self.uow.metadata, table)
        cols = [sa_table.c[c] for c in columns]
        if len(cols) == 1:
            condition = cols[0].in_([k[0] for k in keys])
        else:
            condition = sa.tuple_(*cols).in_(list(keys))
        statement = sa.select(*cols).where(condition)
        with translate_errors(self.uow.catalog):
            return {tuple(r) for r in self.connection.execute(statement)}

    def merge(
        self,
        table: Table,
        rows: Sequence[Row],
        *,
        source: str,
        priority: int,
        batch_id: int,
        now: dt.datetime,
        on_conflict: str,
        encoded: Sequence[Any] | None = None,
        drawing: AbstractContextManager[None] = nullcontext(),
    ) -> MergeCounts:
        if not rows:
            return MergeCounts()
        self.phases = {}
        self.drawing, self._draws, self._drawing_entered = drawing, ExitStack(), False
        try:
            return self._merge(table, rows, source, priority, batch_id, now, on_conflict, encoded)
        finally:
            self._drawn()
            if log.isEnabledFor(logging.DEBUG):
                log.debug("merge of %d %s rows: %s", len(rows), table.name,
                          ", ".join(f"{name} {seconds:.3f}s" for name, seconds in self.phases.items()))

    def _draw(self) -> None:
        """Before a statement that draws ids (surrogate ids, history ids): the merge's `drawing` entered,
        once per merge."""
        if not self._drawing_entered:
            self._drawing_entered = True
            self._draws.enter_context(self.drawing)

    def _drawn(self) -> None:
        """The merge draws no more ids: its `drawing` left (once)."""
        self._draws.close()

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        """Time a step of the merge (logged at debug): where a chunk's time goes, without a profiler."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - started

    def _merge(self, table: Table, rows: Sequence[Row], source: str, priority: int, batch_id: int,
               now: dt.datetime, on_conflict: str, encoded: Sequence[str] | None) -> MergeCounts:
        columns = data_columns(table)
        with translate_errors(self.uow.catalog):
            # Once a chunk of a batch met stored keys (a re-load), its next chunks are not tried:
            # a failed try costs the chunk's CSV twice in the writer thread, the ingest's limit.
            if self.direct_copy and batch_id not in self.uow.direct_copy_missed:
                with self._phase("direct copy"):
                    copied = self._copy_if_all_new(table, columns, rows, source, batch_id, now, encoded)
                if copied:
                    return MergeCounts(inserted=len(rows))
                self.uow.direct_copy_missed.add(batch_id)
            total, unchanged = len(rows), 0
            # Rows the validating thread encoded are compared with their stored rows in PostgreSQL, once staged;
            # others (a JSON body's) are compared in Python, where Python can tell equal values as PostgreSQL does.
            compared = on_conflict == "update" and encoded is None and _comparable(table, columns)
            if compared:  # the unchanged rows go no further: not staged, not merged
                with self._phase("compare"):
                    rows, unchanged = self._changed_rows(table, columns, rows, priority)
                if not rows:
                    return MergeCounts(unchanged=unchanged)
            with self._phase("stage"):
                self._stage(table, columns, rows, encoded)  # always None when compared (above)
            if on_conflict == "error":
                return self._insert_new(table, columns, rows, source, batch_id, now)
            if on_conflict == "update" and not compared:
                with self._phase("drop unchanged"):
                    unchanged = self._drop_unchanged(table, columns, priority)
                if unchanged == len(rows):
                    return MergeCounts(unchanged=unchanged)
            with self._phase("upsert"):
                inserted, updated = self._upsert(table, columns, source, priority, batch_id, now, on_conflict)
            accounted = inserted + updated + unchanged == total  # then nothing is left to tell apart
            superseded = self._superseded(table, priority, source, batch_id, now) \
                if on_conflict == "update" and not accounted else 0
        return MergeCounts(inserted, updated, total - inserted - updated - superseded, superseded)

    def _changed_rows(self, table: Table, columns: tuple[str, ...], rows: Sequence[Row],
                      priority: int) -> tuple[list[Row], int]:
        """The rows the merge has to see, and how many it need not: those equal to their stored row,
        whose source has no higher priority (unchanged). One statement reads the stored rows of the
        chunk's keys (a key lookup each), and Python compares them: nothing is staged or written for
        an unchanged row, and its stored row is not locked (see _drop_unchanged for why that matters).

        Python's equality decides only where it cannot differ from PostgreSQL's IS NOT DISTINCT FROM
        (_comparable); a row it finds different but PostgreSQL equal would still be left as it is by
        the upsert's own WHERE. A row equal to the stored one as this statement sees it counts as
        unchanged even if a concurrent batch changes the stored row before this one commits."""
        changing = [c for c in columns if c not in table.natural_key]
        keys, params = _keys_relation(table, rows)
        weaker = self._weaker(table)
        if table.soft_delete:  # a deleted row sent again is revived, equal values or not
            weaker = f"({weaker}) AND {_live(table)}"
        stored_rows = _looked_up(table, keys, f"{weaker} AS weaker, {', '.join(f't.{_q(c)}' for c in changing)}")
        sql = f"SELECT k.n, s.* FROM {stored_rows}"
        cursor = self.connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, {**params, "priority": priority})
            stored = cursor.fetchall()
        finally:
            cursor.close()
        values = itemgetter(*changing)
        if len(changing) == 1:
            values = lambda r: (r[changing[0]],)  # noqa: E731
        same = {n - 1 for n, weak, *old in stored if weak and values(rows[n - 1]) == tuple(old)}
        if not same:
            return list(rows), 0
        return [r for i, r in enumerate(rows) if i not in same], len(same)

    def _drop_unchanged(self, table: Table, columns: tuple[str, ...], priority: int) -> int:
        """Take out of the stage, and count, the rows the rules keep as stored: equal to their
        stored row, whose source has no higher priority. Each costs a key lookup and a comparison
        here. Left to the upsert, each would cost a write: ON CONFLICT DO UPDATE locks the stored
        row even when its WHERE declines the update, and a row lock is written to the heap page
        and the WAL. A row equal to the stored one as this statement sees it counts as unchanged
        even if a concurrent batch changes the stored row before this one commits."""
        key = table.natural_key
        conditions = []
        changing = [c for c in columns if c not in key]
        if changing:
            old = ", ".join(f"t.{_q(c)}" for c in changing)
            new = ", ".join(f"s.{_q(c)}" for c in changing)
            conditions.append(f"ROW({old}) IS NOT DISTINCT FROM ROW({new})")
        if table.has_provenance:
            conditions.append(self._weaker(table))
        if table.soft_delete:  # a deleted row sent again is revived, equal values or not
            conditions.append(_live(table))
        # A scalar subquery with LIMIT 1 is a lookup in the natural key's unique index per staged row: as a
        # join (USING), the stage, never analyzed, was planned against a scan of the whole table.
        match = " AND ".join(f"t.{_q(c)} = s.{_q(c)}" for c in key)
        sql = (f"DELETE FROM {_stage_of(table)} s WHERE (SELECT {' AND '.join(conditions) or 'true'} "
               f"FROM {_q(table.name)} t WHERE {match} LIMIT 1)")
        return self.connection.exec_driver_sql(sql, {"priority": priority}).rowcount

    # The direct path below; a class attribute so that the tests can compare it with the merge.
    direct_copy = True

    def _copy_if_all_new(
        self, table: Table, columns: tuple[str, ...], rows: Sequence[Row], source: str, batch_id: int,
        now: dt.datetime, encoded: Sequence[str] | None = None,
    ) -> bool:
        """COPY the chunk straight into the table, as the merge would have written it, when none of
        its keys is stored: on a first load PostgreSQL then writes each row once, instead of into
        the staging table and again through INSERT ... SELECT ... ON CONFLICT.

        Tried rather than probed (but for a surrogate id, below): under a savepoint, the COPY fails
        at the first row whose key is stored (at once, on a re-load) or that a concurrent batch
        holds, and the chunk takes the merge path from a clean state, which then answers exactly as
        it would have alone (whatever the error was).

        Rows go in natural-key order, as the merge inserts them: concurrent batches sharing keys
        then take their locks in one order and queue instead of deadlocking. (Python's order of
        the key values is PostgreSQL's: text is COLLATE "C", and keys are never null. A surrogate id
        is drawn before that sort, in arrival order, as the merge draws it.)
        """
        surrogate, history = table.surrogate, table.history
        ids: list[int] = []
        history_ids: list[int] = []  # the rows' first versions', drawn in turn too, so in file order
        if surrogate is not None:
            # A table with a surrogate id is probed instead of tried: a failed try would have drawn ids
            # that its rollback does not give back, and ids would part from the memory adapter's
            # (issue 16). The probe is one index lookup per key, far less than staging and merging, and
            # the ids are drawn in the same statement, only when no key is stored (an InitPlan, run once).
            # (A first probe of the chunk's key range, one index descent, did not pay: the chunks of a
            # file in date order share their edge days.)
            # Drawn in turn (merge's `drawing`); with none drawn, the turn is kept for the merge's draw.
            self._draw()
            with self._phase("probe"):
                probed, params = _keys_relation(table, rows)
                drawn = self.connection.exec_driver_sql(
                    f"SELECT {next_id(_q(table.name), surrogate)}"
                    f"{', ' + next_id(_q(table.history_name), HISTORY_ID) if history else ''} "
                    f"FROM generate_series(1, %(n)s) WHERE NOT EXISTS (SELECT FROM {_looked_up(table, probed, '')})",
                    {**params, "n": len(rows)}).all()
            if not drawn:
                return False
            self._drawn()
            ids = sorted(r[0] for r in drawn)
            history_ids = sorted(r[-1] for r in drawn) if history else []
        with self._phase("write csv"):
            # Key order; a surrogate id goes with its row's place in arrival order, as the merge draws it.
            keys = keys_of(rows, table.natural_key)
            order = sorted(range(len(rows)), key=keys.__getitem__)
            lines = encoded if encoded is not None else copy_encoder(table, columns)(
                {c: column_of(rows, c) for c in columns})
            stamp = table.inserted_stamp(now, source, batch_id)
            # The system values are the same on every record: encoded once, as the start of each.
            start = copy_encoder(table, tuple(stamp))({c: [v] for c, v in stamp.items()})[0][:-1] + ","
            names = [*stamp, *columns]
            if surrogate is None:
                records = [start + lines[i] for i in order]
            else:
                records = [f"{ids[i]},{start}{lines[i]}" for i in order]
                names.insert(0, surrogate)
        savepoint = self.connection.begin_nested()
        try:
            # Should a concurrent batch have stored one of the keys since the probe, the COPY fails on it
            # and the chunk is merged; only then are drawn ids left unused, as concurrent merges may do too.
            self._copy_text([_q(table.name)], names, "".join(records))
            if history:  # the same records into the history table, as the rows' first versions (inserts)
                if not history_ids:  # no probe: drawn once the rows are in, in turn
                    self._draw()
                    history_ids = sorted(r[0] for r in self.connection.exec_driver_sql(
                        f"SELECT {next_id(_q(table.history_name), HISTORY_ID)} FROM generate_series(1, %(n)s)",
                        {"n": len(rows)}))
                    self._drawn()
                self._copy_text([_q(table.history_name)], [HISTORY_ID, *names],
                                "".join([f"{h},{r}" for h, r in zip(history_ids, records, strict=True)]))
        except (sa.exc.DBAPIError, psycopg2.Error):  # the COPY runs on the driver's own cursor
            savepoint.rollback()
            return False
        savepoint.commit()
        return True

    def _stage(self, table: Table, columns: tuple[str, ...], rows: Sequence[Row],
               encoded: Sequence[str] | None = None) -> None:
        """COPY the rows into the table's staging table, made the first time the connection stages that table
        and kept (emptied at each commit): one made and dropped per chunk wrote and left dead rows in
        PostgreSQL's catalogs each time. Made again if a rollback took it away; emptied first, should the
        transaction have staged before."""
        names = ", ".join(map(_q, columns))
        numbered = table.surrogate is not None
        stage = _stage_of(table)
        self.connection.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS SELECT {names}"
            f"{', 0::bigint AS ' + _ARRIVAL if numbered else ''} FROM {_q(table.name)} WITH NO DATA; "
            f"DELETE FROM {stage}"
        )
        self._copy(table, [stage], columns, rows, numbered=numbered, encoded=encoded)

    def _copy(self, table: Table, targets: Sequence[str], columns: tuple[str, ...], rows: Sequence[Row], *,
              numbered: bool = False, encoded: Sequence[str] | None = None) -> None:
        """COPY the rows' `columns` into each target (the CSV is written once, unless `encoded` holds it,
        record by record). `numbered` adds each row's place in `rows` as the staging table's arrival column."""
        with self._phase("write csv"):
            lines = encoded if encoded is not None else copy_encoder(table, columns)(
                {c: column_of(rows, c) for c in columns})
            text = "".join([f"{n},{line}" for n, line in enumerate(lines)]) if numbered else "".join(lines)
        self._copy_text(targets, [*([_ARRIVAL] if numbered else []), *columns], text)

    def _copy_text(self, targets: Sequence[str], names: Sequence[str], text: str) -> None:
        """COPY `text`, records in COPY's csv format, into the `names` of each target."""
        cursor = self.connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        buffer = io.StringIO(text)
        listed = ", ".join(name if name == _ARRIVAL else _q(name) for name in names)
        try:
            for target in targets:
                buffer.seek(0)
                with self._phase(f"copy {target}"):
                    cursor.copy_expert(f"COPY {target} ({listed}) FROM STDIN WITH (FORMAT csv)", buffer,
                                       size=_COPY_BLOCK)
        finally:
            cursor.close()

    def _upsert(
        self, table: Table, columns: tuple[str, ...], source: str, priority: int, batch_id: int,
        now: dt.datetime, on_conflict: str,
    ) -> tuple[int, int]:
        drawn, sql, params = self._insert_sql(table, columns, source, batch_id, now)
        key = ", ".join(map(_q, table.natural_key))
        if on_conflict == "update":
            changing = [c for c in columns if c not in table.natural_key]
            sets = [f"{_q(c)} = EXCLUDED.{_q(c)}" for c in changing]
            s = table.system
            if table.has_provenance:
                sets += [f"{_q(c)} = EXCLUDED.{_q(c)}" for c in (s.source, s.batch_id)]
            sets += [f"{_q(s.version)} = t.{_q(s.version)} + 1", f"{_q(s.updated_at)} = EXCLUDED.{_q(s.updated_at)}"]
            # A soft-deleted row is revived by any row the priority rule lets through (domain.ingestion).
            revived = [f"t.{_q(s.deleted_at)} IS NOT NULL"] if table.soft_delete else []
            sets += [f"{_q(s.deleted_at)} = NULL"] if table.soft_delete else []
            conditions = []
            if table.has_provenance:
                conditions.append(f"{_stored_priority(self.uow.catalog, table)} <= %(priority)s")
            if changing:
                old = ", ".join(f"t.{_q(c)}" for c in changing)
                new = ", ".join(f"EXCLUDED.{_q(c)}" for c in changing)
                differs = f"ROW({old}) IS DISTINCT FROM ROW({new})"
                conditions.append(f"({differs} OR {revived[0]})" if revived else differs)
            else:
                conditions.append(revived[0] if revived else "false")
            sql += f" ON CONFLICT ({key}) DO UPDATE SET {', '.join(sets)} WHERE {' AND '.join(conditions)} "
        else:
            sql += f" ON CONFLICT ({key}) DO NOTHING "
        returning = f"RETURNING (t.xmax = 0) AS {_INSERTED}"
        recorded = ""
        if table.history:
            returning += ", t.*"
            operation = f"CASE WHEN c.{_INSERTED} THEN 'insert' ELSE 'update' END"
            recorded = ", " + history_items(table, "merged", operation=operation)
        if table.keeps_claims:  # this source's values are the row's now: its claim on the key is spent
            match = " AND ".join(f"c.{_q(k)} = m.{_q(k)}" for k in table.natural_key)
            recorded += (f", spent AS (DELETE FROM {_q(table.claims_name)} c USING merged m "
                         f"WHERE {match} AND c.{_q(table.system.source)} = %(source)s)")
        sql = (
            f"WITH {drawn}merged AS ({sql} {returning}){recorded} "
            f"SELECT count(*) FILTER (WHERE {_INSERTED}), count(*) FILTER (WHERE NOT {_INSERTED}) FROM merged"
        )
        if drawn or table.history:  # ids drawn, of the rows or of their versions
            self._draw()
        inserted, updated = self.connection.exec_driver_sql(sql, {**params, "priority": priority}).one()
        self._drawn()
        return int(inserted), int(updated)

    def append(self, table: Table, rows: Sequence[Row], *, source: str, batch_id: int, now: dt.datetime) -> int:
        """Staged, then one INSERT ... SELECT with no ON CONFLICT (the natural key may repeat): the ids are
        drawn in arrival order as on the memory adapter, the history written in the same statement."""
        if not rows:
            return 0
        columns = data_columns(table)
        with translate_errors(self.uow.catalog):
            self._stage(table, columns, rows)
            drawn, sql, params = self._insert_sql(table, columns, source, batch_id, now, fresh=True)
            returning, recorded = "1", ""
            if table.history:
                returning = "t.*"
                recorded = ", " + history_items(table, "merged", operation="'insert'")
            sql = f"WITH {drawn}merged AS ({sql} RETURNING {returning}){recorded} SELECT count(*) FROM merged"
            return int(self.connection.exec_driver_sql(sql, params).scalar_one())

    def _insert_new(
        self, table: Table, columns: tuple[str, ...], rows: Sequence[Row], source: str, batch_id: int,
        now: dt.datetime,
    ) -> MergeCounts:
        """on_conflict=error: insert the staged rows whose key is free; the others (stored by a batch
        that committed since the service looked) are reported as clashed, by their index."""
        drawn, sql, params = self._insert_sql(table, columns, source, batch_id, now)
        key = ", ".join(map(_q, table.natural_key))
        match = " AND ".join(f"m.{_q(c)} = s.{_q(c)}" for c in table.natural_key)
        returning, recorded = key, ""
        if table.history:
            returning = "t.*"
            recorded = ", " + history_items(table, "merged", operation="'insert'")
        sql = (
            f"WITH {drawn}merged AS ({sql} ON CONFLICT ({key}) DO NOTHING RETURNING {returning}){recorded} "
            f"SELECT {', '.join(f's.{_q(c)}' for c in table.natural_key)} FROM {_stage_of(table)} s "
            f"WHERE NOT EXISTS (SELECT 1 FROM merged m WHERE {match})"
        )
        if drawn or table.history:  # ids drawn, of the rows or of their versions
            self._draw()
        taken = {tuple(r) for r in self.connection.exec_driver_sql(sql, params)}
        self._drawn()
        if not taken:
            return MergeCounts(inserted=len(rows))
        key_of = itemgetter(*table.natural_key)
        single = len(table.natural_key) == 1
        clashed = [i for i, r in enumerate(rows) if ((key_of(r),) if single else key_of(r)) in taken]
        return MergeCounts(inserted=len(rows) - len(clashed), clashed=clashed)

    def _insert_sql(
        self, table: Table, columns: tuple[str, ...], source: str, batch_id: int, now: dt.datetime,
        *, fresh: bool = False,
    ) -> tuple[str, str, dict[str, Any]]:
        """(with_item, insert, params): the staged rows' INSERT in key order, without its ON CONFLICT; the
        WITH item it reads from (empty, or ending in a comma); the parameters of both.

        Key order: batches sharing keys lock them in the same order and queue, never deadlock. Yet a
        surrogate id is drawn in arrival order, before that sort, so that the first new row of a file gets
        the smallest new id, as on the memory adapter and as POST /api/{table} does. A staged row whose
        key is stored proposes the stored row's id instead of drawing one: the conflict on the natural
        key turns it into the update (or nothing) all the same, and a drawn id would be burnt, which the
        memory adapter never does. (Should the stored row be deleted meanwhile, the row is inserted with
        its old id back; should its key be changed meanwhile, the proposed id clashes on the primary key
        and the chunk fails with a duplicate key error, to be sent again.) `fresh` (append): every row
        is new, whatever its natural key, and draws an id."""
        target = _q(table.name)
        names = ", ".join(map(_q, columns))
        key = ", ".join(map(_q, table.natural_key))
        # The system columns a new row gets (Table.inserted_stamp), as SQL by their role, whatever their names.
        by_role = {"source": "%(source)s", "batch_id": "%(batch_id)s", "version": "1", "created_at": "%(now)s",
                   "updated_at": "%(now)s"}
        stamped = list(table.inserted_stamp(now, source, batch_id))
        system = [_q(c) for c in stamped]
        system_values = [by_role[table.system.role_of(c)] for c in stamped]  # type: ignore[index]
        params: dict[str, Any] = {"source": source, "batch_id": batch_id, "now": now}
        surrogate = table.surrogate
        if surrogate is None:
            return "", (
                f"INSERT INTO {target} AS t ({names}, {', '.join(system)}) "
                f"SELECT {names}, {', '.join(system_values)} FROM {_stage_of(table)} ORDER BY {key}"
            ), params
        sid = _q(surrogate)
        stored = " AND ".join(f"t.{_q(c)} = s.{_q(c)}" for c in table.natural_key)
        # The ordered subquery is never flattened into its parent, so the ids are drawn as its rows come
        # out of the sort; COALESCE draws only when the stored id is null; MATERIALIZED evaluates it once.
        proposed = "NULL" if fresh else f"(SELECT t.{sid} FROM {target} t WHERE {stored})"
        drawn = (
            f"drawn AS MATERIALIZED (SELECT s.*, COALESCE({proposed}, "
            f"{next_id(target, surrogate)}) AS {sid} "
            f"FROM (SELECT * FROM {_stage_of(table)} ORDER BY {_ARRIVAL}) s), "
        )
        sql = (
            f"INSERT INTO {target} AS t ({sid}, {names}, {', '.join(system)}) "
            f"SELECT {sid}, {names}, {', '.join(system_values)} FROM drawn ORDER BY {key}"
        )
        return drawn, sql, params

    def _superseded(self, table: Table, priority: int, source: str, batch_id: int, now: dt.datetime) -> int:
        """Count the staged rows whose stored row's source has the higher priority; where the table
        keeps claims, keep their values as this source's claim on the key (one per key and source),
        in the same statement."""
        if not table.has_provenance:
            return 0
        join = " AND ".join(f"t.{_q(c)} = s.{_q(c)}" for c in table.natural_key)
        lost = (
            f"FROM {_stage_of(table)} s JOIN {_q(table.name)} t ON {join} "
            f"WHERE {_stored_priority(self.uow.catalog, table)} > %(priority)s"
        )
        params = {"priority": priority, "source": source, "batch_id": batch_id, "now": now}
        if not table.keeps_claims:
            return int(self.connection.exec_driver_sql(f"SELECT count(*) {lost}", params).scalar_one())
        claims = self.uow.catalog[table.claims_name]
        values = [c.name for c in claims.columns if table.has_column(c.name) and not table.column(c.name).system]
        names = [*values, table.system.source, table.system.batch_id, CLAIMED_AT]
        sets = [f"{_q(c)} = EXCLUDED.{_q(c)}" for c in names if c not in claims.primary_key]
        sql = (
            f"WITH claimed AS (INSERT INTO {_q(claims.name)} ({', '.join(map(_q, names))}) "
            f"SELECT {', '.join(f's.{_q(c)}' for c in values)}, %(source)s, %(batch_id)s, %(now)s {lost} "
            f"ON CONFLICT ({', '.join(map(_q, claims.primary_key))}) DO UPDATE SET {', '.join(sets)} RETURNING 1) "
            "SELECT count(*) FROM claimed"
        )
        return int(self.connection.exec_driver_sql(sql, params).scalar_one())

    def revert(self, table: Table, batch_id: int, *, revert_batch: int, now: dt.datetime, force: bool) -> Reverted:
        plan, statements, conflicts, count = revert_sql(table, force)
        params = {"batch": batch_id, "revert_batch": revert_batch, "now": now, "limit": REPORTED_CONFLICTS}
        run = self.connection.exec_driver_sql
        with translate_errors(self.uow.catalog):
            run("DROP TABLE IF EXISTS pg_temp.depot_revert")
            run(plan, params)
            run("ANALYZE depot_revert")  # its row count and keys, for the joins below
            deleted, restored, reinserted = (int(run(sql, params).scalar_one()) for sql in statements)
            pairs = run(conflicts, params).all()
            conflicted = int(run(count).scalar_one())
            history = self.uow.metadata.tables[table.history_name]
            ids = [i for pair in pairs for i in pair if i is not None]
            versions = {r[HISTORY_ID]: dict(r) for r in self.connection.execute(
                sa.select(history).where(history.c[HISTORY_ID].in_(ids))).mappings()} if ids else {}
        return Reverted(restored, reinserted, deleted, conflicted, [
            conflict_of(table, versions[last], versions.get(current)) for last, current in pairs])

    def prune_history(self, table: Table, before: dt.datetime, limit: int) -> int:
        # One chunk: the ids first (LIMIT), so each transaction holds few row locks and is short.
        history = _q(table.history_name)
        sql = (f"DELETE FROM {history} WHERE {_q(HISTORY_ID)} IN (SELECT {_q(HISTORY_ID)} FROM {history} "
               f"WHERE {_q(HISTORY_VALID_TO)} < %(before)s LIMIT %(limit)s)")
        with translate_errors(self.uow.catalog):
            return self.connection.exec_driver_sql(sql, {"before": before, "limit": limit}).rowcount

    def _stage_keys(self, table: Table, name: str, columns: tuple[str, ...], rows: Sequence[Row]) -> None:
        """A temporary table `name` of the rows' `columns`, typed as the table's, filled by COPY."""
        self.connection.exec_driver_sql(f"DROP TABLE IF EXISTS pg_temp.{name}")
        self.connection.exec_driver_sql(
            f"CREATE TEMP TABLE {name} ON COMMIT DROP AS SELECT {', '.join(map(_q, columns))} "
            f"FROM {_q(table.name)} WITH NO DATA")
        if rows:
            self._copy(table, [name], columns, rows)

    def _weaker(self, table: Table) -> str:
        """The priority rule as SQL on the stored row `t`: its source has no higher priority than the batch's."""
        return f"{_stored_priority(self.uow.catalog, table)} <= %(priority)s" if table.has_provenance else "true"

    def _deleting(self, table: Table, delete: str, operation: str, params: dict[str, Any]) -> int:
        """Run `delete` (a DELETE ... RETURNING t.*) and record the rows it took in the table's history
        in the same statement, set-based (adapters.postgres.history). Returns how many it took."""
        if not table.history:
            return self.connection.exec_driver_sql(delete, params).rowcount
        items = history_items(table, "changed", operation=f"'{operation}'", at="%(now)s", batch="%(batch_id)s")
        return int(self.connection.exec_driver_sql(
            f"WITH changed AS ({delete}), {items} SELECT count(*) FROM changed", params).scalar_one())

    def _removal(self, table: Table, using: str, condition: str) -> tuple[str, str]:
        """(statement, operation): the DELETE ... RETURNING t.* of the rows of `table` t that `condition`
        picks (with `using`, a FROM list, or ""); on a soft-delete table the UPDATE that marks its
        live rows deleted instead, with the batch's version, recorded as an update (the row stays)."""
        target = _q(table.name)
        if not table.soft_delete:
            return f"DELETE FROM {target} t{' USING ' + using if using else ''} WHERE {condition} RETURNING t.*", ""
        s = table.system
        sets = [f"{_q(s.deleted_at)} = %(now)s", f"{_q(s.version)} = t.{_q(s.version)} + 1",
                f"{_q(s.updated_at)} = %(now)s"]
        if table.has_provenance:
            sets.append(f"{_q(s.batch_id)} = %(batch_id)s")
        return (f"UPDATE {target} t SET {', '.join(sets)}{' FROM ' + using if using else ''} "
                f"WHERE {condition} AND {_live(table)} RETURNING t.*"), "update"

    def delete_keys(self, table: Table, keys: Sequence[Row], *, priority: int, batch_id: int,
                    now: dt.datetime) -> tuple[int, int]:
        key = table.natural_key
        join = " AND ".join(f"t.{_q(c)} = k.{_q(c)}" for c in key)
        params = {"priority": priority, "batch_id": batch_id, "now": now}
        with translate_errors(self.uow.catalog):
            self._stage_keys(table, "depot_keys", key, keys)
            removal, operation = self._removal(table, "depot_keys k", f"{join} AND {self._weaker(table)}")
            deleted = self._deleting(table, removal, operation or "delete", params)
            superseded = 0
            if table.has_provenance:
                live = f" WHERE {_live(table)}" if table.soft_delete else ""
                superseded = self.connection.exec_driver_sql(
                    f"SELECT count(*) FROM depot_keys k JOIN {_q(table.name)} t ON {join}{live}",
                ).scalar_one()  # what is left of the keys is what a stronger source holds
        return deleted, int(superseded)

    def retire_partitions(self, table: Table, partition: tuple[str, ...], partitions: set[tuple],
                          keep: Sequence[Row], *, priority: int, batch_id: int, now: dt.datetime) -> int:
        if not partitions:
            return 0
        key = table.natural_key
        kept = " AND ".join(f"t.{_q(c)} = k.{_q(c)}" for c in key)
        covered = " AND ".join(f"t.{_q(c)} = p.{_q(c)}" for c in partition)
        with translate_errors(self.uow.catalog):
            self._stage_keys(table, "depot_keep", key, keep)
            self._stage_keys(table, "depot_partitions", partition,
                             [dict(zip(partition, p, strict=True)) for p in partitions])
            removal, operation = self._removal(
                table, "", f"EXISTS (SELECT 1 FROM depot_partitions p WHERE {covered}) "
                           f"AND NOT EXISTS (SELECT 1 FROM depot_keep k WHERE {kept}) AND {self._weaker(table)}")
            return self._deleting(table, removal, operation or "retire",
                                  {"priority": priority, "batch_id": batch_id, "now": now})

    def take_turn(self, batch_id: int, number: int) -> None:
        """A transaction-level advisory lock of its own for each chunk of the batch, held till this
        transaction ends; the next chunk's await_turn waits for it, as PostgreSQL can see."""
        with translate_errors(self.uow.catalog):
            self.connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (_turn_key(batch_id, number),))

    def await_turn(self, batch_id: int, number: int) -> None:
        """Wait for chunk `number`'s lock (take_turn), shared, so its transaction's end. A cycle through
        this wait (a concurrent batch waiting for a row this chunk wrote, while holding one the earlier
        chunk needs) is a deadlock PostgreSQL detects and breaks, as it would between two chunks. The wait
        is as long as the rest of that chunk's work, so no statement timeout applies to it (the
        transaction's own is back for what follows)."""
        with translate_errors(self.uow.catalog):
            timeout = self.connection.exec_driver_sql(
                "SELECT current_setting('statement_timeout'), set_config('statement_timeout', '0', true)").scalar()
            self.connection.exec_driver_sql("SELECT pg_advisory_xact_lock_shared(%s)",
                                            (_turn_key(batch_id, number),))
            self.connection.exec_driver_sql("SELECT set_config('statement_timeout', %s, true)", (timeout,))

    def begin_batch(self, batch: Row) -> BatchLease:
        batches = relation(self.uow.metadata, "ingest_batches")
        connection = self.uow.engine.connect()
        try:
            with translate_errors(self.uow.catalog), connection.begin():
                batch_id = connection.execute(sa.insert(batches).values(batch).returning(batches.c.id)).scalar_one()
                # Taken before the row is visible to anyone, so no sweeper can see it running and unleased.
                connection.exec_driver_sql(_LOCK, (LEASE_NAMESPACE, batch_id))
        except BaseException:
            connection.close()
            raise
        return PostgresLease(connection, batch_id)

    def update_by_id(self, table: str, row_id: int, changes: Row) -> None:
        sa_table = relation(self.uow.metadata, table)
        with translate_errors(self.uow.catalog):
            self.connection.execute(sa.update(sa_table).where(sa_table.c.id == row_id).values(changes))

    def fail_orphaned_batches(self, now: dt.datetime) -> list[int]:
        # Try the lock of running batches only (the CTE is evaluated first); the try-locks are
        # transaction-level, so they are gone at commit.
        batches = system_table_sql(self.uow.catalog, "ingest_batches")
        sql = (
            f"WITH running AS MATERIALIZED (SELECT id FROM {batches} WHERE status = 'running') "
            f"UPDATE {batches} SET status = 'failed', finished_at = %(now)s "
            "WHERE id IN (SELECT id FROM running WHERE pg_try_advisory_xact_lock(%(ns)s, mod(id, 2147483647)::int)) "
            "AND status = 'running' RETURNING id"  # re-checked if the batch finished meanwhile
        )
        with translate_errors(self.uow.catalog):
            return sorted(r[0] for r in self.connection.exec_driver_sql(sql, {"now": now, "ns": LEASE_NAMESPACE}))


class _Null(float):
    """NULL in COPY's csv format: csv.writer leaves it unquoted (a number) and writes it as ''."""

    def __str__(self) -> str:
        return ""

    __repr__ = __str__


_NULL = _Null()


def _turn_key(batch_id: int, number: int) -> int:
    """The one-bigint advisory lock key of a chunk's turn: a space apart from the leases' two-int keys
    (PostgreSQL tells the two forms apart). The batch id's low 31 bits and the chunk's low 32: keys
    repeat only for batches 2**31 ids apart or chunks 2**32 apart, never both running at once."""
    return (batch_id % 2**31) << 32 | number % 2**32


def _array_literal(items: list[Any]) -> str:
    """PostgreSQL's array input, `{"a","b \\"c\\""}`: every item quoted, so commas, braces, spaces
    and the word NULL stay text."""
    return "{" + ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in items) + "}"


# The column types whose Python value is not what COPY reads from str(value).
_COPY_TEXT: dict[ColumnType, Callable[[Any], str]] = {
    ColumnType.JSON: json.dumps,
    ColumnType.ARRAY: _array_literal,
}


# The types of column whose cells COPY reads as the validated values, where the validator's common path
# took each cell as it is (RawCells.verbatim) and the cell's text matches the pattern (None: any text):
# - text: the cell itself;
# - an integer: any that int() read (int() and PostgreSQL's integer input both take ASCII digits with a
#   sign and spaces around them; the validator refuses "1_000");
# - a float in plain decimals, short enough that neither reading can leave the normal range: both read
#   the nearest double (Python's float() and the C library's strtod, which PostgreSQL's float8 input
#   calls, round correctly);
# - a date in ISO's extended form, which date.fromisoformat and PostgreSQL read alike;
# - a timestamp that datetime.fromisoformat read, in the form both read alike (no offset: the session's
#   zone, UTC, which the validator gives it too; an offset up to 15:59, PostgreSQL's limit).
_VERBATIM: dict[ColumnType, str | None] = {
    ColumnType.TEXT: None,
    ColumnType.INTEGER: None,
    ColumnType.BIGINT: None,
    ColumnType.FLOAT: r"-?[0-9]{1,15}(\.[0-9]{1,15})?",
    ColumnType.DATE: "[0-9]{4}-[0-9]{2}-[0-9]{2}",
    ColumnType.TIMESTAMPTZ: r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
                            r"(Z|[+-](0[0-9]|1[0-5]):[0-5][0-9])?",
}


def copy_encoder(table: Table, columns: Sequence[str]) -> Callable[..., list[str]]:
    """Rows, given as one list per column, as COPY's csv records of their `columns`: one str per row, ending
    in a newline (with the data columns, the bulk_encoder of the PostgreSQL unit of work). Column by
    column, so that the per-value work is a comprehension over a column that needs it, never a call per row.

    Non-numeric values are quoted, so an empty string stays one; NULL must be an unquoted empty field,
    which QUOTE_NONNUMERIC writes only for a "number" whose text is empty: _NULL."""
    as_text = {c: f for c in columns if (f := _COPY_TEXT.get(table.column(c).type)) is not None}
    patterns = {c: _VERBATIM[t] for c in columns if (t := table.column(c).type) in _VERBATIM}

    def verbatim(raw: RawCells) -> list[str] | None:
        """The records from the cells' own text, when each column's is what COPY reads as its values: the
        body's parser writes them in bulk (pyarrow, without the GIL) where Python would write each value."""
        if not all(c in patterns and c in raw.verbatim and c in raw.position for c in columns):
            return None
        for c in columns:
            pattern = patterns[c]
            if pattern is not None and not raw.records.matches(raw.position[c], pattern):
                return None
        return raw.records.csv([raw.position[c] for c in columns], raw.rows)

    def encode(values: Mapping[str, Sequence[Any]], raw: RawCells | None = None) -> list[str]:
        if raw is not None and (lines := verbatim(raw)) is not None:
            return lines
        prepared = []
        for name in columns:
            column = values[name]
            if name in as_text:
                column = [None if v is None else as_text[name](v) for v in column]
            if None in column:
                column = [_NULL if v is None else v for v in column]
            prepared.append(column)
        lines: list[str] = []
        # csv.writer writes each record with one call of `write`: here, appending it to the list.
        writer = csv.writer(SimpleNamespace(write=lines.append), quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
        writer.writerows(zip(*prepared, strict=True))
        return lines

    return encode


def _keys_relation(table: Table, rows: Sequence[Row]) -> tuple[str, dict[str, Any]]:
    """The rows' natural keys as a relation `k` (columns k0, k1, ... and n, the row's place from 1), and
    its parameters: one array literal per key column, unnested, so the statement's text does not grow
    with rows. A literal, not a list: psycopg2 spells a list as ARRAY[v1, v2, ...], adapting each value
    with the GIL held and leaving PostgreSQL one expression per value to parse; a literal is built by
    one join and read by the array type's input function (a chunk's probe took 97 ms, most of it that)."""
    key = table.natural_key
    params = {f"k{i}": _array_text(table.column(c).type, column_of(rows, c)) for i, c in enumerate(key)}
    arrays = ", ".join(f"%(k{i})s::{_array_type(table, c)}" for i, c in enumerate(key))
    names = ", ".join(f"k{i}" for i in range(len(key)))
    return f"unnest({arrays}) WITH ORDINALITY AS k({names}, n)", params


@cache
def _stage_of(table: Table) -> str:
    """The name of a table's staging table (a temporary table of the connection's, with the table's data
    columns as a merge stages them): depot_stage_ and a digest of the table's name and the declarations of
    those columns, so that a connection stages each table in its own, and a changed table in a new one."""
    declared = (table.name, table.surrogate, [table.column(c) for c in data_columns(table)])
    return f"pg_temp.depot_stage_{hashlib.sha1(repr(declared).encode()).hexdigest()[:16]}"


def _looked_up(table: Table, keys: str, select: str) -> str:
    """A FROM item: `keys` (_keys_relation) beside `select` from the stored row `t` of each key, as `s`, where
    there is one. LATERAL ... LIMIT 1 is a lookup in the natural key's unique index per key: a plain join
    was planned as a hash join over the whole table, a scan of every stored row for each chunk (a re-load
    of flights spent 0.5 s per 5,000-row chunk in it)."""
    return (f"{keys} CROSS JOIN LATERAL (SELECT {select} FROM {_q(table.name)} t "
            f"WHERE {_key_match(table)} LIMIT 1) AS s")


def _key_match(table: Table) -> str:
    """`t` (the table) on `k` (_keys_relation): text compared in the column's own collation, so the
    natural key's unique index serves each lookup."""
    collate = {ColumnType.TEXT: ' COLLATE "C"'}
    return " AND ".join(f"t.{_q(c)} = k.k{i}{collate.get(table.column(c).type, '')}"
                        for i, c in enumerate(table.natural_key))


# Types whose stored value comes back from psycopg2 as the validated value it was, so that Python's
# == agrees with IS NOT DISTINCT FROM (JSON: True == 1 in Python, not in jsonb; UUIDs come back as text).
_COMPARABLE = frozenset({ColumnType.TEXT, ColumnType.INTEGER, ColumnType.BIGINT, ColumnType.FLOAT,
                         ColumnType.NUMERIC, ColumnType.BOOLEAN, ColumnType.DATE, ColumnType.TIMESTAMPTZ,
                         ColumnType.TIMESTAMP})


def _comparable(table: Table, columns: Sequence[str]) -> bool:
    """Whether _changed_rows can compare the rows in Python (else the staged _drop_unchanged does)."""
    return any(c not in table.natural_key for c in columns) and all(
        table.column(c).type in _COMPARABLE for c in columns)


def _array_type(table: Table, column: str) -> str:
    """The SQL array type of a column's values, without its collation (a cast cannot carry one)."""
    element = sql_type(table.column(column))
    if isinstance(element, sa.String):
        element = sa.Text()
    return f"{element.compile(dialect=postgresql.dialect())}[]"


def _array_text(kind: ColumnType, values: Iterable[Any]) -> str:
    """Non-null values as PostgreSQL's array input: integers bare, anything else quoted (_array_literal)."""
    if kind in (ColumnType.INTEGER, ColumnType.BIGINT):
        return "{" + ",".join(map(str, values)) + "}"
    values = list(values)
    if kind is ColumnType.TEXT and values:
        joined = "".join(values)
        if '"' not in joined and "\\" not in joined:  # nothing to escape: quoted by one join
            return '{"' + '","'.join(values) + '"}'
    return _array_literal(values)


def _live(table: Table) -> str:
    """SQL: the stored row `t` of a soft-delete table is not marked deleted."""
    return f"t.{_q(table.system.deleted_at)} IS NULL"


def _stored_priority(catalog: Catalog, table: Table) -> str:
    """SQL for the priority of the source that wrote the stored row `t`."""
    return (f'(SELECT src."priority" FROM {system_table_sql(catalog, "sources")} src '
            f'WHERE src."code" = t.{_q(table.system.source)})')
