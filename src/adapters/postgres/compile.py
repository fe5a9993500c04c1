"""The query model as SQLAlchemy expressions. Every value becomes a bound parameter."""

from __future__ import annotations

import sqlalchemy as sa

from domain.query import BoolExpr, Condition, OrderBy, Where


def _condition(table: sa.Table, cond: Condition) -> sa.ColumnElement[bool]:
    column = table.c[cond.column]
    value = cond.value
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
        case "in":
            clause = column.in_(list(value))
        case "is":
            clause = column.is_(sa.null() if value is None else sa.true() if value else sa.false())
        case _:  # pragma: no cover - the parser admits only known operators
            raise ValueError(cond.op)
    return sa.not_(clause) if cond.negated else clause


def where_clause(table: sa.Table, where: Where) -> sa.ColumnElement[bool]:
    if isinstance(where, Condition):
        return _condition(table, where)
    assert isinstance(where, BoolExpr)
    terms = [where_clause(table, t) for t in where.terms]
    clause = sa.and_(*terms) if where.op == "and" else sa.or_(*terms)
    return sa.not_(clause) if where.negated else clause


def order_by(table: sa.Table, order: tuple[OrderBy, ...]) -> list[sa.ColumnElement]:
    items = []
    for item in order:
        column = table.c[item.column]
        expr = column.desc() if item.descending else column.asc()
        if item.nulls_first is not None:
            expr = expr.nulls_first() if item.nulls_first else expr.nulls_last()
        items.append(expr)
    return items
