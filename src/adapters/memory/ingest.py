"""The ingestion port on the in-memory store: the same merge rules as the PostgreSQL statement, row by row."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from domain.ingestion import (
    REPORTED_CONFLICTS,
    MergeCounts,
    Outcome,
    Reverted,
    conflict_of,
    data_columns,
    merge_outcome,
)
from domain.ports import AbstractIngestRepository, BatchLease, Row
from domain.schema import CLAIMED_AT, GONE, HISTORY_ID, HISTORY_OPERATION, HISTORY_VALID_TO, MISSING, Table

if TYPE_CHECKING:
    from adapters.memory.repository import InMemoryUnitOfWork


class MemoryLease(BatchLease):
    def __init__(self, live: set[int], batch_id: int):
        self.live = live
        self.batch_id = batch_id
        live.add(batch_id)

    def release(self) -> None:
        self.live.discard(self.batch_id)


class InMemoryIngestRepository(AbstractIngestRepository):
    def __init__(self, uow: InMemoryUnitOfWork):
        self.uow = uow
        self.store = uow.store
        # the store outlives requests; the set of batches whose lease is held lives on it
        if not hasattr(self.store, "live_batches"):
            self.store.live_batches = set()  # type: ignore[attr-defined]

    def present_keys(self, table: str, columns: tuple[str, ...], keys: set[tuple]) -> set[tuple]:
        index = self.store.tables[table].index_for(columns)
        return {k for k in keys if k in index}

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
        encoded: Sequence[Any] | None = None,  # never asked for (no bulk_encoder): the rows are all it needs
        drawing: AbstractContextManager[None] = nullcontext(),  # one writer at a time: ids drawn in order
    ) -> MergeCounts:
        repo = self.uow.repository(table.name)
        data = self.store.tables[table.name]
        index = data.index_for(table.natural_key)
        sources = self.store.tables["sources"].rows
        columns = data_columns(table)
        counts = MergeCounts()
        deleted_at = table.system.deleted_at if table.soft_delete else None  # looked up once, not per row
        for n, incoming in enumerate(rows):
            pk = index.get(tuple(incoming[c] for c in table.natural_key))
            stored = data.rows[pk] if pk is not None else None
            if stored is not None and on_conflict == "error":
                counts.clashed.append(n)
                continue
            stored_priority = priority
            if stored is not None and table.has_provenance:
                stored_priority = sources[(stored[table.system.source],)]["priority"]
            deleted = stored is not None and deleted_at is not None and stored[deleted_at] is not None
            outcome = merge_outcome(stored, incoming, stored_priority=stored_priority, priority=priority,
                                    on_conflict=on_conflict, columns=columns, deleted=deleted)
            counts.add(outcome)
            stamp = table.inserted_stamp(now, source, batch_id)
            if outcome is Outcome.INSERTED:
                repo._insert({**incoming, **stamp})
            elif outcome is Outcome.UPDATED:
                assert stored is not None
                provenance = {c: stamp[c] for c in (table.system.source, table.system.batch_id) if c in stamp}
                revived = {deleted_at: None} if deleted else {}
                repo._replace(stored, {**stored, **incoming, **provenance, **revived,
                                       **table.changed_stamp(stored, now)})
            if table.keeps_claims and outcome in (Outcome.SUPERSEDED, Outcome.INSERTED, Outcome.UPDATED):
                self._claim(table, incoming, source, batch_id, now, keep=outcome is Outcome.SUPERSEDED)
        return counts

    def append(self, table: Table, rows: Sequence[Row], *, source: str, batch_id: int, now: dt.datetime) -> int:
        repo = self.uow.repository(table.name)
        stamp = table.inserted_stamp(now, source, batch_id)
        for row in rows:
            repo._insert({**row, **stamp})
        return len(rows)

    def _stored_priority(self, table: Table, stored: Row) -> int:
        if not table.has_provenance:
            return 0
        return self.store.tables["sources"].rows[(stored[table.system.source],)]["priority"]

    @staticmethod
    def _gone(table: Table, row: Row) -> bool:
        """A row soft-deleted already: a delete or a retirement leaves it as it is."""
        return table.soft_delete and row[table.system.deleted_at] is not None

    def delete_keys(self, table: Table, keys: Sequence[Row], *, priority: int, batch_id: int,
                    now: dt.datetime) -> tuple[int, int]:
        data = self.store.tables[table.name]
        index = data.index_for(table.natural_key)
        doomed, superseded = [], 0
        for key in keys:
            pk = index.get(tuple(key[c] for c in table.natural_key))
            if pk is None:
                continue
            stored = data.rows[pk]
            if self._gone(table, stored):
                continue
            if self._stored_priority(table, stored) > priority:
                superseded += 1
            else:
                doomed.append(stored)
        self._delete(table, doomed, "delete", batch_id, now)
        return len(doomed), superseded

    def retire_partitions(self, table: Table, partition: tuple[str, ...], partitions: set[tuple],
                          keep: Sequence[Row], *, priority: int, batch_id: int, now: dt.datetime) -> int:
        kept = {tuple(k[c] for c in table.natural_key) for k in keep}
        doomed = [
            r for r in self.store.tables[table.name].rows.values()
            if tuple(r[c] for c in partition) in partitions and tuple(r[c] for c in table.natural_key) not in kept
            and self._stored_priority(table, r) <= priority and not self._gone(table, r)
        ]
        self._delete(table, doomed, "retire", batch_id, now)
        return len(doomed)

    def _delete(self, table: Table, rows: list[Row], operation: str, batch_id: int, now: dt.datetime) -> None:
        repo = self.uow.repository(table.name)
        if table.soft_delete:  # marked, as the PostgreSQL UPDATE does: a version of the batch's, still in the table
            for row in rows:
                marked = {table.system.deleted_at: now, **table.changed_stamp(row, now)}
                if table.has_provenance:
                    marked[table.system.batch_id] = batch_id
                repo._replace(row, {**row, **marked})
            return
        for row in rows:
            repo._check_not_referenced(row)  # as the foreign keys refuse it on PostgreSQL
        data = self.store.tables[table.name]
        for row in rows:
            data.remove(table.key_of(row))
            self.uow.log(data, row, None, at=now, operation=operation, batch=batch_id)

    def _claim(self, table: Table, incoming: Row, source: str, batch_id: int, now: dt.datetime, *,
               keep: bool) -> None:
        """Keep a superseded row's values as its source's claim on the key (keep), or drop the claim
        of a source whose values were just stored (as the PostgreSQL merge does)."""
        claims = self.store.tables[table.claims_name]
        key = (*(incoming[k] for k in table.natural_key), source)
        old = claims.rows.get(key)
        if old is not None:
            claims.remove(key)
        new = None
        if keep:
            new = {c.name: incoming.get(c.name) for c in claims.spec.columns}
            new |= {table.system.source: source, table.system.batch_id: batch_id, CLAIMED_AT: now}
            claims.put(new)
        if old is not None or new is not None:
            self.uow.log(claims, old, new)

    def revert(self, table: Table, batch_id: int, *, revert_batch: int, now: dt.datetime, force: bool) -> Reverted:
        """The PostgreSQL statements' rules (adapters.postgres.history.revert_sql), key by key."""
        repo = self.uow.repository(table.name)
        data = self.store.tables[table.name]
        system = table.system
        versions: dict[tuple, list[Row]] = defaultdict(list)
        for entry in sorted(self.store.tables[table.history_name].rows.values(), key=itemgetter(HISTORY_ID)):
            versions[table.key_of(entry)].append(entry)
        touched = []
        for key, entries in versions.items():
            mine = [e for e in entries if e.get(system.batch_id) == batch_id]
            if mine:
                touched.append((mine[-1][HISTORY_ID], key, mine[0][HISTORY_ID], mine[-1], mine[0][HISTORY_OPERATION]))
        done = Reverted()
        restored = [c.name for c in table.columns if not c.system and not c.generated]
        restored += [system.source] if table.has_provenance else []
        restored += [system.deleted_at] if table.soft_delete else []  # a revert undoes a soft delete too
        stamp = {system.updated_at: now, **({system.batch_id: revert_batch} if table.has_provenance else {})}
        for _, key, first, last, first_op in sorted(touched, key=itemgetter(0)):
            entries = versions[key]
            before = next((e for e in reversed(entries) if e[HISTORY_ID] < first), None)
            current = next((e for e in reversed(entries) if e[HISTORY_VALID_TO] is None), None)
            # A row the batch changed but did not insert, with no version before it, predates the table's
            # history: its state before the batch is not known, so it is left as it is (never deleted).
            unknown = before is None and first_op != "insert"
            if current is not last or unknown:
                done.conflicted += 1
                if len(done.conflicts) < REPORTED_CONFLICTS:
                    done.conflicts.append(conflict_of(table, dict(last), dict(current) if current else None))
                if not force or unknown:
                    continue
            stored = data.rows.get(key)
            if before is None or before[HISTORY_OPERATION] in GONE:
                if stored is not None:
                    repo._check_not_referenced(stored)
                    data.remove(key)
                    self.uow.log(data, stored, None, at=now, operation="revert", batch=revert_batch)
                    done.deleted += 1
            elif stored is not None:
                if any(stored[c] != before[c] for c in restored):
                    new = {**stored, **{c: before[c] for c in restored}, **stamp,
                           system.version: stored[system.version] + 1}
                    repo._replace(stored, new, operation="revert")
                    done.restored += 1
            else:
                row = {c.name: before[c.name] for c in table.columns}
                repo._insert({**row, **stamp, system.version: before[system.version] + 1}, operation="revert")
                done.reinserted += 1
        return done

    def prune_history(self, table: Table, before: dt.datetime, limit: int) -> int:
        history = self.store.tables[table.history_name]
        ended = [pk for pk, r in history.rows.items()
                 if r[HISTORY_VALID_TO] is not None and r[HISTORY_VALID_TO] < before][:limit]
        for pk in ended:
            self.uow.log(history, history.remove(pk), None)
        if ended and table.primary_key in history.indexes:
            # remove() dropped each pruned key's entry in the index of the rows' last versions
            # (InMemoryUnitOfWork._record): rebuilt from the versions left, the newest of a key last.
            history.indexes[table.primary_key] = {
                table.key_of(r): pk for pk, r in sorted(history.rows.items(), key=lambda item: item[1][HISTORY_ID])}
        return len(ended)

    def begin_batch(self, batch: Row) -> BatchLease:
        # Committed at once: written past the unit of work's undo log, as PostgreSQL's own connection does.
        data = self.store.tables["ingest_batches"]
        row = {c.name: None if c.default is MISSING else c.default for c in data.spec.columns} | batch
        row["id"] = next(data.ids)
        repo = self.uow.repository("ingest_batches")
        repo._check_values(row)
        repo._check_unique(row)
        repo._check_references(row)
        data.put(row)
        return MemoryLease(self.store.live_batches, row["id"])  # type: ignore[attr-defined]

    def update_by_id(self, table: str, row_id: int, changes: Row) -> None:
        data = self.store.tables[table]
        old = data.rows[(row_id,)]
        new = {**old, **changes}
        data.remove((row_id,))
        data.put(new)
        self.uow.log(data, old, new)

    def fail_orphaned_batches(self, now: dt.datetime) -> list[int]:
        live = self.store.live_batches  # type: ignore[attr-defined]
        orphans = [r["id"] for r in self.store.tables["ingest_batches"].rows.values()
                   if r["status"] == "running" and r["id"] not in live]
        for batch_id in orphans:
            self.update_by_id("ingest_batches", batch_id, {"status": "failed", "finished_at": now})
        return orphans
