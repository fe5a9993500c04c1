"""The query model: what a reader asks for, as plain values that every adapter answers the same way.

Values in conditions are already typed by their column (the parser coerces them), so adapters
never see the client's text.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from domain.schema import ColumnType

if TYPE_CHECKING:
    from domain.schema import Table

OPERATORS: tuple[str, ...] = ("eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch", "in",
                              "is", "isdistinct", "fts", "plfts", "phfts", "wfts", "cs", "cd", "ov")


@dataclass(frozen=True)
class JsonPath:
    """`col->a->0->>b`: a member of a JSON column, by object key (str) or array index (int, negative
    from the end). With `text` (the last arrow is ->>) the value is text, compared and ordered byte by
    byte; otherwise it is a JSON value, compared and ordered as PostgreSQL orders jsonb. A missing
    member is null (SQL's), which is not the JSON value null."""

    column: str
    steps: tuple[str | int, ...]
    text: bool = False

    @property
    def name(self) -> str:
        arrows = ["->"] * (len(self.steps) - 1) + ["->>" if self.text else "->"]
        return self.column + "".join(f"{a}{s}" for a, s in zip(arrows, self.steps, strict=True))

    @property
    def key(self) -> str:
        """The output key PostgREST gives it: the last step."""
        return str(self.steps[-1])


@dataclass(frozen=True, eq=False)
class Lookup:
    """A column of a to-one embed's row, `order=airlines(name)`: null when there is no such row,
    or when it fails the embed's own `where`. `target`'s `target_columns` equal `columns`.

    Compared by identity: its `where` may hold JSON values, which cannot be hashed, and one read
    refers to one Lookup object wherever it uses it."""

    embed: str
    target: str
    columns: tuple[str, ...]
    target_columns: tuple[str, ...]
    column: str
    where: Where | None = None

    @property
    def name(self) -> str:
        return f"{self.embed}({self.column})"


# `::type` in select: the type names a cast may give, and the column types each takes its values
# from. The list is fixed, and holds only casts that cannot fail on a stored value (no text to
# number, no narrowing), so a cast is never a runtime error and the memory adapter can compute the
# same value (adapters.memory.evaluate.cast). A source of None is a jsonb member (->).
_NUMBERS = frozenset({ColumnType.INTEGER, ColumnType.BIGINT, ColumnType.NUMERIC, ColumnType.FLOAT})
CAST_TYPES: dict[str, ColumnType] = {
    "text": ColumnType.TEXT, "integer": ColumnType.INTEGER, "int": ColumnType.INTEGER, "int4": ColumnType.INTEGER,
    "bigint": ColumnType.BIGINT, "int8": ColumnType.BIGINT, "numeric": ColumnType.NUMERIC,
    "decimal": ColumnType.NUMERIC, "float": ColumnType.FLOAT, "float8": ColumnType.FLOAT,
    "boolean": ColumnType.BOOLEAN, "bool": ColumnType.BOOLEAN, "date": ColumnType.DATE,
}
CASTS: dict[ColumnType, frozenset[ColumnType | None]] = {
    ColumnType.TEXT: frozenset({*_NUMBERS, ColumnType.TEXT, ColumnType.BOOLEAN, ColumnType.DATE, ColumnType.TIMESTAMPTZ,
                                ColumnType.TIMESTAMP, ColumnType.UUID, ColumnType.JSON, None}),
    ColumnType.INTEGER: frozenset({ColumnType.INTEGER, ColumnType.BOOLEAN}),
    ColumnType.BIGINT: frozenset({ColumnType.INTEGER, ColumnType.BIGINT}),
    ColumnType.NUMERIC: _NUMBERS,
    ColumnType.FLOAT: _NUMBERS,
    ColumnType.BOOLEAN: frozenset({ColumnType.BOOLEAN, ColumnType.INTEGER}),
    # timestamptz in UTC, the zone every session of depot's runs in
    ColumnType.DATE: frozenset({ColumnType.DATE, ColumnType.TIMESTAMP, ColumnType.TIMESTAMPTZ}),
}


@dataclass(frozen=True)
class Cast:
    """`col::type` (or `col->a::type`) in select: a value converted as PostgreSQL's cast does.
    `source` is the value's own type (None for a jsonb member), `target` the type it becomes."""

    ref: str | JsonPath
    type: str  # as the client wrote it, one of CAST_TYPES
    source: ColumnType | None

    @property
    def target(self) -> ColumnType:
        return CAST_TYPES[self.type]

    @property
    def name(self) -> str:
        return f"{name_of(self.ref)}::{self.type}"

    @property
    def key(self) -> str:
        """PostgREST keeps the value's own key: `col::text` is `col`."""
        return self.ref if isinstance(self.ref, str) else self.ref.key


# What a condition, an order item or a selected field names: a column, or a value derived from a row.
Ref = str | JsonPath | Lookup | Cast


def name_of(ref: Ref) -> str:
    """The key a fetched row holds a ref's value under."""
    return ref if isinstance(ref, str) else ref.name


@dataclass(frozen=True)
class Condition:
    """`column op value`; `in` takes a tuple, `is` takes None, True or False.

    like/ilike patterns use SQL's syntax (`%`, `_`, backslash escapes); the parser turns
    PostgREST's `*` into `%`. On a JSON path that is not `text`, values are JSON values. The full-text
    operators (fts, plfts, phfts, wfts: to_tsquery, plainto_, phraseto_, websearch_to_tsquery) take
    (configuration, query text), matched against `to_tsvector(configuration, column)`. match and
    imatch take a regular expression (~, ~*); isdistinct is IS DISTINCT FROM (never unknown); cs,
    cd and ov take a JSON value: contains (@>), is contained by (<@), and shares an array element.
    """

    column: Ref
    op: str
    value: Any
    negated: bool = False


@dataclass(frozen=True)
class BoolExpr:
    op: Literal["and", "or"]
    terms: tuple[Condition | BoolExpr | Related, ...]
    negated: bool = False


@dataclass(frozen=True)
class Related:
    """Whether a row has rows of an embed that pass the embed's own filters: `emb=not.is.null`
    and `!inner` (a semi-join), or, `negated`, `emb=is.null` (an anti-join). Never unknown.

    `target`'s `target_columns` equal this table's `columns` (in either direction of the reference);
    a null among `columns` matches nothing, as SQL's equality does.
    """

    key: str
    target: str
    columns: tuple[str, ...]
    target_columns: tuple[str, ...]
    where: Where | None = None
    negated: bool = False


Where = Condition | BoolExpr | Related


@dataclass(frozen=True)
class OrderBy:
    column: Ref
    descending: bool = False
    nulls_first: bool | None = None  # None: PostgreSQL's default (nulls last ascending, first descending)

    @property
    def effective_nulls_first(self) -> bool:
        return self.descending if self.nulls_first is None else self.nulls_first


@dataclass(frozen=True)
class Query:
    where: Where | None = None
    order: tuple[OrderBy, ...] = ()
    limit: int | None = None
    offset: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def conjunction(conditions: list[Where]) -> Where | None:
    if not conditions:
        return None
    if len(conditions) == 1:
        return conditions[0]
    return BoolExpr("and", tuple(conditions))


def live_only(table: Table, where: Where | None) -> Where | None:
    """`where`, and the row not soft-deleted (`deleted_at is null`) when the table is declared
    soft_delete=True: how every read and write leaves deleted rows out, on either adapter."""
    if not table.soft_delete:
        return where
    live = Condition(table.system.deleted_at, "is", None)
    return live if where is None else conjunction([where, live])


def key_condition(columns: tuple[str, ...], values: tuple) -> Where:
    return conjunction([Condition(c, "eq", v) for c, v in zip(columns, values, strict=True)])  # type: ignore[return-value]


def columns_of(where: Where | None) -> set[str]:
    if where is None:
        return set()
    if isinstance(where, Condition):
        ref = where.column
        if isinstance(ref, Lookup):
            return set(ref.columns)
        return {ref if isinstance(ref, str) else ref.column}
    if isinstance(where, Related):
        return set(where.columns)
    return set().union(*(columns_of(t) for t in where.terms))


# --- what a read returns: select items, embeds, aggregates, keyset --------------------------------

AGGREGATES: tuple[str, ...] = ("count", "sum", "avg", "min", "max")


@dataclass(frozen=True)
class Field:
    """A plain column (or a JSON path's value, or a cast of either) in the output, under `alias` when given."""

    column: str | JsonPath | Cast
    alias: str | None = None

    @property
    def key(self) -> str:
        return self.alias or (self.column if isinstance(self.column, str) else self.column.key)


@dataclass(frozen=True)
class Aggregate:
    """`count()` (column None: rows), or `function(column)`; the output key defaults to the function's name.

    Results: count an int; sum of integers an int, of floats a float, of numerics a Decimal;
    avg always a float (sum / count, correctly rounded: PostgreSQL's numeric avg cast to a JSON
    number); min/max the column's own type. Nulls are skipped; an all-null group gives None.
    """

    function: str
    column: str | None = None
    alias: str | None = None
    cast: str | None = None  # `col.sum()::text`: the result cast to one of CAST_TYPES
    result_type: ColumnType | None = None  # the result's own type, before `cast` (set with it by the parser)

    @property
    def key(self) -> str:
        return self.alias or self.function


@dataclass(frozen=True)
class Embed:
    """Rows of another table along a reference, nested under `key`.

    To-one (`many=False`): this table's `columns` point at `target`'s `target_columns`; the
    value is an object or None. To-many (`many=True`): `target`'s `target_columns` point back
    at this table's `columns`; the value is a list (ordered by `order`, then the target's key),
    and when `items` are only aggregates, a one-element list of them even for no matching rows.

    `where` filters the embedded rows only (a to-one embed whose row fails it is None); `inner`
    also drops the parent rows left without any (the parser adds a Related to the parent's where).
    `offset` and `limit` page each parent's rows on their own. `hidden` (written `emb()`) puts
    nothing in the output: the embed is there to be filtered on. `spread` (`...emb(cols)`, to-one
    only) puts the embed's keys in the parent row instead of under `key`.
    """

    key: str
    target: str
    columns: tuple[str, ...]
    target_columns: tuple[str, ...]
    many: bool
    items: tuple[SelectItem, ...]
    where: Where | None = None
    order: tuple[OrderBy, ...] = ()
    limit: int | None = None
    offset: int = 0
    inner: bool = False
    hidden: bool = False
    spread: bool = False

    def related(self, *, negated: bool = False) -> Related:
        return Related(self.key, self.target, self.columns, self.target_columns, self.where, negated)


SelectItem = Field | Aggregate | Embed


def output_keys(items: tuple[SelectItem, ...]) -> list[str]:
    """The keys of a row shaped from `items`: a spread embed's keys in its place, a hidden one's none."""
    keys: list[str] = []
    for item in items:
        if isinstance(item, Embed) and item.spread:
            keys.extend(output_keys(item.items))
        elif not (isinstance(item, Embed) and item.hidden):
            keys.append(item.key)
    return keys


@dataclass(frozen=True)
class Read:
    """A full read request: the select list (empty means every column), filters, order, page, cursor.

    `after` holds the values of `keyset_order(...)` for the last row already seen: the page
    starts strictly after it. With aggregates the plain fields are the grouping columns, and
    `order` may name an aggregate's key.
    """

    items: tuple[SelectItem, ...] = ()
    where: Where | None = None
    order: tuple[OrderBy, ...] = ()
    limit: int | None = None
    offset: int = 0
    after: tuple | None = None
    having: Where | None = None  # conditions on the aggregates' keys (HAVING), with aggregates only
    distinct: bool = False  # each combination of the fields' values once (the fields are then the key)
    as_of: dt.datetime | None = None  # the table (and its embeds) as it stood then, from its history

    @property
    def aggregates(self) -> tuple[Aggregate, ...]:
        return tuple(i for i in self.items if isinstance(i, Aggregate))

    @property
    def fields(self) -> tuple[Field, ...]:
        return tuple(i for i in self.items if isinstance(i, Field))

    @property
    def embeds(self) -> tuple[Embed, ...]:
        return tuple(i for i in self.items if isinstance(i, Embed))

    @property
    def grouped(self) -> bool:
        return bool(self.aggregates)

    @property
    def keyset_pages(self) -> bool:
        """Whether after= can page this read. Not by a jsonb member: a cursor cannot tell its JSON
        null from SQL's null (both read back as None), so such reads page by offset."""
        return not self.grouped and not any(isinstance(o.column, JsonPath) and not o.column.text for o in self.order)

    def keyset_order(self, table: Table) -> tuple[OrderBy, ...]:
        """The order made total: the client's order, then the key (the grouping columns when
        aggregating), each column once. Nothing is appended once the order already covers a unique
        key of NOT NULL columns, so an order by the natural key pages on its own unique index."""
        if self.grouped or self.distinct:
            ties = tuple(dict.fromkeys(f.column for f in self.fields))
        else:
            ties = table.primary_key
            named: set[str] = set()
            keys = (table.primary_key, table.natural_key) if table.unique_natural_key else (table.primary_key,)
            unique = [k for k in keys if not any(table.column(c).nullable for c in k)]
            for item in self.order:
                named.add(item.column)
                if any(set(k) <= named for k in unique):
                    return self.order
        named = {o.column for o in self.order}
        return self.order + tuple(OrderBy(c) for c in ties if c not in named)


def _eq_or_null(column: str, value: Any) -> Condition:
    return Condition(column, "is", None) if value is None else Condition(column, "eq", value)


def _beyond(item: OrderBy, value: Any, nullable: bool) -> Where | None:
    """Rows strictly after `value` in this one column's order; None when nothing can be."""
    nulls_after = nullable and not item.effective_nulls_first
    if value is None:
        return Condition(item.column, "is", None, negated=True) if item.effective_nulls_first else None
    strictly = Condition(item.column, "lt" if item.descending else "gt", value)
    if nulls_after:
        return BoolExpr("or", (strictly, Condition(item.column, "is", None)))
    return strictly


def keyset_where(order: tuple[OrderBy, ...], values: tuple, nullable: set) -> Where:
    """Rows strictly after `values` under `order` (a total order), nulls placed as the order says.

    The expanded form: (c1 beyond v1) or (c1 = v1 and c2 beyond v2) or ..., and'ed with a
    redundant bound on c1 so an index on it can start the scan at v1 instead of the table's start.
    """
    alternatives: list[Where] = []
    nullable = set(nullable) | {o.column for o in order if not isinstance(o.column, str)}  # derived: maybe null
    for i, item in enumerate(order):
        beyond = _beyond(item, values[i], item.column in nullable)
        if beyond is None:
            continue
        equal = [_eq_or_null(o.column, v) for o, v in zip(order[:i], values[:i], strict=True)]
        alternatives.append(conjunction([*equal, beyond]))  # type: ignore[list-item]
    if not alternatives:
        return Condition(order[0].column, "in", ())  # nothing is after the very last row
    chain = alternatives[0] if len(alternatives) == 1 else BoolExpr("or", tuple(alternatives))
    first, v1 = order[0], values[0]
    if len(alternatives) == 1 or v1 is None:
        return chain
    bound: Where = Condition(first.column, "lte" if first.descending else "gte", v1)
    if first.column in nullable and not first.effective_nulls_first:
        bound = BoolExpr("or", (bound, Condition(first.column, "is", None)))
    return BoolExpr("and", (bound, chain))


@dataclass(frozen=True)
class Fetch:
    """One table's share of a Read, which an adapter answers with one statement: flat rows, no embeds.

    Rows come back as dicts keyed by column name (`name_of` a derived ref), and by label for
    `aggregates` ((label, Aggregate) pairs; with aggregates, `columns` are the grouping columns).
    `within` restricts the rows to those whose `within[0]` columns hold one of the `within[1]`
    tuples (how embeds are fetched in one statement per level); `offset` and `limit` then page
    each of those tuples' rows on their own, as a lateral join per parent would. `order` is total
    and may name labels; `after` holds its values for the last row already seen.
    """

    columns: tuple[Ref, ...]
    aggregates: tuple[tuple[str, Aggregate], ...] = ()
    where: Where | None = None
    within: tuple[tuple[str, ...], frozenset[tuple]] | None = None
    order: tuple[OrderBy, ...] = ()
    after: tuple | None = None
    offset: int = 0
    limit: int | None = None
    having: Where | None = None  # on the aggregates' labels, after grouping
    distinct: bool = False  # grouped by `columns` without aggregates: each combination once
    as_of: dt.datetime | None = None  # read the rows (and every table it looks into) as they stood then
