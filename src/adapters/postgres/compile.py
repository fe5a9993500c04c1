"""The query model as SQLAlchemy expressions. Every value becomes a bound parameter, except JSON path
keys and search configurations (plain words, checked by the parser), which SQLAlchemy renders as
quoted literals so that one path is one expression wherever the statement repeats it."""

from __future__ import annotations

import datetime as dt
from contextvars import ContextVar
from types import SimpleNamespace

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION, JSONB, REGCONFIG

from adapters.postgres.history import as_of_view
from adapters.postgres.tables import relation
from domain.query import (
    CAST_TYPES,
    Aggregate,
    BoolExpr,
    Cast,
    Condition,
    Fetch,
    JsonPath,
    Lookup,
    OrderBy,
    Ref,
    Related,
    Where,
    keyset_where,
    name_of,
)
from domain.schema import Catalog, ColumnType, Table, search_column

_TSQUERY = {"fts": "to_tsquery", "plfts": "plainto_tsquery", "phfts": "phraseto_tsquery",
            "wfts": "websearch_to_tsquery"}


def _json_path(table: sa.FromClause, path: JsonPath) -> sa.ColumnElement:
    """`col -> 'a' -> 0 ->> 'b'`, one arrow per step as PostgREST writes it (not `#>`, which would
    read an object key "0" for an index). Steps are rendered inline (the parser admits only plain
    keys), so the same path in SELECT, WHERE, GROUP BY and ORDER BY is one expression to PostgreSQL."""
    expression: sa.ColumnElement = table.c[path.column]
    for n, step in enumerate(path.steps):
        last_text = path.text and n == len(path.steps) - 1
        operand = sa.literal(step, sa.Integer if isinstance(step, int) else sa.Text, literal_execute=True)
        expression = expression.op("->>" if last_text else "->", return_type=sa.Text if last_text else JSONB)(operand)
    # ->> text compares byte by byte, as the text columns (COLLATE "C") and the memory adapter do
    return sa.collate(expression, "C") if path.text else expression


# The statement being built joins its lookups' tables (see fetch_statement); conditions and sort
# keys deep inside it then read the joined column instead of repeating a subquery.
_joined: ContextVar[dict[Lookup, sa.ColumnElement] | None] = ContextVar("joined_lookups", default=None)


def _lookup(table: sa.FromClause, lookup: Lookup) -> sa.ColumnElement:
    """The to-one embed's column: its joined table's column inside fetch_statement, else a scalar
    subquery (the reference's target is unique: one row at most)."""
    joined = _joined.get()
    if joined is not None and lookup in joined:
        return joined[lookup]
    target = _target(table, lookup.target)
    joined = [target.c[tc] == table.c[c] for c, tc in zip(lookup.columns, lookup.target_columns, strict=True)]
    if lookup.where is not None:
        joined.append(where_clause(target, lookup.where))
    return sa.select(target.c[lookup.column]).where(*joined).scalar_subquery()


def ref_expression(table: sa.FromClause, ref: Ref) -> sa.ColumnElement:
    if isinstance(ref, str):
        return table.c[ref]
    if isinstance(ref, JsonPath):
        return _json_path(table, ref)
    if isinstance(ref, Cast):
        return cast(ref_expression(table, ref.ref), ref.target)
    return _lookup(table, ref)


_CAST_SQL = {ColumnType.TEXT: sa.Text, ColumnType.INTEGER: sa.Integer, ColumnType.BIGINT: sa.BigInteger,
             ColumnType.NUMERIC: sa.Numeric, ColumnType.FLOAT: DOUBLE_PRECISION, ColumnType.BOOLEAN: sa.Boolean,
             ColumnType.DATE: sa.Date}


def cast(expression: sa.ColumnElement, target: ColumnType) -> sa.ColumnElement:
    """`::type`; text keeps byte order (COLLATE "C"), as every text column and the memory adapter do."""
    converted = sa.cast(expression, _CAST_SQL[target]())
    return sa.collate(converted, "C") if target is ColumnType.TEXT else converted


def _overlaps(column: sa.ColumnElement, values: list) -> sa.ColumnElement[bool]:
    """jsonb has no &&: whether the member is an array sharing an element with `values`; unknown when
    it is null, false when it is not an array."""
    element = sa.func.jsonb_array_elements(
        sa.case((sa.func.jsonb_typeof(column) == "array", column), else_=sa.literal([], JSONB))
    ).table_valued("value").alias("element")
    wanted = sa.func.jsonb_array_elements(sa.literal(values, JSONB)).table_valued("value").alias("wanted")
    shared = sa.exists(sa.select(1).select_from(element).join(wanted, element.c.value == wanted.c.value))
    return sa.case((column.is_(None), sa.null()), else_=shared)


def _vector(table: sa.FromClause, ref: Ref, config: str, regconfig: sa.ColumnElement,
            column: sa.ColumnElement) -> sa.ColumnElement:
    """The tsvector a search matches: a Searchable column's generated one (GIN-indexed) when the
    search is in its configuration, else to_tsvector computed on the fly (the same value)."""
    if isinstance(ref, str):
        name = search_column(ref)
        base = table if isinstance(table, sa.Table) else table.element  # type: ignore[attr-defined]
        generated = base.c.get(name)  # an alias's columns do not carry the info
        if generated is not None and generated.info.get("search_config") == config:
            return table.c[name]
    return sa.func.to_tsvector(regconfig, column)


def _array_containment(column: sa.ColumnElement, op: str, values: tuple) -> sa.ColumnElement[bool]:
    """A SQL array column's own @>, <@ and && against an array of its element type (an empty one
    included, which a bare '{}' would leave PostgreSQL to guess the type of)."""
    wanted = sa.cast(sa.literal(list(values), column.type), ARRAY(column.type.item_type.__class__()))
    symbol = {"cs": "@>", "cd": "<@", "ov": "&&"}[op]
    return column.op(symbol, return_type=sa.Boolean)(wanted)


def _condition(table: sa.FromClause, cond: Condition) -> sa.ColumnElement[bool]:
    column = ref_expression(table, cond.column)
    value = cond.value
    if isinstance(cond.column, JsonPath) and not cond.column.text and cond.op not in ("is", "cs", "cd", "ov"):
        # a JSON value against a jsonb member: bound as jsonb, so 1 equals 1.0 and "1" does not
        value = tuple(sa.literal(v, JSONB) for v in value) if cond.op == "in" else sa.literal(value, JSONB)
    if cond.op in ("cs", "cd", "ov") and isinstance(column.type, ARRAY):
        clause = _array_containment(column, cond.op, value)
        return sa.not_(clause) if cond.negated else clause
    match cond.op:
        case "eq":
            clause = column == value
        case "neq":
            clause = column != value
        case "gt":
            clause = column > value
        case "gte":
            clause = column >= value
        case "lt":
            clause = column < value
        case "lte":
            clause = column <= value
        case "like":
            clause = column.like(value)
        case "ilike":
            clause = column.ilike(value)
        case "match":
            clause = column.op("~", return_type=sa.Boolean)(sa.literal(value, sa.Text))
        case "imatch":
            clause = column.op("~*", return_type=sa.Boolean)(sa.literal(value, sa.Text))
        case "isdistinct":
            clause = column.is_distinct_from(value)
        case "cs":
            clause = column.op("@>", return_type=sa.Boolean)(sa.literal(value, JSONB))
        case "cd":
            clause = column.op("<@", return_type=sa.Boolean)(sa.literal(value, JSONB))
        case "ov":
            clause = _overlaps(column, value)
        case "in":
            clause = column.in_(list(value))
        case "is":
            clause = column.is_(sa.null() if value is None else sa.true() if value else sa.false())
        case "fts" | "plfts" | "phfts" | "wfts":
            config, text = value
            regconfig = sa.cast(sa.literal(config, literal_execute=True), REGCONFIG)
            query = getattr(sa.func, _TSQUERY[cond.op])(regconfig, sa.literal(text, sa.Text))
            clause = _vector(table, cond.column, config, regconfig, column).op("@@", return_type=sa.Boolean)(query)
        case _:  # pragma: no cover - the parser admits only known operators
            raise ValueError(cond.op)
    return sa.not_(clause) if cond.negated else clause


def _metadata(table: sa.FromClause) -> sa.MetaData:
    return table.metadata if isinstance(table, sa.Table) else table.element.metadata  # type: ignore[attr-defined]


# The instant a read looks at (Fetch.as_of) while fetch_statement builds it, with the catalog's
# metadata: every table it looks into (lookups, filters on embeds) is read as it stood then.
_as_of: ContextVar[tuple[Catalog, sa.MetaData, dt.datetime] | None] = ContextVar("as_of", default=None)


def _target(table: sa.FromClause, name: str) -> sa.FromClause:
    """A table a condition or a lookup reaches, aliased: as it stands now, or at the read's instant."""
    as_of = _as_of.get()
    if as_of is None:
        return relation(_metadata(table), name).alias()
    catalog, metadata, moment = as_of
    return as_of_view(metadata, catalog[name], moment).alias()


def _related(table: sa.FromClause, related: Related) -> sa.ColumnElement[bool]:
    """EXISTS over the embed's rows that point at (or are pointed at by) this row, correlated.

    The target is aliased, so an embed of a table into itself correlates with the outer row."""
    target = _target(table, related.target)
    joined = [target.c[tc] == table.c[c] for c, tc in zip(related.columns, related.target_columns, strict=True)]
    if related.where is not None:
        joined.append(where_clause(target, related.where))
    exists = sa.exists().where(*joined)
    return ~exists if related.negated else exists


def where_clause(table: sa.FromClause, where: Where) -> sa.ColumnElement[bool]:
    if isinstance(where, Condition):
        return _condition(table, where)
    if isinstance(where, Related):
        return _related(table, where)
    assert isinstance(where, BoolExpr)
    terms = [where_clause(table, t) for t in where.terms]
    if not terms:  # = ANY('{}') is false, = ALL('{}') true
        clause = sa.true() if where.op == "and" else sa.false()
    else:
        clause = sa.and_(*terms) if where.op == "and" else sa.or_(*terms)
    return sa.not_(clause) if where.negated else clause


def order_by(table: sa.Table, order: tuple[OrderBy, ...]) -> list[sa.ColumnElement]:
    items = []
    for item in order:
        column = ref_expression(table, item.column)
        expr = column.desc() if item.descending else column.asc()
        if item.nulls_first is not None:
            expr = expr.nulls_first() if item.nulls_first else expr.nulls_last()
        items.append(expr)
    return items


# --- reads: aggregates, keyset, one statement per Fetch ---------------------------------------------

_INTEGERS = (sa.Integer, sa.BigInteger)


def aggregate_expression(table: sa.Table, agg: Aggregate) -> sa.ColumnElement:
    """The SQL of one aggregate, typed so both adapters return the same values (see Aggregate), cast
    when the select says so."""
    expression = _aggregate_expression(table, agg)
    return expression if agg.cast is None else cast(expression, CAST_TYPES[agg.cast])


def _aggregate_expression(table: sa.Table, agg: Aggregate) -> sa.ColumnElement:
    if agg.column is None:
        return sa.func.count()
    column = table.c[agg.column]
    match agg.function:
        case "count":
            return sa.func.count(column)
        case "sum":
            if isinstance(column.type, _INTEGERS):  # bigint for integer, numeric for bigint: both whole
                return sa.cast(sa.func.sum(column), sa.Numeric(38, 0))
            return sa.func.sum(column)
        case "avg":
            # sum::float8 / count: correctly rounded like Python's int / int, instead of numeric's
            # own rounding to some scale; a JSON number either way.
            return sa.cast(sa.func.sum(column), DOUBLE_PRECISION) / sa.cast(sa.func.count(column), DOUBLE_PRECISION)
        case "min":
            return sa.func.min(column)
        case "max":
            return sa.func.max(column)
    raise ValueError(agg.function)  # pragma: no cover - the parser admits only known aggregates


def keyset_clause(table: sa.Table, spec: Table, order: tuple[OrderBy, ...], values: tuple) -> sa.ColumnElement[bool]:
    """Rows after the cursor. One direction over NOT NULL columns: a row-value comparison, which a
    btree on those columns answers as an index condition. Otherwise the expanded OR chain."""
    directions = {o.descending for o in order}
    if len(directions) == 1 and all(isinstance(o.column, str) and not spec.column(o.column).nullable for o in order):
        columns = [table.c[o.column] for o in order]  # type: ignore[index]
        bound = [sa.literal(v, type_=c.type) for c, v in zip(columns, values, strict=True)]
        if len(columns) == 1:
            return columns[0] < bound[0] if order[0].descending else columns[0] > bound[0]
        left, right = sa.tuple_(*columns), sa.tuple_(*bound)
        return left < right if order[0].descending else left > right
    nullable = {c.name for c in spec.columns if c.nullable}
    return where_clause(table, keyset_where(order, values, nullable))


def _join_lookups(table: sa.Table, fetch: Fetch) -> tuple[sa.FromClause, dict[Lookup, sa.ColumnElement]]:
    """FROM the table LEFT JOIN each to-one embed an order looks into, on its key and its own
    filters: one hash or merge join instead of a subquery per row for every place the value is used
    (select, order, and the cursor's OR chain). The target's key is unique: no row is repeated."""
    source: sa.FromClause = table
    joined: dict[Lookup, sa.ColumnElement] = {}
    for ref in [*fetch.columns, *(o.column for o in fetch.order)]:
        if not isinstance(ref, Lookup) or ref in joined:
            continue
        target = _target(table, ref.target)
        on = [target.c[tc] == table.c[c] for c, tc in zip(ref.columns, ref.target_columns, strict=True)]
        if ref.where is not None:
            on.append(where_clause(target, ref.where))
        source = source.outerjoin(target, sa.and_(*on))
        joined[ref] = target.c[ref.column]
    return source, joined


def fetch_statement(table: sa.Table, spec: Table, fetch: Fetch, *, paged: bool = True,
                    catalog: Catalog | None = None) -> sa.Select:
    """The statement of a Fetch on `table`; one with `as_of` reads it (and what it looks into) from
    the history tables, which needs the `catalog`."""
    as_of = None
    if fetch.as_of is not None:
        assert catalog is not None, "an as_of read needs the catalog"
        as_of = _as_of.set((catalog, table.metadata, fetch.as_of))
        table = as_of_view(table.metadata, spec, fetch.as_of)  # type: ignore[assignment]
    try:
        source, joined = _join_lookups(table, fetch)
        token = _joined.set(joined or None)
        try:
            return _fetch_statement(table, source, spec, fetch, paged=paged)
        finally:
            _joined.reset(token)
    finally:
        if as_of is not None:
            _as_of.reset(as_of)


def _fetch_statement(table: sa.Table, source: sa.FromClause, spec: Table, fetch: Fetch, *, paged: bool) -> sa.Select:
    labelled = {label: aggregate_expression(table, agg).label(label) for label, agg in fetch.aggregates}
    columns = [table.c[c] if isinstance(c, str) else ref_expression(table, c).label(name_of(c)) for c in fetch.columns]
    statement = sa.select(*columns, *labelled.values()).select_from(source)
    if fetch.where is not None:
        statement = statement.where(where_clause(table, fetch.where))
    if fetch.within is not None:
        columns, keys = fetch.within
        if len(columns) == 1:
            statement = statement.where(table.c[columns[0]].in_([k[0] for k in keys]))
        else:
            statement = statement.where(sa.tuple_(*(table.c[c] for c in columns)).in_(list(keys)))
    if (fetch.aggregates or fetch.distinct) and fetch.columns:
        statement = statement.group_by(*(ref_expression(table, c) for c in fetch.columns))
    if fetch.having is not None:
        # the conditions name aggregate labels: compiled against those aggregates' expressions
        aggregates = SimpleNamespace(c={label: expression.element for label, expression in labelled.items()})
        statement = statement.having(where_clause(aggregates, fetch.having))  # type: ignore[arg-type]
    if fetch.after is not None:
        if fetch.aggregates:
            raise ValueError("keyset pages are for plain reads")  # the parser refuses after= with aggregates
        statement = statement.where(keyset_clause(table, spec, fetch.order, fetch.after))
    if not paged:
        return statement
    if fetch.within is not None and (fetch.offset or fetch.limit is not None):
        return _paged_per_parent(table, statement, fetch, labelled)
    statement = statement.order_by(*_sort_keys(table, fetch.order, labelled, by_label=True))
    if fetch.offset:
        statement = statement.offset(fetch.offset)
    if fetch.limit is not None:
        statement = statement.limit(fetch.limit)
    return statement


def _sort_keys(table: sa.FromClause, order: tuple[OrderBy, ...], labelled: dict[str, sa.Label], *,
               by_label: bool, by_name: bool = False) -> list[sa.ColumnElement]:
    items = []
    for item in order:
        if item.column in labelled:
            # the output column's label, or (inside a window, where labels are not in scope) its expression
            expression = sa.literal_column(f'"{item.column}"') if by_label else labelled[item.column].element
        elif by_name:  # outside the subquery of a per-parent page, every order item is a named column
            expression = table.c[name_of(item.column)]
        else:
            expression = ref_expression(table, item.column)
        expression = expression.desc() if item.descending else expression.asc()
        if item.nulls_first is not None:
            expression = expression.nulls_first() if item.nulls_first else expression.nulls_last()
        items.append(expression)
    return items


def _paged_per_parent(table: sa.FromClause, statement: sa.Select, fetch: Fetch,
                      labelled: dict[str, sa.Label]) -> sa.Select:
    """An embed's `offset`/`limit` for each parent on its own: number the rows within each parent's
    key (in the fetch's order) and keep the slice, in one statement for all parents."""
    columns = fetch.within[0]  # type: ignore[index]
    number = sa.func.row_number().over(partition_by=[table.c[c] for c in columns],
                                       order_by=_sort_keys(table, fetch.order, labelled, by_label=False))
    inner = statement.add_columns(number.label("__n")).subquery()
    kept = [inner.c[c.name] for c in statement.selected_columns]
    outer = sa.select(*kept).where(inner.c["__n"] > fetch.offset)
    if fetch.limit is not None:
        outer = outer.where(inner.c["__n"] <= fetch.offset + fetch.limit)
    return outer.order_by(*_sort_keys(inner, fetch.order, {}, by_label=False, by_name=True))
