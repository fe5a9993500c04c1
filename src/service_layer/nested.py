"""Nested writes (PostgREST#818): a row POSTed with its to-one and to-many embeds as nested objects,
`{"tailnum": "N1", "manufacturers": {"name": "NEWCO"}}`, written in one transaction, parents first.

Each level is an ordinary create_rows on the batch's shared unit of work (service_layer.batch),
so validation, upserts and errors are the flat route's; an error's message and fields name the
nested path at fault (`planes[0].manufacturers.name`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from domain.errors import BadRequest, DepotError, InvalidRows
from domain.ports import AbstractUnitOfWork, Row
from domain.query import Query, key_condition
from domain.schema import Table
from domain.validation import ValueRefused, parse_value
from service_layer import services
from service_layer.batch import SharedUnitOfWork


@dataclass(frozen=True)
class Relation:
    """How a nested key joins its table. To-one: this table's `columns` point at the target's
    `target_columns`. To-many (`many`): the target's `target_columns` point back at `columns`."""

    target: str
    columns: tuple[str, ...]
    target_columns: tuple[str, ...]
    many: bool


Resolver = Callable[[Table, str], Relation]
MAX_DEPTH = 16  # as select= nests embeds


def has_nested(table: Table, raws: Sequence[Any]) -> bool:
    """Whether some row holds an object or a list under a name that is not a column (a key that is
    no column with a plain value stays the flat route's unknown-column error)."""
    columns = frozenset(table.column_names)
    return any(isinstance(raw, dict) and not raw.keys() <= columns
               and any(isinstance(raw[k], dict | list) for k in raw.keys() - columns) for raw in raws)


def create_nested(uow: AbstractUnitOfWork, table_name: str, raws: Sequence[Any], resolve: Resolver, *,
                  resolution: services.Resolution = None, max_rows: int) -> list[Row]:
    """The top-level rows written (each nested level written around them), or nothing at all."""
    table = services.table_of(uow, table_name, writing=True)
    shared = SharedUnitOfWork(uow)
    with uow:
        written = _write(shared, table, raws, resolve, resolution, table.name, [max_rows])
        uow.commit()
    return written


def _write(uow: AbstractUnitOfWork, table: Table, raws: Sequence[Any], resolve: Resolver,
           resolution: services.Resolution, path: str, budget: list[int]) -> list[Row]:
    if path.count(".") >= MAX_DEPTH:  # each level is a few Python frames: bound them well below the recursion limit
        raise BadRequest(f"A nested write nests at most {MAX_DEPTH} levels deep, at {path[:200]}")
    budget[0] -= len(raws)
    if budget[0] < 0:
        raise BadRequest(f"A nested write holds more objects than DEPOT_MAX_ROWS allows, at {path}",
                         hint="Write the rows in several requests, or flat through /ingest.")
    out = []
    for n, raw in enumerate(raws):
        here = f"{path}[{n}]"
        if not isinstance(raw, dict):
            raise BadRequest(f"{here} must be a JSON object", code="PGRST102")
        own = {k: v for k, v in raw.items() if table.has_column(k)}
        children = []
        for key in raw.keys() - own.keys():
            value = raw[key]
            relation = _resolved(resolve, table, key, here)
            target = uow.catalog[relation.target]
            if relation.many:
                if not isinstance(value, list):
                    raise BadRequest(f"{here}.{key} is a to-many embed: a list of objects", code="PGRST102")
                children.append((key, relation, value))
                continue
            if not isinstance(value, dict):
                raise BadRequest(f"{here}.{key} is a to-one embed: one object", code="PGRST102")
            parent = _write(uow, target, [value], resolve, resolution, f"{here}.{key}", budget)[0]
            own.update({c: parent[tc] for c, tc in zip(relation.columns, relation.target_columns, strict=True)})
        row = _create(uow, table, own, resolution, here)
        for key, relation, values in children:
            keys = {tc: row[c] for c, tc in zip(relation.columns, relation.target_columns, strict=True)}
            rows = [{**v, **keys} if isinstance(v, dict) else v for v in values]
            _write(uow, uow.catalog[relation.target], rows, resolve, resolution, f"{here}.{key}", budget)
        out.append(row)
    return out


def _resolved(resolve: Resolver, table: Table, key: str, here: str) -> Relation:
    try:
        return resolve(table, key)
    except DepotError as error:
        raise _at(error, f"{here}.{key}") from None


def _create(uow: AbstractUnitOfWork, table: Table, row: dict, resolution: services.Resolution, here: str) -> Row:
    try:
        written = services.create_rows(uow, table.name, [row], resolution=resolution)
    except DepotError as error:
        raise _at(error, here) from None
    if written:
        return written[0]
    # ignore-duplicates wrote nothing: the stored row is the one its children point at
    try:
        key = tuple(parse_value(table.column(c), row.get(c)) for c in table.natural_key)
    except ValueRefused as refused:  # pragma: no cover - create_rows validated it already
        raise BadRequest(f"At {here}: {refused.message}") from None
    return uow.repository(table.name).list(Query(where=key_condition(table.natural_key, key)))[0]


def _at(error: DepotError, here: str) -> DepotError:
    """The same error, its message and (for invalid rows) fields naming the nested path."""
    error.message = f"At {here}: {error.message}"
    error.args = (error.message,)
    if isinstance(error, InvalidRows) and isinstance(error.details, list):
        error.details = [{**d, "field": f"{here}.{d['field']}"} if isinstance(d, dict) and "field" in d else d
                         for d in error.details]
    return error
