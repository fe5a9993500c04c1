"""The ports: what the service layer needs from storage. Adapters implement them; nothing else does."""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from domain.ingestion import MergeCounts, RawCells, Reverted
from domain.query import Fetch, Query, Where
from domain.schema import Catalog, Table

Row = dict[str, Any]

# Validated rows (one list per writable column), and the cells they were read from -> one item per row.
BulkEncoder = Callable[[Mapping[str, Sequence[Any]], RawCells | None], Sequence[Any]]


class AbstractRepository(abc.ABC):
    """Rows of one table. Values in and out are typed Python values (int, Decimal, datetime, ...).

    Writes raise domain errors: DuplicateKey, ReferenceViolation, InvalidRows (a check failed).
    """

    def __init__(self, table: Table):
        self.table = table

    @abc.abstractmethod
    def add(self, rows: Sequence[Row]) -> list[Row]:
        """Insert full rows (system columns included, generated ones omitted); return them as stored."""

    @abc.abstractmethod
    def upsert(self, rows: Sequence[Row], conflict: tuple[str, ...], *, update: bool, now: dt.datetime) -> list[Row]:
        """Insert rows; a row whose `conflict` columns match a stored one updates it (update=True:
        its written columns, bumping version only when a value changes) or is skipped (update=False).
        Return the rows inserted or updated, as stored."""

    @abc.abstractmethod
    def list(self, query: Query) -> list[Row]:
        """Rows matching the query, in its order (then by key), sliced by its offset and limit."""

    @abc.abstractmethod
    def count(self, where: Where | None) -> int:
        """How many rows match."""

    @abc.abstractmethod
    def update(self, where: Where | None, changes: Row, now: dt.datetime) -> list[Row]:
        """Set `changes` on matching rows; a row whose values change gets version + 1 and
        updated_at = now. Return every matching row as stored."""

    @abc.abstractmethod
    def delete(self, where: Where | None, now: dt.datetime | None = None) -> list[Row]:
        """Delete matching rows and return them. ReferenceViolation if a hard reference still points at one.
        `now` is the time of the delete, as the table's history records it."""

    def fetch(self, fetch: Fetch) -> list[Row]:
        """The flat rows of one read statement (see Fetch): filtered, restricted `within`, grouped
        when it has aggregates, after the cursor, in its order, sliced by offset and limit."""
        raise NotImplementedError

    def fetch_batches(self, fetch: Fetch, size: int) -> Iterator[list[Row]]:
        """fetch() in batches of at most `size` rows, without holding them all where the store can."""
        rows = self.fetch(fetch)
        for start in range(0, len(rows), size):
            yield rows[start:start + size]

    def total(self, fetch: Fetch, *, planned: bool = False) -> int:
        """How many rows fetch() would return without offset and limit (after the cursor, if any).
        planned=True: the planner's estimate where the store has one, cheaper on big tables."""
        raise NotImplementedError

    def refresh(self) -> bool:
        """Refresh a materialized view from its definition, as of now; True when readers were not
        blocked meanwhile (CONCURRENTLY, where the view has a unique index to do it by)."""
        raise NotImplementedError(f"{type(self).__name__} refreshes no views")

    def get(self, key: tuple) -> Row | None:
        from domain.query import key_condition

        rows = self.list(Query(where=key_condition(self.table.primary_key, key), limit=1))
        return rows[0] if rows else None


class AbstractUnitOfWork(abc.ABC):
    """One transaction over every table. `with uow:` begins it; leaving without commit() rolls back."""

    catalog: Catalog
    kind: str = "abstract"

    def __enter__(self) -> AbstractUnitOfWork:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.rollback()

    def reading(self) -> AbstractUnitOfWork:
        """This unit of work, for reads only (`with uow.reading():`): it will neither write nor
        commit, and asks of the store no more than each statement seeing committed data, as READ
        COMMITTED gives, so a store may run each statement on its own, outside a transaction."""
        return self

    @abc.abstractmethod
    def repository(self, table: str) -> AbstractRepository:
        """The repository of one table of the catalog, bound to this transaction."""

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...

    def __getitem__(self, table: str) -> AbstractRepository:
        return self.repository(table)

    def held(self) -> AbstractContextManager[None]:
        """Inside it, the transactions of `with uow:` may share one connection to the store (a batch's
        chunks, one after another), so that it is opened and checked once. Nothing by default."""
        return nullcontext()

    # How many chunks of one batch this store may write side by side, each in its own unit of work (sibling()).
    writers: int = 1

    def sibling(self) -> AbstractUnitOfWork | None:
        """Another unit of work on the same store, with a connection of its own: a batch's chunks written
        side by side (see writers) run one in each. None when the store has no connection to spare just
        now. Only a store whose `writers` exceeds 1 is asked."""
        raise NotImplementedError(f"{type(self).__name__} writes a batch's chunks one at a time")

    def ingestion(self) -> AbstractIngestRepository:
        """What ingestion needs beyond the table repositories, bound to this transaction."""
        raise NotImplementedError(f"{type(self).__name__} has no ingestion port")

    def bulk_encoder(self, table: Table) -> BulkEncoder | None:
        """A pure function that encodes validated rows, given as one list per writable column, in the form
        this store writes in bulk: one item per row, to hand to AbstractIngestRepository.merge as
        `encoded`. A tabular chunk's rows come with the cells they were read from (RawCells, else None),
        which the encoder may write from instead. Ingest calls it in its validating thread, so the writer
        has less to do while the store waits. None (the default): the store takes the rows as they are."""
        return None


# --- ingestion ------------------------------------------------------------------------------------


class BatchLease(abc.ABC):
    """A running batch's claim on its ingest_batches row: while it is held, nobody marks the batch
    failed. It dies with the process that holds it, which is how an orphaned batch is recognised."""

    batch_id: int

    @abc.abstractmethod
    def release(self) -> None: ...


class AbstractIngestRepository(abc.ABC):
    """The ingestion port: bulk reference checks, the set-based merge, and batch bookkeeping.

    Every method but begin_batch works inside the unit of work's transaction.
    """

    @abc.abstractmethod
    def present_keys(self, table: str, columns: tuple[str, ...], keys: set[tuple]) -> set[tuple]:
        """Which of `keys` (values of `columns`) some row of `table` has: one query, not one per key."""

    @abc.abstractmethod
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
        """Upsert validated rows (data columns only; one row per natural key) by natural key, under
        domain.ingestion's rules (priority, unchanged, ignore), stamping source, batch_id, version
        and the timestamps. Returns how many rows were inserted, updated, unchanged, superseded;
        with on_conflict=error, a row whose key is stored when it is written (say, by a concurrent
        batch since the service looked) is not written: its index is in `clashed`. `encoded`, when
        given, holds the rows as AbstractUnitOfWork.bulk_encoder encoded them, item for item.
        `drawing` is entered before the first statement that draws ids from a sequence (the new rows'
        surrogate ids, their history versions' ids), if any, and left once the merge draws no more (at
        the latest when it returns): chunks of a batch written side by side draw theirs in file order."""

    def take_turn(self, batch_id: int, number: int) -> None:
        """Side-by-side chunks: this transaction writes chunk `number` of the batch. Called first, so
        that chunk number + 1 can wait for this transaction's end (await_turn), a wait the store sees."""
        raise NotImplementedError(f"{type(self).__name__} writes a batch's chunks one at a time")

    def await_turn(self, batch_id: int, number: int) -> None:
        """Wait until the transaction of chunk `number` of the batch (which took its turn) has ended,
        committed or rolled back: chunks written side by side commit in file order. A store that
        tracks who waits for whom (PostgreSQL's deadlock detector) sees this wait with the others."""
        raise NotImplementedError(f"{type(self).__name__} writes a batch's chunks one at a time")

    @abc.abstractmethod
    def append(self, table: Table, rows: Sequence[Row], *, source: str, batch_id: int, now: dt.datetime) -> int:
        """disposition=append: insert every row as a new one (a table whose natural key may repeat), each
        with a surrogate id drawn in the rows' order, stamped and recorded in the history. How many."""

    def revert(self, table: Table, batch_id: int, *, revert_batch: int, now: dt.datetime, force: bool) -> Reverted:
        """Set every row that batch `batch_id` changed in `table` back to its version before it, from
        the table's history, set-based: a row the batch inserted is deleted, one it updated is set back,
        one it deleted or retired is inserted again. A row changed since by another write is left as it
        is and reported as a conflict, unless `force`. Each change is stamped with `revert_batch` and
        `now`, and recorded in the history as a `revert`."""
        raise NotImplementedError(f"{type(self).__name__} cannot revert")

    def prune_history(self, table: Table, before: dt.datetime, limit: int) -> int:
        """Delete at most `limit` of the history rows of `table` whose version ended before `before`
        (current versions stay, so every row keeps its history from its last change on); how many."""
        raise NotImplementedError(f"{type(self).__name__} cannot prune history")

    @abc.abstractmethod
    def delete_keys(self, table: Table, keys: Sequence[Row], *, priority: int, batch_id: int,
                    now: dt.datetime) -> tuple[int, int]:
        """disposition=delete, in one set-based statement: delete the stored rows of these natural keys
        (rows holding the key columns, one per key) whose source has no higher priority than
        `priority`, recording each in the table's history (operation delete, by `batch_id`, at `now`).
        Returns (deleted, superseded: stored under a stronger source, kept)."""

    @abc.abstractmethod
    def retire_partitions(self, table: Table, partition: tuple[str, ...], partitions: set[tuple],
                          keep: Sequence[Row], *, priority: int, batch_id: int, now: dt.datetime) -> int:
        """disposition=replace_partition, in one set-based statement: delete the stored rows whose
        `partition` values are one of `partitions` and whose natural key is not among `keep` (rows
        holding the key columns), when their source has no higher priority, recording each in the
        table's history (operation retire). Returns how many."""

    @abc.abstractmethod
    def begin_batch(self, batch: Row) -> BatchLease:
        """Insert an ingest_batches row and commit it at once, outside this transaction, so that the
        batch is visible (status running) while it runs; hold its lease. DuplicateKey when
        (table, idempotency_key) is taken."""

    @abc.abstractmethod
    def update_by_id(self, table: str, row_id: int, changes: Row) -> None:
        """Set columns of one ingest_batches or rejected_rows row (they have no version)."""

    @abc.abstractmethod
    def fail_orphaned_batches(self, now: dt.datetime) -> list[int]:
        """Mark failed every running batch whose lease nobody holds (its process died); their ids."""
