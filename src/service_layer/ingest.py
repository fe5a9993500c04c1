"""The ingest use cases: run a batch from a stream of chunks, replay its rejections, read batches back.

A batch is a row of ingest_batches, committed `running` before the first chunk (with a lease
that dies with this process), updated with its counts in the same transaction as each chunk's
writes, and finished `completed` or `failed`. So whatever the store holds of a batch, its report
counts it, and a batch whose process died is recognised (fail_orphaned_batches) and never left
running.

- best_effort: one transaction per chunk; valid rows are written, the others go to rejected_rows
  with their payload and reasons. A store with several writers (PostgreSQL: DEPOT_INGEST_WRITERS)
  writes chunks side by side, committed in file order (_BatchRun._write_side_by_side).
- atomic: one transaction for the whole batch; after the first invalid row nothing more is
  merged, the rest is still validated (to report it), and the transaction is rolled back. The
  failed batch is recorded with its counts, and only its first REPORTED_ERRORS rejections are
  kept in rejected_rows (memory stays bounded); it cannot be replayed, since none of its rows
  was written: send it again.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, NamedTuple

from domain.errors import (
    BadRequest,
    Conflict,
    DuplicateKey,
    FieldError,
    IdempotencyClash,
    InvalidRows,
    NotFound,
)
from domain.ingestion import (
    DISPOSITIONS,
    KEYED_DISPOSITIONS,
    MODES,
    ON_CONFLICT,
    REPORTED_ERRORS,
    BatchReport,
    ColumnarRecords,
    MergeCounts,
    RawCells,
    duplicate_error,
    keys_of,
    one_per_key,
    reference_error,
    reference_keys,
    take,
)
from domain.ports import AbstractIngestRepository, AbstractUnitOfWork, BatchLease, Row
from domain.profiles import ColumnPlan, cursor_column, effective_profile, profile_hash
from domain.query import Condition, OrderBy, Query, conjunction, live_only
from domain.schema import ForeignKey, Table
from domain.validation import RowInvalid, RowValidator, header_errors, validate_columns
from service_layer.services import MANUAL_SOURCE, Clock, table_of, utcnow

REPLAY_PAGE = 5_000
# The referenced keys a batch remembers as found, per reference (_BatchRun._check_references).
PRESENT_KEYS = 100_000
# Told of every batch that ends, however it ends, with its report and its duration in seconds
# (the metrics of entrypoints/metrics.py register here; the service knows nothing of them).
BATCH_OBSERVERS: list[Callable[[BatchReport, float], None]] = []
MAX_IDEMPOTENCY_KEY = 255


class Validated(NamedTuple):
    """A chunk validated: its good rows, their positions in the chunk, the errors of the others by
    position, the warnings (values discarded by the contract) by position, and the good rows as the
    store's bulk_encoder encoded them (None when it has none, or the chunk came as JSON)."""

    rows: Sequence[Row]  # ColumnRows for a CSV chunk
    positions: list[int]
    rejected: dict[int, list[dict[str, str]]]
    warned: dict[int, list[dict[str, str]]]
    encoded: Sequence[Any] | None = None


@dataclass(frozen=True)
class Chunk:
    """Some rows of a batch as received: JSON values (header None), or CSV records under a header
    (a list of records, or ColumnarRecords)."""

    records: Sequence[Any]
    header: Sequence[str] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def payload(self, i: int) -> Any:
        record = self.records[i]
        if self.header is None or len(record) != len(self.header):
            return record  # a CSV record that does not fit its header is kept as the list it was
        return dict(zip(self.header, record, strict=True))


@dataclass(frozen=True)
class IngestRequest:
    table: str
    source: str = MANUAL_SOURCE
    mode: str = "best_effort"
    on_conflict: str = "update"
    idempotency_key: str | None = None
    # This batch's changes to the source's profile (query parameters), in the profile's own shape.
    overrides: dict[str, Any] | None = None
    # A replay's: the effective profile its batch recorded, used as it is (the source's may have changed).
    recorded_profile: dict[str, Any] | None = None
    disposition: str | None = None  # None: the table's own (Table.default_disposition)
    partition: tuple[str, ...] = ()  # replace_partition: the columns whose values name a partition


@dataclass(frozen=True)
class Checked:
    """A request the store accepts: its table, its source's priority, and the effective profile."""

    table: Table
    priority: int
    profile: dict[str, Any]
    plan: ColumnPlan
    disposition: str  # the request's, or the table's default


def check_request(uow: AbstractUnitOfWork, request: IngestRequest) -> Checked:
    """Refuse a request before reading its body: unknown table (404), read-only table, unknown
    source, mode or on_conflict (400)."""
    table = table_of(uow, request.table, writing=True)
    key = request.idempotency_key
    if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        # PostgreSQL's unique index on (table, key) cannot hold a long random key: refused here, on both adapters
        raise BadRequest(f"An Idempotency-Key has 1 to {MAX_IDEMPOTENCY_KEY} characters; this one has {len(key)}",
                         hint="Use a short unique name for the batch, such as a UUID.")
    if request.mode not in MODES:
        raise BadRequest(f"mode={request.mode!r} is not one of {', '.join(MODES)}")
    if request.on_conflict not in ON_CONFLICT:
        raise BadRequest(f"on_conflict={request.on_conflict!r} is not one of {', '.join(ON_CONFLICT)}")
    disposition = request.disposition or table.default_disposition
    _check_disposition(table, request, disposition)
    with uow:
        source = uow.repository("sources").get((request.source,))
    if source is None:
        raise BadRequest(f"Unknown source {request.source!r}",
                         hint="Create it first: POST /api/sources with code, name and priority.")
    if request.recorded_profile is not None:
        profile = request.recorded_profile
    else:
        profile = effective_profile(source.get("profile"), table.name, request.overrides)
    return Checked(table, source["priority"], profile, ColumnPlan.of(table, profile), disposition)


def _check_disposition(table: Table, request: IngestRequest, disposition: str) -> None:
    if disposition not in DISPOSITIONS:
        raise BadRequest(f"disposition={disposition!r} is not one of {', '.join(DISPOSITIONS)}")
    if disposition == "append" and table.unique_natural_key:
        why = (f"{table.name} has no surrogate id: its rows are keyed by their natural key"
               if table.surrogate is None else f"{table.name}'s natural key ({', '.join(table.natural_key)}) is unique")
        raise BadRequest(
            f"disposition=append is for tables whose natural key may repeat, and {why}",
            hint="Use insert_only to add the new rows and leave the stored ones, or upsert; to record repeated "
                 "observations, declare an instance table with surrogate_id=True, unique_natural_key=False.")
    if disposition in KEYED_DISPOSITIONS and not table.unique_natural_key:
        raise BadRequest(
            f"disposition={disposition} finds rows by their natural key, and {table.name}'s "
            f"({', '.join(table.natural_key)}) may repeat (unique_natural_key=False)",
            hint="Use disposition=append: every row is new. Rows are changed or deleted through "
                 f"/api/{table.name} (by id, or with filters).")
    if disposition == "append" and request.on_conflict != "update":
        raise BadRequest("disposition=append has no conflict to resolve: every row is new; leave on_conflict out")
    if disposition == "replace_partition":
        if not request.partition:
            raise BadRequest("disposition=replace_partition needs partition=COLUMN[,COLUMN]",
                             hint="The batch is then the full snapshot of each partition its rows cover.")
        wrong = [c for c in request.partition if not table.has_column(c) or not table.column(c).writable]
        if wrong:
            raise BadRequest(f"partition names {', '.join(map(repr, wrong))}, not a data column of {table.name}")
    elif request.partition:
        raise BadRequest("partition= goes with disposition=replace_partition only")
    if disposition == "insert_only" and request.on_conflict != "update":
        raise BadRequest("disposition=insert_only sets on_conflict itself (stored keys are left unchanged)")


def keys_only(table: Table) -> Table:
    """The table as a delete batch sees it: its natural key columns, all required."""
    columns = tuple(dataclasses.replace(table.column(c), nullable=False) for c in table.natural_key)
    return dataclasses.replace(table, columns=columns, foreign_keys=(), unique=(), _by_name={})


def find_keyed_batch(uow: AbstractUnitOfWork, table: str, key: str) -> Row | None:
    with uow:
        rows = uow.repository("ingest_batches").list(Query(where=conjunction([
            *own_batches(uow), Condition("table", "eq", table), Condition("idempotency_key", "eq", key)])))
    return rows[0] if rows else None


def ingest_batch(
    uow: AbstractUnitOfWork,
    request: IngestRequest,
    chunks: Iterable[Chunk],
    *,
    request_hash: Callable[[], str | None] = lambda: None,
    on_progress: Callable[[BatchReport], None] | None = None,
    clock: Clock = utcnow,
) -> BatchReport:
    """Run one batch. `request_hash` is asked after the chunks are consumed (the body's digest,
    for idempotency). Returns the report of a batch that ran to its end (status completed);
    raises InvalidRows with the report as details when an atomic batch had invalid rows, and
    whatever interrupted the chunks otherwise, after marking the batch failed."""
    checked = check_request(uow, request)
    if request.idempotency_key is not None:
        existing = find_keyed_batch(uow, request.table, request.idempotency_key)
        if existing is not None:
            return _idempotent_answer(uow, existing, chunks, request_hash)
    run = _BatchRun(uow, request, checked, clock)
    try:
        run.begin()
    except DuplicateKey:
        raise IdempotencyClash(
            f"A batch with Idempotency-Key {request.idempotency_key!r} is already running",
            hint="Wait for it to finish, then send the same body again to get its report.",
        ) from None
    return run.run(chunks, request_hash, on_progress)


def _idempotent_answer(
    uow: AbstractUnitOfWork, existing: Row, chunks: Iterable[Chunk], request_hash: Callable[[], str | None]
) -> BatchReport:
    for _ in chunks:  # the body must be read whole to know whether it is the same one
        pass
    digest = request_hash()
    if existing["status"] == "running":
        raise IdempotencyClash(f"The batch {existing['id']} with this Idempotency-Key is still running",
                               details={"batch_id": existing["id"]})
    if existing["request_hash"] is None:
        raise IdempotencyClash(
            f"The batch {existing['id']} with this Idempotency-Key failed before its body was read to the end",
            details={"batch_id": existing["id"]},
            hint="Its committed chunks are stored and counted (GET /ingest/batches/{id}); "
                 "send the body with a new key.",
        )
    if digest != existing["request_hash"]:
        raise IdempotencyClash(
            "This Idempotency-Key was used with another request body",
            details={"batch_id": existing["id"]},
            hint="Use a new key for a new body.",
        )
    report = batch_report(uow, existing["id"])
    if existing["mode"] == "atomic" and existing["status"] == "failed":
        raise _atomic_failure(report)  # the first answer, again
    return report


def _atomic_failure(report: BatchReport) -> InvalidRows:
    return InvalidRows(
        f"{report.rejected} of {report.received} rows are invalid; the atomic batch wrote nothing",
        details=report.as_dict(),
        hint="details.errors names the first invalid rows (1-based), fields and reasons.",
    )


class _BatchRun:
    def __init__(self, uow: AbstractUnitOfWork, request: IngestRequest, checked: Checked, clock: Clock):
        self.uow = uow
        self.request = request
        self.table = checked.table
        self.priority = checked.priority
        self.profile = checked.profile
        self.plan = checked.plan
        self.disposition = checked.disposition
        self.on_conflict = "ignore" if self.disposition == "insert_only" else request.on_conflict
        # what the rows are validated as: the table, or only its natural key for a delete batch
        self.shape = self.table
        if self.disposition == "delete":
            self.shape = keys_only(self.table)
            self.plan = ColumnPlan.of(self.shape, {**self.profile, "contract": {
                **self.profile.get("contract", {}), "unknown": "discard"}, "constants": {}})
        # replace_partition: the batch's keys, by partition, to tell what to retire at its end
        self.snapshot: dict[tuple, list[Row]] = {}
        self.mapped_header: tuple[list[str], list[int]] | None = None  # the CSV header through the profile
        self.clock = clock
        self.atomic = request.mode == "atomic"
        # One transaction for the whole batch: atomic's, and freeze's. An unknown column can turn up in
        # any JSON row, and freeze promises that the batch then writes nothing, chunks before it included.
        self.one_transaction = self.atomic or self.plan.unknown == "freeze"
        self.lease: BatchLease | None = None
        self.started = time.perf_counter()
        self.report = BatchReport(None, request.table, request.source, request.mode, self.on_conflict,
                                  disposition=checked.disposition)
        self.arrived = 0  # rows read from the body, processed or not: a failed batch's `received`
        self.doomed = False  # atomic: an invalid row was seen; nothing more is merged
        self.atomic_rejections: list[Row] = []  # atomic: the first rejections, stored after the rollback
        self.references = [fk for fk in self.table.hard_foreign_keys if not self.table.column(fk.columns[0]).system
                           and self.disposition != "delete"]
        # Self-references may point at rows earlier in the batch: their keys, as they go by.
        self.seen: dict[ForeignKey, set[tuple]] = {fk: set() for fk in self.references if fk.target == self.table.name}
        # The referenced keys found stored by this batch, not looked up again by its later chunks.
        self.present: dict[ForeignKey, set[tuple]] = {fk: set() for fk in self.references}
        self.present_lock = threading.Lock()  # chunks written side by side look up and add to it
        # The store's encoding of a chunk's rows for its bulk write, done in the validating thread (merges only).
        self.encode = uow.bulk_encoder(self.table) if self.disposition not in ("delete", "append") else None

    def begin(self) -> None:
        batch = {
            "table": self.table.name, "schema": self.uow.catalog.schema, "source": self.request.source,
            "mode": self.request.mode,
            "on_conflict": self.on_conflict, "disposition": self.disposition, "status": "running",
            "started_at": self.clock(),
            "idempotency_key": self.request.idempotency_key,
            "profile": self.profile or None, "profile_hash": profile_hash(self.profile) if self.profile else None,
            **{name: 0 for name in BatchReport.COUNTS},
        }
        with self.uow:
            self.lease = self.uow.ingestion().begin_batch(batch)
        self.report.batch_id = self.lease.batch_id

    def run(
        self, chunks: Iterable[Chunk], request_hash: Callable[[], str | None],
        on_progress: Callable[[BatchReport], None] | None,
    ) -> BatchReport:
        try:
            if self.one_transaction:
                with self.uow:
                    for chunk, validated in self._validated_ahead(chunks):
                        self._chunk(self.uow, chunk, validated)
                        if on_progress:
                            on_progress(self.report)
                    if not self.doomed:
                        self._retire(self.uow.ingestion())
                        self._finish(self.uow.ingestion(), "completed", request_hash())
                        self.uow.commit()
                        return self.report
                # rolled back: nothing of the batch is kept but its record
                for name in ("inserted", "updated", "unchanged", "superseded"):
                    setattr(self.report, name, 0)
                with self.uow:
                    self._finish(self.uow.ingestion(), "failed", request_hash())
                    self.uow.repository("rejected_rows").add(self.atomic_rejections)
                    self.uow.commit()
                raise _atomic_failure(self.report)
            with self.uow.held():  # the chunks' transactions one after another, on one connection
                if self._side_by_side():
                    self._write_side_by_side(chunks, on_progress)
                else:
                    for chunk, validated in self._validated_ahead(chunks):
                        with self.uow:
                            self._chunk(self.uow, chunk, validated)
                            self.uow.ingestion().update_by_id("ingest_batches", self.report.batch_id,
                                                              self.report.counts())
                            self.uow.commit()
                        if on_progress:
                            on_progress(self.report)
                with self.uow:
                    self._retire(self.uow.ingestion())
                    self._finish(self.uow.ingestion(), "completed", request_hash())
                    self.uow.commit()
            return self.report
        except BaseException as error:
            if self.report.status != "failed":  # not the atomic refusal, which recorded itself
                self._fail(error)
            raise
        finally:
            if self.lease is not None:
                self.lease.release()
            self.observed()

    def observed(self) -> None:
        for observer in BATCH_OBSERVERS:
            observer(self.report, time.perf_counter() - self.started)

    def _finish(self, ingestion: AbstractIngestRepository, status: str, digest: str | None) -> None:
        self.report.status = status
        ingestion.update_by_id("ingest_batches", self.report.batch_id, {
            **self.report.counts(), "status": status, "finished_at": self.clock(), "request_hash": digest,
        })

    def _fail(self, error: BaseException | None = None) -> None:
        """Interrupted: mark the batch failed, with what stopped it; its counts are those of the chunks
        committed before (the rows of the chunk that failed were received, and none written)."""
        self.report.status = "failed"
        reason = None
        if error is not None:
            reason = {"code": getattr(error, "code", type(error).__name__),
                      "message": (getattr(error, "message", None) or str(error) or type(error).__name__)[:1000]}
        try:
            with self.uow:
                self.uow.ingestion().update_by_id("ingest_batches", self.report.batch_id, {
                    "status": "failed", "finished_at": self.clock(), "error": _jsonable(reason),
                    "received": max(self.report.received, self.arrived)})
                self.uow.commit()
        except Exception:  # the store is gone too; the next start marks the batch failed
            pass

    # --- one chunk ---------------------------------------------------------------------------

    def _validated_ahead(self, chunks: Iterable[Chunk]) -> Iterator[tuple[Chunk, Validated]]:
        """Each chunk with its validation, done in a helper thread one chunk ahead: validating is pure
        Python, and it overlaps the writing of the chunk before (the driver releases the GIL while
        PostgreSQL works)."""
        with ThreadPoolExecutor(1, thread_name_prefix="depot-validate") as pool:
            pending: tuple[Chunk, Future[Validated]] | None = None
            for chunk in chunks:
                self.arrived += len(chunk)
                future = pool.submit(self._validate, chunk)
                if pending is not None:
                    yield pending[0], pending[1].result()
                pending = (chunk, future)
            if pending is not None:
                yield pending[0], pending[1].result()

    def _side_by_side(self) -> bool:
        """Whether the chunks go side by side (_write_side_by_side): the store has writers to spare, and
        no chunk depends on the ones before it but through the keys they share. Not a self-referencing
        table (a row may point at one an earlier chunk holds), nor a delete, an append (ids drawn for
        every row) or a partition snapshot (its keys gathered for the end): those keep one writer."""
        return self.uow.writers > 1 and self.disposition in ("upsert", "insert_only") and not self.seen

    def _write_side_by_side(self, chunks: Iterable[Chunk], on_progress: Callable[[BatchReport], None] | None) -> None:
        """Up to `writers` chunks at once, each in a unit of work of its own (its own connection): the
        store writes one chunk while it writes the next, on a machine with cores to spare. The batch
        still ends as one written chunk after chunk would:
        - two chunks that share a natural key are never in flight together: the later one waits;
        - surrogate ids are drawn in file order: each chunk's merge draws after the chunk before drew;
        - chunks commit in file order (take_turn, await_turn), each with the batch's counts so far, so the
          store holds the first chunks of the batch, counted, at any time. A chunk that fails takes the
          chunks in flight after it down with it (rolled back), and the batch fails as it would have."""
        writers, idle = [self.uow], [self.uow]  # more writers are taken as chunks overtake (sibling)
        flying: deque[tuple[Future[None], set, AbstractUnitOfWork]] = deque()
        before: _Turn | None = None
        first = 1  # the next chunk's first row number

        def land() -> None:  # the oldest chunk in flight: its end, its writer back
            future, _, uow = flying.popleft()
            future.result()
            idle.append(uow)
            if on_progress:
                on_progress(self.report)

        with ExitStack() as stack:
            pool = stack.enter_context(ThreadPoolExecutor(self.uow.writers, thread_name_prefix="depot-write"))
            try:
                for number, (chunk, validated) in enumerate(self._validated_ahead(chunks)):
                    keys = set(keys_of(validated.rows, self.table.natural_key))
                    while flying and any(not keys.isdisjoint(k) for _, k, _ in flying):
                        land()
                    if not idle and len(writers) < self.uow.writers:
                        sibling = self.uow.sibling()
                        if sibling is not None:
                            stack.enter_context(sibling.held())
                            writers.append(sibling)
                            idle.append(sibling)
                    if not idle:
                        land()
                    turn, writer = _Turn(number, before), idle.pop()
                    flying.append((pool.submit(self._write, writer, chunk, validated, first, turn), keys, writer))
                    first += len(chunk)
                    before = turn
                while flying:
                    land()
            except BaseException:
                for future, _, _ in flying:  # those in flight end as they would have: committed, or abandoned
                    future.exception()
                raise

    def _write(self, uow: AbstractUnitOfWork, chunk: Chunk, validated: Validated, first: int, turn: _Turn) -> None:
        """One chunk of a batch written side by side, in its writer's thread and unit of work."""
        report = self.report.part()  # the chunk's counts, added to the batch's when it commits
        committed = False
        try:
            with uow:
                ingestion = uow.ingestion()
                ingestion.take_turn(self.report.batch_id, turn.number)
                turn.taken.set()
                report.received += len(chunk)
                rejected = self._process(ingestion, chunk, validated, report, turn.drawing())
                turn.drawn.set()
                if turn.before is not None:  # holding this chunk's writes, a wait the store sees
                    turn.before.taken.wait()
                    ingestion.await_turn(self.report.batch_id, turn.before.number)
                    turn.before.ended.wait()
                    if not turn.before.committed:
                        raise _Abandoned(turn.number)
                # Rejections after the chunks before, as one writer would have stored them (their ids in order).
                self._settle(uow, chunk, validated, first, rejected, report)
                self.report.absorb(report)
                ingestion.update_by_id("ingest_batches", self.report.batch_id, self.report.counts())
                uow.commit()
                committed = True
        finally:
            turn.end(committed)

    def _chunk(self, uow: AbstractUnitOfWork, chunk: Chunk, validated: Validated) -> None:
        first = self.report.received + 1
        self.report.received += len(chunk)
        rejected = self._process(uow.ingestion(), chunk, validated)
        self._settle(uow, chunk, validated, first, rejected, self.report)

    def _settle(self, uow: AbstractUnitOfWork, chunk: Chunk, validated: Validated, first: int,
                rejected: dict[int, list[dict[str, str]]], report: BatchReport) -> None:
        """Store a processed chunk's rejections, whose first row is row `first` of the batch, and report
        them and its warnings."""
        self._reject(uow, chunk, first, rejected, report)
        for position, warnings in sorted(validated.warned.items()):
            if position not in rejected:
                report.note_warnings(first + position, warnings)

    def _process(
        self, ingestion: AbstractIngestRepository, chunk: Chunk, validated: Validated | None = None,
        report: BatchReport | None = None, drawing: AbstractContextManager[None] = nullcontext(),
    ) -> dict[int, list[dict[str, str]]]:
        """Validate, check references, merge: count what happened (into `report`, by default the batch's),
        return the rejected positions. `drawing`: the merge's (AbstractIngestRepository.merge)."""
        report = report if report is not None else self.report
        validated = validated if validated is not None else self._validate(chunk)
        rows, positions, rejected = validated.rows, validated.positions, validated.rejected
        rows, positions = self._check_references(ingestion, rows, positions, rejected)
        encoded = validated.encoded
        if encoded is not None and len(positions) < len(validated.positions):  # some rows left: their items too
            by_position = dict(zip(validated.positions, encoded, strict=True))
            encoded = [by_position[p] for p in positions]
        if self.disposition == "delete":
            return self._delete(ingestion, rows, rejected)
        if self.disposition == "append":
            return self._append(ingestion, rows, rejected)
        key = self.table.natural_key
        merged = MergeCounts()
        on_conflict = self.on_conflict
        unique = one_per_key(rows, key, keep_last=on_conflict == "update")
        if on_conflict == "update":
            merged.superseded += len(unique.dropped)
        elif on_conflict == "ignore":
            merged.unchanged += len(unique.dropped)
        else:
            for i in unique.dropped:
                rejected[positions[i]] = [duplicate_error(self.table, rows[i], in_batch=True)]
        kept, kept_numbers = unique.rows, unique.numbers
        if encoded is not None and len(kept_numbers) < len(rows):
            encoded = [encoded[i] for i in kept_numbers]
        if on_conflict == "error" and kept:
            stored = ingestion.present_keys(self.table.name, key, {tuple(r[c] for c in key) for r in kept})
            for i in unique.numbers:
                if tuple(rows[i][c] for c in key) in stored:
                    rejected[positions[i]] = [duplicate_error(self.table, rows[i], in_batch=False)]
            kept_numbers = [i for i in unique.numbers if tuple(rows[i][c] for c in key) not in stored]
            kept = [rows[i] for i in kept_numbers]
            encoded = None  # a first load has none to leave out; the rest is not worth re-aligning
        if rejected and self.atomic:
            self.doomed = True
        if kept and not self.doomed:
            written = ingestion.merge(
                self.table, kept, source=self.request.source, priority=self.priority,
                batch_id=self.report.batch_id, now=self.clock(), on_conflict=on_conflict, encoded=encoded,
                drawing=drawing,
            )
            for j in written.clashed:  # stored by a concurrent batch since present_keys looked
                i = kept_numbers[j]
                rejected[positions[i]] = [duplicate_error(self.table, rows[i], in_batch=False)]
            if written.clashed and self.atomic:
                self.doomed = True
            merged += written
        if not self.doomed:
            report.count(merged)
            if self.disposition == "replace_partition":
                self._remember(kept)
        return rejected

    def _delete(self, ingestion: AbstractIngestRepository, rows: list[Row],
                rejected: dict[int, list[dict[str, str]]]) -> dict[int, list[dict[str, str]]]:
        """disposition=delete: the rows' natural keys go, each once, under the priority rule; a key not
        stored counts as unchanged, one a stronger source holds as superseded."""
        if rejected and self.atomic:
            self.doomed = True
        if self.doomed or not rows:
            return rejected
        unique = one_per_key(rows, self.table.natural_key, keep_last=True)
        deleted, superseded = ingestion.delete_keys(self.table, unique.rows, priority=self.priority,
                                                    batch_id=self.report.batch_id, now=self.clock())
        self.report.deleted += deleted
        self.report.superseded += superseded
        self.report.unchanged += len(rows) - deleted - superseded
        return rejected

    def _append(self, ingestion: AbstractIngestRepository, rows: list[Row],
                rejected: dict[int, list[dict[str, str]]]) -> dict[int, list[dict[str, str]]]:
        """disposition=append: every valid row is inserted as a new one, twins and all."""
        if rejected and self.atomic:
            self.doomed = True
        if self.doomed or not rows:
            return rejected
        self.report.inserted += ingestion.append(self.table, rows, source=self.request.source,
                                                 batch_id=self.report.batch_id, now=self.clock())
        return rejected

    def _remember(self, rows: list[Row]) -> None:
        """replace_partition: the keys this batch holds, by partition (kept until the batch's end)."""
        partition, key = self.request.partition, self.table.natural_key
        for row in rows:
            self.snapshot.setdefault(tuple(row[c] for c in partition), []).append({c: row[c] for c in key})

    def _retire(self, ingestion: AbstractIngestRepository) -> None:
        """replace_partition, at the batch's end: the stored rows of the partitions it covered that it did
        not hold are retired. Not when a row was rejected: its partition and key are not known for sure,
        and retiring its stored row would lose what the batch only failed to send."""
        if self.disposition != "replace_partition" or not self.snapshot:
            return
        if self.report.rejected:
            self.report.note_warnings(0, [{"field": ",".join(self.request.partition), "code": "not_retired",
                                           "message": "rows were rejected, so no partition is taken as complete; "
                                                      "nothing was retired"}])
            return
        keep = [k for keys in self.snapshot.values() for k in keys]
        self.report.retired += ingestion.retire_partitions(
            self.table, self.request.partition, set(self.snapshot), keep, priority=self.priority,
            batch_id=self.report.batch_id, now=self.clock())

    def _validate(self, chunk: Chunk) -> Validated:
        rejected: dict[int, list[dict[str, str]]] = {}
        warned: dict[int, list[dict[str, str]]] = {}
        plan = self.plan
        if chunk.header is not None:
            names, keep = self._header(list(chunk.header))
            columns, good = self._columns(chunk, rejected)
            count = len(chunk) if good is None else len(good)
            # column-wise: the profile drops, converts and adds whole columns, never a row object
            if not plan.trivial:
                columns = plan.columns(names, [columns[i] for i in keep], count)
            checked = validate_columns(self.shape, names, columns, count, discard_invalid=plan.discard_invalid)
            positions, errors, warnings = checked.indexes, checked.errors, checked.warnings
            if good is not None:
                positions = [good[i] for i in positions]
                errors = {good[i]: e for i, e in errors.items()}
                warnings = {good[i]: w for i, w in warnings.items()}
            for i, field_errors in errors.items():
                rejected[i] = [e.as_dict() for e in field_errors]
            for i, field_warnings in warnings.items():
                warned[i] = [w.as_dict() for w in field_warnings]
            encoded = None
            if self.encode is not None and checked.rows.columns:
                raw = None
                if plan.trivial and isinstance(chunk.records, ColumnarRecords):  # the cells are the columns
                    raw = RawCells(chunk.records, {n: i for i, n in enumerate(names)}, positions, checked.verbatim)
                encoded = self.encode(checked.rows.columns, raw)
            return Validated(checked.rows, positions, rejected, warned, encoded)
        validate = RowValidator(self.shape, discard_invalid=plan.discard_invalid)
        mapped = chunk.records if plan.trivial else map(plan.row, chunk.records)
        rows, positions = [], []
        for i, raw in enumerate(mapped):
            try:
                rows.append(validate(raw))
                positions.append(i)
                if validate.warnings:
                    warned[i] = [w.as_dict() for w in validate.warnings]
            except RowInvalid as invalid:
                rejected[i] = [e.as_dict() for e in invalid.errors]
        return Validated(rows, positions, rejected, warned)

    @staticmethod
    def _columns(chunk: Chunk, rejected: dict[int, list[dict[str, str]]]) -> tuple[list[list[Any]], list[int] | None]:
        """A CSV chunk's values column by column, and the positions of the records that fit the header
        (None: all of them); the others are `rejected` for their field count."""
        width = len(chunk.header or ())
        if isinstance(chunk.records, ColumnarRecords):
            return chunk.records.columns(), None
        records = list(chunk.records)
        for i, record in enumerate(records):
            if len(record) != width:
                rejected[i] = [FieldError("", "field_count", f"{len(record)} fields; the header has {width}").as_dict()]
        good = [i for i in range(len(records)) if i not in rejected] if rejected else None
        if good is not None:
            records = [records[i] for i in good]
        return ([list(c) for c in zip(*records, strict=True)] if records else [[] for _ in range(width)]), good

    def _header(self, header: list[str]) -> tuple[list[str], list[int]]:
        """The CSV header through the profile, checked once per batch: the names the columns land in,
        and the positions of the incoming columns kept."""
        if self.mapped_header is None:
            names, keep = self.plan.header(header)
            problems = header_errors(self.shape, names)
            if problems:
                raise BadRequest("The CSV header does not fit the table", code="PGRST102",
                                 details=[p.as_dict() for p in problems],
                                 hint=f"Columns of {self.table.name}: "
                                      + ", ".join(c.name for c in self.shape.writable_columns)
                                      + ". Map other names with columns= or the source's profile.")
            self.mapped_header = (names, keep)
        return self.mapped_header

    def _check_references(
        self, ingestion: AbstractIngestRepository, rows: Sequence[Row], positions: list[int],
        rejected: dict[int, list[dict[str, str]]],
    ) -> tuple[Sequence[Row], list[int]]:
        """Hard references, one query per reference per chunk, for the keys that no earlier chunk of the
        batch found; self-references may also point at rows earlier in the batch.

        A referenced key found once is taken as still there (up to PRESENT_KEYS of them per reference):
        a file's few carriers and airports are looked up by its first chunk only. Should one be deleted
        while the batch runs, the table's foreign key still refuses the chunk that points at it."""
        if not self.references or not rows:
            return rows, positions
        missing: dict[ForeignKey, set[tuple]] = {}
        for fk in self.references:
            known = self.present[fk]
            with self.present_lock:
                wanted = reference_keys(fk, rows) - known
            found = ingestion.present_keys(fk.target, fk.target_columns, wanted) if wanted else set()
            with self.present_lock:
                if len(known) + len(found) <= PRESENT_KEYS:
                    known |= found
            absent = wanted - found
            if absent or fk in self.seen:
                missing[fk] = absent
        if not missing:  # the common case: every reference is there
            return rows, positions
        if not self.seen:  # no self-reference, so no row order to follow: column by column
            bad: dict[int, list[dict[str, str]]] = {}
            for fk, absent in missing.items():
                single = len(fk.columns) == 1
                for i, k in enumerate(keys_of(rows, fk.columns)):
                    key = (k,) if single else k  # keys_of gives a single column's values bare
                    if key in absent:
                        bad.setdefault(i, []).append(reference_error(fk, key))
            for i, errors in bad.items():
                rejected[positions[i]] = errors
            ok = [i for i in range(len(rows)) if i not in bad]
            return take(rows, ok), [positions[i] for i in ok]
        ok_rows, ok_positions = [], []
        for row, position in zip(rows, positions, strict=True):
            errors = []
            for fk, absent in missing.items():
                key = tuple(row.get(c) for c in fk.columns)
                if key in absent and key not in self.seen.get(fk, ()):
                    errors.append(reference_error(fk, key))
            if errors:
                rejected[position] = errors
                continue
            for fk, seen in self.seen.items():
                seen.add(tuple(row[c] for c in fk.target_columns))
            ok_rows.append(row)
            ok_positions.append(position)
        return ok_rows, ok_positions

    def _reject(
        self, uow: AbstractUnitOfWork, chunk: Chunk, first: int, rejected: dict[int, list[dict[str, str]]],
        report: BatchReport,
    ) -> None:
        if not rejected:
            return
        report.rejected += len(rejected)
        for position in sorted(rejected):
            if len(report.errors) >= REPORTED_ERRORS:
                break
            report.note_errors(first + position, rejected[position])
        rows = [
            {"batch_id": self.report.batch_id, "row_number": first + position,
             "payload": _jsonable(chunk.payload(position)), "errors": _jsonable(errors), "resolved_at": None}
            for position, errors in sorted(rejected.items())
        ]
        if self.atomic:  # kept for after the rollback; only the first ones, so memory stays bounded
            self.atomic_rejections.extend(rows[: REPORTED_ERRORS - len(self.atomic_rejections)])
            return
        uow.repository("rejected_rows").add(rows)


class _Turn:
    """A chunk's place in a batch written side by side: the next chunk waits for this one to have taken
    its turn in the store, to have drawn its surrogate ids, and to have ended (committed or not)."""

    def __init__(self, number: int, before: _Turn | None):
        self.number = number  # the chunk's, from 0 in the batch
        self.before = before
        self.taken, self.drawn, self.ended = threading.Event(), threading.Event(), threading.Event()
        self.committed = False

    @contextmanager
    def drawing(self) -> Iterator[None]:
        """The merge's `drawing`: entered once the chunk before has drawn its ids; left, this one has."""
        if self.before is not None:
            self.before.drawn.wait()
        try:
            yield
        finally:
            self.drawn.set()

    def end(self, committed: bool) -> None:
        self.committed = committed
        for event in (self.taken, self.drawn, self.ended):
            event.set()


class _Abandoned(Exception):
    """A chunk written side by side rolled back because one before it did not commit."""


def _jsonable(value: Any) -> Any:
    """The payload as received, as jsonb can hold it: CSV values are strings or null already; a NUL
    character, which jsonb refuses (and which made the row fail), becomes U+FFFD, keys included."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {_jsonable(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, int | float | bool) or value is None else str(value)


# --- replay ---------------------------------------------------------------------------------------


def replay(uow: AbstractUnitOfWork, batch_id: int, *, clock: Clock = utcnow) -> BatchReport:
    """Re-check the unresolved rejections of a batch against the store as it is now. The accepted
    ones are written (as a new batch of the same table, source and on_conflict) and marked
    resolved; the others keep their place with their new reasons. Returns the replay's report."""
    original = get_batch(uow, batch_id)
    if original["mode"] == "atomic":
        raise Conflict(
            f"The batch {batch_id} is atomic: it wrote none of its rows, so there is nothing to complete",
            hint="Correct the rows and send the whole batch again.",
        )
    # insert_only stored its on_conflict (ignore); a partial replay is no snapshot, so it retires nothing;
    # append's rows are new whenever they come
    disposition = original.get("disposition") if original.get("disposition") in ("delete", "append") else "upsert"
    request = IngestRequest(original["table"], original["source"], "best_effort", original["on_conflict"],
                            recorded_profile=original.get("profile") or {}, disposition=disposition)
    run = _BatchRun(uow, request, check_request(uow, request), clock)
    run.begin()
    try:
        after = 0
        while True:
            with uow:
                page = _unresolved(uow, batch_id, after)
                if not page:
                    break
                after = page[-1]["id"]
                ingestion = uow.ingestion()
                run.report.received += len(page)
                rejected = run._process(ingestion, Chunk([r["payload"] for r in page]))
                now = clock()
                for i, r in enumerate(page):
                    if i in rejected:
                        ingestion.update_by_id("rejected_rows", r["id"], {"errors": _jsonable(rejected[i])})
                        if len(run.report.errors) < REPORTED_ERRORS:
                            run.report.note_errors(r["row_number"], rejected[i])
                    else:
                        ingestion.update_by_id("rejected_rows", r["id"], {"resolved_at": now})
                run.report.rejected += len(rejected)
                ingestion.update_by_id("ingest_batches", run.report.batch_id, run.report.counts())
                uow.commit()
        if run.report.rejected == run.report.received:
            # nothing accepted: no batch to show for it (the rejections keep their new reasons)
            with uow:
                uow.repository("ingest_batches").delete(Condition("id", "eq", run.report.batch_id))
                uow.commit()
            run.report.batch_id = None
            run.report.status = "completed"
            return run.report
        with uow:
            run._finish(uow.ingestion(), "completed", None)
            uow.commit()
        return run.report
    except BaseException as error:
        run._fail(error)
        raise
    finally:
        if run.lease is not None:
            run.lease.release()
        run.observed()


def _unresolved(uow: AbstractUnitOfWork, batch_id: int, after: int) -> list[Row]:
    where = conjunction([Condition("batch_id", "eq", batch_id), Condition("resolved_at", "is", None),
                         Condition("dismissed_at", "is", None), Condition("id", "gt", after)])
    return uow.repository("rejected_rows").list(Query(where=where, order=(OrderBy("id"),), limit=REPLAY_PAGE))


# --- reading batches back -------------------------------------------------------------------------


def own_batches(uow: AbstractUnitOfWork) -> list[Condition]:
    """The batches of this catalog: catalogs in several schemas of one database share ingest_batches."""
    return [Condition("schema", "eq", uow.catalog.schema)]


def get_batch(uow: AbstractUnitOfWork, batch_id: int) -> Row:
    with uow:
        batch = uow.repository("ingest_batches").get((batch_id,))
    if batch is None or batch["schema"] != uow.catalog.schema:  # another catalog's batch is not this one's to show
        raise NotFound(f"No ingest batch has id {batch_id}")
    return batch


def batch_report(uow: AbstractUnitOfWork, batch_id: int) -> BatchReport:
    """A stored batch's report, its first errors read back from rejected_rows."""
    batch = get_batch(uow, batch_id)
    with uow:
        first = uow.repository("rejected_rows").list(Query(
            where=Condition("batch_id", "eq", batch_id), order=(OrderBy("row_number"),), limit=REPORTED_ERRORS))
    report = BatchReport.from_batch(batch)
    if batch.get("error"):  # a failed batch: what stopped it comes first
        report.note_errors(0, [batch["error"]])
    for rejection in first:
        report.note_errors(rejection["row_number"], rejection["errors"])
    return report


# --- acting on rejected rows ----------------------------------------------------------------------


def _open_rejection(uow: AbstractUnitOfWork, rejection_id: int) -> Row:
    with uow:
        row = uow.repository("rejected_rows").get((rejection_id,))
    if row is None:
        raise NotFound(f"No rejected row has id {rejection_id}")
    if row["resolved_at"] is not None or row["dismissed_at"] is not None:
        state = "resolved by a replay" if row["resolved_at"] is not None else "dismissed"
        raise Conflict(f"The rejected row {rejection_id} is {state} already", details={"id": rejection_id})
    return row


def correct_rejection(uow: AbstractUnitOfWork, rejection_id: int, payload: Any) -> Row:
    """Replace a rejected row's payload (the row as the source should have sent it, under the source's
    own names: the batch's profile still reads it); the next replay of its batch checks this one."""
    if not isinstance(payload, dict):
        raise BadRequest("A corrected payload is a JSON object: the row, as its source sends it")
    _open_rejection(uow, rejection_id)
    with uow:
        uow.ingestion().update_by_id("rejected_rows", rejection_id, {"payload": _jsonable(payload)})
        uow.commit()
        return uow.repository("rejected_rows").get((rejection_id,))  # type: ignore[return-value]


def dismiss_rejection(uow: AbstractUnitOfWork, rejection_id: int, reason: Any, *, clock: Clock = utcnow) -> Row:
    """Abandon a rejected row on purpose, saying why; replays leave it alone from then on."""
    if not isinstance(reason, str) or not reason.strip():
        raise BadRequest('Dismissing a rejected row takes a reason: {"reason": "..."}')
    _open_rejection(uow, rejection_id)
    with uow:
        uow.ingestion().update_by_id("rejected_rows", rejection_id,
                                     {"dismissed_at": clock(), "dismissed_reason": reason.strip()})
        uow.commit()
        return uow.repository("rejected_rows").get((rejection_id,))  # type: ignore[return-value]


@dataclass(frozen=True)
class Listing:
    rows: list[Row]
    offset: int
    total: int


def list_batches(uow: AbstractUnitOfWork, *, limit: int, offset: int) -> Listing:
    """Newest first."""
    with uow:
        repo = uow.repository("ingest_batches")
        where = conjunction(own_batches(uow))
        rows = repo.list(Query(where=where, order=(OrderBy("id", descending=True),), limit=limit, offset=offset))
        total = repo.count(where)
    return Listing(rows, offset, total)


def list_rejections(
    uow: AbstractUnitOfWork, batch_id: int, *, limit: int, offset: int, unresolved: bool = False
) -> Listing:
    get_batch(uow, batch_id)
    conditions = [Condition("batch_id", "eq", batch_id)]
    if unresolved:
        conditions += [Condition("resolved_at", "is", None), Condition("dismissed_at", "is", None)]
    where = conjunction(conditions)
    with uow:
        repo = uow.repository("rejected_rows")
        rows = repo.list(Query(where=where, order=(OrderBy("row_number"), OrderBy("id")), limit=limit, offset=offset))
        total = repo.count(where)
    return Listing(rows, offset, total)


def watermark(uow: AbstractUnitOfWork, source: str, table_name: str) -> dict[str, Any]:
    """Where a source resumes: the greatest value of its profile's cursor column among the rows of the
    table that it wrote (rows a stronger source took over are no longer its own). None when it has none."""
    table = table_of(uow, table_name)
    if not table.has_provenance:
        raise BadRequest(f"{table.name} does not record the source of its rows")
    with uow:
        stored = uow.repository("sources").get((source,))
    if stored is None:
        raise NotFound(f"No source has code {source!r}")
    cursor = cursor_column(table, effective_profile(stored.get("profile"), table.name))
    where = conjunction([Condition(table.system.source, "eq", source), Condition(cursor, "is", None, negated=True)])
    where = live_only(table, where)  # a deleted row is not where the source stands
    with uow.reading():
        rows = uow.repository(table.name).list(Query(where=where, order=(OrderBy(cursor, descending=True),), limit=1))
    return {"source": source, "table": table.name, "cursor": cursor, "watermark": rows[0][cursor] if rows else None}


def fail_orphaned_batches(uow: AbstractUnitOfWork, *, clock: Clock = utcnow) -> list[int]:
    """At start: every batch left running by a process that died is marked failed."""
    with uow:
        failed = uow.ingestion().fail_orphaned_batches(clock())
        uow.commit()
    return failed
