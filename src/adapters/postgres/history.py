"""History on PostgreSQL: the one writer of the history tables (domain.schema.history_table).

Every write path records its changes through here, in its own transaction, set-based:
- `history_items` gives two WITH items over a relation of changed rows, for statements that write
  in SQL (the ingest merge from its RETURNING, the revert): one UPDATE closes each row's current
  version, one INSERT ... SELECT adds the new ones. No trigger, no round trip per row.
- `record_rows` takes rows a table API write already has in hand (its RETURNING), and sends them in
  two statements, whatever their number: the close, then one multi-row INSERT per page.
- The direct COPY of a first load copies its CSV into the history table as well (ingest.py).

A history row holds the row's values *after* its change, with `updated_at` the time of the change
(for a delete, the time of the delete): it stands for the row from `updated_at` until `valid_to`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from domain.ports import Row
from domain.schema import GONE, HISTORY_ID, HISTORY_OPERATION, HISTORY_VALID_TO, Table


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def history_items(table: Table, changed: str, *, operation: str, at: str | None = None,
                  only: str | None = None) -> str:
    """`closed AS (...), recorded AS (...)`: record the rows of the relation `changed` (the table's
    columns, as the write left them) as new versions. `operation` and `at` (the time of the change;
    default the row's own updated_at) are SQL over `c`, a row of `changed`; `only`, if given, picks
    the rows that changed (a write that matched a row may have left it as it was).

    Both items run on one snapshot: the UPDATE does not see the rows the INSERT adds, so it closes
    the versions that were current before this statement, and only those."""
    history = _q(table.history_name)
    at = at or f"c.{_q(table.system.updated_at)}"
    where = f" AND ({only})" if only else ""
    match = " AND ".join(f"h.{_q(k)} = c.{_q(k)}" for k in table.primary_key)
    columns = [c.name for c in table.columns]
    values = [at if name == table.system.updated_at else f"c.{_q(name)}" for name in columns]
    return (
        f"closed AS (UPDATE {history} h SET {_q(HISTORY_VALID_TO)} = {at} FROM {changed} c "
        f"WHERE {match} AND h.{_q(HISTORY_VALID_TO)} IS NULL{where} RETURNING 1), "
        f"recorded AS (INSERT INTO {history} ({_q(HISTORY_OPERATION)}, {', '.join(map(_q, columns))}) "
        f"SELECT {operation}, {', '.join(values)} FROM {changed} c WHERE true{where} RETURNING 1)"
    )


def record_rows(connection: sa.Connection, metadata: sa.MetaData, table: Table, rows: Sequence[Row],
                operation: str | Callable[[Row], str], at: dt.datetime) -> None:
    """Record rows a write returned (as stored; a delete's as they were) as their versions from `at`,
    the time of the write: one UPDATE closes their current versions, one INSERT adds the new ones
    (SQLAlchemy sends it as multi-row INSERTs of up to a thousand rows). `operation` names the
    change, or tells it for each row."""
    if not table.history or not rows:
        return
    operation_of = operation if callable(operation) else (lambda _: operation)
    history = metadata.tables[table.history_name]
    key_columns = [history.c[k] for k in table.primary_key]
    keys = [table.key_of(r) for r in rows]
    closing = (sa.tuple_(*key_columns).in_(keys) if len(key_columns) > 1
               else key_columns[0].in_([k[0] for k in keys]))
    connection.execute(sa.update(history).where(closing, history.c[HISTORY_VALID_TO].is_(None))
                       .values({HISTORY_VALID_TO: at}))
    connection.execute(sa.insert(history), [
        {**{c.name: r[c.name] for c in table.columns}, HISTORY_OPERATION: operation_of(r), table.system.updated_at: at}
        for r in rows
    ])


def history_columns(table: Table) -> list[str]:
    """The columns of the history table a COPY into it names: the table's own, in its order."""
    return [c.name for c in table.columns if c.name != HISTORY_ID]


def current_at(history: sa.Table, table: Table, moment: sa.ColumnElement | dt.datetime) -> sa.ColumnElement[bool]:
    """The condition on a history table's rows that picks each row's version at `moment`."""
    valid_to = history.c[HISTORY_VALID_TO]
    return sa.and_(history.c[table.system.updated_at] <= moment,
                   sa.or_(valid_to.is_(None), valid_to > moment),
                   history.c[HISTORY_OPERATION].not_in(GONE))


def as_of_view(metadata: sa.MetaData, table: Table, moment: dt.datetime) -> sa.FromClause:
    """The table as it stood at `moment`, with its own columns and name: each row's version of that
    instant, from its history. A table without history is read as it is now."""
    if not table.history:
        return metadata.tables[table.name]
    history = metadata.tables[table.history_name]
    return (sa.select(*(history.c[c.name] for c in table.columns))
            .where(current_at(history, table, moment)).subquery(table.name))
