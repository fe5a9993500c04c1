"""Source profiles: how one source's data maps onto a table, declared once with the source (`sources.profile`).

A profile is a JSON object (the schema is PROFILE_SCHEMA, documented in the README's "Sources"):

    {"columns": {"Price (EUR)": "price"}, "match": "normalized",
     "constants": {"store": "shop_a"},
     "formats": {"date": "%d/%m/%Y", "timestamp": "%m/%d/%Y %H:%M", "timezone": "Europe/Paris",
                 "decimal_comma": true, "true": ["oui"], "false": ["non"], "null": ["NA", "-"],
                 "columns": {"observed_at": {"timestamp": "%Y%m%d%H%M"}}},
     "record_path": "data.results",
     "contract": {"unknown": "discard", "invalid": "discard_value"},
     "cursor": "time_hour",
     "tables": {"planes": {"columns": {"TailNum": "tailnum"}}}}

Its top-level keys apply to every table; `tables.NAME` holds the same keys for one table, and wins
key by key (`columns`, `constants` and `formats` merge). A request's query parameters override both
for one batch. The effective profile of a batch is stored with the batch (JSON and hash), so a
replay reads its rejected payloads the way the batch did.

The plan it makes (ColumnPlan) works on whole columns: the header is resolved once, and a column's
values go through one converter, so a CSV batch pays a list comprehension per converted column.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from domain.errors import BadRequest
from domain.schema import NUMBER_TYPES, ColumnType, Table

MATCHES = ("exact", "case_insensitive", "normalized")
UNKNOWN = ("reject_row", "discard", "freeze")
INVALID = ("reject_row", "discard_value")
FORMAT_KEYS = ("date", "timestamp", "timezone", "decimal_comma", "true", "false", "null")
TABLE_KEYS = ("columns", "match", "constants", "formats", "record_path", "contract", "cursor")
PROFILE_KEYS = (*TABLE_KEYS, "tables")

_WORDS = {"type": "array", "items": {"type": "string"}}
_FORMAT_PROPERTIES: dict[str, Any] = {
    "date": {"type": "string", "description": "strftime pattern of date columns, e.g. %d/%m/%Y"},
    "timestamp": {"type": "string", "description": "strftime pattern of timestamp columns"},
    "timezone": {"type": "string", "description": "IANA zone of naive times, e.g. America/New_York"},
    "decimal_comma": {"type": "boolean", "description": "numbers are written 1.234,5"},
    "true": {**_WORDS, "description": "words read as true (case-insensitive)"},
    "false": {**_WORDS, "description": "words read as false (case-insensitive)"},
    "null": {**_WORDS, "description": "values read as NULL"},
}
_TABLE_PROPERTIES: dict[str, Any] = {
    "columns": {"type": "object", "additionalProperties": {"type": "string"},
                "description": "incoming name -> column"},
    "match": {"enum": list(MATCHES), "description": "how incoming names meet column names"},
    "constants": {"type": "object", "description": "column -> value set on every row"},
    "formats": {"type": "object", "additionalProperties": False, "properties": {
        **_FORMAT_PROPERTIES,
        "columns": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": False, "properties": _FORMAT_PROPERTIES}},
    }},
    "record_path": {"type": "string", "description": "where the rows sit in a JSON body: items, data.results"},
    "contract": {"type": "object", "additionalProperties": False, "properties": {
        "unknown": {"enum": list(UNKNOWN)}, "invalid": {"enum": list(INVALID)}}},
    "cursor": {"type": "string", "description": "the column whose greatest value is the source's watermark"},
}
PROFILE_SCHEMA: dict[str, Any] = {
    "title": "SourceProfile",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **_TABLE_PROPERTIES,
        "tables": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": False, "properties": _TABLE_PROPERTIES}},
    },
}


def _refuse(message: str) -> BadRequest:
    return BadRequest(f"Invalid source profile: {message}", code="PGRST100",
                      hint="The profile's keys and values are documented in the README's 'Sources' section.")


# --- validation of the document ---------------------------------------------------------------------


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _refuse(f"{where} must be an object, not {type(value).__name__}")
    return value


def _keys(doc: dict[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = [k for k in doc if k not in allowed]
    if unknown:
        raise _refuse(f"unknown key {unknown[0]!r} in {where}; the keys are {', '.join(allowed)}")


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _refuse(f"{where} must be a non-empty string")
    return value


def _words(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise _refuse(f"{where} must be a list of strings")
    return value


_SAMPLE = dt.datetime(2001, 2, 13, 14, 15, 16)


def check_strftime(pattern: Any, where: str) -> str:
    """A pattern that strptime can read back: a bad directive (`%Q`) or no directive at all is refused."""
    pattern = _string(pattern, where)
    if "%" not in pattern.replace("%%", ""):
        raise _refuse(f"{where} {pattern!r} has no strftime directive (such as %d, %m, %Y)")
    try:
        dt.datetime.strptime(_SAMPLE.strftime(pattern), pattern)
    except (ValueError, re.error) as error:
        raise _refuse(f"{where} {pattern!r} is not a strftime pattern depot can read ({error})") from None
    return pattern


def check_timezone(name: Any, where: str) -> str:
    name = _string(name, where)
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file
        raise _refuse(f"{where} {name!r} is not a time zone (use an IANA name such as Europe/Paris)") from None
    return name


def _check_format(doc: Any, where: str, *, nested: bool) -> None:
    doc = _object(doc, where)
    _keys(doc, (*FORMAT_KEYS, "columns") if nested else FORMAT_KEYS, where)
    for key, value in doc.items():
        place = f"{where}.{key}"
        if key in ("date", "timestamp"):
            check_strftime(value, place)
        elif key == "timezone":
            check_timezone(value, place)
        elif key == "decimal_comma":
            if not isinstance(value, bool):
                raise _refuse(f"{place} must be true or false")
        elif key == "columns":
            for name, per_column in _object(value, place).items():
                _check_format(per_column, f"{place}.{name}", nested=False)
        else:
            _words(value, place)


def _check_table(doc: Any, where: str) -> None:
    doc = _object(doc, where)
    _keys(doc, PROFILE_KEYS if where == "profile" else TABLE_KEYS, where)
    for key, value in doc.items():
        place = f"{where}.{key}"
        if key == "columns":
            for incoming, target in _object(value, place).items():
                _string(target, f"{place}.{incoming}")
        elif key == "match":
            if value not in MATCHES:
                raise _refuse(f"{place} is {value!r}; it is one of {', '.join(MATCHES)}")
        elif key == "constants":
            _object(value, place)
        elif key == "formats":
            _check_format(value, place, nested=True)
        elif key in ("record_path", "cursor"):
            _string(value, place)
        elif key == "contract":
            contract = _object(value, place)
            _keys(contract, ("unknown", "invalid"), place)
            for name, choices in (("unknown", UNKNOWN), ("invalid", INVALID)):
                if name in contract and contract[name] not in choices:
                    raise _refuse(f"{place}.{name} is {contract[name]!r}; it is one of {', '.join(choices)}")
        elif key == "tables":
            for name, per_table in _object(value, place).items():
                _check_table(per_table, f"{place}.{name}")


def check_profile(doc: Any) -> dict[str, Any] | None:
    """The profile document if it follows PROFILE_SCHEMA (None stays None); BadRequest says where it does not."""
    if doc is None:
        return None
    _check_table(doc, "profile")
    return doc


# --- the effective profile of one batch -------------------------------------------------------------


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` wins key by key; the maps (columns, constants, formats and its columns, contract) merge."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def effective_profile(stored: dict[str, Any] | None, table: str, overrides: Mapping[str, Any] | None = None
                      ) -> dict[str, Any]:
    """One table's profile for one batch: the source's all-tables keys, its `tables.TABLE` keys, then
    the request's overrides (each checked against the schema first)."""
    stored = check_profile(stored) or {}
    result = {k: v for k, v in stored.items() if k != "tables"}
    per_table = stored.get("tables", {}).get(table)
    if per_table:
        result = _merge(result, per_table)
    if overrides:
        _check_table(dict(overrides), "request")
        result = _merge(result, overrides)
    return result


def profile_hash(profile: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(profile, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --- request parameters ----------------------------------------------------------------------------


def _pairs(text: str, where: str) -> dict[str, Any]:
    """`a:b,c:d`, or a JSON object (for names holding a comma or a colon)."""
    if text.lstrip().startswith("{"):
        try:
            return _object(json.loads(text), where)
        except json.JSONDecodeError as error:
            raise _refuse(f"{where}= is not a JSON object ({error})") from None
    pairs = {}
    for item in filter(None, text.split(",")):
        name, colon, value = item.partition(":")
        if not colon or not name:
            raise _refuse(f"{where}= takes name:value pairs separated by commas, not {item!r}")
        pairs[name] = value
    return pairs


# query parameter -> where it goes in the profile
REQUEST_PARAMETERS: dict[str, tuple[str, ...]] = {
    "columns": ("columns",), "match": ("match",), "set": ("constants",), "record_path": ("record_path",),
    "unknown": ("contract", "unknown"), "invalid": ("contract", "invalid"), "cursor": ("cursor",),
    "date_format": ("formats", "date"), "timestamp_format": ("formats", "timestamp"),
    "timezone": ("formats", "timezone"), "decimal_comma": ("formats", "decimal_comma"),
    "true": ("formats", "true"), "false": ("formats", "false"), "null": ("formats", "null"),
}


def overrides_from_parameters(params: Mapping[str, str]) -> dict[str, Any]:
    """A profile fragment from a request's query parameters (only those of REQUEST_PARAMETERS)."""
    doc: dict[str, Any] = {}
    for name, text in params.items():
        path = REQUEST_PARAMETERS.get(name)
        if path is None:
            continue
        value: Any = text
        if name in ("columns", "set"):
            value = _pairs(text, name)
        elif name == "decimal_comma":
            if text.lower() not in ("true", "false"):
                raise _refuse(f"decimal_comma= is true or false, not {text!r}")
            value = text.lower() == "true"
        elif name in ("true", "false", "null"):
            value = text.split(",")
        target = doc
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return doc


# --- the plan: incoming names and values -> the table's columns ------------------------------------


def _normalized(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


_MATCHERS: dict[str, Callable[[str], str]] = {
    "exact": lambda name: name, "case_insensitive": str.lower, "normalized": _normalized,
}

DISCARD = None  # an incoming name resolved to nothing: its values are dropped


def _converter(kind: ColumnType, fmt: dict[str, Any]) -> Callable[[Any], Any] | None:
    """What one column's formats do to a raw value (text only; other values pass), or None when nothing."""
    steps: list[Callable[[str], Any]] = []
    nulls = frozenset(fmt.get("null", ()))
    if kind in NUMBER_TYPES and fmt.get("decimal_comma"):
        steps.append(lambda v: v.replace(".", "").replace(",", "."))
    if kind is ColumnType.BOOLEAN and ("true" in fmt or "false" in fmt):
        words = {**{w.lower(): False for w in fmt.get("false", ())}, **{w.lower(): True for w in fmt.get("true", ())}}
        steps.append(lambda v: words.get(v.strip().lower(), v))
    pattern = fmt.get("date") if kind is ColumnType.DATE else (
        fmt.get("timestamp") if kind in (ColumnType.TIMESTAMPTZ, ColumnType.TIMESTAMP) else None)
    zone = zoneinfo.ZoneInfo(fmt["timezone"]) if kind is ColumnType.TIMESTAMPTZ and "timezone" in fmt else None
    if pattern is not None:
        strptime = dt.datetime.strptime

        def parse(v: str) -> Any:
            try:
                parsed = strptime(v.strip(), pattern)
            except ValueError:
                return v  # the column's coercer refuses it, naming the type
            if kind is ColumnType.DATE:
                return parsed.date()
            return parsed.replace(tzinfo=zone) if zone is not None and parsed.tzinfo is None else parsed

        steps.append(parse)
    elif zone is not None:
        def zoned(v: str) -> Any:
            try:
                parsed = dt.datetime.fromisoformat(v.strip())
            except ValueError:
                return v
            return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed

        steps.append(zoned)
    if not steps and not nulls:
        return None

    def convert(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value in nulls:
            return None
        for step in steps:
            value = step(value)
            if not isinstance(value, str):
                return value
        return value

    return convert


@dataclass
class ColumnPlan:
    """A batch's profile made concrete for one table: resolved names, converters, constants, contract."""

    table: Table
    profile: dict[str, Any]
    unknown: str = "reject_row"
    invalid: str = "reject_row"
    renames: dict[str, str] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    old_names: dict[str, str] = field(default_factory=dict)  # a Renamed column's old name -> its name
    converters: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    _match: Callable[[str], str] = _MATCHERS["exact"]
    _by_match: dict[str, str] = field(default_factory=dict)
    _resolved: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def of(cls, table: Table, profile: Mapping[str, Any]) -> ColumnPlan:
        match = _MATCHERS[profile.get("match", "exact")]
        contract = profile.get("contract", {})
        plan = cls(table, dict(profile), contract.get("unknown", "reject_row"),
                   contract.get("invalid", "reject_row"), _match=match)
        # A column declared Renamed("old") still takes its old name, as a profile's target or as an incoming
        # name: the profiles, payloads and rejected rows of before the rename keep landing where they did.
        old_names = {c.renamed_from: c.name for c in table.columns
                     if c.renamed_from and not table.has_column(c.renamed_from)}
        plan.renames = {match(k): old_names.get(v, v) for k, v in profile.get("columns", {}).items()}
        plan.old_names = old_names
        plan._by_match = {**{match(old): new for old, new in old_names.items()},
                          **{match(c.name): c.name for c in table.columns}}
        plan.constants = {old_names.get(k, k): v for k, v in profile.get("constants", {}).items()}
        for name in plan.constants:
            if not table.has_column(name) or not table.column(name).writable:
                raise _refuse(f"constants sets {name!r}, which is not a writable column of {table.name}")
        formats = profile.get("formats", {})
        by_type = {k: v for k, v in formats.items() if k != "columns"}
        per_column = {old_names.get(k, k): v for k, v in formats.get("columns", {}).items()}
        for name in per_column:
            if not table.has_column(name):
                raise _refuse(f"formats.columns names {name!r}, which {table.name} does not have")
        for column in table.writable_columns:
            convert = _converter(column.type, {**by_type, **per_column.get(column.name, {})})
            if convert is not None:
                plan.converters[column.name] = convert
        return plan

    @property
    def trivial(self) -> bool:
        """Nothing to do: the batch takes today's road untouched."""
        return not (self.renames or self.constants or self.converters) and self.unknown == "reject_row" \
            and self.invalid == "reject_row" and self._match is _MATCHERS["exact"] \
            and not self.old_names

    @property
    def discard_invalid(self) -> bool:
        return self.invalid == "discard_value"

    def resolve(self, incoming: str) -> str | None:
        """The column an incoming name lands in; DISCARD when the contract drops it; the name itself
        (unknown to the table) when the row is to be rejected for it."""
        if incoming in self._resolved:
            return self._resolved[incoming]
        key = self._match(incoming)
        target = self.renames.get(key)
        if target is None or not self.table.has_column(target):
            target = self._by_match.get(key)
        if target is not None and target in self.constants:
            target = DISCARD  # the constant wins over the incoming value
        elif target is None:
            if self.unknown == "freeze":
                raise BadRequest(
                    f"{incoming!r} is not a column of {self.table.name} and the contract is unknown=freeze",
                    code="PGRST204", details={"column": incoming},
                    hint="Map it (columns=), discard unknown columns (unknown=discard), or change the table.")
            target = DISCARD if self.unknown == "discard" else incoming
        self._resolved[incoming] = target
        return target

    # --- column-wise (CSV): the header once, then whole columns -------------------------------------

    def header(self, header: Sequence[str]) -> tuple[list[str], list[int]]:
        """The mapped header and the positions of the incoming columns it keeps."""
        names, keep = [], []
        for i, name in enumerate(header):
            target = self.resolve(name)
            if target is not DISCARD:
                names.append(target)
                keep.append(i)
        return [*names, *self.constants], keep

    def columns(self, names: Sequence[str], columns: list[list[Any]], n: int) -> list[list[Any]]:
        """Converted columns (under the mapped `names`, without the constants), then one per constant."""
        out = []
        for name, values in zip(names, columns, strict=False):
            convert = self.converters.get(name)
            out.append(values if convert is None else [convert(v) for v in values])
        return out + [[value] * n for value in self.constants.values()]

    # --- row-wise (JSON objects, replayed payloads) -------------------------------------------------

    def row(self, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw  # the validator says what is wrong with it
        row = {}
        converters = self.converters
        for name, value in raw.items():
            target = self.resolve(name) if isinstance(name, str) else name
            if target is DISCARD:
                continue
            convert = converters.get(target)
            row[target] = value if convert is None else convert(value)
        row.update(self.constants)
        return row


def cursor_column(table: Table, profile: Mapping[str, Any]) -> str:
    """The watermark's column: the profile's `cursor`, which must be a column of the table."""
    cursor = profile.get("cursor")
    if cursor is None:
        raise BadRequest(f"The source's profile names no cursor for {table.name}",
                         hint='Set "cursor": "COLUMN" in the profile (for all tables or under tables.NAME).')
    if not table.has_column(cursor):
        raise BadRequest(f"The profile's cursor {cursor!r} is not a column of {table.name}")
    return cursor

