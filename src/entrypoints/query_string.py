"""PostgREST's query string, parsed into the domain's query model. Client text never reaches SQL:
column names are checked against the declaration and values are typed by their column."""

from __future__ import annotations

from collections.abc import Iterable

from domain.errors import BadRequest, UnknownColumn
from domain.query import OPERATORS, Condition, OrderBy, Query, Where, conjunction
from domain.schema import ColumnType, Table
from domain.validation import ValueRefused, parse_value

RESERVED = frozenset({"select", "order", "limit", "offset", "on_conflict", "columns", "and", "or", "after"})
_LIKE_TYPES = frozenset({ColumnType.TEXT})


def _column(table: Table, name: str, where: str) -> str:
    if not table.has_column(name):
        raise UnknownColumn(
            f"Could not find the '{name}' column of '{table.name}'",
            details=f"in {where}",
            hint=f"Columns of {table.name}: {', '.join(table.column_names)}",
        )
    return name


def _typed(table: Table, column: str, text: str, where: str):
    try:
        return parse_value(table.column(column), text)
    except ValueRefused as refused:
        raise BadRequest(
            f"Invalid value {text!r} for column '{column}' ({table.column(column).type.value})",
            details=f"in {where}: {refused.message}",
            code="22P02",
        ) from None


def _split_in_list(text: str, where: str) -> list[str]:
    """`(a,b,"c,d")` into its items; double quotes protect commas and parentheses."""
    if not (text.startswith("(") and text.endswith(")")):
        raise BadRequest(f"The in operator takes a list in parentheses, got {text!r}", details=f"in {where}")
    items, current, quoted, escaped = [], [], False, False
    for ch in text[1:-1]:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quoted:
        raise BadRequest(f"Unbalanced quotes in {text!r}", details=f"in {where}")
    if current or items:
        items.append("".join(current))
    return items


def parse_condition(table: Table, column: str, expression: str) -> Condition:
    """`col=[not.]op.value` into a Condition typed by the column."""
    where = f"{column}={expression}"
    _column(table, column, where)
    negated = False
    if expression.startswith("not."):
        negated, expression = True, expression[4:]
    op, dot, value = expression.partition(".")
    if not dot or op not in OPERATORS:
        raise BadRequest(
            f"Unknown or missing operator in {where!r}",
            hint=f"Write {column}=op.value with op one of {', '.join(OPERATORS)}",
        )
    if op == "is":
        lowered = value.lower()
        if lowered not in ("null", "true", "false", "unknown"):
            raise BadRequest(f"is takes null, true, false or unknown, got {value!r}", details=f"in {where}")
        typed = {"null": None, "unknown": None, "true": True, "false": False}[lowered]
        if typed is not None and table.column(column).type is not ColumnType.BOOLEAN:
            raise BadRequest(f"is.{lowered} needs a boolean column; '{column}' is not", details=f"in {where}")
        return Condition(column, "is", typed, negated)
    if op == "in":
        items = _split_in_list(value, where)
        return Condition(column, "in", tuple(_typed(table, column, i, where) for i in items), negated)
    if op in ("like", "ilike"):
        if table.column(column).type not in _LIKE_TYPES:
            raise BadRequest(f"{op} needs a text column; '{column}' is {table.column(column).type.value}",
                             details=f"in {where}")
        return Condition(column, op, value.replace("*", "%"), negated)
    return Condition(column, op, _typed(table, column, value, where), negated)


def parse_filters(table: Table, params: Iterable[tuple[str, str]]) -> Where | None:
    conditions: list[Where] = []
    for name, expression in params:
        if name in RESERVED:
            continue
        conditions.append(parse_condition(table, name, expression))
    return conjunction(conditions)


def parse_order(table: Table, text: str) -> tuple[OrderBy, ...]:
    items = []
    for part in text.split(","):
        name, *modifiers = part.strip().split(".")
        _column(table, name, f"order={text}")
        descending, nulls_first = False, None
        for modifier in modifiers:
            match modifier:
                case "asc":
                    descending = False
                case "desc":
                    descending = True
                case "nullsfirst":
                    nulls_first = True
                case "nullslast":
                    nulls_first = False
                case _:
                    raise BadRequest(f"Unknown order modifier {modifier!r} in order={text}",
                                     hint="Use asc, desc, nullsfirst or nullslast.")
        items.append(OrderBy(name, descending, nulls_first))
    return tuple(items)


def parse_non_negative(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {text!r}") from None
    if value < 0:
        raise BadRequest(f"{name} must not be negative, got {value}")
    return value


def parse_range(header: str | None) -> tuple[int, int | None] | None:
    """`Range: 0-24` (items) into (offset, limit)."""
    if not header:
        return None
    text = header.strip()
    if text.startswith("items="):
        text = text[6:]
    first, dash, last = text.partition("-")
    try:
        start = int(first)
        end = int(last) if last else None
    except ValueError:
        raise BadRequest(f"Malformed Range header {header!r}", hint="Send Range: 0-24") from None
    if not dash or start < 0 or (end is not None and end < start):
        raise BadRequest(f"Malformed Range header {header!r}", hint="Send Range: 0-24")
    return start, (None if end is None else end - start + 1)


def parse_query(table: Table, params: list[tuple[str, str]], range_header: str | None, max_rows: int) -> Query:
    values = dict(params)
    where = parse_filters(table, params)
    order = parse_order(table, values["order"]) if values.get("order") else ()
    offset, limit = 0, None
    ranged = parse_range(range_header)
    if ranged is not None:
        offset, limit = ranged
    if "offset" in values:
        offset = parse_non_negative("offset", values["offset"])
    if "limit" in values:
        limit = parse_non_negative("limit", values["limit"])
    limit = max_rows if limit is None else min(limit, max_rows)
    return Query(where=where, order=order, limit=limit, offset=offset)
