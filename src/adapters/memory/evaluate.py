"""PostgreSQL's semantics in Python: three-valued logic, LIKE, and ordering with nulls."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from domain.query import Condition, OrderBy, Related, Where

Row = dict[str, Any]
# Whether a row has rows of an embed (EXISTS): the evaluator knows one row, the store knows the rest.
RelatedCheck = Callable[[Related, Row], bool]


def _no_related(related: Related, row: Row) -> bool:
    raise ValueError("this filter names an embed, and nothing here can look its rows up")

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "neq": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


@lru_cache(maxsize=1024)
def _literal(ch: str, case_insensitive: bool) -> str:
    # Text columns are COLLATE "C" on PostgreSQL, whose ILIKE then folds the case of ASCII letters
    # only (re.IGNORECASE would also fold É/é, and take the Kelvin sign for k).
    if case_insensitive and ch.isascii() and ch.isalpha():
        return f"[{ch.lower()}{ch.upper()}]"
    return re.escape(ch)


def like_regex(pattern: str, case_insensitive: bool) -> re.Pattern[str]:
    """SQL LIKE as a regular expression: % any run, _ one character, backslash escapes."""
    out = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(_literal(next(chars, "\\"), case_insensitive))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(_literal(ch, case_insensitive))
    return re.compile("".join(out), re.DOTALL)


def _condition(cond: Condition, row: Row) -> bool | None:
    value = row.get(cond.column)
    op = cond.op
    if op == "is":
        result: bool | None = value is cond.value if cond.value is None else (
            value is not None and value == cond.value
        )
    elif value is None:
        return None
    elif op in _COMPARE:
        result = _COMPARE[op](value, cond.value)
    elif op == "in":
        members = [m for m in cond.value if m is not None]
        result = value in members
        if not result and len(members) < len(cond.value):
            result = None
    elif op in ("like", "ilike"):
        result = like_regex(cond.value, op == "ilike").fullmatch(value) is not None
    else:  # pragma: no cover - the parser admits only known operators
        raise ValueError(f"unknown operator {op}")
    if cond.negated and result is not None:
        return not result
    return result


def evaluate(where: Where, row: Row, related: RelatedCheck = _no_related) -> bool | None:
    """True, False or None (SQL's unknown)."""
    if isinstance(where, Condition):
        return _condition(where, row)
    if isinstance(where, Related):
        return related(where, row)
    results = [evaluate(term, row, related) for term in where.terms]
    if where.op == "and":
        result = False if False in results else (None if None in results else True)
    else:
        result = True if True in results else (None if None in results else False)
    if where.negated and result is not None:
        return not result
    return result


def matches(where: Where | None, related: RelatedCheck = _no_related) -> Callable[[Row], bool]:
    if where is None:
        return lambda row: True
    return lambda row: evaluate(where, row, related) is True


def sort_rows(rows: Iterable[Row], order: tuple[OrderBy, ...], key_columns: tuple[str, ...]) -> list[Row]:
    """Sort like ORDER BY: each key with its direction and nulls placement, then the primary key."""
    result = sorted(rows, key=lambda r: tuple(r[c] for c in key_columns))
    for item in reversed(order):
        present = [r for r in result if r.get(item.column) is not None]
        missing = [r for r in result if r.get(item.column) is None]
        present.sort(key=lambda r, c=item.column: r[c], reverse=item.descending)
        result = missing + present if item.effective_nulls_first else present + missing
    return result


# --- reads: grouping, aggregates and keyset, as PostgreSQL computes them ----------------------------


def aggregate(function: str, column: str | None, rows: list[Row]) -> Any:
    """One aggregate over a group, with PostgreSQL's results (see domain.query.Aggregate)."""
    if function == "count" and column is None:
        return len(rows)
    values = [r[column] for r in rows if r.get(column) is not None]
    if function == "count":
        return len(values)
    if not values:
        return None
    if function == "min":
        return min(values)
    if function == "max":
        return max(values)
    total = sum(values[1:], values[0])
    if function == "sum":
        return total
    # avg: the sum as a double divided by the count, which PostgreSQL computes as
    # sum(col)::float8 / count(col) in the other adapter; int / int is correctly rounded too.
    return total / len(values) if isinstance(total, int) else float(total) / len(values)


def group_rows(rows: Iterable[Row], columns: tuple[str, ...], aggregates: tuple) -> list[Row]:
    """GROUP BY columns, with each (label, Aggregate) computed per group; no columns: one group."""
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row[c] for c in columns), []).append(row)
    if not columns and not groups:
        groups[()] = []
    out = []
    for key, members in groups.items():
        result = dict(zip(columns, key, strict=True))
        for label, agg in aggregates:
            result[label] = aggregate(agg.function, agg.column, members)
        out.append(result)
    return out
