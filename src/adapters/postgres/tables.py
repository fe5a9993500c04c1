"""SQLAlchemy Core tables derived from the catalog: types, keys, natural keys, references, checks."""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.compiler import BIND_PARAMS, BIND_PARAMS_ESC
from sqlalchemy.sql.elements import conv

from domain.schema import MISSING, Catalog, Column, ColumnType, Table, search_column

# Keys and references are named by the domain (Table.unique_constraint_name, ForeignKey.constraint_name)
# so the memory adapter reports the same names; the rest by convention.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


def sql_type(column: Column) -> sa.types.TypeEngine:
    match column.type:
        case ColumnType.TEXT if column.max_length is not None:
            # varchar(n) holds the bound in the type, where a reader of the schema (and `depot adopt`) sees it.
            return sa.String(column.max_length, collation="C")
        case ColumnType.TEXT:
            # Byte order, so PostgreSQL sorts text as Python (and the memory adapter) does.
            return sa.Text(collation="C")
        case ColumnType.INTEGER:
            return sa.Integer()
        case ColumnType.BIGINT:
            return sa.BigInteger()
        case ColumnType.FLOAT:
            return postgresql.DOUBLE_PRECISION()
        case ColumnType.NUMERIC:
            return sa.Numeric(column.precision, column.scale, asdecimal=True)
        case ColumnType.BOOLEAN:
            return sa.Boolean()
        case ColumnType.DATE:
            return sa.Date()
        case ColumnType.TIMESTAMPTZ:
            return sa.DateTime(timezone=True)
        case ColumnType.TIMESTAMP:
            return sa.DateTime(timezone=False)
        case ColumnType.UUID:
            return sa.Uuid(as_uuid=True)
        case ColumnType.JSON:
            return postgresql.JSONB(none_as_null=True)  # None is SQL null, as the COPY path and memory write it
        case ColumnType.ARRAY:
            return postgresql.ARRAY(sql_type(column.item_column), dimensions=1)
    raise TypeError(column.type)  # pragma: no cover


def _literal(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _escape_colons(sql: str) -> str:
    """A CHECK's text is compiled like text(), where `:name` is a bind parameter: a pattern such
    as `(?:97[89])` would reach PostgreSQL as `(?NULL[89])`. Each colon SQLAlchemy would read as a
    bind parameter gets its backslash escape, and each `\\:` already there a second backslash, so
    the compiled text is the one written. SQLAlchemy's own two regexes say which colons those are.
    Alembic renders the escaped text into a migration as it is, which compiles the same way."""
    sql = BIND_PARAMS_ESC.sub(lambda m: "\\" + m.group(0), sql)
    return BIND_PARAMS.sub(lambda m: "\\" + m.group(0), sql)


def render_item(type_: str, obj: object, autogen_context: Any) -> str | Literal[False]:
    """Alembic's `render_item` hook: a CHECK whose text holds escaped colons is written into the
    migration as that escaped text. Alembic's own rendering compiles the text first, which removes
    the escapes, and the migration would then send `(?NULL[89]...` when it runs. Everything else
    renders as Alembic renders it (False)."""
    if type_ != "check" or not isinstance(obj, sa.CheckConstraint):
        return False
    text = getattr(obj.sqltext, "text", None)
    if text is None or "\\:" not in text:
        return False
    opts = autogen_context.opts
    name = obj.name
    if isinstance(name, conv):  # a name the naming convention made: op.f() keeps it as it is
        rendered_name = f"{opts['alembic_module_prefix']}f({str(name)!r})"
    else:
        rendered_name = repr(None if name is None else str(name))
    return f"{opts['sqlalchemy_module_prefix'] or ''}CheckConstraint({text!r}, name={rendered_name})"


def checks_of(column: Column) -> list[tuple[str, str]]:
    """(name, SQL) of each CHECK the declaration asks for on this column."""
    name = column.name
    quoted = f'"{name}"'
    checks = []
    if column.pattern is not None:
        checks.append((f"{name}_pattern", f"{quoted} ~ {_literal('^(?:' + column.pattern + ')$')}"))
    if column.choices is not None:
        checks.append((f"{name}_choice", f"{quoted} IN ({', '.join(_literal(c) for c in column.choices)})"))
    if column.ge is not None:
        checks.append((f"{name}_ge", f"{quoted} >= {column.ge!r}"))
    if column.le is not None:
        checks.append((f"{name}_le", f"{quoted} <= {column.le!r}"))
    if column.gt is not None:
        checks.append((f"{name}_gt", f"{quoted} > {column.gt!r}"))
    if column.lt is not None:
        checks.append((f"{name}_lt", f"{quoted} < {column.lt!r}"))
    # MaxLen is the type's own bound: varchar(n), see sql_type.
    return checks


def _server_default(column: Column) -> sa.TextClause | None:
    if column.system and column.type is ColumnType.TIMESTAMPTZ and not column.nullable:  # not deleted_at
        return sa.text("now()")
    if column.default is MISSING or column.default is None or column.generated:
        return None
    if isinstance(column.default, bool):
        return sa.text("true" if column.default else "false")
    return sa.text(_literal(column.default))


def _sa_column(column: Column) -> sa.Column:
    args: list = [column.name, sql_type(column)]
    if column.generated:
        args.append(sa.Identity(always=False))
    return sa.Column(
        *args,
        nullable=column.nullable,
        server_default=_server_default(column),
        comment=column.description,
    )


def _index_worthy(spec: Table, columns: tuple[str, ...]) -> bool:
    """Index reference columns that filters and embeds use, unless a key already starts with them."""
    if spec.column(columns[0]).system:  # provenance columns are written a lot and filtered rarely
        return False
    return not any(key[: len(columns)] == columns for key in (spec.primary_key, spec.natural_key))


def _sa_table(spec: Table, metadata: sa.MetaData, catalog: Catalog) -> sa.Table:
    items: list = [_sa_column(c) for c in spec.columns]
    items.append(sa.PrimaryKeyConstraint(*spec.primary_key, name=spec.unique_constraint_name(spec.primary_key)))
    if spec.natural_key != spec.primary_key and spec.unique_natural_key:
        items.append(sa.UniqueConstraint(*spec.natural_key, name=spec.unique_constraint_name(spec.natural_key)))
    elif spec.natural_key != spec.primary_key:  # a key that may repeat (append): indexed for its lookups
        items.append(sa.Index(None, *spec.natural_key))
    for columns in spec.unique:
        items.append(sa.UniqueConstraint(*columns, name=spec.unique_constraint_name(columns)))
    for fk in spec.hard_foreign_keys:
        items.append(sa.ForeignKeyConstraint(
            list(fk.columns), [f"{_key(catalog, fk.target)}.{c}" for c in fk.target_columns],
            name=fk.constraint_name(spec.name)))
    for fk in spec.foreign_keys:
        if _index_worthy(spec, fk.columns):
            items.append(sa.Index(None, *fk.columns))
    if spec.history_of is not None:
        items.extend(_history_indexes(spec))
    for column in spec.columns:
        for name, sql in checks_of(column):
            items.append(sa.CheckConstraint(_escape_colons(sql), name=name))
    for column in spec.columns:
        if column.searchable is not None:
            items.extend(_search_column(column))
    return _named(sa.Table(spec.name, metadata, *items, comment=spec.description, schema=_schema(catalog, spec.name)))


def _schema(catalog: Catalog, name: str) -> str | None:
    """depot's own tables are named with their schema; the catalog's go by the search_path, where
    the catalog's schema comes first (adapters/postgres/db.py make_engine)."""
    schema = catalog.schema_of(name)
    return schema if schema != catalog.schema else None


def _key(catalog: Catalog, name: str) -> str:
    schema = _schema(catalog, name)
    return f"{schema}.{name}" if schema else name


def _named(table: sa.Table) -> sa.Table:
    table.metadata.info.setdefault("by_name", {})[table.name] = table
    return table


def relation(metadata: sa.MetaData, name: str) -> sa.Table:
    """The table or view of the catalog named `name`, whatever schema it is in (metadata.tables
    keys depot's own tables by `schema.name`)."""
    return metadata.info["by_name"][name]


def system_table_sql(catalog: Catalog, name: str) -> str:
    """One of depot's own tables as raw SQL names it: always with its schema, so that no table of
    the user's, wherever it is on the search_path, can stand in for it."""
    return f'"{catalog.schema_of(name)}"."{name}"'


def _sa_view(spec: Table, metadata: sa.MetaData, catalog: Catalog) -> sa.Table:
    """A view as a relation to read from: its columns, and its declared key as the primary key that
    reads order and look rows up by (never DDL: nothing creates a view from this)."""
    return _named(sa.Table(spec.name, metadata, *[sa.Column(c.name, sql_type(c)) for c in spec.columns],
                           sa.PrimaryKeyConstraint(*spec.primary_key), info={"kind": spec.kind}))


def _search_column(column: Column) -> list:
    """A Searchable column's generated tsvector and its GIN index. The configuration is written into
    the expression (not the server's default), so the vector means what compile's to_tsquery does."""
    name = search_column(column.name)
    generated = sa.Computed(sa.text(f"to_tsvector('{column.searchable}'::regconfig, \"{column.name}\")"),
                            persisted=True)
    return [sa.Column(name, postgresql.TSVECTOR(), generated, nullable=True,
                      info={"search_of": column.name, "search_config": column.searchable}),
            sa.Index(None, name, postgresql_using="gin")]


@cache
def stored_columns(table: sa.Table) -> tuple[sa.Column, ...]:
    """The columns a row is read back with: the declared ones, without derived storage (a
    Searchable column's tsvector)."""
    return tuple(c for c in table.c if "search_of" not in c.info)


def _history_indexes(spec: Table) -> list[sa.Index]:
    """A history table is looked up by its row's key (a row's versions; the current version, which a
    change closes) and by batch (what a batch did; its revert). Two indexes and its primary key, each
    written on every change: the cost of history on an ingest, kept to these three."""
    by_batch = [sa.Index(None, spec.system.batch_id)] if spec.has_provenance else []
    return [sa.Index(None, *spec.row_key), *by_batch]


def next_id(table: str, column: str) -> str:
    """SQL drawing the next value of the sequence behind `column` of `table` (its SQL name, quoted), a serial
    or identity column. The sequence is looked up once per statement (a scalar subquery, an InitPlan):
    looked up per row, it took two thirds of a 5,000-row chunk's probe."""
    table_text, column_text = (name.replace("'", "''") for name in (table, column))
    return f"nextval((SELECT pg_get_serial_sequence('{table_text}', '{column_text}')::regclass))"


@cache
def build_metadata(catalog: Catalog) -> sa.MetaData:
    """The catalog's tables: what migrations create and compare. Views are not in it, so that no
    migration, create_all or drift comparison of tables can ever create, alter or drop one."""
    metadata = sa.MetaData(naming_convention=NAMING)
    for spec in catalog:
        if not spec.is_view:
            _sa_table(spec, metadata, catalog)
    return metadata


@cache
def relations_metadata(catalog: Catalog) -> sa.MetaData:
    """The catalog's tables and views: what reads select from and embed across."""
    metadata = sa.MetaData(naming_convention=NAMING)
    for spec in catalog:
        (_sa_view if spec.is_view else _sa_table)(spec, metadata, catalog)
    return metadata

