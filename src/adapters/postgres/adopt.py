"""`depot adopt`: read the tables a database already has, and say what of them the declaration language can hold.

Three steps, each a plain function: `inspect_schema` reads PostgreSQL's catalog into `Found*` values;
`declare` maps them to declarations (domain `Column`s, keys, references), setting aside what it
cannot map as notes; `adoption_migration` writes the first revision of the catalog's history, which
ALTERs the existing tables into what depot derives from the written catalog (tables.py), so that
the live schema and the catalog then agree. What to write in catalog.py is entrypoints/adoption.py's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import keyword
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from alembic.autogenerate import render_python_code
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext

from adapters.postgres.tables import render_item
from domain.schema import MISSING, Column, ColumnType, ForeignKey, References, SystemColumns

# --- what the database has ------------------------------------------------------------------------


@dataclass(frozen=True)
class FoundColumn:
    name: str
    type: str  # format_type(): 'character varying(120)', 'timestamp without time zone', 'integer[]'
    nullable: bool
    default: str | None  # pg_get_expr() of the default
    identity: str  # '' none, 'a' always, 'd' by default
    collation: str | None
    comment: str | None
    serial: bool  # its default draws from a sequence the column owns
    enum: tuple[str, ...] | None = None  # the labels, when its type is an enum


@dataclass(frozen=True)
class FoundConstraint:
    name: str
    kind: str  # 'p' primary, 'u' unique, 'f' foreign, 'c' check, 'x' exclusion
    columns: tuple[str, ...]
    definition: str  # pg_get_constraintdef()
    target: str | None = None
    target_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class FoundIndex:
    name: str
    columns: tuple[str, ...]  # empty for an expression index
    unique: bool
    plain: bool  # a btree on plain columns, no predicate, no expression
    constraint: bool  # the index behind a primary key, unique or exclusion constraint
    definition: str


@dataclass(frozen=True)
class FoundTable:
    name: str
    columns: tuple[FoundColumn, ...]
    constraints: tuple[FoundConstraint, ...]
    indexes: tuple[FoundIndex, ...]
    comment: str | None

    def column(self, name: str) -> FoundColumn:
        return next(c for c in self.columns if c.name == name)

    def of_kind(self, kind: str) -> list[FoundConstraint]:
        return [c for c in self.constraints if c.kind == kind]

    @property
    def primary_key(self) -> FoundConstraint | None:
        return next(iter(self.of_kind("p")), None)


_COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity, co.collname, col_description(c.oid, a.attnum),
       pg_get_serial_sequence(quote_ident(n.nspname) || '.' || quote_ident(c.relname), a.attname) IS NOT NULL
       AND a.attidentity = '',
       (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = a.atttypid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 0
     AND co.collname <> 'default'
WHERE n.nspname = :schema AND c.relkind IN ('r', 'p')
ORDER BY c.relname, a.attnum
"""

_CONSTRAINTS = """
SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid),
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i),
       t.relname,
       ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(n, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i)
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class t ON t.oid = k.confrelid
WHERE n.nspname = :schema AND k.contype IN ('p', 'u', 'f', 'c', 'x')
ORDER BY c.relname, k.conname
"""

_INDEXES = """
SELECT c.relname, i.relname, x.indisunique,
       ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY u(n, o)
             JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = u.n ORDER BY u.o),
       x.indpred IS NULL AND x.indexprs IS NULL AND am.amname = 'btree',
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid AND k.conrelid = x.indrelid),
       pg_get_indexdef(x.indexrelid), x.indnkeyatts = x.indnatts
FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am ON am.oid = i.relam
WHERE n.nspname = :schema AND c.relkind IN ('r', 'p')
ORDER BY c.relname, i.relname
"""

_TABLES = """
SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') ORDER BY c.relname
"""


def inspect_schema(connection: sa.Connection, schema: str = "public") -> list[FoundTable]:
    """Every ordinary table of `schema`, with its columns, constraints and indexes, by name."""
    params = {"schema": schema}
    columns: dict[str, list[FoundColumn]] = {}
    for table, *values in connection.execute(sa.text(_COLUMNS), params):
        *values, labels = values
        columns.setdefault(table, []).append(FoundColumn(*values, tuple(labels) if labels else None))
    constraints: dict[str, list[FoundConstraint]] = {}
    for table, name, kind, definition, cols, target, target_cols in connection.execute(sa.text(_CONSTRAINTS), params):
        constraints.setdefault(table, []).append(
            FoundConstraint(name, kind, tuple(cols), definition, target, tuple(target_cols or ())))
    indexes: dict[str, list[FoundIndex]] = {}
    for table, name, unique, cols, plain, constraint, definition, no_include in connection.execute(
            sa.text(_INDEXES), params):
        indexes.setdefault(table, []).append(
            FoundIndex(name, tuple(cols), unique, plain and no_include, constraint, definition))
    return [
        FoundTable(name, tuple(columns.get(name, ())), tuple(constraints.get(name, ())),
                   tuple(indexes.get(name, ())), comment)
        for name, comment in connection.execute(sa.text(_TABLES), params)
    ]


_KINDS = {"v": "view", "m": "materialized view", "f": "foreign table"}


def other_relations(connection: sa.Connection, schema: str = "public") -> list[str]:
    """The views, materialized views and foreign tables of `schema`, which adopt leaves alone: a note each.

    A view on a table stops the migration's type changes (PostgreSQL refuses to alter a column a view
    reads, collation included), so its note says what to do around `depot migrate`."""
    rows = connection.execute(sa.text(
        "SELECT c.relname, c.relkind, ARRAY(SELECT DISTINCT t.relname FROM pg_rewrite r "
        "  JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass "
        "  JOIN pg_class t ON t.oid = d.refobjid AND t.relkind IN ('r', 'p') AND t.oid <> c.oid "
        "  WHERE r.ev_class = c.oid ORDER BY 1) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :schema AND c.relkind IN ('v', 'm', 'f') ORDER BY c.relname"), {"schema": schema})
    notes = []
    for name, kind, tables in rows:
        note = f"{name}: a {_KINDS[kind]}, not a table: not adopted (depot serves tables); it stays as it is"
        if tables:
            note += (f". It reads {', '.join(tables)}, whose column types the migration may change (text takes "
                     "collation \"C\"), which PostgreSQL refuses under a view: drop it before `depot migrate` "
                     "and create it again after")
        notes.append(note)
    return notes


# --- what the declaration language can hold ---------------------------------------------------------


@dataclass
class DeclaredColumn:
    column: Column  # its type is None when the column is not mapped: catalog.py then shows it as a comment
    notes: list[str] = field(default_factory=list)  # what of this column stays unmapped (a comment above it)
    pg_type: str = ""

    @property
    def mapped(self) -> bool:
        return self.column.type is not None


@dataclass
class Declaration:
    """One table as catalog.py will declare it, or (adopted=False) as a comment saying why not."""

    name: str
    group: str = "primary"
    natural_key: tuple[str, ...] = ()
    surrogate_id: bool = False
    columns: list[DeclaredColumn] = field(default_factory=list)
    references: list[ForeignKey] = field(default_factory=list)  # composite ones; single columns use References
    unique: list[tuple[str, ...]] = field(default_factory=list)
    description: str | None = None
    notes: list[str] = field(default_factory=list)  # table-level things left unmapped
    adopted: bool = True
    checks: dict[str, str] = field(default_factory=dict)  # existing CHECK name -> column it became a marker of
    primary_from: str | None = None  # the unique constraint that becomes the primary key, if the table had none

    @property
    def declared(self) -> list[DeclaredColumn]:
        return [c for c in self.columns if c.mapped]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.column.name for c in self.declared)


@dataclass
class Adoption:
    declarations: list[Declaration]
    notes: list[str]  # about the database as a whole (alembic_version, cycles)
    system_columns: str | None = None  # the prefix of depot's system columns, when a table has their names

    @property
    def adopted(self) -> list[Declaration]:
        return [d for d in self.declarations if d.adopted]

    def unmapped(self) -> list[str]:
        """Every note, prefixed with where it belongs: what `depot adopt` prints."""
        lines = list(self.notes)
        for d in self.declarations:
            lines += [f"{d.name}: {n}" for n in d.notes]
            lines += [f"{d.name}.{c.column.name}: {n}" for c in d.columns for n in c.notes]
        return lines


@dataclass(frozen=True)
class _Type:
    type: ColumnType
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    item: ColumnType | None = None
    change: str | None = None  # why the migration changes the column's type


_SIMPLE_TYPES = {
    "text": _Type(ColumnType.TEXT),
    "character varying": _Type(ColumnType.TEXT, change="varchar without a length is text"),
    "integer": _Type(ColumnType.INTEGER),
    "smallint": _Type(ColumnType.INTEGER, change="smallint widens to integer"),
    "bigint": _Type(ColumnType.BIGINT),
    "double precision": _Type(ColumnType.FLOAT),
    "real": _Type(ColumnType.FLOAT, change="real widens to double precision"),
    "numeric": _Type(ColumnType.NUMERIC),
    "boolean": _Type(ColumnType.BOOLEAN),
    "date": _Type(ColumnType.DATE),
    "timestamp with time zone": _Type(ColumnType.TIMESTAMPTZ),
    "timestamp without time zone": _Type(ColumnType.TIMESTAMP),
    "uuid": _Type(ColumnType.UUID),
    "jsonb": _Type(ColumnType.JSON),
    "json": _Type(ColumnType.JSON, change="json becomes jsonb"),
    "text[]": _Type(ColumnType.ARRAY, item=ColumnType.TEXT),
    "character varying[]": _Type(ColumnType.ARRAY, item=ColumnType.TEXT, change="varchar[] becomes text[]"),
    "integer[]": _Type(ColumnType.ARRAY, item=ColumnType.INTEGER),
}


def map_type(pg_type: str) -> _Type | None:
    """The declaration type of a PostgreSQL type (as format_type() writes it), or None."""
    if pg_type in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[pg_type]
    if m := re.fullmatch(r"character varying\((\d+)\)", pg_type):
        return _Type(ColumnType.TEXT, max_length=int(m[1]))
    if m := re.fullmatch(r"numeric\((\d+),(\d+)\)", pg_type):
        return _Type(ColumnType.NUMERIC, precision=int(m[1]), scale=int(m[2]))
    if m := re.fullmatch(r"timestamp\(\d\) (with|without) time zone", pg_type):
        base = _SIMPLE_TYPES[f"timestamp {m[1]} time zone"]
        return _Type(base.type, change="a timestamp's fractional precision becomes 6 digits")
    return None


def type_sql(column: Column) -> str:
    """format_type() of the type depot derives for `column` (tables.sql_type), to compare with the database's."""
    if column.type is ColumnType.ARRAY:
        assert column.item is not None
        return type_sql(column.item_column) + "[]"
    if column.type is ColumnType.TEXT and column.max_length is not None:
        return f"character varying({column.max_length})"
    if column.type is ColumnType.NUMERIC and column.precision is not None:
        return f"numeric({column.precision},{column.scale or 0})"
    return _DERIVED_SQL[column.type]


_DERIVED_SQL = {
    ColumnType.TEXT: "text", ColumnType.INTEGER: "integer", ColumnType.BIGINT: "bigint",
    ColumnType.FLOAT: "double precision", ColumnType.NUMERIC: "numeric", ColumnType.BOOLEAN: "boolean",
    ColumnType.DATE: "date", ColumnType.TIMESTAMPTZ: "timestamp with time zone",
    ColumnType.TIMESTAMP: "timestamp without time zone", ColumnType.UUID: "uuid", ColumnType.JSON: "jsonb",
}


def is_text(column: Column) -> bool:
    return column.type is ColumnType.TEXT or column.item is ColumnType.TEXT


# Literal defaults as pg_get_expr() writes them: 'shop'::character varying, 0, 1.5, true, '-3'::integer.
_QUOTED = r"'((?:[^']|'')*)'"


def map_default(expression: str, column_type: ColumnType) -> object:
    """The Python value of a simple literal default, or MISSING when it is an expression (now(), nextval)."""
    text = expression.strip()
    while (m := re.fullmatch(r"\((.*)\)", text)) is not None:
        text = m[1]
    if m := re.fullmatch(_QUOTED + r"(?:::[a-z_][a-z0-9_ ]*(?:\(\d+(?:,\d+)?\))?)?", text):
        literal = m[1].replace("''", "'")
        quoted = True
    elif re.fullmatch(r"-?\d+(\.\d+)?|true|false", text):
        literal, quoted = text, False
    else:
        return MISSING
    try:
        match column_type:
            case ColumnType.TEXT:
                return literal if quoted else MISSING
            case ColumnType.INTEGER | ColumnType.BIGINT:
                return int(literal)
            case ColumnType.FLOAT:
                return float(literal)
            case ColumnType.NUMERIC:
                return decimal.Decimal(literal)
            case ColumnType.BOOLEAN:
                return {"true": True, "false": False}.get(literal, MISSING)
    except (ValueError, decimal.InvalidOperation):
        return MISSING
    return MISSING  # dates, timestamps, uuids, JSON: kept in the database, not declared


# A bound as pg_get_constraintdef() writes it: 0, (0)::numeric, '-90'::integer, ('-1.5'::numeric)::double precision
_NUMBER = r"\(*'?(-?\d+(?:\.\d+)?)'?(?:\)?::[a-z ]+)*\)*"
_NAME = r'\(*"?([a-z_][a-z0-9_]*)"?\)*(?:::[a-z ]+(?:\(\d+\))?)?\)*'
_OPS = {">=": "ge", "<=": "le", ">": "gt", "<": "lt"}
_FLIPPED = {">=": "<=", "<=": ">=", ">": "<", "<": ">"}


def map_check(definition: str) -> list[tuple[str, str, object]] | None:
    """(column, marker, value) for each part of a CHECK the declaration language can say, or None.

    Understood: `col >= n` (and <=, >, <, either side, several joined by AND, as BETWEEN becomes),
    `col IN ('a', 'b')`, `col ~ '^regex$'`, `char_length(col) <= n`."""
    m = re.fullmatch(r"CHECK \((.*)\)( NOT VALID)?", definition.strip(), re.S)
    if m is None or m[2]:
        return None
    parts = _split_and(_strip_parens(m[1]))
    found = []
    for part in parts:
        mapped = _map_check_part(_strip_parens(part))
        if mapped is None:
            return None
        found.append(mapped)
    return found


def _strip_parens(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth, quoted = 0, False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        elif not quoted:
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth < 0:
                return False
    return depth == 0


def _split_and(text: str) -> list[str]:
    parts, depth, quoted, start = [], 0, False, 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quoted = not quoted
        elif not quoted:
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth == 0 and text.startswith(" AND ", i):
                parts.append(text[start:i])
                start = i + 5
                i += 4
        i += 1
    return [*parts, text[start:]]


def _map_check_part(text: str) -> tuple[str, str, object] | None:
    if m := re.fullmatch(_NAME + r" (>=|<=|>|<) " + _NUMBER, text):
        return m[1], _OPS[m[2]], _number(m[3])
    if m := re.fullmatch(_NUMBER + r" (>=|<=|>|<) " + _NAME, text):
        return m[3], _OPS[_FLIPPED[m[2]]], _number(m[1])
    if m := re.fullmatch(r"(?:char_length|length)\(" + _NAME + r"\) <= (\d+)", text):
        return m[1], "max_length", int(m[2])
    item = _QUOTED.replace("(", "(?:", 1) + r"(?:::[a-z ]+(?:\(\d+\))?)?"
    if m := re.fullmatch(_NAME + r" = ANY \(+ARRAY\[(" + item + "(?:, " + item + r")*)\]\)?(?:::[a-z ]+\[\])?\)", text):
        values = re.findall(_QUOTED, m[2])
        return m[1], "choices", tuple(v.replace("''", "'") for v in values)
    if m := re.fullmatch(_NAME + r" ~ " + _QUOTED + r"(?:::text)?", text):
        regex = m[2].replace("''", "'")
        inner = re.fullmatch(r"\^(.*)\$", regex, re.S)
        if inner is None or inner[1].endswith("\\"):
            return None  # unanchored: a search, not the whole-value match a Pattern is
        body = inner[1]
        wrapped = re.fullmatch(r"\(\?:(.*)\)", body, re.S)  # depot's own ^(?:...)$ wrapping
        return m[1], "pattern", wrapped[1] if wrapped and _balanced(wrapped[1]) else body
    return None


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _python_name(name: str) -> bool:
    return bool(_IDENTIFIER.fullmatch(name)) and not keyword.iskeyword(name) and not name.startswith("__")


def declare(found: Iterable[FoundTable], natural_keys: dict[str, tuple[str, ...]] | None = None,
            system_tables: Iterable[str] = ()) -> Adoption:
    """Map the found tables to declarations, in foreign-key order (a table after those it references)."""
    natural_keys = dict(natural_keys or {})
    found = list(found)
    notes: list[str] = []
    names = {t.name for t in found}
    for table in natural_keys.keys() - names:
        notes.append(f"--natural-key {table}=...: the schema has no table {table!r}")
    if "alembic_version" in names:
        notes.append("alembic_version exists: this database has an Alembic history of its own, and depot keeps "
                     "its history in that table too. Rename it (ALTER TABLE alembic_version RENAME TO "
                     "alembic_version_before_depot) before `depot migrate`")
    system = set(system_tables)
    if system & names:
        notes.append(f"{', '.join(sorted(system & names))}: depot's own tables are here already; left out "
                     "(is this database already under depot?)")
    declarations = {t.name: _declare_table(t, natural_keys.get(t.name))
                    for t in found if t.name != "alembic_version" and t.name not in system}
    ordered, cycle = _dependency_order(found, declarations)
    if cycle:
        notes.append(f"the foreign keys of {', '.join(cycle)} form a cycle; those closing it are left unmapped")
    declared: set[str] = set()
    for d in ordered:
        if d.adopted:
            _attach_references(d, next(t for t in found if t.name == d.name), declarations, declared)
            d.group = _group(d, next(t for t in found if t.name == d.name))
            declared.add(d.name)
    prefix = system_column_prefix([t for t in found if t.name in declared])
    if prefix is not None:
        clashing = sorted({f"{t.name}.{c.name}" for t in found if t.name in declared
                           for c in t.columns if c.name in SystemColumns().names})
        notes.append(f"{', '.join(clashing)}: named like depot's system columns, so depot's are "
                     f"{', '.join(SystemColumns.prefixed(prefix).names)} here (Catalog(system_columns="
                     f"{prefix!r})); every value of the tables' own columns is kept")
    return Adoption(ordered, notes, prefix)


def system_column_prefix(found: Iterable[FoundTable]) -> str | None:
    """None when depot's system column names are free in every table; else the first prefix that is.

    One naming for the whole catalog, not per table: a client then finds `_depot_source` on every table."""
    taken = {c.name for t in found for c in t.columns}
    if not taken & set(SystemColumns().names):
        return None
    candidates = ("_depot_", *(f"_depot{n}_" for n in range(2, 100)))
    return next(p for p in candidates if not taken & set(SystemColumns.prefixed(p).names))


def _declare_table(table: FoundTable, chosen_key: tuple[str, ...] | None) -> Declaration:
    d = Declaration(table.name, description=table.comment)
    if not _IDENTIFIER.fullmatch(table.name) or table.name != table.name.lower():
        return _refuse(d, "the table's name is not lower-case letters, digits and underscores (a URL path segment)")
    key = _keys(table, chosen_key, d)
    for column in table.columns:
        if d.surrogate_id and column.name == "id":
            continue
        d.columns.append(_declare_column(column, table))
    if key is None:
        return d
    for check in table.of_kind("c"):
        _map_table_check(check, d)
    for exclusion in table.of_kind("x"):
        d.notes.append(f"not mapped: exclusion constraint {exclusion.name} {exclusion.definition} (kept in the "
                       "database; a row it refuses fails its batch)")
    unmapped = {c.column.name for c in d.columns if not c.mapped}
    for key_columns in (d.natural_key, *d.unique):
        if unmapped & set(key_columns):
            return _refuse(d, f"its key ({', '.join(key_columns)}) holds a column depot cannot map")
    return d


def _refuse(d: Declaration, reason: str) -> Declaration:
    d.adopted = False
    d.notes.append(f"not adopted: {reason}")
    return d


def _keys(table: FoundTable, chosen: tuple[str, ...] | None, d: Declaration) -> tuple[str, ...] | None:
    """Decide the natural key (and whether `id` is a surrogate); None when the table cannot be keyed."""
    pk = table.primary_key
    uniques = [u for u in table.of_kind("u")]
    unique_indexes = [i for i in table.indexes if i.unique and i.plain and not i.constraint]
    candidates = [u.columns for u in uniques] + [i.columns for i in unique_indexes]
    names = {c.name for c in table.columns}
    if chosen is not None and set(chosen) - names:
        d.notes.append(f"--natural-key names unknown columns {sorted(set(chosen) - names)}; ignored")
        chosen = None
    if pk is not None and pk.columns == ("id",) and _is_generated_id(table.column("id")):
        if chosen is None:
            not_null = [c for c in candidates if not any(table.column(n).nullable for n in c)]
            chosen = (not_null or candidates or [None])[0]
            if chosen is not None and len(candidates) > 1:
                d.notes.append(f"natural key chosen: ({', '.join(chosen)}); the other unique keys stay unique=")
        if chosen is not None:
            d.surrogate_id, d.natural_key = True, tuple(chosen)
        else:
            d.natural_key = ("id",)
            d.notes.append("only a generated id identifies a row: it is declared as a plain column that writers "
                           "must send, and ingest upserts on it. Choose a natural key with --natural-key "
                           f"{table.name}=col1,col2 to have depot generate ids and upsert on that key")
    elif pk is not None:
        if chosen is not None and chosen != pk.columns:
            d.notes.append(f"--natural-key ignored: the primary key ({', '.join(pk.columns)}) is the natural key")
        d.natural_key = pk.columns
    elif chosen is not None:
        d.natural_key = tuple(chosen)
    else:
        not_null = [c for c in candidates if not any(table.column(n).nullable for n in c)]
        if not not_null:
            _refuse(d, "no primary key and no unique key of NOT NULL columns; add one, or name one with "
                       f"--natural-key {table.name}=col1,col2")
            return None
        d.natural_key = not_null[0]
    if pk is None:
        d.primary_from = next((u.name for u in uniques if u.columns == d.natural_key), None)
    d.unique = [c for c in dict.fromkeys(candidates) if c != d.natural_key and c != ("id",)]
    return d.natural_key


def _is_generated_id(column: FoundColumn) -> bool:
    return column.type in ("integer", "bigint") and (column.identity != "" or column.serial)


def _declare_column(found: FoundColumn, table: FoundTable) -> DeclaredColumn:
    mapped = map_type(found.type)
    if found.enum is not None:  # an enum is text that takes one of its labels: OneOf says that
        mapped = _Type(ColumnType.TEXT, change=f"enum {found.type} becomes text with a CHECK of its labels")
    if not _python_name(found.name):
        return DeclaredColumn(Column(found.name, None), [  # type: ignore[arg-type]
            "not mapped: the name is not a Python identifier; depot neither reads nor writes it"
            + _required_warning(found)], found.type)
    if mapped is None:
        return DeclaredColumn(Column(found.name, None), [  # type: ignore[arg-type]
            f"not mapped: type {found.type}; depot neither reads nor writes it" + _required_warning(found)],
            found.type)
    notes = []
    if mapped.change:
        notes.append(f"the adoption migration changes its type: {mapped.change}")
    default = MISSING
    if found.default is not None and not (found.serial and found.name == "id"):
        default = map_default(found.default, mapped.type)
        if default is MISSING:
            notes.append(f"not mapped: default {found.default} (kept in the database; depot's writers must send "
                         "a value" + ("" if found.nullable else ", or null is refused") + ")")
    if found.nullable and default is MISSING:
        default = None
    column = Column(found.name, mapped.type, nullable=found.nullable, default=default, max_length=mapped.max_length,
                    precision=mapped.precision, scale=mapped.scale, item=mapped.item, description=found.comment,
                    choices=found.enum)
    return DeclaredColumn(column, notes, found.type)


def _required_warning(found: FoundColumn) -> str:
    if not found.nullable and found.default is None and found.identity == "":
        return " (it is NOT NULL without a default: inserts through depot will fail until it has one)"
    return ""


def _map_table_check(check: FoundConstraint, d: Declaration) -> None:
    mapped = map_check(check.definition)
    by_name = {c.column.name: c for c in d.columns}
    if mapped is None or any(name not in by_name or not by_name[name].mapped for name, _, _ in mapped):
        where = by_name.get(check.columns[0]) if len(check.columns) == 1 else None
        note = f"not mapped: {check.name} {check.definition} (kept in the database; a row it refuses fails its batch)"
        (where.notes if where is not None else d.notes).append(note)
        return
    for name, marker, _ in mapped:
        target = by_name[name]
        column = target.column
        if marker in ("ge", "le", "gt", "lt") and column.type not in (ColumnType.INTEGER, ColumnType.BIGINT,
                                                                       ColumnType.FLOAT, ColumnType.NUMERIC):
            target.notes.append(f"not mapped: {check.name} {check.definition} (a bound on a non-number column)")
            return
        if marker == "max_length" and (column.type is not ColumnType.TEXT):
            target.notes.append(f"not mapped: {check.name} {check.definition}")
            return
    for name, marker, value in mapped:
        target = by_name[name]
        current = getattr(target.column, marker)
        if marker == "max_length" and current is not None:
            value = min(current, value)
        elif current is not None and current != value:
            target.notes.append(f"not mapped: {check.name} {check.definition} (a second bound of one kind)")
            return
        target.column = _replace(target.column, **{marker: value})
        if marker == "max_length":
            target.notes.append(f"the adoption migration makes it varchar({value}) in place of {check.name}")
    d.checks[check.name] = ",".join(name for name, _, _ in mapped)


def _replace(column: Column, **changes: object) -> Column:
    return dataclasses.replace(column, **changes)


def _dependency_order(found: list[FoundTable], declarations: dict[str, Declaration]
                      ) -> tuple[list[Declaration], list[str]]:
    """Tables after the tables they reference (Kahn's algorithm, by name for a stable file); a cycle's
    tables come last, in name order."""
    needs = {t.name: {fk.target for fk in t.of_kind("f") if fk.target != t.name and fk.target in declarations}
             for t in found if t.name in declarations}
    ordered: list[str] = []
    while True:
        ready = sorted(n for n, deps in needs.items() if n not in ordered and deps <= set(ordered))
        if not ready:
            break
        ordered.extend(ready)
    cycle = sorted(set(needs) - set(ordered))
    return [declarations[n] for n in [*ordered, *cycle]], cycle


def _attach_references(d: Declaration, table: FoundTable, declarations: dict[str, Declaration],
                       declared: set[str]) -> None:
    """Foreign keys become References (one column) or ForeignKey (several), when their target is declared."""
    by_name = {c.column.name: c for c in d.declared}
    for fk in table.of_kind("f"):
        target = declarations.get(fk.target or "")
        reachable = target is not None and target.adopted and (fk.target in declared or fk.target == d.name)
        columns_ok = all(c in by_name for c in fk.columns) and (target is None or all(
            c in target.column_names or (c == "id" and target.surrogate_id) for c in fk.target_columns))
        options = re.search(r"\) (ON .*|DEFERRABLE.*|MATCH .*)$", fk.definition)
        if not reachable or not columns_ok:
            d.notes.append(f"not mapped: foreign key {fk.name} {fk.definition} (its target is not adopted, or "
                           "comes later in a cycle); kept in the database, not embeddable")
            continue
        if options:
            d.notes.append(f"foreign key {fk.name}: {options[1]} kept in the database; depot does not declare it")
        assert target is not None
        if len(fk.columns) == 1:
            column = by_name[fk.columns[0]]
            named = None if fk.target_columns == target.natural_key else fk.target_columns[0]
            column.column = _replace(column.column, reference=References(fk.target, named))
        else:
            d.references.append(ForeignKey(fk.columns, fk.target or "", fk.target_columns))


def _group(d: Declaration, table: FoundTable) -> str:
    """primary: references nothing; secondary: references other tables; instances: a surrogate id and
    a timestamp (time-stamped observations). catalog.py's header says the same."""
    timed = any(c.column.type in (ColumnType.TIMESTAMPTZ, ColumnType.TIMESTAMP) for c in d.declared)
    if d.surrogate_id and timed:
        return "instances"
    references = [c for c in d.declared if c.column.reference and c.column.reference.table != d.name] + [
        fk for fk in d.references if fk.target != d.name]
    return "secondary" if references else "primary"


# --- the first revision of the catalog's history -----------------------------------------------------


def adoption_steps(declaration: Declaration, found: FoundTable, table: sa.Table) -> list[ops.MigrateOperation | str]:
    """The operations that turn `found` into `table` (what depot derives from the declaration), keeping every row.

    Renames where the database already has a key, reference or index under another name; the
    system columns with their defaults (which fill the rows already there); checks rebuilt from the
    declaration in place of the ones they were mapped from; types changed where the declaration's
    differs (collation "C" for text, as depot sorts)."""
    steps: list[ops.MigrateOperation | str] = []
    name = found.name

    def sql(statement: str) -> None:
        steps.append(ops.ExecuteSQLOp(statement))

    existing_columns = {c.name: c for c in found.columns}
    # Checks first: a CHECK mapped to a marker is rebuilt below, and its old form may not survive a type change.
    for check in declaration.checks:
        sql(f"ALTER TABLE {_q(name)} DROP CONSTRAINT {_q(check)}")
    # The surrogate id: depot's is a bigint identity; a serial becomes one, its sequence's position kept.
    if declaration.surrogate_id:
        column = existing_columns["id"]
        if column.type != "bigint":
            sql(f"ALTER TABLE {_q(name)} ALTER COLUMN id TYPE bigint")
        if column.identity == "":  # the serial's own sequence goes; the identity's starts after the last id
            sql(f"ALTER TABLE {_q(name)} ALTER COLUMN id DROP DEFAULT")
            sql(f"DROP SEQUENCE IF EXISTS {_sequence_name(found)}")
            sql(f"ALTER TABLE {_q(name)} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
            sql(f"SELECT setval(pg_get_serial_sequence('{_q(name)}', 'id'), "
                f"coalesce((SELECT max(id) FROM {_q(name)}), 0) + 1, false)")
        elif column.identity == "a":
            sql(f"ALTER TABLE {_q(name)} ALTER COLUMN id SET GENERATED BY DEFAULT")
    for declared in declaration.declared:
        column, before = declared.column, existing_columns[declared.column.name]
        wanted = type_sql(column)
        collation = "C" if is_text(column) else None
        if before.type != wanted or (collation is not None and before.collation != collation):
            compiled = table.c[column.name].type.compile(dialect=sa.dialects.postgresql.dialect())
            # A default of the old type (an enum's 'x'::mood) may not cast by itself: off, then depot's own.
            if before.default is not None and not before.serial:
                sql(f"ALTER TABLE {_q(name)} ALTER COLUMN {_q(column.name)} DROP DEFAULT")
            sql(f"ALTER TABLE {_q(name)} ALTER COLUMN {_q(column.name)} TYPE {compiled} "
                f"USING {_q(column.name)}::{wanted}")
            derived = table.c[column.name].server_default
            if before.default is not None and not before.serial:  # an unmapped default stays, as said
                restored = derived.arg.text if derived is not None else before.default  # type: ignore[attr-defined]
                sql(f"ALTER TABLE {_q(name)} ALTER COLUMN {_q(column.name)} SET DEFAULT {restored}")
    # Keys: renamed to the names depot derives (tables.py), or made.
    pk_name = str(table.primary_key.name)
    derived_unique = {tuple(c.name for c in u.columns): str(u.name) for u in table.constraints
                      if isinstance(u, sa.UniqueConstraint)}
    if found.primary_key is None:
        if declaration.primary_from:
            sql(f"ALTER TABLE {_q(name)} DROP CONSTRAINT {_q(declaration.primary_from)}")
        # Written here: Alembic's autogenerate has no rendering of a primary key added alone.
        steps.append(f"op.create_primary_key({pk_name!r}, {name!r}, {list(declaration.natural_key)!r})")
    elif found.primary_key.name != pk_name:
        sql(f"ALTER TABLE {_q(name)} RENAME CONSTRAINT {_q(found.primary_key.name)} TO {_q(pk_name)}")
    unique_sets = ([declaration.natural_key] if declaration.surrogate_id else []) + list(declaration.unique)
    for columns in unique_sets:
        wanted_name = derived_unique[tuple(columns)]
        constraint = next((u for u in found.of_kind("u") if u.columns == tuple(columns)), None)
        index = next((i for i in found.indexes if i.unique and i.plain and not i.constraint
                      and i.columns == tuple(columns)), None)
        if constraint is not None:
            if constraint.name != wanted_name:
                sql(f"ALTER TABLE {_q(name)} RENAME CONSTRAINT {_q(constraint.name)} TO {_q(wanted_name)}")
        elif index is not None:  # a unique index, not a constraint: the constraint takes the index over
            sql(f"ALTER TABLE {_q(name)} ADD CONSTRAINT {_q(wanted_name)} UNIQUE USING INDEX {_q(index.name)}")
        else:
            steps.append(ops.CreateUniqueConstraintOp(wanted_name, name, list(columns)))
    for fk in found.of_kind("f"):
        derived = next((c for c in table.foreign_key_constraints
                        if tuple(c.column_keys) == fk.columns and c.referred_table.name == fk.target), None)
        if derived is not None and derived.name != fk.name:
            sql(f"ALTER TABLE {_q(name)} RENAME CONSTRAINT {_q(fk.name)} TO {_q(str(derived.name))}")
    # depot's system columns; their defaults fill the rows already there (now() once, for all of them).
    for column in table.columns:
        if column.name not in existing_columns and not (column.name == "id" and declaration.surrogate_id):
            steps.append(ops.AddColumnOp.from_column_and_tablename(None, name, column._copy()))
    for constraint in table.foreign_key_constraints:
        if set(constraint.column_keys) - set(existing_columns):
            steps.append(ops.CreateForeignKeyOp.from_constraint(constraint))
    kept = {c.name for c in found.of_kind("c")} - set(declaration.checks)
    for constraint in sorted((c for c in table.constraints if isinstance(c, sa.CheckConstraint)),
                             key=lambda c: str(c.name)):
        if str(constraint.name) not in kept:
            # Written here, not by Alembic: its op.create_check_constraint() loses the escapes of colons
            # (tables.py) that text() needs, and `(?:` would reach PostgreSQL as a bind parameter.
            text = constraint.sqltext.text  # type: ignore[attr-defined]
            # op.f(): the name is final; without it the naming convention would prefix ck_{table}_ once more.
            steps.append(f"op.create_check_constraint(op.f({str(constraint.name)!r}), {name!r}, sa.text({text!r}))")
    for index in sorted(table.indexes, key=lambda i: str(i.name)):
        columns = tuple(c.name for c in index.columns)
        same = next((i for i in found.indexes if i.plain and not i.unique and not i.constraint
                     and i.columns == columns), None)
        if same is None:
            steps.append(ops.CreateIndexOp.from_index(index))
        elif same.name != index.name:
            sql(f"ALTER INDEX {_q(same.name)} RENAME TO {_q(str(index.name))}")
    return steps


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sequence_name(found: FoundTable) -> str:
    default = found.column("id").default or ""
    m = re.search(r"nextval\('(.+?)'::regclass\)", default)
    return m[1] if m else f"{found.name}_id_seq"


def render_steps(steps: list[ops.MigrateOperation | str]) -> str:
    """Alembic's own rendering of the operations (with depot's hook for CHECKs that hold colons); a str
    is a line of Python written as it is."""
    out: list[str] = []
    run: list[ops.MigrateOperation] = []
    for step in [*steps, None]:
        if isinstance(step, ops.MigrateOperation):
            run.append(step)
            continue
        if run:
            # A PostgreSQL context, so types render as in a migration: postgresql.JSONB(astext_type=sa.Text()).
            code = render_python_code(ops.UpgradeOps(ops=run), render_item=render_item,
                                      migration_context=MigrationContext.configure(dialect_name="postgresql"))
            # Alembic indents every line but its opening comment for a def's body, as here.
            out += [line for line in code.splitlines() if line.strip() and not line.lstrip().startswith("# ###")]
            run = []
        if step is not None:
            out.append("    " + step)
    return "\n".join(out or ["    pass"]) + "\n"


def creation_steps(tables: list[sa.Table]) -> list[ops.MigrateOperation | str]:
    """The same tables made from nothing: what a new database (or makemigration's scratch one) gets."""
    steps: list[ops.MigrateOperation | str] = []
    for table in tables:
        steps.append(ops.CreateTableOp.from_table(table))
        steps.extend(ops.CreateIndexOp.from_index(i) for i in sorted(table.indexes, key=lambda i: str(i.name)))
    return steps


MIGRATION_TEMPLATE = '''"""{message}

Revision ID: {revision}
Revises:
Create Date: {created}

Written by `depot adopt`. On the database it was adopted from (its tables exist) the upgrade only
ALTERs them: depot's system columns, with values for the rows already there, and constraint names as
depot derives them. On an empty database (a new deployment, `depot makemigration`'s scratch one) it
creates the tables as catalog.py declares them. It never creates a table that exists.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql  # noqa: F401 - the rendered types may name it

revision: str = {revision!r}
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = ('catalog',)
depends_on: str | Sequence[str] | None = {depends_on!r}

ADOPTED = {adopted!r}


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if existing.isdisjoint(ADOPTED):
        elsewhere = op.get_bind().execute(sa.text(
            "SELECT DISTINCT schemaname FROM pg_tables WHERE tablename = ANY(:names) AND schemaname <> current_schema()"
        ), {{"names": list(ADOPTED)}}).scalars().all()
        if elsewhere:  # the adopted tables, off the search_path: creating empty ones beside them would hide them
            raise RuntimeError(f"the adopted tables are in schema {{', '.join(elsewhere)}}, not in "
                               f"{{op.get_bind().exec_driver_sql('SELECT current_schema()').scalar()}}: put that "
                               "schema first on the search_path (ALTER DATABASE ... SET search_path = ...)")
        create()
        return
    missing = [t for t in ADOPTED if t not in existing]
    if missing:
        raise RuntimeError(f"the adopted tables {{missing}} are missing: this database is neither the adopted "
                           "one nor an empty one")
    adopt()


def adopt() -> None:
{adopt}

def create() -> None:
{create}

def downgrade() -> None:
    raise NotImplementedError("an adoption is not undone by a migration: restore the backup taken before it")
'''


def adoption_migration(adoption: Adoption, found: list[FoundTable], metadata: sa.MetaData, *, revision: str,
                       depends_on: str, message: str, drop_views: Sequence[str] = (),
                       create_views: Sequence[str] = ()) -> str:
    """The text of the catalog history's first revision (see MIGRATION_TEMPLATE). `drop_views` and
    `create_views` (adopt_views.py) are lines that set the schema's views aside while the tables change
    and make them again after, as they were; on an empty database, after the tables are made."""
    by_name = {t.name: t for t in found}
    adopt_code = [render_steps(["# the views, set aside while their tables change", *drop_views])] if drop_views else []
    for d in adoption.adopted:
        steps = adoption_steps(d, by_name[d.name], metadata.tables[d.name])
        adopt_code.append(render_steps([f"# {d.name}", *steps]))
    views = ["# the views, made again as they were", *create_views] if create_views else []
    adopt_code += [render_steps(views)] if views else []
    tables = [metadata.tables[d.name] for d in adoption.adopted]
    return MIGRATION_TEMPLATE.format(
        message=message, revision=revision, created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        depends_on=depends_on, adopted=tuple(d.name for d in adoption.adopted),
        adopt="".join(adopt_code) or "    pass\n", create=render_steps([*creation_steps(tables), *views]),
    )
