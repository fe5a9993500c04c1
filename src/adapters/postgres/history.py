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
                  only: str | None = None, batch: str | None = None) -> str:
    """`closed AS (...), recorded AS (...)`: record the rows of the relation `changed` (the table's
    columns, as the write left them) as new versions. `operation` and `at` (the time of the change;
    default the row's own updated_at) are SQL over `c`, a row of `changed`; `only`, if given, picks
    the rows that changed (a write that matched a row may have left it as it was). `batch`, if
    given, is the batch recorded for the change instead of the row's own batch_id (a delete's).

    Both items run on one snapshot: the UPDATE does not see the rows the INSERT adds, so it closes
    the versions that were current before this statement, and only those."""
    history = _q(table.history_name)
    at = at or f"c.{_q(table.system.updated_at)}"
    where = f" AND ({only})" if only else ""
    match = " AND ".join(f"h.{_q(k)} = c.{_q(k)}" for k in table.primary_key)
    columns = [c.name for c in table.columns]
    given = {table.system.updated_at: at, **({table.system.batch_id: batch} if batch else {})}
    values = [given.get(name, f"c.{_q(name)}") for name in columns]
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


def revert_sql(table: Table, force: bool) -> tuple[str, list[str], str, str]:
    """(plan, [statements], conflicts, count): the SQL of a revert (see AbstractIngestRepository.revert).

    `plan` makes the temporary table depot_revert: for each key the batch changed, its last version by
    the batch, its version before the batch, and its current version (a conflict when those differ).
    The version before is ordered by `history_id + 0`, so that it is found through the key's index: a
    history not yet analyzed (right after a load) had it planned as a backward scan of the history ids
    filtered by key, every earlier version read for each key that has none (a first load's revert
    ran for over ten minutes).
    The statements then delete, set back and insert again, each recording its changes in the history
    in the same statement; `conflicts` reads the history ids of the first conflicts' two versions, `count` counts them.
    Parameters: batch, revert_batch, now, limit."""
    history = _q(table.history_name)
    target = _q(table.name)
    keys = [_q(k) for k in table.primary_key]
    key_list = ", ".join(keys)
    match = lambda a, b: " AND ".join(f"{a}.{k} = {b}.{k}" for k in keys)  # noqa: E731
    gone = ", ".join(f"'{g}'" for g in GONE)
    plan = (
        "CREATE TEMP TABLE depot_revert ON COMMIT DROP AS "
        f"WITH touched AS (SELECT {key_list}, min({_q(HISTORY_ID)}) AS first_id, max({_q(HISTORY_ID)}) AS last_id "
        f"FROM {history} WHERE {_q(table.system.batch_id)} = %(batch)s GROUP BY {key_list}) "
        f"SELECT {', '.join(f't.{k}' for k in keys)}, t.last_id, "
        f"(SELECT p.{_q(HISTORY_ID)} FROM {history} p WHERE {match('p', 't')} AND p.{_q(HISTORY_ID)} < t.first_id "
        f"ORDER BY p.{_q(HISTORY_ID)} + 0 DESC LIMIT 1) AS before_id, "
        f"(SELECT c.{_q(HISTORY_ID)} FROM {history} c WHERE {match('c', 't')} AND c.{_q(HISTORY_VALID_TO)} IS NULL "
        f"ORDER BY c.{_q(HISTORY_ID)} DESC LIMIT 1) AS current_id, "
        f"(SELECT f.{_q(HISTORY_OPERATION)} FROM {history} f WHERE f.{_q(HISTORY_ID)} = t.first_id) AS first_op "
        "FROM touched t"
    )
    ok = "true" if force else "r.current_id = r.last_id"
    items = lambda name: history_items(table, name, operation="'revert'", at="%(now)s",  # noqa: E731
                                       batch="%(revert_batch)s")
    data = [c.name for c in table.columns if not c.system and not c.generated]
    system = table.system
    provenance = [system.source] if table.has_provenance else []
    provenance += [system.deleted_at] if table.soft_delete else []  # a revert undoes a soft delete too
    deleted = (
        f"WITH changed AS (DELETE FROM {target} t USING depot_revert r LEFT JOIN {history} p "
        f"ON p.{_q(HISTORY_ID)} = r.before_id WHERE {match('t', 'r')} AND {ok} "
        f"AND ((p.{_q(HISTORY_ID)} IS NULL AND r.first_op = 'insert') OR p.{_q(HISTORY_OPERATION)} IN ({gone})) "
        "RETURNING t.*), "
        f"{items('changed')} SELECT count(*) FROM changed"
    )
    restored_columns = [*data, *provenance]
    sets = [f"{_q(c)} = p.{_q(c)}" for c in restored_columns]
    sets += [f"{_q(system.version)} = t.{_q(system.version)} + 1", f"{_q(system.updated_at)} = %(now)s"]
    if table.has_provenance:
        sets.append(f"{_q(system.batch_id)} = %(revert_batch)s")
    differs = (f"ROW({', '.join(f't.{_q(c)}' for c in restored_columns)}) IS DISTINCT FROM "
               f"ROW({', '.join(f'p.{_q(c)}' for c in restored_columns)})")
    restored = (
        f"WITH changed AS (UPDATE {target} t SET {', '.join(sets)} FROM depot_revert r JOIN {history} p "
        f"ON p.{_q(HISTORY_ID)} = r.before_id WHERE {match('t', 'r')} AND {ok} "
        f"AND p.{_q(HISTORY_OPERATION)} NOT IN ({gone}) AND {differs} RETURNING t.*), "
        f"{items('changed')} SELECT count(*) FROM changed"
    )
    every = [c.name for c in table.columns]
    values = {c: f"p.{_q(c)}" for c in every}
    values[system.version] = f"p.{_q(system.version)} + 1"
    values[system.updated_at] = "%(now)s"
    if table.has_provenance:
        values[system.batch_id] = "%(revert_batch)s"
    reinserted = (
        f"WITH changed AS (INSERT INTO {target} ({', '.join(map(_q, every))}) "
        f"SELECT {', '.join(values[c] for c in every)} FROM depot_revert r JOIN {history} p "
        f"ON p.{_q(HISTORY_ID)} = r.before_id WHERE {ok} AND p.{_q(HISTORY_OPERATION)} NOT IN ({gone}) "
        f"AND NOT EXISTS (SELECT 1 FROM {target} t WHERE {match('t', 'r')}) ORDER BY {key_list} RETURNING *), "
        f"{items('changed')} SELECT count(*) FROM changed"
    )
    # A conflict: the row changed since the batch, or its state before the batch is not known (the
    # batch changed a row that predates the table's history: it is left as it is, never deleted).
    conflicted = ("r.current_id IS DISTINCT FROM r.last_id OR (r.before_id IS NULL AND r.first_op <> 'insert')")
    conflicts = (
        f"SELECT r.last_id, r.current_id FROM depot_revert r WHERE {conflicted} ORDER BY r.last_id LIMIT %(limit)s"
    )
    count = f"SELECT count(*) FROM depot_revert r WHERE {conflicted}"
    return plan, [deleted, restored, reinserted], conflicts, count
