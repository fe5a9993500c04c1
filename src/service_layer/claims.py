"""The automatic promotion of claims (DEPOT_PROMOTE_CLAIMS): when a row goes, the strongest claim on
its key takes its place. A step inside a write's unit of work, for every path that removes rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from domain.ports import AbstractUnitOfWork, Row
from domain.query import BoolExpr, Condition, Query, Where, key_condition
from domain.schema import CLAIMED_AT, Table


def keys_condition(columns: tuple[str, ...], keys: Sequence[tuple]) -> Where:
    """Rows whose `columns` hold one of `keys`."""
    if len(columns) == 1:
        return Condition(columns[0], "in", tuple(k[0] for k in keys))
    return BoolExpr("or", tuple(key_condition(columns, k) for k in keys))


def promote_strongest_claims(uow: AbstractUnitOfWork, table: Table, gone: Sequence[Row], now: dt.datetime) -> list[Row]:
    """The rule: for each row in `gone` (just deleted or retired, in this unit of work), the claim on
    its natural key whose source has the highest priority now (then the latest) becomes the row, with
    the gone row's id and its version + 1; that claim is spent. Rows without claims stay gone.
    Returns the rows promoted, as stored."""
    if not table.keeps_claims or not gone:
        return []
    claims = uow.catalog[table.claims_name]
    system = table.system
    keys = list(dict.fromkeys(tuple(r[k] for k in table.natural_key) for r in gone))
    found = uow.repository(claims.name).list(Query(where=keys_condition(table.natural_key, keys)))
    if not found:
        return []
    priority = {s["code"]: s["priority"] for s in uow.repository("sources").list(Query(where=Condition(
        "code", "in", tuple({c[system.source] for c in found}))))}
    best: dict[tuple, Row] = {}
    for claim in found:
        key = tuple(claim[k] for k in table.natural_key)
        rank = (priority.get(claim[system.source], 0), claim[CLAIMED_AT])
        if key not in best or rank > (priority.get(best[key][system.source], 0), best[key][CLAIMED_AT]):
            best[key] = claim
    by_key = {tuple(r[k] for k in table.natural_key): r for r in gone}
    rows = []
    for key, claim in best.items():
        old = by_key[key]
        row = {c.name: claim[c.name] for c in table.writable_columns}
        row |= {system.source: claim[system.source], system.batch_id: claim[system.batch_id],
                system.version: old[system.version] + 1, system.created_at: now, system.updated_at: now}
        if table.surrogate is not None:
            row[table.surrogate] = old[table.surrogate]
        rows.append(row)
    promoted = uow.repository(table.name).add(rows)
    spent = [(*k, c[system.source]) for k, c in best.items()]
    uow.repository(claims.name).delete(keys_condition(claims.primary_key, spent), now)
    return promoted
