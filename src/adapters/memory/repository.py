"""The in-memory store, repository and unit of work, enforcing the same keys, references and checks
as the PostgreSQL schema derived from the same catalog."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

from adapters.memory.evaluate import JSON_NULL, RelatedCheck, cast, group_rows, matches, sort_rows, walk
from domain.errors import BadRequest, DuplicateKey, InvalidRows, ReferenceViolation, UnknownTable
from domain.ports import AbstractIngestRepository, AbstractRepository, AbstractUnitOfWork, Row
from domain.query import Cast, Fetch, JsonPath, Lookup, Query, Related, Where, keyset_where, name_of
from domain.schema import (
    HISTORY_ID,
    HISTORY_OPERATION,
    HISTORY_VALID_TO,
    MISSING,
    Catalog,
    ForeignKey,
    Table,
    version_at,
)
from domain.validation import ValueRefused, coercer


class MemoryTable:
    """Rows by primary key, plus a unique index for each key other tables or upserts look up."""

    def __init__(self, spec: Table):
        self.spec = spec
        self.rows: dict[tuple, Row] = {}
        self.ids = itertools.count(1)
        keys = [spec.primary_key, *([spec.natural_key] if spec.unique_natural_key else []), *spec.unique]
        self.unique_keys: list[tuple[str, ...]] = list(dict.fromkeys(keys))
        self.indexes: dict[tuple[str, ...], dict[tuple, tuple]] = {k: {} for k in self.unique_keys}

    def index_for(self, columns: tuple[str, ...]) -> dict[tuple, tuple]:
        if columns not in self.indexes:  # a reference to a unique set that is not a declared key
            self.indexes[columns] = {tuple(r[c] for c in columns): pk for pk, r in self.rows.items()}
            self.unique_keys.append(columns)
        return self.indexes[columns]

    def put(self, row: Row) -> None:
        pk = self.spec.key_of(row)
        self.rows[pk] = row
        for cols in self.unique_keys:
            self.indexes[cols][tuple(row[c] for c in cols)] = pk

    def remove(self, pk: tuple) -> Row:
        row = self.rows.pop(pk)
        for cols in self.unique_keys:
            self.indexes[cols].pop(tuple(row[c] for c in cols), None)
        return row


class MemoryStore:
    """All tables of a catalog. One lock: a unit of work holds it from `with` to the end."""

    kind = "memory"

    def __init__(self, catalog: Catalog, *, seed: bool = True):
        self.catalog = catalog
        self.tables = {t.name: MemoryTable(t) for t in catalog}
        self.lock = threading.RLock()
        if seed and "sources" in self.tables:
            sources = self.tables["sources"]
            # every column, so a column the system catalog gains later (profile) is there, at its default
            defaults = {c.name: None if c.default is MISSING else c.default for c in sources.spec.columns}
            sources.put({**defaults, "code": "manual", "name": "Manual entry", "priority": 0,
                         **sources.spec.inserted_stamp(dt.datetime.now(dt.UTC))})

    def view_rows(self, spec: Table) -> list[Row]:
        """A view's rows from its Python definition (Catalog.view's `rows=`) over the store as it is
        now, each with the view's columns in order; none without a definition."""
        if spec.definition is None:
            return []

        def read(name: str) -> list[Row]:
            return [dict(r) for r in self.tables[name].rows.values()]

        return [{c.name: row.get(c.name) for c in spec.columns} for row in spec.definition(read)]

    def recompute_views(self) -> None:
        """Plain views show their tables as they are, as PostgreSQL runs a view's query at each read:
        recomputed when a unit of work begins (the memory adapter's read of the view). Materialized
        views keep what their last refresh put in them."""
        for spec in self.catalog.views:
            if not spec.materialized and spec.definition is not None:
                table = self.tables[spec.name] = MemoryTable(spec)
                for row in self.view_rows(spec):
                    table.put(row)


class InMemoryRepository(AbstractRepository):
    def __init__(self, uow: InMemoryUnitOfWork, table: Table):
        super().__init__(table)
        self.uow = uow
        self.store = uow.store
        self.data = uow.store.tables[table.name]
        self._checks = [(c.name, coercer(c)) for c in table.columns if not c.generated]

    # --- helpers shared by the writes --------------------------------------------------------

    def _check_values(self, row: Row) -> None:
        """What CHECK and NOT NULL constraints would refuse."""
        for name, check in self._checks:
            try:
                check(row.get(name))
            except ValueRefused as refused:
                if refused.code == "too_long":  # the bound of varchar(n) is the type's, not a CHECK's
                    raise BadRequest(
                        f"value too long for type character varying({self.table.column(name).max_length})",
                        code="22001",
                    ) from None
                raise InvalidRows(
                    f'new row for relation "{self.table.name}" violates check on {name}: {refused.message}',
                    details=[{"row": None, "field": name, "code": refused.code, "message": refused.message}],
                    code="23514",
                ) from None

    def _check_unique(self, row: Row, ignore_pk: tuple | None = None) -> None:
        for cols in self.data.unique_keys:
            if any(row[c] is None for c in cols):  # NULLs are distinct, as in a SQL unique constraint
                continue
            existing = self.data.indexes[cols].get(tuple(row[c] for c in cols))
            if existing is not None and existing != ignore_pk:
                raise DuplicateKey(
                    f'duplicate key value violates unique constraint "{self.table.unique_constraint_name(cols)}"',
                    details=f"Key ({', '.join(cols)})=({', '.join(str(row[c]) for c in cols)}) already exists.",
                )

    def _check_references(self, row: Row) -> None:
        for fk in self.table.hard_foreign_keys:
            values = tuple(row.get(c) for c in fk.columns)
            if any(v is None for v in values):
                continue
            target = self.store.tables[fk.target]
            if values not in target.index_for(fk.target_columns):
                raise ReferenceViolation(
                    f'insert or update on table "{self.table.name}" violates foreign key constraint '
                    f'"{fk.constraint_name(self.table.name)}"',
                    details=f"Key ({', '.join(fk.columns)})=({', '.join(map(str, values))}) "
                            f'is not present in table "{fk.target}".',
                )

    def _check_not_referenced(self, row: Row) -> None:
        for referrer, fk in self.store.catalog.referencing(self.table.name):
            if fk.soft:
                continue
            values = tuple(row[c] for c in fk.target_columns)
            if _is_referenced(self.store.tables[referrer.name], fk, values):
                raise ReferenceViolation(
                    f'update or delete on table "{self.table.name}" violates foreign key constraint '
                    f'"{fk.constraint_name(referrer.name)}" on table "{referrer.name}"',
                    details=f"Key ({', '.join(fk.target_columns)})=({', '.join(map(str, values))}) "
                            f'is still referenced from table "{referrer.name}".',
                )

    def _insert(self, row: Row, *, operation: str | None = None) -> Row:
        # In the table's column order, as PostgreSQL returns a row; generated ids drawn here.
        row = {c.name: next(self.data.ids) if c.generated and row.get(c.name) is None else row.get(c.name)
               for c in self.table.columns}
        self._check_values(row)
        self._check_unique(row)
        self._check_references(row)
        self.data.put(row)
        self.uow.log(self.data, None, row, operation=operation)
        return dict(row)

    def _replace(self, old: Row, new: Row, *, operation: str | None = None) -> None:
        pk = self.table.key_of(old)
        if new == old:
            return
        self._check_values(new)
        key_changed = any(new[c] != old[c] for cols in self.data.unique_keys for c in cols)
        if key_changed:
            self._check_unique(new, ignore_pk=pk)
            self._check_not_referenced_on_change(old, new)
        self._check_references(new)
        self.data.remove(pk)
        self.data.put(new)
        self.uow.log(self.data, old, new, operation=operation)

    def _check_not_referenced_on_change(self, old: Row, new: Row) -> None:
        for _, fk in self.store.catalog.referencing(self.table.name):
            if not fk.soft and any(old[c] != new[c] for c in fk.target_columns):
                self._check_not_referenced(old)

    # --- the port ----------------------------------------------------------------------------

    def add(self, rows: Sequence[Row]) -> list[Row]:
        return [self._insert(row) for row in rows]

    def upsert(self, rows: Sequence[Row], conflict: tuple[str, ...], *, update: bool, now: dt.datetime) -> list[Row]:
        index = self.data.index_for(conflict)
        written = []
        for row in rows:
            pk = index.get(tuple(row[c] for c in conflict))
            if pk is None:
                written.append(self._insert(row))
            elif update:
                old = self.data.rows[pk]
                changes = {k: v for k, v in row.items() if k not in self.table.kept_on_update}
                written.append(self._apply(old, changes, now))
        return written

    def _apply(self, old: Row, changes: Row, now: dt.datetime) -> Row:
        new = {**old, **changes}
        if any(old[k] != new[k] for k in changes):
            new |= self.table.changed_stamp(old, now) | {
                k: v for k, v in self.table.edited_stamp().items() if k not in changes}  # a promote names its own
            self._replace(old, new)
            return dict(new)
        return dict(old)

    def list(self, query: Query) -> list[Row]:
        selected = filter(matches(query.where), self.data.rows.values())
        ordered = sort_rows(selected, query.order, self.table.primary_key)
        end = None if query.limit is None else query.offset + query.limit
        return [dict(r) for r in ordered[query.offset:end]]

    def refresh(self) -> bool:
        # Logged as writes, so a unit of work that does not commit leaves the old rows in place.
        for pk in list(self.data.rows):
            self.uow.log(self.data, self.data.remove(pk), None)
        for row in self.store.view_rows(self.table):
            self.data.put(row)
            self.uow.log(self.data, None, row)
        return False

    def _rows_at(self, name: str, as_of: dt.datetime | None) -> Iterable[Row]:
        """A table's rows: as they are, or (as_of) each row's version of that instant, from its history."""
        spec = self.store.catalog[name]
        if as_of is None or not spec.history:
            return self.store.tables[name].rows.values()
        history = self.store.tables[spec.history_name].rows.values()
        return [{c.name: h[c.name] for c in spec.columns} for h in history if version_at(spec, h, as_of)]

    def _related_check(self, as_of: dt.datetime | None = None) -> RelatedCheck:
        """EXISTS as a hash semi-join: each Related's matching keys are collected once per statement."""
        found: dict[int, tuple[Related, set[tuple]]] = {}

        def check(related: Related, row: Row) -> bool:
            if id(related) not in found:
                target = self._rows_at(related.target, as_of)
                keep = matches(related.where, check)
                keys = {tuple(r[c] for c in related.target_columns) for r in target if keep(r)}
                found[id(related)] = (related, keys)  # the object is kept so its id is not reused
            key = tuple(row[c] for c in related.columns)
            present = None not in key and key in found[id(related)][1]
            return present != related.negated

        return check

    def _derived(self, fetch: Fetch) -> list:
        """The refs other than columns that the statement selects or orders by."""
        refs = [*fetch.columns, *(o.column for o in fetch.order)]
        return list(dict.fromkeys(r for r in refs if not isinstance(r, str)))

    def _attach(self, rows, refs: list, as_of: dt.datetime | None = None):
        """Each row with its derived values under their names, as PostgreSQL computes them per row."""
        lookups: dict[Lookup, tuple[Callable[[tuple], Row | None], Callable]] = {}
        for ref in refs:
            if isinstance(ref, Lookup):
                if as_of is None:  # through the target's index: no copy of the table per statement
                    target = self.store.tables[ref.target]
                    index = target.index_for(ref.target_columns)

                    def get(key: tuple, index=index, target=target) -> Row | None:
                        pk = index.get(key)
                        return target.rows[pk] if pk is not None else None
                else:
                    get = {tuple(r[c] for c in ref.target_columns): r for r in self._rows_at(ref.target, as_of)}.get
                lookups[ref] = (get, matches(ref.where, self._related_check(as_of)))

        def value(ref, row: Row):
            if isinstance(ref, JsonPath):
                return walk(ref, row.get(ref.column))
            if isinstance(ref, Cast):
                inner = value(ref.ref, row) if isinstance(ref.ref, JsonPath) else row.get(ref.ref)
                return cast(ref.target, ref.source, inner)  # the JSON value null too: its text is 'null'
            get, keep = lookups[ref]
            found = get(tuple(row[c] for c in ref.columns))
            return found[ref.column] if found is not None and keep(found) else None

        for row in rows:
            yield {**row, **{name_of(ref): value(ref, row) for ref in refs}}

    def _fetched(self, fetch: Fetch) -> list[Row]:
        rows = filter(matches(fetch.where, self._related_check(fetch.as_of)),
                      self._rows_at(self.table.name, fetch.as_of))
        if fetch.within is not None:
            columns, keys = fetch.within
            rows = (r for r in rows if tuple(r[c] for c in columns) in keys)
        derived = self._derived(fetch)
        if derived:
            rows = self._attach(rows, derived, fetch.as_of)
        if fetch.aggregates or fetch.distinct:
            result = group_rows(rows, fetch.columns, fetch.aggregates)
            if fetch.having is not None:
                result = list(filter(matches(fetch.having), result))
        else:
            result = list(rows)
        if fetch.after is not None:
            nullable = {c.name for c in self.table.columns if c.nullable} | {label for label, _ in fetch.aggregates}
            result = list(filter(matches(keyset_where(fetch.order, fetch.after, nullable)), result))
        return result

    def fetch(self, fetch: Fetch) -> list[Row]:
        ordered = sort_rows(self._fetched(fetch), fetch.order, ())
        end = None if fetch.limit is None else fetch.offset + fetch.limit
        if fetch.within is None:
            ordered = ordered[fetch.offset:end]
        else:  # an embed's page is per parent: slice each parent's rows, in the same order
            seen: dict[tuple, int] = defaultdict(int)
            paged = []
            for row in ordered:
                key = tuple(row[c] for c in fetch.within[0])
                seen[key] += 1
                if fetch.offset < seen[key] and (end is None or seen[key] <= end):
                    paged.append(row)
            ordered = paged
        names = (*(name_of(c) for c in fetch.columns), *(label for label, _ in fetch.aggregates))
        # the JSON value null reads back as None, as psycopg2 decodes jsonb's null
        return [{n: (None if r[n] is JSON_NULL else r[n]) for n in names} for r in ordered]

    def total(self, fetch: Fetch, *, planned: bool = False) -> int:
        return len(self._fetched(fetch))

    def count(self, where: Where | None) -> int:
        return sum(1 for _ in filter(matches(where), self.data.rows.values()))

    def update(self, where: Where | None, changes: Row, now: dt.datetime) -> list[Row]:
        targets = [r for r in self.data.rows.values() if matches(where)(r)]
        return [self._apply(old, changes, now) for old in targets]

    def delete(self, where: Where | None, now: dt.datetime | None = None) -> list[Row]:
        targets = [r for r in self.data.rows.values() if matches(where)(r)]
        for row in targets:
            self._check_not_referenced(row)
        at = now or dt.datetime.now(dt.UTC)
        for row in targets:
            self.data.remove(self.table.key_of(row))
            self.uow.log(self.data, row, None, at=at)
        return [dict(r) for r in targets]



def _is_referenced(table: MemoryTable, fk: ForeignKey, values: tuple) -> bool:
    return any(tuple(r[c] for c in fk.columns) == values for r in table.rows.values())


class InMemoryUnitOfWork(AbstractUnitOfWork):
    """Serialisable by construction: one unit of work at a time holds the store's lock.
    Rollback replays an undo log, so a failed batch leaves the store as it found it."""

    kind = "memory"

    def __init__(self, store: MemoryStore):
        self.store = store
        self.catalog = store.catalog
        self._undo: list[tuple[MemoryTable, Row | None, Row | None]] = []
        self._depth = 0
        self.committed = False

    def __enter__(self) -> InMemoryUnitOfWork:
        self.store.lock.acquire()
        self.store.recompute_views()
        self._depth += 1
        self.committed = False
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.rollback()
        finally:
            self._depth -= 1
            self.store.lock.release()

    def log(self, table: MemoryTable, old: Row | None, new: Row | None, *, at: dt.datetime | None = None,
            operation: str | None = None, batch: int | None = None) -> None:
        """Every write of the store comes here: into the undo log, and into the table's history.
        `at` is the time of a delete (an insert or update carries its own updated_at); `operation`
        names a change other than the insert, update or delete it looks like (a revert's); `batch`
        the batch of a delete, when one made it."""
        self._undo.append((table, old, new))
        if table.spec.history:
            self._record(table.spec, old, new, at, operation, batch)

    def _record(self, spec: Table, old: Row | None, new: Row | None, at: dt.datetime | None,
                operation: str | None, batch: int | None = None) -> None:
        """One version more in the history table, as adapters.postgres.history writes it: the current
        version of the row's key (the last one recorded) is closed, and the new one added."""
        history = self.store.tables[spec.history_name]
        current = history.index_for(spec.primary_key)  # key -> its last version: put() keeps the last
        row = new if new is not None else old
        assert row is not None
        when = at if new is None or at is not None else new[spec.system.updated_at]
        if old is not None and new is not None and spec.key_of(old) != spec.key_of(new):
            self._record(spec, old, None, when, None)  # a key changed: the old key's row is gone
            old = None
        pk = current.get(spec.key_of(row))
        if pk is not None and history.rows[pk][HISTORY_VALID_TO] is None:
            before = history.rows[pk]
            closed = {**before, HISTORY_VALID_TO: when}
            history.remove(pk)
            history.put(closed)
            self._undo.append((history, before, closed))
        entry = {HISTORY_ID: next(history.ids),
                 HISTORY_OPERATION: operation or ("delete" if new is None else "update" if old else "insert"),
                 **row, spec.system.updated_at: when, HISTORY_VALID_TO: None,
                 **({spec.system.batch_id: batch} if batch is not None else {})}
        entry = {c.name: entry[c.name] for c in history.spec.columns}
        history.put(entry)
        self._undo.append((history, None, entry))

    def repository(self, table: str) -> InMemoryRepository:
        if table not in self.store.tables:
            raise UnknownTable(f"Could not find the table '{table}'")
        return InMemoryRepository(self, self.catalog[table])

    def ingestion(self) -> AbstractIngestRepository:
        from adapters.memory.ingest import InMemoryIngestRepository

        return InMemoryIngestRepository(self)

    def commit(self) -> None:
        self._undo.clear()
        self.committed = True

    def rollback(self) -> None:
        while self._undo:
            table, old, new = self._undo.pop()
            if new is not None:
                table.remove(table.spec.key_of(new))
            if old is not None:
                table.put(old)

