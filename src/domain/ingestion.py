"""The ingestion rules: source-priority merge, duplicates within a batch, references, and the batch report.

The rules, in the order they apply to one valid row whose natural key is already stored:

1. `on_conflict=ignore`: the stored row stays as it is; the row counts as `unchanged`.
   (`on_conflict=error` never gets here: the service rejects such a row with `duplicate_key`.)
2. The incoming source's priority is below the stored row's source's priority: `superseded`.
   This holds even when the values are equal: the row stays attributed to the stronger source.
3. Every data column (the writable ones; not `source`, `batch_id` or the timestamps) equals the
   stored value: `unchanged`, with no version bump and no `updated_at` change.
4. Otherwise: `updated`. The values, `source` and `batch_id` are replaced, `version` + 1,
   `updated_at` = now. On a soft_delete table a stored row marked deleted is never `unchanged`:
   it is revived (`deleted_at` back to null) and counted `updated`. (`on_conflict=ignore`, which
   insert_only uses, leaves it deleted: a replay does not bring back what was deleted.)

A row whose natural key is not stored is `inserted`. Within one chunk a natural key can appear
more than once; ON CONFLICT cannot touch a row twice, so the service sends each key once:
with `update` the last row wins and each earlier one counts as `superseded`; with `ignore` the
first one wins and each later one counts as `unchanged`; with `error` each later one is rejected
(`duplicate_key`), as if the rows had arrived one by one. (One by one, an earlier twin under
`update` would be inserted, then updated; it is counted `superseded` instead, since it was never
written.)
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from domain.schema import ForeignKey, Table

Row = dict[str, Any]

MODES = ("best_effort", "atomic")
ON_CONFLICT = ("update", "ignore", "error")
# What a batch does to the table (see service_layer.ingest): upsert its rows; insert only the new ones;
# upsert them and retire the rows of the partitions it covers that it does not hold; delete its keys;
# append: insert every row as new, on a table declared unique_natural_key=False (and only there: the
# others key their rows by the natural key, and append is refused on them with the reason).
DISPOSITIONS = ("upsert", "insert_only", "replace_partition", "delete", "append")
KEYED_DISPOSITIONS = ("upsert", "insert_only", "replace_partition", "delete")  # need a unique natural key
STATUSES = ("running", "completed", "failed")
REPORTED_ERRORS = 20  # the report carries the first errors; the rest are in rejected_rows


class Outcome(enum.StrEnum):
    INSERTED = "inserted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SUPERSEDED = "superseded"


def data_columns(table: Table) -> tuple[str, ...]:
    """The columns whose values decide whether a row changed: the writable ones."""
    return tuple(c.name for c in table.writable_columns)


def merge_outcome(
    stored: Row | None,
    incoming: Row,
    *,
    stored_priority: int,
    priority: int,
    on_conflict: str,
    columns: Sequence[str],
    deleted: bool = False,
) -> Outcome:
    """What happens to one incoming row against the stored row of its natural key (see the module doc).
    A soft-deleted stored row (`deleted`) that the rules let the row update is revived, equal values
    or not: `updated`, since it keeps its id, created_at and history."""
    if stored is None:
        return Outcome.INSERTED
    if on_conflict != "update":
        return Outcome.UNCHANGED
    if priority < stored_priority:
        return Outcome.SUPERSEDED
    if not deleted and all(stored[c] == incoming[c] for c in columns):
        return Outcome.UNCHANGED
    return Outcome.UPDATED


@dataclass
class Reverted:
    """What a revert did to the rows one batch had changed: each set back to its version before the
    batch (`restored`: updated back; `reinserted`: the batch had deleted or retired it; `deleted`: the
    batch had inserted it), or left as it is (`conflicted`: changed again since, and not forced), with
    the first of those conflicts: each row's key, the batch's version and the current one."""

    restored: int = 0
    reinserted: int = 0
    deleted: int = 0
    conflicted: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)


REPORTED_CONFLICTS = 20


def conflict_of(table: Table, batch_version: Row, current: Row | None) -> dict[str, Any]:
    """A revert's conflict as reported: the row's key, the batch's version of it, and the current one
    (history rows, by the history's own names: operation, updated_at, valid_to, ...)."""
    return {"key": {k: batch_version[k] for k in table.primary_key},
            "batch_version": batch_version, "current": current}


@dataclass
class MergeCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    superseded: int = 0
    clashed: list[int] = field(default_factory=list)  # on_conflict=error: rows met a stored key, not written

    def add(self, outcome: Outcome, n: int = 1) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + n)

    def __iadd__(self, other: MergeCounts) -> MergeCounts:
        for outcome in Outcome:
            self.add(outcome, getattr(other, outcome.value))
        return self

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged + self.superseded


class ColumnarRecords(Sequence[list[Any]]):
    """A tabular body's records as its parser kept them: text columns, every record fitting the header. A
    record at a time where one is asked for (a rejected row's payload); whole columns for validation, which
    needs no record objects; and the cells' own text for a store that writes text in bulk."""

    @abc.abstractmethod
    def columns(self) -> list[list[Any]]:
        """One list of values (str, or None for the null token) per header column."""

    @abc.abstractmethod
    def matches(self, column: int, pattern: str) -> bool:
        """Whether every cell of the `column`-th column that is not null matches `pattern` in full."""

    @abc.abstractmethod
    def csv(self, columns: Sequence[int], rows: Sequence[int]) -> list[str] | None:
        """The cells of `columns` (by position) of the records at `rows`, as csv records: one str per record,
        ending in a line break, every value quoted and null an empty field. None when a value holds a line
        break, which would make a record two lines."""


@dataclass(frozen=True)
class RawCells:
    """Where a tabular chunk's validated columns came from: its records, the position of each column's
    cells in them, the position there of each good row, and the columns whose every good value came from
    its own cell alone, by the validator's common path: each such value is the cell's text, typed."""

    records: ColumnarRecords
    position: Mapping[str, int]
    rows: Sequence[int]
    verbatim: frozenset[str]


class ColumnRows(Sequence[Row]):
    """Validated rows held as one list per column, as a CSV chunk is validated (validate_columns).

    Whoever needs rows reads dicts (built on demand, each time); the ingest path reads whole columns
    instead (column_of, take), so a chunk that goes straight to the store never becomes dicts at all:
    building them was a seventh of the validating thread's time on a load of the flights."""

    __slots__ = ("columns", "n")

    def __init__(self, columns: dict[str, list[Any]], n: int):
        self.columns = columns
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        return {name: values[i] for name, values in self.columns.items()}

    def __iter__(self) -> Iterator[Row]:
        names = list(self.columns)
        return (dict(zip(names, values, strict=True)) for values in zip(*self.columns.values(), strict=True)) \
            if names else iter([{} for _ in range(self.n)])

    def take(self, indexes: Sequence[int]) -> ColumnRows:
        """The rows at `indexes`, in that order."""
        return ColumnRows({name: [values[i] for i in indexes] for name, values in self.columns.items()},
                          len(indexes))


def column_of(rows: Sequence[Row], name: str) -> list[Any]:
    """One column of the rows (None where a row lacks it)."""
    if isinstance(rows, ColumnRows) and name in rows.columns:
        return rows.columns[name]
    return [row.get(name) for row in rows]


def keys_of(rows: Sequence[Row], columns: Sequence[str]) -> list[Any]:
    """Each row's values of `columns`: a tuple for several columns, the value itself for one."""
    if len(columns) == 1:
        return column_of(rows, columns[0])
    return list(zip(*(column_of(rows, c) for c in columns), strict=True))


def take(rows: Sequence[Row], indexes: Sequence[int]) -> Sequence[Row]:
    """The rows at `indexes`, as the kind of sequence they came in."""
    return rows.take(indexes) if isinstance(rows, ColumnRows) else [rows[i] for i in indexes]


@dataclass(frozen=True)
class Deduplicated:
    rows: Sequence[Row]  # one per natural key, in first-seen order
    numbers: list[int]  # their row numbers
    dropped: list[int]  # indexes (into the input) of the rows that lost to a twin


def one_per_key(rows: Sequence[Row], key: Sequence[str], *, keep_last: bool) -> Deduplicated:
    """Each natural key once: the last row of a key (keep_last) or the first one."""
    chosen: dict[Any, int] = {}
    dropped: list[int] = []
    keys = keys_of(rows, key)  # a tuple for several columns, the value for one: either is a fine dict key
    if len(set(keys)) == len(keys):  # the common case, told in C: no twins
        return Deduplicated(rows, list(range(len(keys))), [])
    for i, k in enumerate(keys):
        previous = chosen.get(k)
        if previous is None:
            chosen[k] = i
        elif keep_last:
            dropped.append(previous)
            chosen[k] = i
        else:
            dropped.append(i)
    kept = list(chosen.values())  # in the order each key first arrived: a new key's id is drawn there
    return Deduplicated(take(rows, kept), kept, sorted(dropped))


def reference_keys(fk: ForeignKey, rows: Sequence[Row]) -> set[tuple]:
    """The distinct values a chunk's rows send for one reference (rows with a null part point nowhere)."""
    if len(fk.columns) == 1:
        values = set(column_of(rows, fk.columns[0]))
        values.discard(None)
        return {(v,) for v in values}
    return {k for k in keys_of(rows, fk.columns) if None not in k}


def reference_error(fk: ForeignKey, key: tuple) -> dict[str, str]:
    shown = ", ".join(map(str, key))
    return {
        "field": ",".join(fk.columns),
        "code": "reference",
        "message": f"({', '.join(fk.columns)})=({shown}) is not present in table {fk.target!r}",
    }


def duplicate_error(table: Table, row: Row, *, in_batch: bool) -> dict[str, str]:
    key = ", ".join(str(row[c]) for c in table.natural_key)
    where = "earlier in this batch" if in_batch else "already stored"
    return {
        "field": ",".join(table.natural_key),
        "code": "duplicate_key",
        "message": f"({', '.join(table.natural_key)})=({key}) is {where} and on_conflict=error",
    }


@dataclass
class BatchReport:
    """What one batch did. `errors` holds the first REPORTED_ERRORS errors, each with its row number."""

    batch_id: int | None
    table: str
    source: str
    mode: str
    on_conflict: str
    status: str = "running"
    received: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    superseded: int = 0
    rejected: int = 0
    retired: int = 0  # replace_partition: stored rows of the covered partitions the batch did not hold
    deleted: int = 0  # delete: stored rows of the batch's keys
    disposition: str = "upsert"
    errors: list[dict[str, Any]] = field(default_factory=list)
    # values a contract of invalid=discard_value nulled (the first REPORTED_ERRORS; not stored with the batch)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    COUNTS = ("received", "inserted", "updated", "unchanged", "superseded", "rejected", "retired", "deleted")

    def count(self, merged: MergeCounts) -> None:
        for outcome in Outcome:
            setattr(self, outcome.value, getattr(self, outcome.value) + getattr(merged, outcome.value))

    def note_errors(self, row_number: int, errors: Iterable[dict[str, Any]]) -> None:
        for error in errors:
            if len(self.errors) >= REPORTED_ERRORS:
                return
            self.errors.append({"row": row_number, **error})

    def note_warnings(self, row_number: int, warnings: Iterable[dict[str, Any]]) -> None:
        for warning in warnings:
            if len(self.warnings) >= REPORTED_ERRORS:
                return
            self.warnings.append({"row": row_number, **warning})

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.COUNTS}

    def part(self) -> BatchReport:
        """An empty report of the same batch, for a part of it (a chunk) to count into; absorb() adds it."""
        return BatchReport(self.batch_id, self.table, self.source, self.mode, self.on_conflict,
                           disposition=self.disposition)

    def absorb(self, part: BatchReport) -> None:
        """Add a part's counts to this report's, and its errors and warnings after this report's own (the
        first REPORTED_ERRORS of each, so parts absorbed in row order keep the first rows')."""
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + getattr(part, name))
        self.errors.extend(part.errors[: max(0, REPORTED_ERRORS - len(self.errors))])
        self.warnings.extend(part.warnings[: max(0, REPORTED_ERRORS - len(self.warnings))])

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "table": self.table,
            "source": self.source,
            "mode": self.mode,
            "on_conflict": self.on_conflict,
            "disposition": self.disposition,
            "status": self.status,
            **self.counts(),
            "errors": list(self.errors),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_batch(cls, batch: Row, errors: list[dict[str, Any]] | None = None) -> BatchReport:
        """The report of a stored ingest_batches row (its first errors come from rejected_rows)."""
        report = cls(batch["id"], batch["table"], batch["source"], batch["mode"], batch["on_conflict"],
                     status=batch["status"], errors=list(errors or []),
                     disposition=batch.get("disposition") or "upsert")
        for name in cls.COUNTS:
            setattr(report, name, batch[name])
        return report
