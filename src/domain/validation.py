"""Validation derived from the declarations: values from JSON, CSV or a query string, into typed values.

One coercer per column is built once and reused, so a batch pays a function call per value,
not a schema walk. Strings are parsed for every non-text type, which is what CSV and query
strings need and what PostgreSQL itself accepts for JSON bodies.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import operator
import re
import uuid
from collections.abc import Callable, Iterable
from functools import cache, partial
from typing import Any

from domain.errors import FieldError
from domain.ingestion import ColumnRows
from domain.schema import MISSING, Column, ColumnType, Table


class ValueRefused(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class RowInvalid(Exception):
    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


Coercer = Callable[[Any], Any]

_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0"}


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown[:57] + "..." if len(shown) > 60 else shown


def _type_error(column: Column, value: Any) -> ValueRefused:
    return ValueRefused("type", f"expected {column.type_name}, got {_shown(value)}")


def _plain_number(text: str) -> bool:
    """ASCII digits and signs only: Python's int() and float() also take "1_000" and other scripts'
    digits ("١٢"), which PostgreSQL refuses and no data source means as a number."""
    return text.isascii() and "_" not in text


def _integer(column: Column) -> Coercer:
    lo, hi = column.int_range or (None, None)

    def coerce(value: Any) -> int:
        if isinstance(value, bool):
            raise _type_error(column, value)
        if isinstance(value, int):
            result = value
        elif isinstance(value, float) and value.is_integer():
            result = int(value)
        elif isinstance(value, str):
            text = value.strip()
            if not _plain_number(text):
                raise _type_error(column, value)
            try:
                result = int(text)
            except ValueError:
                try:
                    as_float = float(text)
                except ValueError:
                    raise _type_error(column, value) from None
                if not as_float.is_integer():
                    raise _type_error(column, value) from None
                result = int(as_float)
        else:
            raise _type_error(column, value)
        if lo is not None and not lo <= result <= hi:
            raise ValueRefused("out_of_range", f"{result} is out of range for {column.type.value}")
        return result

    return coerce


def _float(column: Column) -> Coercer:
    def coerce(value: Any) -> float:
        if isinstance(value, bool):
            raise _type_error(column, value)
        if isinstance(value, int | float):
            result = float(value)
        elif isinstance(value, str):
            if not _plain_number(value):
                raise _type_error(column, value)
            try:
                result = float(value)
            except ValueError:
                raise _type_error(column, value) from None
        elif isinstance(value, decimal.Decimal):
            result = float(value)
        else:
            raise _type_error(column, value)
        if not math.isfinite(result):
            raise ValueRefused("out_of_range", f"{value!r} is not a finite number")
        return result

    return coerce


def _numeric(column: Column) -> Coercer:
    scale = column.scale
    quantum = decimal.Decimal(1).scaleb(-scale) if scale is not None else None
    max_int_digits = (column.precision - (scale or 0)) if column.precision else None

    def coerce(value: Any) -> decimal.Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str | decimal.Decimal):
            raise _type_error(column, value)
        if isinstance(value, str) and not _plain_number(value.strip()):
            raise _type_error(column, value)
        try:
            result = decimal.Decimal(str(value).strip() if not isinstance(value, decimal.Decimal) else value)
        except decimal.InvalidOperation:
            raise _type_error(column, value) from None
        if not result.is_finite():
            raise ValueRefused("out_of_range", f"{value!r} is not a finite number")
        if quantum is not None:
            try:
                result = result.quantize(quantum, rounding=decimal.ROUND_HALF_UP)
            except decimal.InvalidOperation:  # more digits than decimal's context holds: far too big
                raise ValueRefused(
                    "out_of_range", f"{value} does not fit numeric({column.precision},{scale})"
                ) from None
        if max_int_digits is not None and result.adjusted() >= max_int_digits:
            raise ValueRefused(
                "out_of_range", f"{value} does not fit numeric({column.precision},{column.scale})"
            )
        if result.is_zero() and result.is_signed():
            result = -result  # PostgreSQL's numeric has no negative zero: -0 is stored as 0
        return result

    return coerce


def _boolean(column: Column) -> Coercer:
    def coerce(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            text = value.strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
        raise _type_error(column, value)

    return coerce


def _date(column: Column) -> Coercer:
    def coerce(value: Any) -> dt.date:
        if isinstance(value, dt.datetime):
            raise _type_error(column, value)
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError:
                raise _type_error(column, value) from None
        raise _type_error(column, value)

    return coerce


def _datetime(column: Column, value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("z", "Z")):
            text = text[:-1] + "+00:00"
        try:
            return dt.datetime.fromisoformat(text)
        except ValueError:
            raise _type_error(column, value) from None
    raise _type_error(column, value)


def _timestamptz(column: Column) -> Coercer:
    def coerce(value: Any) -> dt.datetime:
        result = _datetime(column, value)
        if result.tzinfo is None:
            # PostgreSQL reads a timestamp without offset in the session's zone, which depot keeps at UTC.
            result = result.replace(tzinfo=dt.UTC)
        try:
            # in UTC, as PostgreSQL gives every timestamptz back in that session zone
            result = result.astimezone(dt.UTC)
            in_range = 1 <= result.year <= 9999
        except OverflowError:  # 0001-01-01 with a positive offset is before year 1 in UTC
            in_range = False
        if not in_range:
            raise ValueRefused("out_of_range", f"{value!r} is out of range for timestamptz")
        return result

    return coerce


def _timestamp(column: Column) -> Coercer:
    """A naive timestamp. A value with a UTC offset is refused, not converted: PostgreSQL would
    silently drop the offset (`'10:00+02'::timestamp` is 10:00), and converting to UTC would guess
    that the column means UTC. Either way a writer's 10:00+02 and 10:00-05 became one instant."""

    def coerce(value: Any) -> dt.datetime:
        result = _datetime(column, value)
        if result.tzinfo is not None:
            raise ValueRefused("type", f"{column.name} is a timestamp without time zone; "
                                       f"{value!r} carries a UTC offset")
        return result

    return coerce


_UUID_HEX = r"[0-9a-fA-F]{8}-?(?:[0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}"
_UUID = re.compile(rf"{_UUID_HEX}|\{{{_UUID_HEX}\}}")


def _uuid(column: Column) -> Coercer:
    def coerce(value: Any) -> uuid.UUID:
        if isinstance(value, uuid.UUID):
            return value
        # What PostgreSQL reads as uuid: hex with or without hyphens, optionally in braces (Python's
        # UUID() would also take "urn:uuid:" and digits with underscores).
        if isinstance(value, str) and _UUID.fullmatch(text := value.strip()):
            return uuid.UUID(text)
        raise _type_error(column, value)

    return coerce


def _text(column: Column) -> Coercer:
    def coerce(value: Any) -> str:
        if not isinstance(value, str):
            raise _type_error(column, value)
        if "\x00" in value:
            raise ValueRefused("type", "text cannot contain the NUL character")
        return value

    return coerce


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(map(_holds_nul, value))
    return False


def _json(column: Column) -> Coercer:
    def coerce(value: Any) -> Any:
        if _holds_nul(value):  # jsonb cannot hold \u0000 anywhere, in a key or in a string
            raise ValueRefused("type", "JSON cannot hold the NUL character")
        return value

    return coerce


def _json_text(column: Column) -> Coercer:
    """A JSON column's cell in a tabular body (CSV; a Parquet string): its value's JSON text, as PostgreSQL's
    json input reads it and as depot's CSV and Parquet exports write it (`"a"` is the string a, `5` the
    number), so that an export loads back as it was. NaN and Infinity are not JSON, nor stored by jsonb."""
    value_of = _json(column)

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not a JSON value")

    def finite(text: str) -> float:
        number = float(text)
        if not math.isfinite(number):
            raise ValueError(f"{text} is too large for a JSON number")
        return number

    def coerce(value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value, parse_constant=refuse, parse_float=finite)
            except ValueError as error:
                reason = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
                raise ValueRefused("type", f"expected JSON text, got {_shown(value)}: {reason}") from None
        return value_of(value)

    return coerce


def _array_items(column: Column, text: str) -> list[Any]:
    """The items of an array written as text: a JSON array (`["a","b"]`, `[1,2]`) or PostgreSQL's
    literal (`{a,b}`, `{"a,b","c \\"d\\""}`, `{}`), the two forms a CSV cell or a filter can hold."""
    text = text.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            raise _type_error(column, text) from None
        if not isinstance(items, list):  # pragma: no cover - a text starting with [ is a list or invalid
            raise _type_error(column, text)
        return items
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueRefused("type", f"expected {column.type_name} as {{a,b}} or a JSON array, got {text[:40]!r}")
    items: list[Any] = []
    inner = text[1:-1]
    if not inner.strip():
        return items
    position = 0
    while True:
        while position < len(inner) and inner[position].isspace():
            position += 1
        if position < len(inner) and inner[position] == '"':
            chars, position = [], position + 1
            while position < len(inner) and inner[position] != '"':
                if inner[position] == "\\":
                    position += 1
                if position < len(inner):
                    chars.append(inner[position])
                position += 1
            if position >= len(inner):
                raise ValueRefused("type", f"unterminated quoted item in {text[:40]!r}")
            item: Any = "".join(chars)
            position += 1
            rest = inner.find(",", position)
            trailing = inner[position:] if rest < 0 else inner[position:rest]
            if trailing.strip():
                raise ValueRefused("type", f"text after a quoted item in {text[:40]!r}")
        else:
            rest = inner.find(",", position)
            raw = (inner[position:] if rest < 0 else inner[position:rest]).strip()
            if not raw or any(c in raw for c in '{}"\\'):
                raise ValueRefused("type", f"malformed array literal {text[:40]!r} (a nested array, an "
                                           "empty item or a stray quote; quote items that hold them)")
            item = None if raw.upper() == "NULL" else raw
        items.append(item)
        if rest < 0:
            return items
        position = rest + 1


def _array(column: Column) -> Coercer:
    """A one-dimensional array without NULL items, each item validated as its element type."""
    element = _BUILDERS[column.item](column.item_column)  # type: ignore[index]

    def coerce(value: Any) -> list[Any]:
        items = _array_items(column, value) if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise _type_error(column, value)
        result = []
        for index, item in enumerate(items):
            if item is None:
                raise ValueRefused("not_null", f"item {index + 1} is null; arrays of {column.name} hold no NULL")
            if isinstance(item, list):
                raise ValueRefused("type", f"item {index + 1} is an array; {column.type_name} has one dimension")
            try:
                result.append(element(item))
            except ValueRefused as refused:
                raise ValueRefused(refused.code, f"item {index + 1}: {refused.message}") from None
        return result

    return coerce


_BUILDERS: dict[ColumnType, Callable[[Column], Coercer]] = {
    ColumnType.TEXT: _text,
    ColumnType.INTEGER: _integer,
    ColumnType.BIGINT: _integer,
    ColumnType.FLOAT: _float,
    ColumnType.NUMERIC: _numeric,
    ColumnType.BOOLEAN: _boolean,
    ColumnType.DATE: _date,
    ColumnType.TIMESTAMPTZ: _timestamptz,
    ColumnType.TIMESTAMP: _timestamp,
    ColumnType.UUID: _uuid,
    ColumnType.JSON: _json,
    ColumnType.ARRAY: _array,
}


def _checks(column: Column) -> list[Callable[[Any], None]]:
    checks: list[Callable[[Any], None]] = []
    if column.pattern is not None:
        regex = re.compile(column.pattern)

        def pattern(value: str) -> None:
            if not regex.fullmatch(value):
                raise ValueRefused("pattern", f"{value!r} does not match {column.pattern}")

        checks.append(pattern)
    if column.choices is not None:
        choices = frozenset(column.choices)

        def choice(value: Any) -> None:
            if value not in choices:
                raise ValueRefused("choice", f"{value!r} is not one of {', '.join(column.choices)}")

        checks.append(choice)
    if column.ge is not None or column.le is not None:
        lo, hi = column.ge, column.le

        def bounds(value: Any) -> None:
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                lo_text = "-inf" if lo is None else lo
                hi_text = "inf" if hi is None else hi
                raise ValueRefused("out_of_range", f"{value} is not within [{lo_text}, {hi_text}]")

        checks.append(bounds)
    if column.gt is not None or column.lt is not None:
        above, below = column.gt, column.lt

        def strict_bounds(value: Any) -> None:
            if (above is not None and not value > above) or (below is not None and not value < below):
                lo_text = "(-inf" if above is None else f"({above}"
                hi_text = "inf)" if below is None else f"{below})"
                raise ValueRefused("out_of_range", f"{value} is not within {lo_text}, {hi_text}")

        checks.append(strict_bounds)
    if column.max_length is not None:
        limit = column.max_length

        def length(value: Any) -> None:
            if len(value) > limit:
                raise ValueRefused("too_long", f"longer than {limit} characters")

        checks.append(length)
    return checks


@cache
def coercer(column: Column, *, tabular: bool = False) -> Coercer:
    """The function that turns a raw value into the column's typed value, or raises ValueRefused.

    None passes through when the column is nullable; the declaration's checks run on the result.
    `tabular`: the value is a cell of a tabular body, where a JSON column holds JSON text.
    """
    base = (_json_text if tabular and column.type is ColumnType.JSON else _BUILDERS[column.type])(column)
    checks = _checks(column)
    nullable = column.nullable

    def coerce(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise ValueRefused("not_null", "may not be null")
        result = base(value)
        for check in checks:
            check(result)
        return result

    return coerce


def coerce_value(column: Column, value: Any) -> Any:
    return coercer(column)(value)


@cache
def _base_coercer(column: Column) -> Coercer:
    return _BUILDERS[column.type](column)


def parse_value(column: Column, value: Any) -> Any:
    """A value typed by the column, without the declaration's checks: what a filter compares with."""
    return _base_coercer(column)(value)


class RowValidator:
    """Validates whole rows for one table: unknown and read-only columns, required ones, each value."""

    def __init__(self, table: Table, *, partial: bool = False, allow_system: frozenset[str] = frozenset(),
                 discard_invalid: bool = False):
        self.table = table
        self.partial = partial
        # contract invalid=discard_value: a refused value of a nullable column becomes NULL, with a warning
        self.discard_invalid = discard_invalid
        self.warnings: list[FieldError] = []  # of the last row validated
        self._nullable = frozenset(c.name for c in table.columns if c.nullable)
        self._writable = {c.name: coercer(c) for c in table.columns if c.writable or c.name in allow_system}
        self._required = tuple(c.name for c in table.columns if c.required)
        self._defaults = tuple(
            (c.name, c.default) for c in table.columns
            if c.writable and not c.required and c.name not in self._required
        )

    def __call__(self, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise RowInvalid([FieldError("", "type", f"a row must be a JSON object, got {type(raw).__name__}")])
        errors: list[FieldError] = []
        row: dict[str, Any] = {}
        if self.warnings:
            self.warnings = []
        for name, value in raw.items():
            convert = self._writable.get(name)
            if convert is None:
                if self.table.has_column(name):
                    errors.append(FieldError(name, "read_only", "is set by depot and cannot be written"))
                else:
                    errors.append(FieldError(name, "unknown_column", f"{self.table.name} has no column {name!r}"))
                continue
            try:
                row[name] = convert(value)
            except ValueRefused as refused:
                if self.discard_invalid and name in self._nullable:
                    row[name] = None
                    self.warnings.append(FieldError(name, refused.code, f"discarded: {refused.message}"))
                else:
                    errors.append(FieldError(name, refused.code, refused.message))
        if not self.partial:
            for name in self._required:
                if name not in raw:
                    errors.append(FieldError(name, "missing", "is required"))
            for name, default in self._defaults:
                if name not in row and name not in raw:
                    row[name] = None if default is MISSING else default
        if errors:
            raise RowInvalid(errors)
        if self.partial and not row:
            raise RowInvalid([FieldError("", "empty", "nothing to change: the body names no column")])
        return row


def validate_rows(table: Table, raws: Iterable[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Validate many rows; return (good rows, per-row errors as {row, field, code, message})."""
    validate = RowValidator(table)
    good: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    for number, raw in enumerate(raws, start=1):
        try:
            good.append(validate(raw))
        except RowInvalid as invalid:
            problems.extend({"row": number, **e.as_dict()} for e in invalid.errors)
    return good, problems


# --- column-wise validation of tabular records (CSV): the ingest fast path ------------------------


_not_none = partial(operator.is_not, None)
# One object: `dt.datetime.fromisoformat` makes a new bound method at each access, so `is` needs this one.
_FROM_ISO = dt.datetime.fromisoformat
_DATE_FROM_ISO = dt.date.fromisoformat  # what _date's coercer calls, on the cell without its spaces


def _fast_base(column: Column) -> Callable[[Any], Any] | None:
    """A builtin that converts the common case of a CSV value, or None: the full coercer then runs."""
    if column.type is ColumnType.TEXT:
        return str
    if column.type in (ColumnType.INTEGER, ColumnType.BIGINT):
        return int
    if column.type is ColumnType.FLOAT:
        return float
    if column.type is ColumnType.TIMESTAMPTZ:
        return _FROM_ISO  # takes a trailing Z since Python 3.11
    if column.type is ColumnType.DATE:
        return _DATE_FROM_ISO
    return None


def _fast_column(column: Column, values: list[Any]) -> list[Any] | None:
    """The typed column when every value passes the fast path; None when any needs a closer look.

    Bulk checks (min/max, one regex per value, one join for NUL) replace the per-value checks.
    """
    fast = _fast_base(column)
    if fast is None:
        return None
    has_null = None in values
    if has_null and not column.nullable:
        return None
    present = list(filter(_not_none, values)) if has_null else values
    try:
        # Only strings take this path. "".join refuses anything else (TypeError) in C, as
        # fromisoformat does, where a check of each value's type cost a fifth of the validation.
        if fast is str:
            converted = present
            if "\x00" in "".join(present):
                return None
        elif fast in (int, float):
            if not _plain_number("".join(present)):
                return None  # the coercer says why
            converted = list(map(fast, present))
        else:
            converted = list(map(fast, present))
    except (TypeError, ValueError):
        return None
    if converted:
        if fast is float and not all(map(math.isfinite, converted)):
            return None
        if fast is _FROM_ISO:
            # PostgreSQL reads a timestamp without offset in the session's zone, which depot keeps at UTC,
            # and gives every one back in that zone
            converted = [v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v if v.tzinfo is dt.UTC
                         else v.astimezone(dt.UTC) for v in converted]
            if not all(1 < v.year < 9999 for v in converted):  # the edges take the coercer's road
                return None
        bounds = column.int_range if fast is int else None
        lo = column.ge if column.ge is not None else (bounds[0] if bounds else None)
        hi = column.le if column.le is not None else (bounds[1] if bounds else None)
        if (lo is not None or hi is not None) and fast in (int, float):
            if (lo is not None and min(converted) < lo) or (hi is not None and max(converted) > hi):
                return None
        if (column.gt is not None or column.lt is not None) and fast in (int, float):
            if (column.gt is not None and min(converted) <= column.gt) or (
                column.lt is not None and max(converted) >= column.lt
            ):
                return None
        if column.pattern is not None:
            regex = re.compile(column.pattern)
            if not all(map(regex.fullmatch, converted)):
                return None
        if column.choices is not None and not set(converted) <= set(column.choices):
            return None
        if column.max_length is not None and max(map(len, converted)) > column.max_length:
            return None
    if not has_null:
        return converted
    typed = iter(converted)
    return [None if v is None else next(typed) for v in values]



class RecordsChecked:
    """A chunk of records, validated: the good rows (typed dicts) and the errors of the others."""

    def __init__(self, rows: ColumnRows, indexes: list[int], errors: dict[int, list[FieldError]],
                 warnings: dict[int, list[FieldError]] | None = None, verbatim: frozenset[str] = frozenset()):
        self.rows = rows  # one list per writable column (rows.columns), read as dicts where needed
        self.indexes = indexes  # position in the chunk of each good row
        self.errors = errors  # position in the chunk -> its errors
        self.warnings = warnings or {}  # position -> the values discarded (contract invalid=discard_value)
        # The columns whose every value is its own cell converted by the common path's builtin (str, int,
        # float, date/datetime.fromisoformat): no default stood in for a cell, none was coerced one by one.
        self.verbatim = verbatim


def header_errors(table: Table, header: list[str]) -> list[FieldError]:
    """What is wrong with a CSV header: unknown, read-only, repeated or missing required columns."""
    errors = []
    seen: set[str] = set()
    for name in header:
        if name in seen:
            errors.append(FieldError(name, "duplicate_column", f"the header names {name!r} twice"))
        seen.add(name)
        if not table.has_column(name):
            errors.append(FieldError(name, "unknown_column", f"{table.name} has no column {name!r}"))
        elif not table.column(name).writable:
            errors.append(FieldError(name, "read_only", "is set by depot and cannot be written"))
    for column in table.columns:
        if column.required and column.name not in seen:
            errors.append(FieldError(column.name, "missing", "is required"))
    return errors


@cache
def empty_cell_defaults(table: Table) -> dict[str, Any]:
    """What an empty CSV cell (read as NULL) becomes, by column: the default of a NOT NULL column
    that has one, as if the cell were absent, where NULL would only be refused. A nullable column
    keeps the NULL its cell says, as PostgreSQL's COPY would."""
    return {
        c.name: c.default for c in table.writable_columns
        if not c.nullable and c.default is not MISSING and c.default is not None
    }


def validate_records(table: Table, header: list[str], records: list[list[Any]]) -> RecordsChecked:
    """Validate tabular records column by column (the header must pass header_errors first)."""
    columns = [list(c) for c in zip(*records, strict=True)] if records else [[] for _ in header]
    return validate_columns(table, header, columns, len(records))


def validate_columns(table: Table, header: list[str], columns: list[list[Any]], n: int, *,
                     discard_invalid: bool = False) -> RecordsChecked:
    """Validate `n` rows given as columns under `header` (which must pass header_errors first): the
    cells of a tabular body (CSV, Parquet), where a JSON column holds each value's JSON text.

    A column whose values all take the fast path costs one builtin call per value; a column with
    any doubtful value is coerced value by value, and only the rows with a refused value fail
    (or, with `discard_invalid`, lose that value to NULL where the column is nullable).
    """
    typed: dict[str, list[Any]] = {}
    errors: dict[int, list[FieldError]] = {}
    warnings: dict[int, list[FieldError]] = {}
    empty_defaults = empty_cell_defaults(table)
    verbatim: set[str] = set()
    for name, values in zip(header, columns, strict=True):
        column = table.column(name)
        defaulted = name in empty_defaults and None in values
        if defaulted:
            values = [empty_defaults[name] if v is None else v for v in values]
        converted = _fast_column(column, values)
        if converted is not None and not defaulted:
            verbatim.add(name)
        if converted is None:
            coerce = coercer(column, tabular=True)
            discard = discard_invalid and column.nullable
            converted = []
            for i, value in enumerate(values):
                try:
                    converted.append(coerce(value))
                except ValueRefused as refused:
                    converted.append(None)
                    if discard:
                        warnings.setdefault(i, []).append(
                            FieldError(name, refused.code, f"discarded: {refused.message}"))
                    else:
                        errors.setdefault(i, []).append(FieldError(name, refused.code, refused.message))
        typed[name] = converted
    defaults = {
        c.name: (None if c.default is MISSING else c.default)
        for c in table.writable_columns if c.name not in typed
    }
    names = list(typed)
    good_indexes = [i for i in range(n) if i not in errors] if errors else list(range(n))
    if errors:
        good_columns = [[col[i] for i in good_indexes] for col in typed.values()]
    else:
        good_columns = list(typed.values())
    columns = {**dict(zip(names, good_columns, strict=True)),
               **{name: [value] * len(good_indexes) for name, value in defaults.items()}}
    return RecordsChecked(ColumnRows(columns, len(good_indexes)), good_indexes, errors, warnings, frozenset(verbatim))
