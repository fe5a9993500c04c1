"""PostgreSQL's semantics in Python: three-valued logic, LIKE, and ordering with nulls."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import operator
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import orjson

from domain import text_search
from domain.query import CAST_TYPES, Condition, JsonPath, OrderBy, Ref, Related, Where, name_of
from domain.schema import ColumnType

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


# --- JSON paths, as PostgreSQL's jsonb operators answer them ----------------------------------------


class _JsonNull:
    """The JSON value null, which a path can reach, as opposed to SQL's null (a missing member)."""

    def __repr__(self) -> str:
        return "JSON_NULL"


JSON_NULL: Any = _JsonNull()


def walk(path: JsonPath, value: Any) -> Any:
    """`->` and `->>`: None for SQL null, JSON_NULL for the JSON value null under `->`."""
    if value is None:
        return None
    for step in path.steps:
        if isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict) and step in value:
            value = value[step]
        else:
            return None
        if value is None:
            value = JSON_NULL
    if not path.text:
        return value
    return None if value is JSON_NULL else value if isinstance(value, str) else jsonb_text(value)


def jsonb_text(value: Any) -> str:
    """jsonb's text form: `", "` and `": "` separators, object keys in jsonb's storage order."""
    if value is None or value is JSON_NULL:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, list):
        return "[" + ", ".join(jsonb_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{jsonb_text(k)}: {jsonb_text(value[k])}" for k in _stored_keys(value)) + "}"
    return str(value)


def _stored_keys(value: dict) -> list[str]:
    return sorted(value, key=lambda k: (len(k.encode()), k.encode()))  # jsonb stores shorter keys first


def jsonb_key(value: Any, *, top: bool = True) -> tuple:
    """A sort key in jsonb's order: object > array > boolean > number > string > null; arrays and
    objects by size first, then member by member (object keys in storage order). As PostgreSQL's
    documentation warns, an empty array at the top sorts below everything, null included."""
    if top and value == []:
        return (-1,)
    if value is None or value is JSON_NULL:
        return (0,)
    if value is True or value is False:
        return (3, value)
    if isinstance(value, str):
        return (1, value.encode())
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, list):
        return (4, len(value), tuple(jsonb_key(v, top=False) for v in value))
    keys = _stored_keys(value)
    return (5, len(value), tuple((k.encode(), jsonb_key(value[k], top=False)) for k in keys))


# --- casts, as PostgreSQL converts (only the casts domain.query.CASTS admits) ------------------------


def float_text(value: float) -> str:
    """float8's text: the shortest digits that read back the same (Python's repr has the same
    digits), in exponent form below 1e-4 and from 1e15 on, as `1e+15` or `1.5e-05`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    sign, digits, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
    if not any(digits):
        return "-0" if sign else "0"
    power = len(digits) + exponent - 1  # type: ignore[operator]
    text = "".join(map(str, digits))
    minus = "-" if sign else ""
    if -4 <= power < 15:
        whole = decimal.Decimal(repr(abs(value)))
        shown = format(whole, "f")
        return minus + (shown.rstrip("0").rstrip(".") if "." in shown else shown)
    mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
    return f"{minus}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"


def _timestamp_text(value: dt.datetime) -> str:
    """timestamp[tz]'s text in a UTC session: `2013-01-01 05:00:00[.5]+00`."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    text = value.replace(tzinfo=None).isoformat(sep=" ")
    if "." in text:
        text = text.rstrip("0")
    return text + ("+00" if value.tzinfo is not None else "")


def _text(source: ColumnType | None, value: Any) -> str:
    if source is None or source is ColumnType.JSON:
        return jsonb_text(value)
    if source is ColumnType.BOOLEAN:
        return "true" if value else "false"
    if source is ColumnType.FLOAT:
        return float_text(value)
    if isinstance(value, decimal.Decimal):
        shown = format(value, "f")
        return shown[1:] if shown.startswith("-") and value == 0 else shown  # numeric has no -0
    if isinstance(value, dt.datetime):
        return _timestamp_text(value)
    return str(value)  # text, whole numbers, dates (ISO), uuids


def _numeric(value: Any) -> decimal.Decimal:
    if isinstance(value, float):
        # float8 to numeric goes through 15 significant digits (DBL_DIG), as PostgreSQL's does
        if math.isnan(value) or math.isinf(value):
            return decimal.Decimal(value)
        value = decimal.Decimal(format(value, ".15g"))
        return decimal.Decimal(int(value)) if value.as_tuple().exponent > 0 else value  # type: ignore[operator]
    return decimal.Decimal(value)


def cast(target: ColumnType, source: ColumnType | None, value: Any) -> Any:
    """`value::target` for a value of type `source` (None: a jsonb member); SQL null stays null."""
    if value is None:
        return None
    match target:
        case ColumnType.TEXT:
            return _text(source, value)
        case ColumnType.INTEGER | ColumnType.BIGINT:
            return int(value)
        case ColumnType.NUMERIC:
            return _numeric(value)
        case ColumnType.FLOAT:
            return float(value)
        case ColumnType.BOOLEAN:
            return bool(value)
        case ColumnType.DATE:
            if isinstance(value, dt.datetime):
                return (value.astimezone(dt.UTC) if value.tzinfo is not None else value).date()
            return value
    raise ValueError(target)  # pragma: no cover - the parser admits only domain.query.CASTS


def value_of(ref: Ref, row: Row) -> Any:
    """A ref's value in a row: a column, or one the store attached under its name (a lookup, or a
    path already walked), or a JSON path walked now."""
    name = name_of(ref)
    if name in row or not isinstance(ref, JsonPath):
        return row.get(name)
    return walk(ref, row.get(ref.column))


def _comparable(ref: Ref) -> Callable[[Any], Any]:
    """What a ref's values are compared by: jsonb's order for a JSON member, themselves otherwise."""
    return jsonb_key if isinstance(ref, JsonPath) and not ref.text else _same


def _same(value: Any) -> Any:
    return value


def _condition(cond: Condition, row: Row) -> bool | None:
    value = value_of(cond.column, row)
    op = cond.op
    if op != "is" and value is not None and isinstance(cond.column, JsonPath) and not cond.column.text:
        return _json_condition(cond, value)
    if op == "is":
        result: bool | None = value is cond.value if cond.value is None else (
            value is not None and value == cond.value
        )
    elif op == "isdistinct":  # never unknown: null is distinct from a value and not from null
        result = (value is None) != (cond.value is None) or (value is not None and value != cond.value)
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
    elif op in ("match", "imatch"):
        result = posix_regex(cond.value, op == "imatch").search(value) is not None
    elif op in ("cs", "cd", "ov"):
        result = _containment(op, value, cond.value)
    elif op in text_search.KINDS:  # the documented approximation of domain.text_search
        config, text = cond.value
        result = text_search.search_matches(text_search.parse_search(op, config, text),
                                            text_search.vector(value, config))
    else:  # pragma: no cover - the parser admits only known operators
        raise ValueError(f"unknown operator {op}")
    if cond.negated and result is not None:
        return not result
    return result


@lru_cache(maxsize=256)
def posix_regex(pattern: str, case_insensitive: bool) -> re.Pattern[str]:
    """A PostgreSQL ARE (of the subset the parser admits) as Python's: `.` matches a newline too,
    and `$` only the very end (Python's also matches before a final newline)."""
    out, escaped, in_class = [], False, False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]" or (out and out[-1] in "[^")
        elif ch == "[":
            in_class = True
        elif ch == "$":
            out.append(r"\Z")
            continue
        out.append(ch)
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if case_insensitive else 0))


def json_contains(container: Any, contained: Any, *, top: bool = True) -> bool:
    """jsonb's @>: objects hold each key with a contained value, arrays hold each element in some
    element (and, at the top only, an array holds a scalar it has), scalars are equal."""
    if isinstance(container, dict):
        return isinstance(contained, dict) and all(
            k in container and json_contains(container[k], v, top=False) for k, v in contained.items())
    if isinstance(container, list):
        if isinstance(contained, list):
            return all(any(json_contains(c, v, top=False) for c in container) for v in contained)
        if top and not isinstance(contained, dict):
            return any(not isinstance(c, dict | list) and jsonb_key(c, top=False) == jsonb_key(contained, top=False)
                       for c in container)
        return False
    if isinstance(contained, dict | list):
        return False
    return jsonb_key(container, top=False) == jsonb_key(contained, top=False)


def _containment(op: str, value: Any, wanted: Any) -> bool:
    if isinstance(wanted, tuple):  # a SQL array column's items (the parser types them): as sets, as @>, <@, &&
        have, want = set(value), set(wanted)
        return want <= have if op == "cs" else have <= want if op == "cd" else not have.isdisjoint(want)
    if op == "cs":
        return json_contains(value, wanted)
    if op == "cd":
        return json_contains(wanted, value)
    shared = {jsonb_key(w, top=False) for w in wanted}  # ov: an array sharing an element
    return isinstance(value, list) and any(jsonb_key(v, top=False) in shared for v in value)


def _json_condition(cond: Condition, value: Any) -> bool | None:
    """A jsonb member against JSON values (the parser admits the comparisons, in, cs, cd and ov)."""
    if cond.op in ("cs", "cd", "ov"):
        result = _containment(cond.op, value, cond.value)
        return not result if cond.negated else result
    key = jsonb_key(value)
    if cond.op == "in":
        result = key in {jsonb_key(m) for m in cond.value}
    else:
        result = _COMPARE[cond.op](key, jsonb_key(cond.value))
    return not result if cond.negated else result


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
        ref, comparable = item.column, _comparable(item.column)
        present = [r for r in result if value_of(ref, r) is not None]
        missing = [r for r in result if value_of(ref, r) is None]
        present.sort(key=lambda r, c=ref, k=comparable: k(value_of(c, r)), reverse=item.descending)
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
    firsts: dict[tuple, tuple] = {}
    names = [name_of(c) for c in columns]
    for row in rows:
        values = tuple(row[n] for n in names)
        key = tuple(jsonb_key(v) if isinstance(v, dict | list) else v for v in values)  # JSON values: hashable
        firsts.setdefault(key, values)
        groups.setdefault(key, []).append(row)
    if not columns and not groups:
        groups[()] = []
        firsts[()] = ()
    out = []
    for key, members in groups.items():
        result = dict(zip(names, firsts[key], strict=True))
        for label, agg in aggregates:
            result[label] = aggregate(agg.function, agg.column, members)
            if agg.cast is not None:
                result[label] = cast(CAST_TYPES[agg.cast], agg.result_type, result[label])
        out.append(result)
    return out
