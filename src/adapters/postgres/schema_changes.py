"""Schema changes that keep data, and the comparison of a live schema with its catalog.

Alembic's autogenerate sees a renamed column as a drop and an add, does not compare CHECK
constraints at all, writes ALTER TYPE without USING, and drops tables in no particular order.
`refine` mends the operations it produced for `depot makemigration`; `differences` reuses the same
comparison so that depot refuses to serve a database that is not what the catalog declares.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal

import sqlalchemy as sa
from alembic.autogenerate import produce_migrations, renderers
from alembic.autogenerate.render import _alembic_autogenerate_prefix, _alter_column, _render_gen_name
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import conv

from adapters.postgres.citus import citus_statements
from domain.schema import HISTORY_OPERATION, Catalog, Column, ColumnType, Table


class ChangeRefused(Exception):
    """makemigration will not write this change as it stands; the message says the ways out."""


class MigrationFailed(Exception):
    """A migration stopped on an SQL error and was rolled back; the message holds that error."""


class SchemaDrift(Exception):
    """The live schema is not the one the catalog declares."""

    def __init__(self, differences: list[str]) -> None:
        self.differences = differences
        super().__init__(
            "the database does not match the catalog:\n"
            + "".join(f"  - {d}\n" for d in differences)
            + "write the migration with `depot makemigration \"what changed\"`, then run `depot migrate`"
        )


# --- CHECK constraints, compared by what PostgreSQL makes of them -----------------------------------


Checks = dict[tuple[str, str], str]  # (table, constraint name) -> pg_get_constraintdef


def declared_checks(connection: Connection, tables: Iterable[sa.Table]) -> Checks:
    """Each declared CHECK as PostgreSQL restates it: created on a temporary copy of its table (with
    the declared column types), read back with pg_get_constraintdef, then rolled back. Comparing
    these texts with the live ones compares content, whatever the spelling of the declaration."""
    metadata = sa.MetaData()
    probes: dict[str, str] = {}
    for table in tables:
        checks = [c for c in table.constraints if isinstance(c, sa.CheckConstraint)]
        if not checks:
            continue
        probe = sa.Table(
            f"depot_probe_{len(probes)}", metadata,
            *[sa.Column(c.name, c.type) for c in table.columns],
            *[sa.CheckConstraint(c.sqltext, name=c.name) for c in checks],
            prefixes=["TEMPORARY"],
        )
        probes[probe.name] = table.name
    if not probes:
        return {}
    savepoint = connection.begin_nested()
    try:
        metadata.create_all(connection)
        rows = connection.execute(sa.text(
            "SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k "
            "JOIN pg_class c ON c.oid = k.conrelid "
            "WHERE k.contype = 'c' AND c.relnamespace = pg_my_temp_schema() AND c.relname = ANY(:names)"
        ), {"names": list(probes)}).all()
    finally:
        savepoint.rollback()
    return {(probes[probe], name): definition for probe, name, definition in rows}


def live_checks(connection: Connection, tables: Iterable[sa.Table]) -> Checks:
    """The live checks of these tables, each in its schema (depot's own tables in theirs, the others in
    the current one)."""
    tables = list(tables)
    rows = connection.execute(sa.text(
        "SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k "
        "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN unnest(CAST(:schemas AS text[]), CAST(:names AS text[])) AS t(schema, name) "
        "ON n.nspname = coalesce(t.schema, current_schema()) AND c.relname = t.name WHERE k.contype = 'c'"
    ), {"schemas": [t.schema for t in tables], "names": [t.name for t in tables]}).all()
    return {(table, name): definition for table, name, definition in rows}


def check_changes(connection: Connection, metadata: sa.MetaData, table_names: Iterable[str]) -> tuple[list, list]:
    """(drops, creates) that make the checks of these tables (present both live and declared) the declared ones."""
    from adapters.postgres.tables import relation

    tables = [relation(metadata, n) for n in table_names if n in metadata.info.get("by_name", {})]
    declared = declared_checks(connection, tables)
    live = live_checks(connection, tables)
    drops = [_drop_check(table, name, live[table, name]) for table, name in live
             if declared.get((table, name)) != live[table, name]]
    constraints = {(t.name, c.name): c for t in metadata.tables.values() for c in t.constraints
                   if isinstance(c, sa.CheckConstraint)}
    creates = [ops.CreateCheckConstraintOp.from_constraint(constraints[key]) for key in declared
               if live.get(key) != declared[key]]
    return drops, creates


def _drop_check(table: str, name: str, definition: str) -> ops.DropConstraintOp:
    match = re.fullmatch(r"CHECK \((.*)\)( NOT VALID)?", definition, re.DOTALL)
    sql = (match.group(1) if match else definition).replace(":", r"\:")  # text(): a colon starts a bind
    constraint = sa.CheckConstraint(sql, name=conv(name))
    sa.Table(table, sa.MetaData(), constraint)
    return ops.DropConstraintOp.from_constraint(constraint)


# --- type changes: ALTER ... TYPE ... USING ---------------------------------------------------------


@renderers.dispatch_for(ops.CreateCheckConstraintOp, replace=True)
def _render_create_check(autogen_context, op: ops.CreateCheckConstraintOp) -> str:  # noqa: ANN001
    """The check's text as depot holds it, its colons escaped (tables._escape_colons, _drop_check):
    Alembic's own renderer compiles it first, which drops the escapes, and `(?:97` would run as `(?NULL`."""
    text = op.to_constraint().sqltext.text
    name = repr(_render_gen_name(autogen_context, op.constraint_name))
    prefix = _alembic_autogenerate_prefix(autogen_context)
    return f"{prefix}create_check_constraint({name}, {op.table_name!r}, {text!r})"


class AlterColumnUsing(ops.AlterColumnOp):
    """alter_column with `postgresql_using`, which Alembic's renderer leaves out."""


@renderers.dispatch_for(AlterColumnUsing)
def _render_alter_column_using(autogen_context, op: AlterColumnUsing) -> str:  # noqa: ANN001
    text = _alter_column(autogen_context, op)
    return f"{text[:-1]},\n{' ' * 11}postgresql_using={op.kw['postgresql_using']!r})"


def _cast_type(type_: sa.types.TypeEngine) -> str:
    if getattr(type_, "collation", None):  # a cast takes the type alone; the column keeps its collation
        type_ = type_.copy()
        type_.collation = None  # type: ignore[attr-defined]
    return type_.compile(dialect=postgresql.dialect())


def _with_using(op: ops.AlterColumnOp) -> ops.AlterColumnOp:
    """An ALTER TYPE that casts the stored values explicitly: PostgreSQL refuses most without USING."""
    if op.modify_type is None:
        return op
    kw = {k: v for k, v in op.kw.items() if k != "postgresql_using"}
    using = f'"{op.column_name}"::{_cast_type(op.modify_type)}'
    return AlterColumnUsing(
        op.table_name, op.column_name, schema=op.schema, existing_type=op.existing_type,
        existing_nullable=op.existing_nullable, existing_server_default=op.existing_server_default,
        existing_comment=op.existing_comment, modify_type=op.modify_type, modify_nullable=op.modify_nullable,
        modify_server_default=op.modify_server_default, modify_comment=op.modify_comment,
        postgresql_using=using, **kw,
    )


_ALTER_TYPE = re.compile(r"ALTER TABLE (\S+) ALTER COLUMN (\S+) TYPE (.+?)(?: COLLATE \S+)? USING ")
_ADD_CHECK = re.compile(r"ALTER TABLE (\S+) ADD CONSTRAINT \S+ CHECK \((.*)\)$")
# Casts from these types read the value's text, as pg_input_is_valid does (a float cast to an
# integer rounds instead: from there the probe would point at values that cast well).
_READ_AS_TEXT = {"text", "character varying", "character", "smallint", "integer", "bigint"}


def rows_in_the_way(connection: Connection, statement: str, limit: int = 3) -> list[str]:
    """After a failed type change or new check (rolled back), the first stored values it refused.

    PostgreSQL names the value for most failed casts, but not when a number is out of range nor
    which row a new check refuses. Only statements that depot's migrations write are recognised; the
    identifiers come from them, already quoted as needed.
    """
    if match := _ALTER_TYPE.match(statement):
        table, column, type_ = match.groups()
        if connection.dialect.server_version_info < (16,):  # pg_input_is_valid is new in 16
            return []
        source = connection.execute(sa.text(f"SELECT pg_typeof({column})::text FROM {table} LIMIT 1")).scalar()
        if source not in _READ_AS_TEXT:
            return []
        values = connection.execute(sa.text(
            f"SELECT {column}::text FROM {table} WHERE {column} IS NOT NULL "
            f"AND NOT pg_input_is_valid({column}::text, :type) LIMIT {limit}"), {"type": type_}).scalars()
        return [f"{table}.{column} = {value!r}" for value in values]
    if match := _ADD_CHECK.match(statement):
        table, condition = match.groups()
        rows = connection.execute(sa.text(
            f"SELECT row_to_json(t)::text FROM {table} t WHERE NOT ({condition.replace(':', chr(92) + ':')}) "
            f"LIMIT {limit}")).scalars()
        return [f"{table} {row[:200]}" for row in rows]
    return []


# --- the operations of a change, refined --------------------------------------------------------------


def flat(container: ops.OpContainer) -> Iterator[tuple[str | None, ops.MigrateOperation]]:
    """(table, op) for every operation, the ones grouped under a table included."""
    for op in container.ops:
        if isinstance(op, ops.ModifyTableOps):
            yield from ((op.table_name, inner) for inner in op.ops)
        else:
            yield getattr(op, "table_name", None), op


def _family(type_: sa.types.TypeEngine) -> str:
    """Kinds of values a rename could carry over: numbers, text, times, ..."""
    try:
        python = type_.python_type
    except NotImplementedError:
        return type(type_).__name__
    return "number" if python in (int, float, Decimal) else python.__name__


def refine(upgrade: ops.UpgradeOps, connection: Connection, catalog: Catalog, metadata: sa.MetaData, *,
           owns: Callable[[str], bool] = lambda name: True, allow_drop: bool = False,
           compare_type: Callable | None = None) -> ops.UpgradeOps:
    """Alembic's operations, made to keep data and to run in an order PostgreSQL accepts.

    - a column declared `Renamed("old")`, where the table has `old` and not the new name, is renamed;
    - a table that loses a column and gains one of a compatible type, with no Renamed, is refused
      (ChangeRefused) unless `allow_drop`;
    - a type change casts with USING;
    - CHECK constraints whose content differs are dropped and created again;
    - drops of keys, indexes and checks come first, creations of them last, and tables are dropped at
      the end, a referencing table before the one it references.
    """
    items = list(flat(upgrade))
    items = _system_columns_taken_over(items, connection, catalog, metadata)
    items = _renames(items, catalog, compare_type, allow_drop)
    live_tables = set(sa.inspect(connection).get_table_names())
    items += _history_backfills(items, catalog, live_tables)
    kept = [n for n in metadata.info["by_name"] if n in live_tables and n in catalog and owns(n)]
    check_drops, check_creates = check_changes(connection, metadata, kept)
    dropped = [op for _, op in items if isinstance(op, ops.DropTableOp)]
    _refuse_dangling_references(connection, dropped, [op for _, op in items])

    def phase(op: ops.MigrateOperation) -> int:
        if isinstance(op, ops.DropConstraintOp | ops.DropIndexOp):
            return 0
        if isinstance(op, ops.AlterColumnOp) and op.modify_name is not None:
            return 1
        if isinstance(op, ops.AddConstraintOp | ops.CreateIndexOp):
            return 3
        if isinstance(op, ops.DropTableOp):
            return 4
        return 2

    ordered = [(t, op) for _, t, op in sorted(
        ((phase(op), t, op) for t, op in [*[(op.table_name, op) for op in check_drops], *items,
                                          *[(op.table_name, op) for op in check_creates]]),
        key=lambda item: item[0])]
    body = [(t, op) for t, op in ordered if not isinstance(op, ops.DropTableOp)]
    body += [(op.table_name, op) for op in _in_reference_order(connection, dropped)]
    created = [op.table_name for _, op in items if isinstance(op, ops.CreateTableOp)]
    body += [(None, ops.ExecuteSQLOp(statement)) for statement in citus_statements(catalog, created)]
    return ops.UpgradeOps(ops=_grouped(body))


def _renames(items: list, catalog: Catalog, compare_type: Callable | None, allow_drop: bool) -> list:
    adds = {(t, op.column.name): op for t, op in items if isinstance(op, ops.AddColumnOp)}
    drops = {(t, op.column_name): op for t, op in items if isinstance(op, ops.DropColumnOp)}
    replaced: dict[int, list] = {}
    for (table, new), add in adds.items():
        old = _old_name(catalog[table], new, [c for t, c in drops if t == table]) if table in catalog else None
        drop = drops.get((table, old)) if old else None
        if drop is None:
            continue
        before, after = drop.to_column(), add.column
        steps: list = [ops.AlterColumnOp(table, old, modify_name=new, existing_type=before.type,
                                         existing_nullable=before.nullable)]
        type_changed = compare_type(before, after) if compare_type else False
        if type_changed or before.nullable != after.nullable:
            steps.append(_with_using(ops.AlterColumnOp(
                table, new, existing_type=before.type, existing_nullable=before.nullable,
                modify_type=after.type if type_changed else None,
                modify_nullable=after.nullable if before.nullable != after.nullable else None)))
        replaced[id(add)] = steps
        replaced[id(drop)] = []
        del drops[table, old]
    if not allow_drop:
        _refuse_likely_renames(adds, drops, replaced)
    out = []
    for table, op in items:
        if id(op) in replaced:
            out += [(table, step) for step in replaced[id(op)]]
        elif isinstance(op, ops.AlterColumnOp):
            out.append((table, _with_using(op)))
        else:
            out.append((table, op))
    return out


def _history_backfills(items: list, catalog: Catalog, live_tables: set[str]) -> list:
    """A history table made for a table that has rows already starts with each row's current values as
    its first version: without them, the history would not know a row's state before its first change
    (a revert of that change could not restore it)."""
    backfills = []
    for _, op in items:
        spec = catalog[op.table_name] if isinstance(op, ops.CreateTableOp) and op.table_name in catalog else None
        if spec is None or spec.history_of is None or spec.history_of not in live_tables:
            continue
        base = catalog[spec.history_of]
        columns = ", ".join(f'"{c.name}"' for c in base.columns)
        order = ", ".join(f'"{k}"' for k in base.primary_key)
        backfills.append((spec.name, ops.ExecuteSQLOp(
            f'INSERT INTO "{spec.name}" ("{HISTORY_OPERATION}", {columns}) SELECT \'insert\', {columns} '
            f'FROM "{base.name}" ORDER BY {order}')))
    return backfills


def _system_columns_taken_over(items: list, connection: Connection, catalog: Catalog, metadata: sa.MetaData) -> list:
    """A system column moved aside so that the table can have a column of that name itself (`version`
    becomes `_depot_version`, and the user declares a `version` of their own): Alembic sees the name
    stay, with another type, and depot's values would land in the user's column. Instead the live
    column is renamed to the new system name, keeping depot's values, and the user's is added."""
    adds = [(t, op) for t, op in items if isinstance(op, ops.AddColumnOp) and t in catalog]
    inspector = sa.inspect(connection)
    live: dict[str, list[str]] = {}  # a table's columns, read once however many system columns it gains
    replaced: dict[int, list] = {}
    taken_over: set[tuple[str, str]] = set()
    for table, add in adds:
        spec, new = catalog[table], add.column.name
        role = spec.system.role_of(new)
        if role is None:
            continue
        if table not in live:
            live[table] = [c["name"] for c in inspector.get_columns(table)]
        old = [c for c in live[table] if c.endswith(role) and spec.has_column(c) and not spec.column(c).system]
        if len(old) != 1:
            continue
        replaced[id(add)] = [
            ops.AlterColumnOp(table, old[0], modify_name=new, existing_type=add.column.type,
                              existing_nullable=add.column.nullable),
            ops.AddColumnOp.from_column_and_tablename(None, table, metadata.tables[table].c[old[0]]._copy()),
        ]
        taken_over.add((table, old[0]))
    out = []
    for table, op in items:
        if id(op) in replaced:
            out += [(table, step) for step in replaced[id(op)]]
        elif not (isinstance(op, ops.AlterColumnOp) and (table, op.column_name) in taken_over):
            out.append((table, op))
    return out


def _old_name(spec: Table, new: str, dropped: list[str]) -> str | None:
    """What column `new` was called: its Renamed("old"); for one of depot's system columns, whose names
    the catalog's `system_columns` setting gives, the one dropped column named for the same role
    (`version` becoming `_depot_version`, or back)."""
    column = spec.column(new)
    derived = spec.history_of is not None or spec.claims_of is not None  # copies of the system columns, by name
    if not (column.system or derived) or spec.system.role_of(new) is None:
        return column.renamed_from
    role = spec.system.role_of(new)
    same_role = [name for name in dropped if role is not None and name.endswith(role)]
    return same_role[0] if len(same_role) == 1 else None


def _refuse_likely_renames(adds: dict, drops: dict, replaced: dict) -> None:
    clashes = []
    for (table, old), drop in drops.items():
        for (add_table, new), add in adds.items():
            if add_table == table and id(add) not in replaced \
                    and _family(drop.to_column().type) == _family(add.column.type):
                clashes.append((table, old, new))
    if clashes:
        lines = [f"table {t}: column {old!r} would be dropped (and its values lost) and {new!r} added"
                 for t, old, new in clashes]
        t, old, new = clashes[0]
        raise ChangeRefused("\n".join(lines) + "\n"
                            f"if it is a rename, declare it: {new}: Annotated[..., Renamed({old!r})]\n"
                            f"if the values may go, run again with --allow-drop")


def _foreign_keys(connection: Connection) -> list[tuple[str, str, str]]:
    """(referencing table, constraint, referenced table) of the current schema."""
    return [tuple(row) for row in connection.execute(sa.text(
        "SELECT c.relname, k.conname, r.relname FROM pg_constraint k "
        "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class r ON r.oid = k.confrelid "
        "WHERE k.contype = 'f' AND c.relnamespace = current_schema()::regnamespace"
    ))]


def _in_reference_order(connection: Connection, drops: list[ops.DropTableOp]) -> list[ops.DropTableOp]:
    by_name = {op.table_name: op for op in drops}
    graph: dict[str, set[str]] = {name: set() for name in by_name}
    for referencing, _, referenced in _foreign_keys(connection):
        if referencing in by_name and referenced in by_name and referencing != referenced:
            graph[referenced].add(referencing)  # the referencing table goes first
    return [by_name[name] for name in graphlib.TopologicalSorter(graph).static_order()]


def _refuse_dangling_references(connection: Connection, drops: list[ops.DropTableOp], all_ops: list) -> None:
    """A dropped table that a staying table still references would stop the migration half-way."""
    gone = {op.table_name for op in drops}
    if not gone:
        return
    released = {op.constraint_name for op in all_ops if isinstance(op, ops.DropConstraintOp)}
    dangling = [(referencing, name, referenced) for referencing, name, referenced in _foreign_keys(connection)
                if referenced in gone and referencing not in gone and name not in released]
    if dangling:
        raise ChangeRefused("\n".join(
            f"table {referenced} cannot be dropped: {referencing} still references it ({name}), "
            f"and {referencing} is not part of this catalog's change; drop that foreign key first"
            for referencing, name, referenced in dangling))


def _grouped(items: list) -> list:
    """Consecutive operations on one table under one ModifyTableOps, as Alembic renders them."""
    out: list = []
    for table, op in items:
        if isinstance(op, ops.CreateTableOp | ops.DropTableOp) or table is None:
            out.append(op)
        elif out and isinstance(out[-1], ops.ModifyTableOps) and out[-1].table_name == table:
            out[-1].ops.append(op)
        else:
            out.append(ops.ModifyTableOps(table, [op]))
    return out


def reverse(upgrade: ops.UpgradeOps) -> ops.DowngradeOps:
    """The downgrade of refined operations (Alembic's own reverse forgets renames and USING)."""
    steps = []
    for table, op in reversed(list(flat(upgrade))):
        if isinstance(op, ops.AlterColumnOp) and op.modify_name is not None:
            steps.append((table, ops.AlterColumnOp(table, op.modify_name, modify_name=op.column_name,
                                                   existing_type=op.existing_type,
                                                   existing_nullable=op.existing_nullable)))
        elif isinstance(op, ops.ExecuteSQLOp):
            continue  # Citus's distribution: undone with the table's drop
        else:
            back = op.reverse()
            steps.append((table, _with_using(back) if isinstance(back, ops.AlterColumnOp) else back))
    return ops.DowngradeOps(ops=_grouped(steps))


# --- a change in words -----------------------------------------------------------------------------


def _type_name(type_: sa.types.TypeEngine) -> str:
    return _cast_type(type_).lower()


def describe(table: str | None, op: ops.MigrateOperation) -> str | None:
    """One line for a user, or None for what does not matter to depot's reads and writes (indexes, comments)."""
    match op:
        case ops.CreateTableOp():
            return f"table {op.table_name}: missing"
        case ops.DropTableOp():
            return f"table {op.table_name}: dropped"
        case ops.AddColumnOp():
            return f"{table}.{op.column.name}: missing"
        case ops.DropColumnOp():
            return f"{table}.{op.column_name}: not in the catalog"
        case ops.AlterColumnOp() if op.modify_name is not None:
            return f"{table}.{op.column_name}: renamed to {op.modify_name}"
        case ops.AlterColumnOp():
            parts = []
            if op.modify_type is not None:
                parts.append(f"type {_type_name(op.existing_type)} -> {_type_name(op.modify_type)}")
            if op.modify_nullable is not None:
                parts.append("becomes nullable" if op.modify_nullable else "becomes NOT NULL")
            return f"{table}.{op.column_name}: {', '.join(parts)}" if parts else None
        case ops.CreateCheckConstraintOp():
            return f"{table}: check {op.constraint_name} is {op.to_constraint().sqltext}"
        case ops.DropConstraintOp() if op.constraint_type == "check":
            return f"{table}: check {op.constraint_name} was {op.to_constraint().sqltext}"
        case ops.AddConstraintOp():
            return f"{table}: {op.constraint_type} constraint {op.constraint_name} missing"
        case ops.DropConstraintOp():
            return f"{table}: {op.constraint_type or ''} constraint {op.constraint_name} not in the catalog"
    return None


def summary(upgrade: ops.UpgradeOps) -> list[str]:
    """What a migration does, a line a step; a check dropped to be made again is said once."""
    remade = {(t, op.constraint_name) for t, op in flat(upgrade) if isinstance(op, ops.CreateCheckConstraintOp)}
    return [line for table, op in flat(upgrade)
            if not (isinstance(op, ops.DropConstraintOp) and (table, op.constraint_name) in remade)
            and (line := summarise(table, op))]


def summarise(table: str | None, op: ops.MigrateOperation) -> str | None:
    """One line of what a migration does, for makemigration's output (indexes and comments left out)."""
    match op:
        case ops.CreateTableOp():
            return f"create table {op.table_name}"
        case ops.DropTableOp():
            return f"drop table {op.table_name}"
        case ops.AddColumnOp():
            return f"add column {table}.{op.column.name}"
        case ops.DropColumnOp():
            return f"drop column {table}.{op.column_name} (its values are lost)"
        case AlterColumnUsing() if op.modify_type is not None:
            return f"{table}.{op.column_name}: {_type_name(op.existing_type)} -> {_type_name(op.modify_type)} " \
                   f"using {op.kw['postgresql_using']}"
        case ops.CreateCheckConstraintOp():
            return f"check {op.constraint_name}: {op.to_constraint().sqltext}"
        case ops.DropConstraintOp() if op.constraint_type == "check":
            return f"drop check {op.constraint_name}"
    return describe(table, op) if isinstance(op, ops.AlterColumnOp) else None


# --- drift: the live schema against the catalog ----------------------------------------------------


def compared_schemas(catalog: Catalog) -> dict:
    """Alembic's options that compare the schemas a catalog lives in: the one on the search_path (None) and
    depot's own, where the system tables are. They are named with it in the metadata (tables.py), and
    would look missing anywhere else; other schemas of the database are not the catalog's business."""
    return {"include_schemas": True,
            "include_name": lambda name, type_, parent: type_ != "schema" or name in (None, catalog.system_schema)}


def differences(connection: Connection, catalog: Catalog) -> list[str]:
    """What differs between the live schema and the catalog, for the catalog's tables (system ones
    included), in words. Extra tables are not looked at; an extra column only when it would make
    depot's inserts fail (NOT NULL without a default)."""
    from adapters.postgres.tables import build_metadata

    metadata = build_metadata(catalog)
    names = set(catalog.names)
    context = MigrationContext.configure(connection, opts={
        "compare_type": True, "target_metadata": metadata,
        "include_object": lambda obj, name, type_, reflected, compare_to: type_ != "table" or name in names,
        **compared_schemas(catalog),
    })
    found = []
    for table, op in flat(produce_migrations(context, metadata).upgrade_ops):
        if isinstance(op, ops.DropColumnOp):
            column = op.to_column()
            if column.nullable or column.server_default is not None or column.identity is not None:
                continue
        if isinstance(op, ops.AlterColumnOp):
            op = ops.AlterColumnOp(op.table_name, op.column_name, existing_type=op.existing_type,
                                   modify_type=op.modify_type, modify_nullable=op.modify_nullable)
        line = describe(table, op)
        if line:
            found.append(line)
    inspector = sa.inspect(connection)
    live_tables = set(inspector.get_table_names())
    live_system = set(inspector.get_table_names(schema=catalog.system_schema))
    drops, creates = check_changes(connection, metadata, [
        n for n in catalog.names if n in (live_system if catalog.schema_of(n) != catalog.schema else live_tables)])
    live = {(op.table_name, op.constraint_name): op.to_constraint().sqltext for op in drops}
    for op in creates:
        was = live.pop((op.table_name, op.constraint_name), None)
        declared = op.to_constraint().sqltext
        found.append(f"{op.table_name}: check {op.constraint_name} is {was} in the database, {declared} in the catalog"
                     if was is not None else f"{op.table_name}: check {op.constraint_name} missing ({declared})")
    # A check depot did not name (ck_<table>_...) is the database's own, kept on purpose: depot adopt
    # leaves the ones the declaration language cannot say, and names them in catalog.py.
    found += [f"{table}: check {name} ({sql}) is not in the catalog" for (table, name), sql in live.items()
              if name.startswith(f"ck_{table}_")]
    return found + view_differences(connection, catalog)


def _any_text(column: Column, live: str) -> bool:
    """A view's `str` column may be varchar of any length: depot reads it as text all the same."""
    return column.type is ColumnType.TEXT and column.max_length is None and live.startswith("character varying")


_RELKINDS = {"v": "view", "m": "materialized view", "r": "table", "p": "table", "f": "foreign table"}


def view_differences(connection: Connection, catalog: Catalog) -> list[str]:
    """Each declared view exists, of its kind, with its columns and their types. Views are the
    database's own: nothing writes a migration for them, so this is all depot checks (an extra
    column in the view is fine, depot does not read it)."""
    from adapters.postgres.adopt import type_sql

    views = catalog.views
    if not views:
        return []
    rows = connection.execute(sa.text(
        "SELECT c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_class c "
        "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(:names)"),
        {"names": [v.name for v in views]}).all()
    kinds = {name: _RELKINDS.get(kind, kind) for name, kind, _, _ in rows}
    types = {(name, column): type_ for name, _, column, type_ in rows}
    found = []
    for view in views:
        if view.name not in kinds:
            found.append(f"{view.name}: the {view.kind} is missing from the database (depot never creates one: "
                         "create it with its SQL, or remove its declaration)")
            continue
        if kinds[view.name] != view.kind:
            found.append(f"{view.name}: declared as a {view.kind}, the database has a {kinds[view.name]}")
            continue
        for column in view.columns:
            live = types.get((view.name, column.name))
            if live is None:
                found.append(f"{view.name}: the {view.kind} has no column {column.name}")
            elif live != type_sql(column) and not _any_text(column, live):
                found.append(f"{view.name}.{column.name}: {live} in the database, "
                             f"{type_sql(column)} in the catalog")
    return found


def refuse_drift(connection: Connection, catalog: Catalog) -> None:
    found = differences(connection, catalog)
    if found:
        raise SchemaDrift(found)
