"""The table use cases: create, read, update, delete and upsert rows of any table of the catalog.

Each takes plain values and a unit of work, opens `with uow:`, and commits explicitly. depot,
not the caller, sets the system columns (`source`, `version`, `created_at`, `updated_at`, or the
names the catalog gives them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from domain.errors import (
    BadRequest,
    Conflict,
    InvalidRows,
    NotAllowed,
    NotFound,
    NotSingular,
    PreconditionFailed,
    UnknownTable,
)
from domain.ports import AbstractUnitOfWork, Row
from domain.profiles import check_profile
from domain.query import Condition, Query, Where, conjunction, key_condition, live_only
from domain.schema import Table
from domain.validation import RowInvalid, RowValidator, ValueRefused, coerce_value, validate_rows
from service_layer.claims import promote_strongest_claims
from service_layer.retry import retry_transient

Clock = Callable[[], dt.datetime]
Resolution = Literal["merge", "ignore"] | None
MANUAL_SOURCE = "manual"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def table_of(uow: AbstractUnitOfWork, name: str, *, writing: bool = False) -> Table:
    if name not in uow.catalog:
        raise UnknownTable(
            f"Could not find the table '{name}'",
            hint=f"Known tables: {', '.join(uow.catalog.names)}",
        )
    spec = uow.catalog[name]
    if writing and spec.is_view:
        raise view_is_read_only(spec)
    if writing and spec.read_only:
        raise BadRequest(
            f"The table '{name}' is read-only through the table API",
            code="PGRST120",
            hint="ingest_batches and rejected_rows are written by /ingest.",
        )
    return spec


def view_is_read_only(spec: Table) -> NotAllowed:
    return NotAllowed(f"The {spec.kind} '{spec.name}' is read-only: depot does not write to views",
                      hint=f"Write to the tables it reads from; GET /api/{spec.name} reads it."
                           + (f" POST /api/{spec.name}/refresh refreshes it." if spec.materialized else ""))


def not_refreshable(spec: Table) -> NotAllowed:
    return NotAllowed(f"'{spec.name}' is not a materialized view: there is nothing to refresh",
                      hint="A plain view shows its tables as they are at each read." if spec.is_view else None)


def stamp_new(
    table: Table, row: Row, now: dt.datetime, source: str = MANUAL_SOURCE, batch_id: int | None = None
) -> Row:
    """The row with the system columns of a row about to be inserted."""
    return {**row, **table.inserted_stamp(now, source, batch_id)}


def parse_key(table: Table, text: str) -> tuple:
    """The row address of /api/{table}/{key}, typed by the key column."""
    column_name = table.key_column
    if column_name is None:
        raise BadRequest(
            f"The table '{table.name}' has a composite key; address its rows with filters",
            hint=f"GET /api/{table.name}?" + "&".join(f"{c}=eq.…" for c in table.primary_key),
        )
    try:
        return (coerce_value(table.column(column_name), text),)
    except ValueRefused as refused:
        raise NotFound(
            f"No row of '{table.name}' has {column_name} = {text!r}", details=refused.message
        ) from None


def _invalid(problems: list[dict[str, Any]], count: int) -> InvalidRows:
    rows = len({p["row"] for p in problems})
    noun = "row" if count == 1 else "rows"
    return InvalidRows(
        f"{rows} of {count} {noun} failed validation; nothing was written",
        details=problems,
        hint="Each detail names the row (1-based), the field and the reason.",
    )


def _conflict_columns(table: Table, on_conflict: Sequence[str] | None) -> tuple[str, ...]:
    if not table.unique_natural_key:  # PostgreSQL would have no unique index to resolve on
        raise BadRequest(
            f"'{table.name}' has no unique key to merge or ignore duplicates on: its natural key "
            f"({', '.join(table.natural_key)}) may repeat (unique_natural_key=False)",
            hint="Send the rows without Prefer: resolution=...; each is a new row. Change one with "
                 f"PATCH /api/{table.name}/{{id}}.")
    if not on_conflict:
        return table.natural_key
    columns = tuple(on_conflict)
    if columns not in {table.natural_key, table.primary_key} and set(columns) not in (
        set(table.natural_key), set(table.primary_key)
    ):
        raise BadRequest(
            f"on_conflict=({', '.join(columns)}) is not a unique key of '{table.name}'",
            hint=f"Use its natural key ({', '.join(table.natural_key)}).",
        )
    generated = [c for c in columns if table.column(c).generated]
    if generated:  # no row sent can carry it, so none could ever conflict on it
        raise BadRequest(
            f"on_conflict=({', '.join(columns)}) names {', '.join(generated)}, which depot sets and a row cannot send",
            hint=f"Use its natural key ({', '.join(table.natural_key)}).",
        )
    return columns


def _last_per_key(rows: list[Row], key: tuple[str, ...]) -> list[Row]:
    """One row per conflict key, the last one sent winning, in the place its key first came: as a
    sequence of single upserts would do, so a new key's id is drawn in arrival order. (Concurrent
    upserts must lock the rows they share in one order: the store writes them in key order.)"""
    by_key: dict[tuple, Row] = {}
    for row in rows:
        by_key[tuple(row[c] for c in key)] = row
    return list(by_key.values())


@retry_transient
def create_rows(
    uow: AbstractUnitOfWork,
    table_name: str,
    raws: Sequence[Any],
    *,
    resolution: Resolution = None,
    on_conflict: Sequence[str] | None = None,
    clock: Clock = utcnow,
    singular: bool = False,
    dry_run: bool = False,
) -> list[Row]:
    """Insert rows atomically: all of them or, on any invalid row or conflict, none. `dry_run`
    (Prefer: tx=rollback) writes them, answers as if, and rolls back."""
    table = table_of(uow, table_name, writing=True)
    rows, problems = validate_rows(table, raws)
    if problems:
        raise _invalid(problems, len(raws))
    for row in rows:
        _check_profile(table, row)
    now = clock()
    rows = [stamp_new(table, r, now) for r in rows]
    if resolution == "merge" and table.soft_delete:  # a deleted row sent again is revived, as by an ingest
        rows = [{**r, table.system.deleted_at: None} for r in rows]
    with uow:
        repo = uow.repository(table.name)
        if resolution is None:
            written = repo.add(rows)
        else:
            conflict = _conflict_columns(table, on_conflict)
            written = repo.upsert(_last_per_key(rows, conflict), conflict, update=resolution == "merge", now=now)
        _end(uow, written, singular=singular, dry_run=dry_run)
    return written


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    offset: int
    total: int | None


def list_rows(uow: AbstractUnitOfWork, table_name: str, query: Query, *, count: bool = False) -> Page:
    table = table_of(uow, table_name)
    with uow.reading():
        repo = uow.repository(table.name)
        rows = repo.list(query)
        total = repo.count(query.where) if count else None
    return Page(rows, query.offset, total)


def get_row(uow: AbstractUnitOfWork, table_name: str, key_text: str, *, include_deleted: bool = False) -> Row:
    table = table_of(uow, table_name)
    key = parse_key(table, key_text)
    with uow.reading():
        row = uow.repository(table.name).get(key)
    if row is None or (not include_deleted and _deleted(table, row)):
        raise NotFound(f"No row of '{table.name}' has {table.key_column} = {key_text!r}")
    return row


def _changes(table: Table, raw: Any) -> Row:
    try:
        changes = RowValidator(table, partial=True)(raw)
    except RowInvalid as invalid:
        raise _invalid([{"row": 1, **e.as_dict()} for e in invalid.errors], 1) from None
    _check_profile(table, changes)
    return changes


def _deleted(table: Table, row: Row) -> bool:
    """Whether a stored row is soft-deleted: gone to every read and write but include_deleted=true."""
    return table.soft_delete and row[table.system.deleted_at] is not None


def _check_profile(table: Table, row: Row) -> None:
    """A source's profile is a document with a schema of its own (domain.profiles): refused with a 400
    naming the key at fault, before anything is written."""
    if table.name == "sources" and row.get("profile") is not None:
        check_profile(row["profile"])


@retry_transient
def update_rows(
    uow: AbstractUnitOfWork, table_name: str, where: Where, raw_changes: Any, *, clock: Clock = utcnow,
    singular: bool = False, max_affected: int | None = None, dry_run: bool = False,
) -> list[Row]:
    """PATCH with filters: every matching row gets the changes; a filter is required."""
    table = table_of(uow, table_name, writing=True)
    changes = _changes(table, raw_changes)
    with uow:
        rows = uow.repository(table.name).update(live_only(table, where), changes, clock())
        _end(uow, rows, singular=singular, max_affected=max_affected, dry_run=dry_run)
    return rows


@retry_transient
def update_row(
    uow: AbstractUnitOfWork,
    table_name: str,
    key_text: str,
    raw_changes: Any,
    *,
    expected_version: int | None = None,
    clock: Clock = utcnow,
    dry_run: bool = False,
) -> Row:
    """PATCH one row; with `expected_version` (If-Match) it changes only if nobody changed it since."""
    table = table_of(uow, table_name, writing=True)
    key = parse_key(table, key_text)
    changes = _changes(table, raw_changes)
    with uow:
        repo = uow.repository(table.name)
        rows = repo.update(live_only(table, _guarded(table, key, expected_version)), changes, clock())
        if not rows:
            _missing_or_stale(repo.get(key), table, key_text)
        _end(uow, rows, dry_run=dry_run)
    return rows[0]


@retry_transient
def delete_rows(uow: AbstractUnitOfWork, table_name: str, where: Where, *, singular: bool = False,
                max_affected: int | None = None, dry_run: bool = False, clock: Clock = utcnow,
                promote_claims: bool = False) -> list[Row]:
    """DELETE with filters. `promote_claims` (DEPOT_PROMOTE_CLAIMS): the strongest claim on a
    deleted row's key takes its place (service_layer.claims). On a soft-delete table the rows are
    marked deleted instead (and no claim takes the place of a row that is still there)."""
    table = table_of(uow, table_name, writing=True)
    with uow:
        now = clock()
        rows = _remove(uow, table, where, now)
        if promote_claims and not table.soft_delete:
            promote_strongest_claims(uow, table, rows, now)
        _refuse_manual_source(table, rows)
        _end(uow, rows, singular=singular, max_affected=max_affected, dry_run=dry_run)
    return rows


@retry_transient
def delete_row(
    uow: AbstractUnitOfWork, table_name: str, key_text: str, *, expected_version: int | None = None,
    dry_run: bool = False, clock: Clock = utcnow, promote_claims: bool = False,
) -> Row:
    table = table_of(uow, table_name, writing=True)
    key = parse_key(table, key_text)
    with uow:
        repo = uow.repository(table.name)
        now = clock()
        rows = _remove(uow, table, _guarded(table, key, expected_version), now)
        if promote_claims and not table.soft_delete:
            promote_strongest_claims(uow, table, rows, now)
        if not rows:
            _missing_or_stale(repo.get(key), table, key_text)
        _refuse_manual_source(table, rows)
        _end(uow, rows, dry_run=dry_run)
    return rows[0]


def _remove(uow: AbstractUnitOfWork, table: Table, where: Where, now: dt.datetime) -> list[Row]:
    """Delete the live rows `where` matches; on a soft-delete table, mark them deleted (an update of
    `deleted_at`: version + 1, and a version in the history), so a later batch can bring them back."""
    repo = uow.repository(table.name)
    if table.soft_delete:
        return repo.update(live_only(table, where), {table.system.deleted_at: now}, now)
    return repo.delete(where, now)


def _end(uow: AbstractUnitOfWork, rows: list[Row], *, singular: bool = False, max_affected: int | None = None,
         dry_run: bool = False) -> None:
    """A write's last step: refuse it (and so roll it back) when it touched other rows than asked
    for, else commit it, unless it is a dry run (then leaving the unit of work rolls it back)."""
    _one_if_singular(rows, singular)
    if max_affected is not None and len(rows) > max_affected:
        raise BadRequest("Query result exceeds max-affected preference constraint", code="PGRST124",
                         details=f"The query affects {len(rows)} rows")
    if not dry_run:
        uow.commit()


def _one_if_singular(rows: list[Row], singular: bool) -> None:
    """A singular write (the client asked for one object back) touching other than one row is undone."""
    if singular and len(rows) != 1:
        raise NotSingular(len(rows))


def _guarded(table: Table, key: tuple, expected_version: int | None) -> Where:
    where = key_condition(table.primary_key, key)
    if expected_version is None:
        return where
    return conjunction([where, Condition(table.system.version, "eq", expected_version)])  # type: ignore[return-value]


def _missing_or_stale(current: Row | None, table: Table, key_text: str) -> None:
    if current is None or _deleted(table, current):
        raise NotFound(f"No row of '{table.name}' has {table.key_column} = {key_text!r}")
    raise PreconditionFailed(
        f"The row changed since you read it: it is at version {current[table.system.version]}",
        details={"version": current[table.system.version]},
        hint="GET it again and retry with its new ETag.",
    )


def _refuse_manual_source(table: Table, rows: list[Row]) -> None:
    if table.name == "sources" and any(r["code"] == MANUAL_SOURCE for r in rows):
        raise Conflict("The 'manual' source always exists and cannot be deleted", code="23503")


def count_rows(uow: AbstractUnitOfWork) -> dict[str, int]:
    """Every table with its row count (for `depot tables`): its live rows, on a soft-delete table."""
    with uow:
        return {t.name: uow.repository(t.name).count(live_only(t, None)) for t in uow.catalog}


def refresh_view(uow: AbstractUnitOfWork, view_name: str) -> bool:
    """REFRESH MATERIALIZED VIEW, in a transaction of its own; True when it ran CONCURRENTLY."""
    spec = table_of(uow, view_name)
    if not spec.materialized:
        raise not_refreshable(spec)
    with uow:
        concurrently = uow.repository(spec.name).refresh()
        uow.commit()
    return concurrently
