"""The read use case: a Read (select, embeds, aggregates, filters, order, page, cursor) answered
through the repositories, one statement for the rows and one per embed level (no N+1)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from domain.ports import AbstractUnitOfWork, Row
from domain.query import Aggregate, Embed, Fetch, Field, OrderBy, Read, SelectItem
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
    embedded = [c for i in items if isinstance(i, Embed) for c in i.columns]
    if aggregates:
        columns = tuple(dict.fromkeys([*plain, *within_columns]))
        order = read.order + tuple(OrderBy(c) for c in columns if c not in {o.column for o in read.order})
    else:
        order = read.keyset_order(table)
        columns = tuple(dict.fromkeys([*plain, *embedded, *within_columns, *(o.column for o in order)]))
    fetch_order = tuple(dataclasses.replace(o, column=labels.get(o.column, o.column)) for o in order)
    fetch = Fetch(
        columns=columns,
        aggregates=tuple((labels[a.key], a) for a in aggregates),
        where=read.where,
        within=within,
        order=fetch_order,
        after=read.after,
        offset=read.offset,
        limit=read.limit,
    )
    return _Plan(table, items, fetch, labels)


def _empty_aggregates(items: tuple[SelectItem, ...]) -> Row:
    return {i.key: (0 if i.function == "count" else None) for i in items if isinstance(i, Aggregate)}


def _embed(uow: AbstractUnitOfWork, embed: Embed, parents: Sequence[Row]) -> list:
    """The embed's value for each parent row, from one statement over all of them."""
    keys = frozenset(k for k in (tuple(p[c] for c in embed.columns) for p in parents) if None not in k)
    target = uow.catalog[embed.target]
    child = plan(target, Read(items=embed.items), within=(embed.target_columns, keys))
    flat = uow.repository(target.name).fetch(child.fetch) if keys else []
    shaped = shape(uow, child, flat)
    grouped: dict[tuple, list[Row]] = defaultdict(list)
    for raw, row in zip(flat, shaped, strict=True):
        grouped[tuple(raw[c] for c in embed.target_columns)].append(row)
    only_aggregates = all(isinstance(i, Aggregate) for i in child.items)
    values: list = []
    for parent in parents:
        found = grouped.get(tuple(parent[c] for c in embed.columns), [])
        if not embed.many:
            values.append(found[0] if found else None)
        elif not found and only_aggregates:
            values.append([_empty_aggregates(child.items)])
        else:
            values.append(found)
    return values


def shape(uow: AbstractUnitOfWork, planned: _Plan, flat: Sequence[Row]) -> list[Row]:
    """Fetched rows into the rows the client asked for: its names, its aggregates, its embeds."""
    embeds = {i.key: _embed(uow, i, flat) for i in planned.items if isinstance(i, Embed)}
    out = []
    for n, raw in enumerate(flat):
        row: Row = {}
        for item in planned.items:
            if isinstance(item, Field):
                row[item.key] = raw[item.column]
            elif isinstance(item, Aggregate):
                row[item.key] = raw[planned.labels[item.key]]
            else:
                row[item.key] = embeds[item.key][n]
        out.append(row)
    return out


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
) -> ReadPage:
    """A page of a read. One row beyond the limit is fetched to know whether another page follows."""
    table = table_of(uow, table_name)
    planned = plan(table, read)
    fetch = planned.fetch
    probe = fetch if fetch.limit is None else dataclasses.replace(fetch, limit=fetch.limit + 1)
    with uow:
        repo = uow.repository(table.name)
        flat = repo.fetch(probe)
        more = fetch.limit is not None and 0 < fetch.limit < len(flat)
        flat = flat[: fetch.limit] if fetch.limit is not None else flat
        rows = shape(uow, planned, flat)
        total = _count(repo, fetch, count, count_threshold)
        start: int | None = fetch.offset
        if fetch.after is not None:
            start = None
            if total is not None:
                start = total - repo.total(dataclasses.replace(fetch, offset=0, limit=None))
                if count != "exact":
                    start = None
    last = tuple(flat[-1][o.column] for o in fetch.order) if (more and flat) else None
    return ReadPage(rows, start, total, more, last)


def stream_rows(uow: AbstractUnitOfWork, table_name: str, read: Read, *, batch: int = 2000) -> Iterator[list[Row]]:
    """The rows of a read in batches, without holding them all (a server-side cursor on PostgreSQL).

    Runs its unit of work from first batch to last, so drive it from one thread."""
    table = table_of(uow, table_name)
    planned = plan(table, read)
    with uow:
        repo = uow.repository(table.name)
        for flat in repo.fetch_batches(planned.fetch, batch):
            yield shape(uow, planned, flat)
