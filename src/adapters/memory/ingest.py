"""The ingestion port on the in-memory store: the same merge rules as the PostgreSQL statement, row by row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from domain.ingestion import MergeCounts, Outcome, data_columns, merge_outcome
from domain.ports import AbstractIngestRepository, BatchLease, Row
from domain.schema import MISSING, Table

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
    ) -> MergeCounts:
        repo = self.uow.repository(table.name)
        data = self.store.tables[table.name]
        index = data.index_for(table.natural_key)
        sources = self.store.tables["sources"].rows
        columns = data_columns(table)
        counts = MergeCounts()
        for n, incoming in enumerate(rows):
            pk = index.get(tuple(incoming[c] for c in table.natural_key))
            stored = data.rows[pk] if pk is not None else None
            if stored is not None and on_conflict == "error":
                counts.clashed.append(n)
                continue
            stored_priority = priority
            if stored is not None and table.has_provenance:
                stored_priority = sources[(stored[table.system.source],)]["priority"]
            outcome = merge_outcome(stored, incoming, stored_priority=stored_priority, priority=priority,
                                    on_conflict=on_conflict, columns=columns)
            counts.add(outcome)
            stamp = table.inserted_stamp(now, source, batch_id)
            if outcome is Outcome.INSERTED:
                repo._insert({**incoming, **stamp})
            elif outcome is Outcome.UPDATED:
                assert stored is not None
                provenance = {c: stamp[c] for c in (table.system.source, table.system.batch_id) if c in stamp}
                repo._replace(stored, {**stored, **incoming, **provenance, **table.changed_stamp(stored, now)})
        return counts

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
