"""`depot adopt` for views and materialized views: read them, find where each column comes from, and
declare them (Catalog.view) with the references that lineage gives.

A view column "comes straight from" a table's column when PostgreSQL's parse tree of the view (the
`_RETURN` rule in pg_rewrite) gives it a `resorigtbl`/`resorigcol`: a plain column reference, through
joins and renames, not an expression. PostgREST finds its view relationships the same way. A view
over a view is followed down to the tables. From there, a view column that carries a table's whole
key, or a foreign key's columns, gets that reference; nothing else does, and an embed across it is
refused naming the view.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa

from adapters.postgres.adopt import Declaration, DeclaredColumn, map_type
from adapters.postgres.tables import _escape_colons
from domain.schema import Column, ColumnType, ForeignKey, References

# --- what the database has -----------------------------------------------------------------------


@dataclass(frozen=True)
class FoundViewColumn:
    name: str
    type: str  # format_type()
    comment: str | None


@dataclass(frozen=True)
class FoundView:
    name: str
    materialized: bool
    columns: tuple[FoundViewColumn, ...]
    definition: str  # pg_get_viewdef(): the SELECT, as PostgreSQL restates it
    comment: str | None
    populated: bool
    options: tuple[str, ...]  # reloptions: security_barrier=true, check_option=local, ...
    lineage: dict[str, tuple[str, str]]  # view column -> (relation, column) it is a plain reference to
    unique_indexes: tuple[tuple[str, ...], ...]  # a materialized view's unique indexes on plain columns
    indexes: tuple[str, ...]  # a materialized view's index definitions (pg_get_indexdef), to make again
    reads: tuple[str, ...]  # the views and materialized views of the schema it reads from

    @property
    def kind(self) -> str:
        return "MATERIALIZED VIEW" if self.materialized else "VIEW"


_VIEWS = """
SELECT c.oid, c.relname, c.relkind = 'm', pg_get_viewdef(c.oid), obj_description(c.oid, 'pg_class'),
       c.relispopulated, coalesce(c.reloptions, '{}'),
       (SELECT r.ev_action::text FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.rulename = '_RETURN'),
       ARRAY(SELECT DISTINCT t.relname FROM pg_rewrite r
             JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass
             JOIN pg_class t ON t.oid = d.refobjid AND t.relkind IN ('v', 'm') AND t.oid <> c.oid
             AND t.relnamespace = c.relnamespace
             WHERE r.ev_class = c.oid ORDER BY 1),
       ARRAY(SELECT pg_get_indexdef(x.indexrelid) FROM pg_index x WHERE x.indrelid = c.oid ORDER BY x.indexrelid),
       ARRAY(SELECT array_to_string(ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY u(n, o)
                    JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = u.n ORDER BY u.o), ',')
             FROM pg_index x WHERE x.indrelid = c.oid AND x.indisunique AND x.indpred IS NULL
             AND x.indexprs IS NULL ORDER BY x.indexrelid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND c.relkind IN ('v', 'm')
ORDER BY c.relname
"""

_VIEW_COLUMNS = """
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum)
FROM pg_attribute a WHERE a.attrelid = ANY(:oids) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

_ORIGINS = """
SELECT c.oid, a.attnum, c.relname, a.attname FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
WHERE c.oid = ANY(:oids) AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = :schema)
"""


def inspect_views(connection: sa.Connection, schema: str = "public") -> list[FoundView]:
    """Every view and materialized view of `schema`, with its columns and each column's lineage,
    followed through views of the schema down to its tables."""
    params = {"schema": schema}
    rows = connection.execute(sa.text(_VIEWS), params).all()
    if not rows:
        return []
    columns: dict[int, list[FoundViewColumn]] = {}
    for oid, name, type_, comment in connection.execute(sa.text(_VIEW_COLUMNS), {"oids": [r[0] for r in rows]}):
        columns.setdefault(oid, []).append(FoundViewColumn(name, type_, comment))
    origins = {oid: target_entries(action or "") for oid, *_, action, _, _, _ in rows}
    oids = sorted({o for entries in origins.values() for _, o, _ in entries if o})
    names = {(oid, attnum): (relation, column) for oid, attnum, relation, column in connection.execute(
        sa.text(_ORIGINS), {"oids": oids, "schema": schema})} if oids else {}
    direct = {name: {column: names[o, n] for column, o, n in origins[oid] if (o, n) in names}
              for oid, name, *_ in rows}
    found = []
    for oid, name, materialized, definition, comment, populated, options, _, reads, indexes, uniques in rows:
        found.append(FoundView(
            name, materialized, tuple(columns.get(oid, ())), definition.strip().rstrip(";"), comment, populated,
            tuple(options), _follow(direct, name), tuple(tuple(u.split(",")) for u in uniques if u),
            tuple(indexes), tuple(reads)))
    return found


def _follow(direct: dict[str, dict[str, tuple[str, str]]], view: str, seen: frozenset = frozenset()
            ) -> dict[str, tuple[str, str]]:
    """The view's lineage with every step through another view of the schema taken down to a table."""
    lineage = {}
    for column, (relation, origin) in direct[view].items():
        while relation in direct and relation not in seen | {view}:
            step = _follow(direct, relation, seen | {view}).get(origin)
            if step is None:
                break
            relation, origin = step
        if relation not in direct:
            lineage[column] = (relation, origin)
    return lineage


def target_entries(action: str) -> list[tuple[str, int, int]]:
    """(column name, resorigtbl, resorigcol) of each output column of the view's query, from the text of
    its rewrite rule (nodeToString). Only the outermost query's target list counts: subqueries in the
    FROM, WHERE or select list have target lists of their own, nested deeper."""
    entries: list[tuple[str, int, int]] = []
    depth, in_targets, targets_depth = 0, False, 0
    fields: dict[str, str] = {}
    pending: str | None = None  # a field of a target entry whose value is the next token
    for token, escaped in _tokens(action):
        structural = not escaped and token in ("{", "(", "}", ")")
        if pending is not None and not structural:
            fields[pending] = token
        pending = None
        if not escaped and token in ("{", "("):
            depth += 1
            continue
        if not escaped and token in ("}", ")"):
            depth -= 1
            if in_targets and depth == targets_depth + 1 and token == "}" and fields:
                if fields.get("resjunk") == "false":
                    entries.append((fields["resname"], int(fields["resorigtbl"]), int(fields["resorigcol"])))
                fields = {}
            if in_targets and depth == targets_depth:
                return entries
            continue
        if depth == 2 and token == ":targetList":  # inside the outermost ( { QUERY ... } )
            in_targets, targets_depth = True, depth
            continue
        if in_targets and depth == targets_depth + 2 and token.startswith(":") and not escaped:
            pending = token[1:]
    return entries


def _tokens(text: str) -> Iterator[tuple[str, bool]]:
    """nodeToString's tokens: braces and parentheses alone, else runs of non-space characters, where a
    backslash takes the next character as it is. (token, whether it held an escape)."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "{}()":
            yield ch, False
            i += 1
            continue
        out, escaped = [], False
        while i < n and not text[i].isspace() and text[i] not in "{}()":
            if text[i] == "\\" and i + 1 < n:
                out.append(text[i + 1])
                escaped = True
                i += 2
                continue
            out.append(text[i])
            i += 1
        yield "".join(out), escaped


# --- what the declaration language can hold -------------------------------------------------------


@dataclass
class ViewDeclaration:
    """One view as catalog.py will declare it (@CATALOG.view)."""

    name: str
    materialized: bool
    key: tuple[str, ...] = ()
    columns: list[DeclaredColumn] = field(default_factory=list)
    references: list[ForeignKey] = field(default_factory=list)  # composite ones, and a second on one column
    description: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def declared(self) -> list[DeclaredColumn]:
        return [c for c in self.columns if c.mapped]


_UNKEYABLE = (ColumnType.JSON, ColumnType.ARRAY)


def declare_views(views: list[FoundView], tables: list[Declaration]) -> list[ViewDeclaration]:
    """Each view with its columns, its key, and the references its lineage gives, to the adopted tables."""
    adopted = {d.name: d for d in tables if d.adopted}
    return [_declare_view(view, adopted) for view in _in_dependency_order(views)]


def _declare_view(view: FoundView, tables: dict[str, Declaration]) -> ViewDeclaration:
    d = ViewDeclaration(view.name, view.materialized, description=view.comment)
    for column in view.columns:
        mapped = map_type(column.type)
        if mapped is None or not re.fullmatch(r"[a-z_][a-z0-9_]*", column.name):
            d.columns.append(DeclaredColumn(Column(column.name, None), [  # type: ignore[arg-type]
                f"not mapped: {'type ' + column.type if mapped is None else 'the name'}; depot does not read it"],
                column.type))
            continue
        # A view's columns may all be null as far as PostgreSQL says (it keeps no NOT NULL for them).
        d.columns.append(DeclaredColumn(Column(
            column.name, mapped.type, nullable=True, max_length=mapped.max_length,
            precision=mapped.precision, scale=mapped.scale, item=mapped.item, description=column.comment),
            [], column.type))
    names = {c.column.name for c in d.declared}
    from_table = {v: origin for v, origin in view.lineage.items() if v in names and origin[0] in tables}
    by_origin: dict[tuple[str, str], str] = {}
    for column, origin in from_table.items():
        by_origin.setdefault(origin, column)
    references: list[ForeignKey] = []
    projected_keys: list[tuple[str, ...]] = []
    for table in tables.values():
        key = ("id",) if table.surrogate_id else table.natural_key
        if all((table.name, c) in by_origin for c in key):
            columns = tuple(by_origin[table.name, c] for c in key)
            references.append(ForeignKey(columns, table.name, key, soft=True))
            projected_keys.append(columns)
        for fk in _foreign_keys(table, tables):
            if all((table.name, c) in by_origin for c in fk.columns) and fk.target in tables:
                references.append(ForeignKey(tuple(by_origin[table.name, c] for c in fk.columns), fk.target,
                                             fk.target_columns, soft=True))
    by_name = {c.column.name: c for c in d.declared}
    for fk in dict.fromkeys(references):
        column = by_name[fk.columns[0]]
        if len(fk.columns) == 1 and column.column.reference is None:
            target_key = _key_of(tables[fk.target])
            named = None if fk.target_columns == target_key else fk.target_columns[0]
            column.column = _with(column.column, reference=References(fk.target, named, soft=True))
        else:
            d.references.append(fk)
    d.key = _view_key(view, d, projected_keys)
    unlinked = sorted(set(names) - {c for fk in references for c in fk.columns})
    if unlinked and len(unlinked) < len(names):
        d.notes.append(f"no embed through {', '.join(unlinked)}: not straight from a table's key or foreign key")
    elif unlinked:
        d.notes.append("no embeds: none of its columns comes straight from a table's key or foreign key")
    return d


def _view_key(view: FoundView, d: ViewDeclaration, projected_keys: list[tuple[str, ...]]) -> tuple[str, ...]:
    """A materialized view's unique index; else the keys of the tables it projects whole (together they
    tell a join's rows apart); else every column that can be compared, which orders the rows all the same."""
    names = [c.column.name for c in d.declared]
    for unique in view.unique_indexes:
        if set(unique) <= set(names):
            return unique
    if projected_keys:
        keyed = {c for columns in projected_keys for c in columns}
        key = tuple(c for c in names if c in keyed)  # in the view's column order
        d.notes.append(f"key=({', '.join(key)}): the key{'s' if len(projected_keys) > 1 else ''} of the tables it "
                       "projects; change it if its rows are told apart otherwise")
        return key
    comparable = tuple(c.column.name for c in d.declared if c.column.type not in _UNKEYABLE)
    d.notes.append("no column tells its rows apart for sure: key= is every column that can be ordered by, "
                   "for the order of pages; name the columns that do, if some do")
    return comparable


def _foreign_keys(table: Declaration, tables: dict[str, Declaration]) -> list[ForeignKey]:
    """The adopted table's references, their target columns filled in as Catalog.table resolves them."""
    single = []
    for c in table.declared:
        ref = c.column.reference
        if ref is not None and ref.table in tables:
            target = (ref.column,) if ref.column else _key_of(tables[ref.table])
            single.append(ForeignKey((c.column.name,), ref.table, target))
    return single + list(table.references)


def _key_of(table: Declaration) -> tuple[str, ...]:
    """What References(table) without a column points at: the natural key."""
    return table.natural_key


def _with(column: Column, **changes: object) -> Column:
    import dataclasses

    return dataclasses.replace(column, **changes)


def _in_dependency_order(views: list[FoundView]) -> list[FoundView]:
    """Views after the views they read from, so that catalog.py and the migration can make them in order."""
    by_name = {v.name: v for v in views}
    ordered: list[str] = []
    while len(ordered) < len(views):
        ready = sorted(n for n, v in by_name.items() if n not in ordered and set(v.reads) <= set(ordered))
        if not ready:  # PostgreSQL has no cycles of views; this only guards the loop
            ready = sorted(set(by_name) - set(ordered))
        ordered.extend(ready)
    return [by_name[n] for n in ordered]


# --- the adoption migration: the views are kept as they are around the tables' changes --------------


def drop_views(views: list[FoundView]) -> list[str]:
    """Lines of the migration's adopt() before the tables change: PostgreSQL refuses to change a column
    type (text takes collation "C") under a view, so the views go first, the last made first."""
    return [_execute(f"DROP {v.kind} {_q(v.name)}") for v in reversed(_in_dependency_order(views))]


def create_views(views: list[FoundView]) -> list[str]:
    """The views made again as the database had them (definition, options, comments, a materialized
    view's indexes and whether it held data), after the tables changed; on an empty database, after the
    tables were made."""
    lines = []
    for v in _in_dependency_order(views):
        options = f" WITH ({', '.join(v.options)})" if v.options else ""
        if v.materialized:
            data = "WITH DATA" if v.populated else "WITH NO DATA"
            lines.append(_execute(f"CREATE MATERIALIZED VIEW {_q(v.name)}{options} AS {v.definition} {data}"))
            lines += [_execute(index) for index in v.indexes]
        else:
            lines.append(_execute(f"CREATE VIEW {_q(v.name)}{options} AS {v.definition}"))
        if v.comment:
            lines.append(_execute(f"COMMENT ON {v.kind} {_q(v.name)} IS {_literal(v.comment)}"))
        for c in v.columns:
            if c.comment:
                lines.append(_execute(f"COMMENT ON COLUMN {_q(v.name)}.{_q(c.name)} IS {_literal(c.comment)}"))
    return lines


def _execute(sql: str) -> str:
    # text() reads `:name` as a bind parameter: a definition's `'a:b'` keeps its colon escaped.
    return f"op.execute(sa.text({_escape_colons(sql)!r}))"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
