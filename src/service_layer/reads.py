"""The read use case: a Read (select, embeds, aggregates, filters, order, page, cursor) answered
through the repositories, one statement for the rows and one per embed level (no N+1)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from domain.errors import BadRequest
from domain.ports import AbstractUnitOfWork, Row
from domain.query import (
    Aggregate,
    BoolExpr,
    Condition,
    Embed,
    Fetch,
    Field,
    OrderBy,
    Read,
    SelectItem,
    Where,
    name_of,
    output_keys,
)
from domain.schema import Table
from service_layer.services import table_of

CountMethod = Literal["exact", "planned", "estimated"]


def _label(index: int) -> str:
    return f"__agg{index}"


@dataclass(frozen=True)
class _Plan:
    table: Table
    items: tuple[SelectItem, ...]
    fetch: Fetch
    labels: dict[str, str]  # aggregate key -> label in the fetched rows


def _items(table: Table, items: tuple[SelectItem, ...]) -> tuple[SelectItem, ...]:
    return items or tuple(Field(c) for c in table.column_names)


def plan(table: Table, read: Read, *, within: tuple[tuple[str, ...], frozenset[tuple]] | None = None) -> _Plan:
    """The one statement that fetches a read's own rows, with every column its embeds and cursor need."""
    items = _items(table, read.items)
    aggregates = [i for i in items if isinstance(i, Aggregate)]
    labels = {a.key: _label(n) for n, a in enumerate(aggregates)}
    within_columns = within[0] if within else ()
    plain = [i.column for i in items if isinstance(i, Field)]
    embedded = [c for i in items if isinstance(i, Embed) and not i.hidden for c in i.columns]
    if aggregates:
        columns = tuple(dict.fromkeys([*plain, *within_columns]))
        order = read.order + tuple(OrderBy(c) for c in columns if c not in {o.column for o in read.order})
    else:
        order = read.keyset_order(table)
        columns = tuple(dict.fromkeys([*plain, *embedded, *within_columns, *(o.column for o in order)]))
    fetch_order = tuple(dataclasses.replace(o, column=labels.get(o.column, o.column)) for o in order)
    having = _relabelled(read.having, labels) if read.having is not None else None
    fetch = Fetch(
        columns=columns,
        aggregates=tuple((labels[a.key], a) for a in aggregates),
        where=read.where,
        within=within,
        order=fetch_order,
        after=read.after,
        offset=read.offset,
        limit=read.limit,
        having=having,
        distinct=read.distinct,
        as_of=read.as_of,
    )
    return _Plan(table, items, fetch, labels)


def _relabelled(where: Where, labels: dict[str, str]) -> Where:
    """A having= condition on aggregate keys, on the labels the fetched rows hold them under."""
    if isinstance(where, Condition):
        return dataclasses.replace(where, column=labels[where.column])  # type: ignore[index]
    assert isinstance(where, BoolExpr)
    return dataclasses.replace(where, terms=tuple(_relabelled(t, labels) for t in where.terms))


def _empty_aggregates(items: tuple[SelectItem, ...]) -> Row:
    return {i.key: (0 if i.function == "count" else None) for i in items if isinstance(i, Aggregate)}


def _embed(uow: AbstractUnitOfWork, embed: Embed, parents: Sequence[Row],
           as_of: dt.datetime | None) -> tuple[list, list[int]]:
    """The embed's value for each parent row, from one statement over all of them, and the rows
    each value adds to the response (what a to-many embed nests, whatever its depth)."""
    keys = frozenset(k for k in (tuple(p[c] for c in embed.columns) for p in parents) if None not in k)
    target = uow.catalog[embed.target]
    child = plan(target, Read(items=embed.items, where=embed.where, order=embed.order, limit=embed.limit,
                              offset=embed.offset, as_of=as_of), within=(embed.target_columns, keys))
    flat = uow.repository(target.name).fetch(child.fetch) if keys else []
    shaped, weights = _shape(uow, child, flat)
    grouped: dict[tuple, list[tuple[Row, int]]] = defaultdict(list)
    for raw, row, weight in zip(flat, shaped, weights, strict=True):
        grouped[tuple(raw[c] for c in embed.target_columns)].append((row, weight))
    only_aggregates = all(isinstance(i, Aggregate) for i in child.items)
    values: list = []
    added: list[int] = []
    for parent in parents:
        found = grouped.get(tuple(parent[c] for c in embed.columns), [])
        if not embed.many:
            values.append(found[0][0] if found else None)
            added.append(found[0][1] - 1 if found else 0)  # a to-one embed widens its parent row
        elif not found and only_aggregates:
            values.append([_empty_aggregates(child.items)])
            added.append(1)
        else:
            values.append([row for row, _ in found])
            added.append(sum(weight for _, weight in found))
    return values, added


def _shape(uow: AbstractUnitOfWork, planned: _Plan, flat: Sequence[Row]) -> tuple[list[Row], list[int]]:
    embeds = {i.key: _embed(uow, i, flat, planned.fetch.as_of)
              for i in planned.items if isinstance(i, Embed) and not i.hidden}
    # Where each output key comes from, in the select's order, worked out once rather than per row
    # (this loop is the read's hot path): a fetched name to copy, or an embed's values.
    steps: list[tuple[str, str | None, tuple[list, list[int]] | None, tuple[str, ...] | None]] = []
    for item in planned.items:
        if isinstance(item, Field):
            steps.append((item.key, name_of(item.column), None, None))
        elif isinstance(item, Aggregate):
            steps.append((item.key, planned.labels[item.key], None, None))
        elif not item.hidden:
            steps.append((item.key, None, embeds[item.key], tuple(output_keys(item.items)) if item.spread else None))
    if all(name is not None for _, name, _, _ in steps):  # no embeds: a projection, each row weighs one
        copied = [(key, name) for key, name, _, _ in steps]
        if flat and all(key == name for key, name in copied) and [key for key, _ in copied] == list(flat[0]):
            # The rows as fetched are the answer already (select=* and no hidden column): copying
            # each of them was a tenth of a 100-row page's Python time (profiled).
            return list(flat), [1] * len(flat)
        return [{key: raw[name] for key, name in copied} for raw in flat], [1] * len(flat)  # type: ignore[index]
    out, weights = [], []
    for n, raw in enumerate(flat):
        row: Row = {}
        weight = 1
        for key, name, embedded, spread in steps:
            if name is not None:
                row[key] = raw[name]
                continue
            values, added = embedded  # type: ignore[misc]
            if spread is not None:  # a to-one embed's keys in the parent row, null when it has no row
                row.update(values[n] if values[n] is not None else dict.fromkeys(spread))
            else:
                row[key] = values[n]
            weight += added[n]
        out.append(row)
        weights.append(weight)
    return out, weights


def shape(uow: AbstractUnitOfWork, planned: _Plan, flat: Sequence[Row], *, max_rows: int | None = None) -> list[Row]:
    """Fetched rows into the rows the client asked for: its names, its aggregates, its embeds.

    Rows nested by to-many embeds count towards `max_rows` as rows of their own: embeds of embeds
    multiply (flights(airlines(flights(id))) is flights squared), and the answer is refused before
    it is serialised rather than exhaust the server's memory.
    """
    rows, weights = _shape(uow, planned, flat)
    held = sum(weights)
    if max_rows is not None and held > max_rows:
        raise BadRequest(
            f"The embedded resources would put {held} rows in one response; the most is {max_rows} (DEPOT_MAX_ROWS)",
            code="PGRST119",
            hint="Filter the parent rows, page them with a smaller limit, or embed a count such as flights(count).",
        )
    return rows


@dataclass(frozen=True)
class ReadPage:
    """One page. `start` is the position of its first row (None when a cursor hides it and nothing
    was counted); `last` holds the order values of its last row when more rows follow."""

    rows: list[Row]
    start: int | None
    total: int | None
    more: bool
    last: tuple | None


def _count(repo, fetch: Fetch, method: CountMethod | None, threshold: int) -> int | None:
    if method is None:
        return None
    whole = dataclasses.replace(fetch, after=None, offset=0, limit=None)
    if method == "exact":
        return repo.total(whole)
    planned = repo.total(whole, planned=True)
    if method == "estimated" and planned <= threshold:
        return repo.total(whole)
    return planned


def read_page(
    uow: AbstractUnitOfWork,
    table_name: str,
    read: Read,
    *,
    count: CountMethod | None = None,
    count_threshold: int = 10_000,
    max_rows: int | None = None,
) -> ReadPage:
    """A page of a read. One row beyond the limit is fetched to know whether another page follows;
    `max_rows` bounds the rows the page holds, those its to-many embeds nest included."""
    table = table_of(uow, table_name)
    planned = plan(table, read)
    fetch = planned.fetch
    probe = fetch if fetch.limit is None else dataclasses.replace(fetch, limit=fetch.limit + 1)
    with uow.reading():
        repo = uow.repository(table.name)
        flat = repo.fetch(probe)
        more = fetch.limit is not None and 0 < fetch.limit < len(flat)
        flat = flat[: fetch.limit] if fetch.limit is not None else flat
        rows = shape(uow, planned, flat, max_rows=max_rows)
        total = _count(repo, fetch, count, count_threshold)
        start: int | None = fetch.offset
        if fetch.after is not None:
            start = None
            if total is not None:
                start = total - repo.total(dataclasses.replace(fetch, offset=0, limit=None))
                if count != "exact":
                    start = None
    last = tuple(flat[-1][name_of(o.column)] for o in fetch.order) if (more and flat and read.keyset_pages) else None
    return ReadPage(rows, start, total, more, last)


def stream_rows(
    uow: AbstractUnitOfWork, table_name: str, read: Read, *, batch: int = 2000, max_rows: int | None = None
) -> Iterator[list[Row]]:
    """The rows of a read in batches, without holding them all (a server-side cursor on PostgreSQL).

    Runs its unit of work from first batch to last, so drive it from one thread."""
    table = table_of(uow, table_name)
    planned = plan(table, read)
    with uow:
        repo = uow.repository(table.name)
        for flat in repo.fetch_batches(planned.fetch, batch):
            yield shape(uow, planned, flat, max_rows=max(max_rows, batch) if max_rows else None)
