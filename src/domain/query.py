"""The query model: what a reader asks for, as plain values that every adapter answers the same way.

Values in conditions are already typed by their column (the parser coerces them), so adapters
never see the client's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Operator = Literal["eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "in", "is"]
OPERATORS: tuple[str, ...] = ("eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "in", "is")


@dataclass(frozen=True)
class Condition:
    """`column op value`; `in` takes a tuple, `is` takes None, True or False.

    like/ilike patterns use SQL's syntax (`%`, `_`, backslash escapes); the parser turns
    PostgREST's `*` into `%`.
    """

    column: str
    op: str
    value: Any
    negated: bool = False


@dataclass(frozen=True)
class BoolExpr:
    op: Literal["and", "or"]
    terms: tuple[Condition | BoolExpr, ...]
    negated: bool = False


Where = Condition | BoolExpr


@dataclass(frozen=True)
class OrderBy:
    column: str
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


def key_condition(columns: tuple[str, ...], values: tuple) -> Where:
    return conjunction([Condition(c, "eq", v) for c, v in zip(columns, values, strict=True)])  # type: ignore[return-value]


def columns_of(where: Where | None) -> set[str]:
    if where is None:
        return set()
    if isinstance(where, Condition):
        return {where.column}
    return set().union(*(columns_of(t) for t in where.terms))
