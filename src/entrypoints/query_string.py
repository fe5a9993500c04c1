"""PostgREST's query string, parsed into the domain's query model. Client text never reaches SQL:
column and table names are checked against the catalog, and values are typed by their column."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import decimal
import re
from collections.abc import Iterable

import orjson

from domain import text_search
from domain.errors import AmbiguousEmbed, BadRequest, UnknownColumn
from domain.query import (
    AGGREGATES,
    CAST_TYPES,
    CASTS,
    OPERATORS,
    Aggregate,
    BoolExpr,
    Cast,
    Condition,
    Embed,
    Field,
    JsonPath,
    Lookup,
    OrderBy,
    Query,
    Read,
    Related,
    SelectItem,
    Where,
    conjunction,
    live_only,
    name_of,
    output_keys,
)
from domain.schema import NUMBER_TYPES, Catalog, Column, ColumnType, Table
from domain.validation import ValueRefused, coerce_value, parse_value

RESERVED = frozenset({"select", "order", "limit", "offset", "on_conflict", "columns", "after", "having", "distinct",
                      "as_of", "include_deleted"})
LOGIC = {"or": ("or", False), "and": ("and", False), "not.or": ("or", True), "not.and": ("and", True)}
_LIKE_TYPES = frozenset({ColumnType.TEXT})
# Arrays are compared whole (eq, neq, in, is.null): no order, which PostgreSQL defines item by item
# with the items' collation, and no grouping (a list is no dict key in the memory adapter).
_UNORDERED_TYPES = frozenset({ColumnType.JSON, ColumnType.ARRAY})
_ORDERED_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_INT = 2**63 - 1
_MAX_DEPTH = 16


def _shown(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_word(table: Table, name: str) -> str:
    """A column's type as messages name it."""
    column = table.column(name)
    return "JSON" if column.type is ColumnType.JSON else column.type_name


def _column(table: Table, name: str, where: str) -> str:
    if not table.has_column(name):
        raise UnknownColumn(
            f"Could not find the '{_shown(name)}' column of '{table.name}'",
            details=f"in {_shown(where)}",
            hint=f"Columns of {table.name}: {', '.join(table.column_names)}",
        )
    return name


def _typed(table: Table, column: str, text: str, where: str):
    try:
        return parse_value(table.column(column), text)
    except ValueRefused as refused:
        raise BadRequest(
            f"Invalid value {_shown(text)!r} for column '{column}' ({table.column(column).type_name})",
            details=f"in {_shown(where)}: {refused.message}",
            code="22P02",
        ) from None


_OPENS = {"(": ")", "{": "}", "[": "]"}
_CLOSES = {v: k for k, v in _OPENS.items()}


def split_top(text: str, where: str, separator: str = ",") -> list[str]:
    """Split at separators outside parentheses, braces (arrays of (any)/(all), JSON objects), brackets
    (JSON arrays) and double quotes; refuse unbalanced ones."""
    parts, current, stack, quoted, escaped = [], [], [], False, False
    for ch in text:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch in _OPENS:
            stack.append(ch)
        elif not quoted and ch in _CLOSES:
            if not stack or stack[-1] != _CLOSES[ch]:
                raise BadRequest(f"Unbalanced parentheses or brackets in {_shown(where)!r}",
                                 details=f"a {ch!r} closes nothing")
            stack.pop()
        elif not quoted and not stack and ch == separator:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    if quoted:
        raise BadRequest(f"Unbalanced double quotes in {_shown(where)!r}")
    if stack:
        raise BadRequest(f"Unbalanced parentheses or brackets in {_shown(where)!r}",
                         details=f"a {stack[-1]!r} is never closed")
    parts.append("".join(current))
    return parts


def _unquote(text: str) -> str:
    """`"a,b"` into `a,b` (backslash escapes inside); anything else as it is."""
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


def _split_in_list(text: str, where: str) -> list[str]:
    """`(a,b,"c,d")` into its items; double quotes protect commas and parentheses."""
    if not (text.startswith("(") and text.endswith(")")):
        raise BadRequest(f"The in operator takes a list in parentheses, got {_shown(text)!r}",
                         details=f"in {_shown(where)}")
    inner = text[1:-1]
    if not inner.strip():
        return []
    return [_unquote(item.strip()) for item in split_top(inner, where)]


_JSON_KEY = re.compile(r"[A-Za-z0-9_$@-]+")
_INDEX = re.compile(r"-?[0-9]{1,9}")
_MAX_PATH = 32
_ARROW = re.compile(r"(->>|->)")


def parse_ref(table: Table, text: str, where: str) -> str | JsonPath:
    """A column, or a path into a JSON column: `col->key->0->>key` (a number is an array index)."""
    if "::" in text:  # PostgREST leaves a cast in a filter to PostgreSQL; here it is refused plainly
        raise BadRequest(f"Casts apply in select= only, not in filters or order: {_shown(text)!r}",
                         details=f"in {_shown(where)}", code="PGRST100",
                         hint="Filter and order by the column as it is; its values are typed by its own type.")
    if "->" not in text:
        return _column(table, text, where)
    if text.count("->") > _MAX_PATH:
        raise BadRequest(f"A JSON path takes at most {_MAX_PATH} steps", details=f"in {_shown(where)}")
    parts = _ARROW.split(text)
    column, arrows, keys = parts[0], parts[1::2], parts[2::2]
    _column(table, column, where)
    if table.column(column).type is not ColumnType.JSON:
        raise BadRequest(f"'{column}' is {table.column(column).type_name}; -> and ->> apply to JSON columns",
                         details=f"in {_shown(where)}", code="42883")
    if "->>" in arrows[:-1]:
        raise BadRequest(f"->> gives text, so it can only end a JSON path: {_shown(text)!r}",
                         details=f"in {_shown(where)}", hint="Write col->a->>b.")
    steps: list[str | int] = []
    for key in keys:
        if not _JSON_KEY.fullmatch(key):
            raise BadRequest(f"Invalid key {_shown(key)!r} in the JSON path {_shown(text)!r}",
                             details=f"in {_shown(where)}",
                             hint="Keys are letters, digits, _, $, @ and -; a whole number is an array index.")
        steps.append(int(key) if _INDEX.fullmatch(key) else key)
    return JsonPath(column, tuple(steps), arrows[-1] == "->>")


def _kind(table: Table, ref: str | JsonPath) -> ColumnType | None:
    """What a ref's values are: its column's type, text for ->>, None for a jsonb member (->)."""
    if isinstance(ref, str):
        return table.column(ref).type
    return ColumnType.TEXT if ref.text else None


def _typed_ref(table: Table, ref: str | JsonPath, text: str, where: str):
    if isinstance(ref, str):
        return _typed(table, ref, text, where)
    if "\x00" in text or "\\u0000" in text:  # PostgreSQL's text and jsonb cannot hold NUL
        raise BadRequest("A value cannot contain the NUL character", details=f"in {_shown(where)}", code="22P05")
    if ref.text:
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise BadRequest(f"Invalid JSON value {_shown(text)!r} for the jsonb member {ref.name}",
                         details=f"in {_shown(where)}", code="22P02",
                         hint="-> compares JSON values: write 1, true or \"text\"; ->> compares text.") from None


def _search(ref: str | JsonPath, kind: ColumnType | None, op: str, config: str | None, text: str, negated: bool,
            where: str) -> Condition:
    """`fts(config).query` and its plain, phrase and websearch forms, on text."""
    if kind is not ColumnType.TEXT:
        shown = "a jsonb member (use ->> for its text)" if kind is None else kind.value
        raise BadRequest(f"{op} searches text; '{name_of(ref)}' is {shown}", details=f"in {_shown(where)}")
    config = config or text_search.DEFAULT_CONFIG
    if config not in text_search.CONFIGS:
        raise BadRequest(f"Unknown text search configuration {_shown(config)!r}", code="42704",
                         details=f"in {_shown(where)}", hint=f"Configurations: {', '.join(text_search.CONFIGS)}")
    text_search.parse_search(op, config, text)  # refuses a malformed query here, before any adapter sees it
    return Condition(ref, op, (config, text), negated)


_QUANTIFIABLE = ("eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch")
_CONTAINMENT = ("cs", "cd", "ov")
_MAX_REGEX = 512
# Regular expressions where Python's re and PostgreSQL's ARE engine mean the same: no lookaround or
# other (?...) groups, no back references, no POSIX classes or ARE-only escapes (\m \M \y \Y \Z
# and a \b that PostgreSQL reads as backspace), and no quantified group that itself holds a
# quantifier (which Python's backtracking engine can take exponential time on), and no brace that
# is not a bound {m}, {m,} or {m,n} (a literal to Python, an error to PostgreSQL).
_REGEX_REFUSED = re.compile(r"\(\?|\[\[?:|\\[1-9bBmMyYZAaeEcxu0]|\([^()]*[*+?}][^()]*\)[*+?{]"
                            r"|\{(?!\d{1,3}(?:,\d{0,3})?\})")


def _regex(op: str, pattern: str, where: str) -> str:
    if len(pattern) > _MAX_REGEX:
        raise BadRequest(f"A {op} pattern takes at most {_MAX_REGEX} characters", details=f"in {_shown(where)}")
    if "\x00" in pattern:
        raise BadRequest(f"A {op} pattern cannot contain the NUL character", details=f"in {_shown(where)}")
    refused = _REGEX_REFUSED.search(pattern)
    if refused:
        raise BadRequest(f"The {op} pattern uses {_shown(refused.group())!r}, which is not supported",
                         details=f"in {_shown(where)}",
                         hint="Patterns take literals, . [] [^] ^ $ | () * + ? {m,n} and \\d \\w \\s; "
                              "a quantified group cannot itself hold a quantifier.")
    try:
        re.compile(pattern)
    except re.error as error:
        raise BadRequest(f"Invalid regular expression: {error.msg}", code="2201B",
                         details=f"in {_shown(where)}") from None
    return pattern


def _array_items(value: str, where: str) -> list[str]:
    """`{a,b,"c,d"}`, PostgreSQL's array literal, as (any) and (all) take it."""
    if not (value.startswith("{") and value.endswith("}")):
        raise BadRequest(f"(any) and (all) take a list in braces, got {_shown(value)!r}",
                         details=f"in {_shown(where)}", hint="Write col=eq(any).{a,b,c}")
    inner = value[1:-1]
    return [_unquote(item.strip()) for item in split_top(inner, where)] if inner.strip() else []


def _single(table: Table, ref: str | JsonPath, kind: ColumnType | None, op: str, value: str, negated: bool,
            where: str) -> Condition:
    """One comparison of `ref` with one value, typed and checked for the operator."""
    column = name_of(ref)
    if op in _CONTAINMENT:
        if kind is ColumnType.ARRAY:
            return Condition(ref, op, _array_value(table, column, value, where), negated)
        if kind is not None and kind is not ColumnType.JSON:
            raise BadRequest(f"{op} needs a JSON column or member; '{column}' is {table.column(column).type_name}",
                             details=f"in {_shown(where)}", code="42883")
        typed = [] if op == "ov" and value == "{}" else _json_value(value, column, where)
        if op == "ov" and not isinstance(typed, list):
            raise BadRequest(f"ov takes a JSON array, got {_shown(value)!r}", details=f"in {_shown(where)}",
                             hint=f"Write {column}=ov.[\"a\",\"b\"]")
        return Condition(ref, op, typed, negated)
    if kind is ColumnType.JSON:
        raise BadRequest(f"'{column}' is a JSON column; only is.null, cs, cd and ov filters apply to it",
                         details=f"in {_shown(where)}", hint=f"Filter a member: {column}->>key=eq.value")
    if op in _ORDERED_OPERATORS and kind in _UNORDERED_TYPES:
        raise BadRequest(f"{op} cannot compare the {table.column(column).type_name} column '{column}'",
                         details=f"in {_shown(where)}", hint="Arrays take eq, neq, in and is.null.")
    if op in ("like", "ilike", "match", "imatch"):
        if kind not in _LIKE_TYPES:
            shown = "a jsonb member (use ->> for its text)" if kind is None else table.column(column).type_name
            raise BadRequest(f"{op} needs a text column; '{column}' is {shown}", details=f"in {_shown(where)}")
        if op in ("match", "imatch"):
            return Condition(ref, op, _regex(op, value, where), negated)
        if "\x00" in value:
            raise BadRequest(f"A {op} pattern cannot contain the NUL character", details=f"in {_shown(where)}")
        if (len(value) - len(value.rstrip("\\"))) % 2:
            raise BadRequest(f"A {op} pattern must not end with a lone backslash (the escape character)",
                             details=f"in {_shown(where)}", code="22025")
        return Condition(ref, op, value.replace("*", "%"), negated)
    if op == "isdistinct" and kind is None:
        raise BadRequest("isdistinct compares columns and text members (->>), not jsonb members",
                         details=f"in {_shown(where)}")
    return Condition(ref, op, _typed_ref(table, ref, value, where), negated)


_MAX_ARRAY_ITEMS = 1000


def _array_value(table: Table, column: str, text: str, where: str) -> tuple:
    """The items a cs, cd or ov filter compares a SQL array column with: PostgreSQL's array literal
    `{a,b,"c,d"}` (as PostgREST clients send lists) or a JSON array, each item typed by the column's
    element type. Arrays here hold no null element, so an unquoted NULL is refused rather than
    matching nothing, as it would on PostgreSQL."""
    if text.startswith("["):
        try:
            raw = orjson.loads(text)
        except orjson.JSONDecodeError:
            raw = None
        if not isinstance(raw, list) or any(isinstance(i, dict | list) or i is None for i in raw):
            raise BadRequest(f"Invalid array {_shown(text)!r} for the {table.column(column).type_name} column "
                             f"'{column}'", details=f"in {_shown(where)}", code="22P02",
                             hint=f"Write {column}=cs.{{a,b}} or a JSON array of scalars.")
        items: list = raw
    elif text.startswith("{") and text.endswith("}"):
        inner = text[1:-1]
        parts = [p.strip() for p in split_top(inner, where)] if inner.strip() else []
        if any(p.upper() == "NULL" for p in parts):
            raise BadRequest(f"'{column}' holds no null items, so NULL in {_shown(text)!r} can match nothing",
                             details=f"in {_shown(where)}", hint='Quote it ("NULL") to mean the text.')
        items = [_unquote(p) for p in parts]
    else:
        raise BadRequest(f"cs, cd and ov on the {table.column(column).type_name} column '{column}' take a list "
                         f"in braces, got {_shown(text)!r}", details=f"in {_shown(where)}", code="22P02",
                         hint=f"Write {column}=cs.{{a,b}}")
    if len(items) > _MAX_ARRAY_ITEMS:
        raise BadRequest(f"An array filter takes at most {_MAX_ARRAY_ITEMS} items", details=f"in {_shown(where)}")
    element = table.column(column).item_column
    typed = []
    for item in items:
        try:
            typed.append(parse_value(element, item))
        except ValueRefused as refused:
            raise BadRequest(f"Invalid item {_shown(str(item))!r} for the {table.column(column).type_name} column "
                             f"'{column}'", details=f"in {_shown(where)}: {refused.message}", code="22P02") from None
    return tuple(typed)


def _json_value(text: str, column: str, where: str):
    """A JSON value; or, as PostgREST clients send lists (`{a,b}`, PostgreSQL's array literal, for
    contains/overlaps), that list as a JSON array of strings."""
    if "\\u0000" in text or "\x00" in text:
        raise BadRequest("A value cannot contain the NUL character", details=f"in {_shown(where)}", code="22P05")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        if text.startswith("{") and text.endswith("}"):
            return _array_items(text, where)
        raise BadRequest(f"Invalid JSON value {_shown(text)!r} for {_shown(column)}", details=f"in {_shown(where)}",
                         code="22P02", hint='Write a JSON value: ["a","b"] or {"key":1}.') from None


def _condition(table: Table, column: str, expression: str, where: str, *, quoted_values: bool) -> Where:
    """`[not.]op[(modifier)].value` on `column` (or a JSON path), typed by the column."""
    ref = parse_ref(table, column, where)
    kind = _kind(table, ref)
    negated = False
    if expression.startswith("not."):
        negated, expression = True, expression[4:]
    op, dot, value = expression.partition(".")
    op, paren, modifier = op.partition("(")
    if not dot or op not in OPERATORS or (paren and not modifier.endswith(")")):
        raise BadRequest(
            f"Unknown or missing operator in {_shown(where)!r}",
            details=f"operator {_shown(op)!r}",
            hint=f"Write {column}=op.value with op one of {', '.join(OPERATORS)}, optionally after not.",
        )
    modifier = modifier[:-1] if paren else None
    if quoted_values and op != "in" and modifier not in ("any", "all"):
        value = _unquote(value)
    if op in text_search.KINDS:
        return _search(ref, kind, op, modifier, value, negated, where)
    if modifier in ("any", "all"):
        if op not in _QUANTIFIABLE:
            raise BadRequest(f"({modifier}) applies to {', '.join(_QUANTIFIABLE)}, not {op}",
                             details=f"in {_shown(where)}")
        # = ANY(array) is the disjunction of the comparisons, = ALL(array) their conjunction, in
        # three-valued logic too; both adapters answer those already
        terms = tuple(_single(table, ref, kind, op, item, False, where) for item in _array_items(value, where))
        return BoolExpr("or" if modifier == "any" else "and", terms, negated)
    if modifier is not None:
        raise BadRequest(f"{op} takes no ({_shown(modifier)}) modifier", details=f"in {_shown(where)}",
                         hint="(any) and (all) apply to comparisons; (config) to fts, plfts, phfts and wfts.")
    if op == "is":
        lowered = value.lower()
        if lowered not in ("null", "true", "false", "unknown"):
            raise BadRequest(f"is takes null, true, false or unknown, got {_shown(value)!r}",
                             details=f"in {_shown(where)}")
        typed = {"null": None, "unknown": None, "true": True, "false": False}[lowered]
        if typed is not None and kind is not ColumnType.BOOLEAN:
            raise BadRequest(f"is.{lowered} needs a boolean column; '{column}' is not", details=f"in {_shown(where)}")
        return Condition(ref, "is", typed, negated)
    if op == "in":
        if kind is ColumnType.JSON:
            raise BadRequest(f"'{column}' is a JSON column; only is.null, cs, cd and ov filters apply to it",
                             details=f"in {_shown(where)}")
        items = _split_in_list(value, where)
        return Condition(ref, "in", tuple(_typed_ref(table, ref, i, where) for i in items), negated)
    return _single(table, ref, kind, op, value, negated, where)


def parse_condition(table: Table, column: str, expression: str) -> Where:
    """`col=[not.]op.value` into a Condition typed by the column (a BoolExpr for (any) and (all))."""
    return _condition(table, column, expression, f"{column}={expression}", quoted_values=False)


def _embed_null(embed: Embed, expression: str, where: str) -> Related:
    """`emb=is.null` (no rows of the embed pass its filters: an anti-join) or `emb=not.is.null` (a semi-join)."""
    negated = expression.startswith("not.")
    if (expression[4:] if negated else expression).lower() != "is.null":
        raise BadRequest(f"Only is.null and not.is.null filter the embed '{embed.key}' itself",
                         details=f"in {_shown(where)}",
                         hint=f"Filter its columns with {embed.key}.column=op.value.")
    return embed.related(negated=not negated)


def _logic_tree(table: Table, op: str, negated: bool, body: str, where: str, depth: int = 0,
                embeds: dict[str, Embed] | None = None) -> BoolExpr:
    """`(term,term,...)` where a term is `col.[not.]op.value`, `emb.[not.]is.null`, or a nested
    `[not.]or(...)`/`and(...)`."""
    if depth > _MAX_DEPTH:
        raise BadRequest(f"Logic trees nest deeper than {_MAX_DEPTH} levels", details=f"in {_shown(where)}")
    if not (body.startswith("(") and body.endswith(")")):
        raise BadRequest(f"A logic tree is a list in parentheses: {_shown(where)!r}", hint="Write or=(a.eq.1,b.gt.2)")
    split_top(body, where)  # balanced as a whole before looking inside
    terms: list[Where] = []
    for raw in split_top(body[1:-1], where):
        term = raw.strip()
        if not term:
            raise BadRequest(f"Empty term in the logic tree {_shown(where)!r}")
        head = term.split("(", 1)[0]
        if head in LOGIC:
            inner_op, inner_negated = LOGIC[head]
            terms.append(_logic_tree(table, inner_op, inner_negated, term[len(head):], where, depth + 1, embeds))
            continue
        column, dot, expression = term.partition(".")
        if not dot:
            raise BadRequest(f"Malformed term {_shown(term)!r} in a logic tree", details=f"in {_shown(where)}",
                             hint="Each term is col.op.value, or a nested or(...) / and(...).")
        if embeds and column in embeds and not table.has_column(column):
            terms.append(_embed_null(embeds[column], expression, where))
            continue
        terms.append(_condition(table, column, expression, where, quoted_values=True))
    return BoolExpr(op, tuple(terms), negated)  # type: ignore[arg-type]


def parse_filters(table: Table, params: Iterable[tuple[str, str]], embeds: dict[str, Embed] | None = None,
                  path: str = "") -> Where | None:
    """Every filter of one level of a query string (plain ones, or=/and= trees, and `emb=is.null`
    on this level's `embeds`), and'ed together. `path` (`emb.`) is how the level's names are written."""
    conditions: list[Where] = []
    for name, expression in params:
        if name in RESERVED and not path:
            continue
        if name in LOGIC:
            op, negated = LOGIC[name]
            conditions.append(_logic_tree(table, op, negated, expression.strip(), f"{path}{name}={expression}",
                                          embeds=embeds))
            continue
        if embeds and name in embeds and not table.has_column(name):
            conditions.append(_embed_null(embeds[name], expression, f"{path}{name}={expression}"))
            continue
        if "." in name and not table.has_column(name):
            head = name.split(".", 1)[0]
            raise BadRequest(f"'{_shown(path + head)}' is not an embedded resource in this request",
                             code="PGRST108", details=f"in {_shown(path + name)}={_shown(expression)}",
                             hint=f"Embed it in select= to filter on it, as in select=*,{_shown(head)}(*).")
        conditions.append(_condition(table, name, expression, f"{path}{name}={expression}", quoted_values=False))
    return conjunction(conditions)


# --- select --------------------------------------------------------------------------------------


def _identifier(text: str, what: str, where: str) -> str:
    if not _IDENTIFIER.fullmatch(text):
        raise BadRequest(f"Invalid {what} {_shown(text)!r} in select", details=f"in {_shown(where)}",
                         hint="Names are letters, digits and underscores.")
    return text


def _aggregate(table: Table, function: str, column: str | None, alias: str | None, where: str) -> Aggregate:
    if function not in AGGREGATES:
        raise BadRequest(f"Unknown aggregate {_shown(function)!r} in select", details=f"in {_shown(where)}",
                         hint=f"Aggregates: {', '.join(f + '()' for f in AGGREGATES)}")
    if column is None:
        if function != "count":
            raise BadRequest(f"{function}() needs a column, as in select=dep_delay.{function}()",
                             details=f"in {_shown(where)}")
        return Aggregate("count", None, alias)
    _column(table, column, where)
    kind = table.column(column).type
    if function in ("sum", "avg") and kind not in NUMBER_TYPES:
        raise BadRequest(f"{function}() needs a numeric column; '{column}' is {table.column(column).type_name}",
                         details=f"in {_shown(where)}")
    # PostgreSQL has no min/max for boolean or uuid (uuid still orders and pages).
    if function in ("min", "max") and kind in (_UNORDERED_TYPES | {ColumnType.BOOLEAN, ColumnType.UUID}):
        raise BadRequest(f"{function}() cannot compare '{column}' ({table.column(column).type_name})",
                         details=f"in {_shown(where)}")
    return Aggregate(function, column, alias)


def _relation_matches(fk_columns: tuple[str, ...], fk_name: str, owner: str, hint: str) -> bool:
    return hint in (fk_name, f"fk_{owner}_{fk_name}") or fk_columns == (hint,)


def resolve_embed(catalog: Catalog, table: Table, name: str, hint: str | None, key: str,
                  items_text: str, where: str, depth: int) -> Embed:
    """`name[!hint](items)`: the one reference between this table and `name` (either direction)."""
    candidates: list[tuple[str, tuple[str, ...], tuple[str, ...], bool, str, str]] = []
    if name in catalog:
        for fk in table.foreign_keys:
            if fk.target == name:
                candidates.append((name, fk.columns, fk.target_columns, False, fk.name, table.name))
        for fk in catalog[name].foreign_keys:
            if fk.target == table.name:
                candidates.append((name, fk.target_columns, fk.columns, True, fk.name, name))
    else:
        for fk in table.foreign_keys:  # PostgREST also embeds through a reference column's name
            if fk.columns == (name,):
                candidates.append((fk.target, fk.columns, fk.target_columns, False, fk.name, table.name))
        if not candidates:
            raise BadRequest(
                f"Could not find a relationship between '{table.name}' and '{_shown(name)}'",
                code="PGRST200", details=f"in {_shown(where)}",
                hint=f"Embeddable from {table.name}: {', '.join(_embeddable(catalog, table)) or 'nothing'}",
            )
    if hint is not None:
        candidates = [c for c in candidates if _relation_matches(c[1] if not c[3] else c[2], c[4], c[5], hint)]
    if not candidates:
        raise BadRequest(f"Could not find a relationship between '{table.name}' and '{_shown(name)}'"
                         + (f" through {_shown(hint)!r}" if hint else ""),
                         code="PGRST200", details=f"in {_shown(where)}",
                         hint=_no_lineage_hint(catalog, table, name))
    if len(candidates) > 1:
        raise AmbiguousEmbed(
            f"Could not embed because more than one relationship was found for '{table.name}' and '{name}'",
            details=[_candidate(table, c) for c in candidates],
            hint=f"Try changing '{name}' to one of the following: "
                 f"{', '.join(repr(f'{name}!{c[4]}') for c in candidates)}. "
                 "Find the desired relationship in the 'details' key.",
        )
    target, columns, target_columns, many, _, _ = candidates[0]
    if not items_text.strip():  # emb(): there to be filtered on, nothing in the output
        return Embed(key, target, columns, target_columns, many, (), hidden=True)
    items = parse_select(catalog, catalog[target], items_text, where, depth + 1)
    return Embed(key, target, columns, target_columns, many, items)


def _no_lineage_hint(catalog: Catalog, table: Table, name: str) -> str | None:
    """Where a view is one end, why it has no relationship: its columns' lineage was not found."""
    views = [t for t in (table, catalog[name] if name in catalog else None) if t is not None and t.is_view]
    if not views:
        return None
    return (f"'{views[0].name}' is a {views[0].kind}: depot embeds through a view only along columns that come "
            "straight from a table's key or foreign key (References on the view's columns, which depot adopt "
            "finds from the view's definition). None of its columns leads there.")


def _candidate(table: Table, candidate: tuple) -> dict[str, str]:
    """One relationship an ambiguous embed could mean, in PostgREST's words."""
    target, columns, target_columns, many, fk_name, owner = candidate
    referenced = target if owner == table.name else table.name
    fk_columns, key_columns = (columns, target_columns) if owner == table.name else (target_columns, columns)
    return {
        "cardinality": "one-to-many" if many else "many-to-one",
        "embedding": f"{table.name} with {target}",
        "relationship": f"fk_{owner}_{fk_name} using {owner}({', '.join(fk_columns)}) and "
                        f"{referenced}({', '.join(key_columns)})",
    }


def _embeddable(catalog: Catalog, table: Table) -> list[str]:
    names = [fk.target for fk in table.foreign_keys] + [t.name for t, _ in catalog.referencing(table.name)]
    return list(dict.fromkeys(names))


def _spread(catalog: Catalog, table: Table, text: str, where: str, depth: int) -> Embed:
    """`...emb(cols)`: a to-one embed whose keys join the parent row's."""
    items = _select_item(catalog, table, text, where, depth)
    embed = items[0] if len(items) == 1 else None
    if not isinstance(embed, Embed) or ":" in text.split("(", 1)[0]:
        raise BadRequest(f"Only an embed without alias can be spread: {_shown('...' + text)!r}",
                         details=f"in {_shown(where)}", hint="Write ...emb(col1,col2).")
    if embed.many:
        raise BadRequest(f"A spread operation on '{embed.key}' is not possible", code="PGRST119",
                         details=f"'{table.name}' and '{embed.target}' are a to-many relationship",
                         hint="Spread only to-one embeds; embed to-many ones as emb(cols).")
    if embed.hidden:
        raise BadRequest(f"Spreading the empty embed '{embed.key}()' adds nothing", details=f"in {_shown(where)}")
    return dataclasses.replace(embed, spread=True)


def _aggregate_type(table: Table, aggregate: Aggregate) -> ColumnType:
    """An aggregate's result type, as PostgreSQL gives it (see Aggregate)."""
    if aggregate.function == "count":
        return ColumnType.BIGINT
    column = table.column(aggregate.column)  # type: ignore[arg-type]
    if aggregate.function == "avg":
        return ColumnType.FLOAT
    if aggregate.function == "sum" and column.type in (ColumnType.INTEGER, ColumnType.BIGINT):
        return ColumnType.NUMERIC  # sum of whole numbers is numeric(38,0) on PostgreSQL
    return column.type


def _cast_item(catalog: Catalog, table: Table, text: str, where: str, depth: int) -> SelectItem:
    """`col::type`, `alias:col->a::type` or `col.sum()::type`: one cast to one of CAST_TYPES."""
    base, _, name = text.rpartition("::")
    target = CAST_TYPES.get(name.strip().lower())
    if target is None:
        raise BadRequest(f"Cannot cast to {_shown(name)!r} in select", code="PGRST100", details=f"in {_shown(where)}",
                         hint=f"Casts: {', '.join(CAST_TYPES)}")
    name = name.strip().lower()
    if "::" in base:
        raise BadRequest(f"One cast per select item: {_shown(text)!r}", details=f"in {_shown(where)}")
    found = _select_item(catalog, table, base.strip(), where, depth)
    item = found[0] if len(found) == 1 else None  # `*::text` is many columns: refused below
    if isinstance(item, Aggregate):
        source = _aggregate_type(table, item)
        shown = f"{item.function}()"
    elif isinstance(item, Field) and isinstance(item.column, str | JsonPath):
        source = _kind(table, item.column)  # type: ignore[assignment]
        shown = name_of(item.column)
    else:
        raise BadRequest(f"Only columns, JSON paths and aggregates can be cast: {_shown(text)!r}",
                         details=f"in {_shown(where)}")
    if source not in CASTS[target]:
        what = "a jsonb member" if source is None else source.value
        sources = sorted(s.value if s else "jsonb" for s in CASTS[target])
        raise BadRequest(f"Cannot cast {_shown(shown)} ({what}) to {name}", code="42846", details=f"in {_shown(where)}",
                         hint=f"{name} takes values of: {', '.join(sources)}")
    if isinstance(item, Aggregate):
        return dataclasses.replace(item, cast=name, result_type=source)
    return dataclasses.replace(item, column=Cast(item.column, name, source))  # type: ignore[arg-type]


def _select_item(catalog: Catalog, table: Table, text: str, where: str, depth: int) -> list[SelectItem]:
    if text == "*":
        return [Field(c) for c in table.column_names]
    if text.startswith("..."):
        return [_spread(catalog, table, text[3:].strip(), where, depth)]
    if "::" in text:
        return [_cast_item(catalog, table, text, where, depth)]
    alias: str | None = None
    head, paren, rest = text.partition("(")
    if ":" in head:
        alias, head = head.split(":", 1)
        alias = _identifier(alias.strip(), "alias", where)
        head = head.strip()
    if "->" in head:
        if paren:
            raise BadRequest(f"A JSON path cannot be aggregated or embedded: {_shown(text)!r}",
                             details=f"in {_shown(where)}")
        return [Field(parse_ref(table, head, where), alias)]
    if paren:
        if not rest.endswith(")"):
            raise BadRequest(f"Malformed select item {_shown(text)!r}", details=f"in {_shown(where)}")
        inside = rest[:-1]
        if "." in head:  # col.fn()
            column, _, function = head.partition(".")
            if inside.strip():
                raise BadRequest(f"Aggregates take no arguments inside (): {_shown(text)!r}")
            return [_aggregate(table, _identifier(function, "aggregate", where),
                               _identifier(column, "column", where), alias, where)]
        name, *modifiers = head.split("!")
        name = _identifier(name, "name", where)
        if name in AGGREGATES and name not in catalog and not table.has_column(name):
            if inside.strip():
                raise BadRequest(f"Aggregates take no arguments inside (): {_shown(text)!r}",
                                 hint="Write col.sum(), or count()")
            return [_aggregate(table, name, None, alias, where)]
        joins = [m for m in modifiers if m in ("inner", "left")]
        hints = [_identifier(m, "relationship hint", where) for m in modifiers if m not in ("inner", "left")]
        if len(joins) > 1 or len(hints) > 1:
            raise BadRequest(f"An embed takes at most one hint and one of !inner or !left: {_shown(text)!r}",
                             details=f"in {_shown(where)}")
        embed = resolve_embed(catalog, table, name, hints[0] if hints else None, alias or name, inside, where, depth)
        return [dataclasses.replace(embed, inner=joins == ["inner"])]
    if "." in head:
        raise BadRequest(f"Malformed select item {_shown(text)!r}", details=f"in {_shown(where)}",
                         hint="An aggregate is written col.fn(), with parentheses.")
    name = _identifier(head, "column", where)
    if name == "count" and not table.has_column(name):
        return [Aggregate("count", None, alias)]
    return [Field(_column(table, name, where), alias)]


def parse_select(catalog: Catalog, table: Table, text: str, where: str | None = None,
                 depth: int = 0) -> tuple[SelectItem, ...]:
    """`select=` into its items: columns, aliases, aggregates and embeds (recursively)."""
    where = where or f"select={text}"
    if depth > _MAX_DEPTH:
        raise BadRequest(f"Embeds nest deeper than {_MAX_DEPTH} levels", details=f"in {_shown(where)}")
    if not text.strip():
        return tuple(Field(c) for c in table.column_names)
    items: list[SelectItem] = []
    for raw in split_top(text, where):
        part = raw.strip()
        if not part:
            raise BadRequest(f"Empty item in {_shown(where)!r}", hint="Separate select items with single commas.")
        items.extend(_select_item(catalog, table, part, where, depth))
    keys = output_keys(tuple(items)) + [i.key for i in items if isinstance(i, Embed) and (i.spread or i.hidden)]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise BadRequest(f"Select names {', '.join(map(repr, duplicates))} more than once",
                         details=f"in {_shown(where)}", hint="Give each one an alias: alias:column or alias:col.sum().")
    if any(isinstance(i, Aggregate) for i in items):
        grouped = {i.column for i in items if isinstance(i, Field)}
        for name in sorted(c for c in grouped if isinstance(c, str) and table.column(c).type in _UNORDERED_TYPES):
            raise BadRequest(f"Cannot group an aggregate read by the {_type_word(table, name)} column '{name}'",
                             details=f"in {_shown(where)}", hint="Group by other columns, or aggregate it: "
                                                                  f"{name}.count()")
        for embed in (i for i in items if isinstance(i, Embed) and not i.hidden):
            if not set(embed.columns) <= grouped:
                raise BadRequest(f"Embedding '{embed.key}' next to aggregates needs "
                                 f"{', '.join(embed.columns)} among the selected columns",
                                 details=f"in {_shown(where)}")
    return tuple(items)


# --- order, page, cursor -------------------------------------------------------------------------


_LOOKUP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\(([A-Za-z_][A-Za-z0-9_]*)\)")


def _order_lookup(catalog: Catalog | None, embeds: dict[str, Embed], text: str, where: str) -> Lookup:
    """`emb(col)`: a column of a to-one embed of this read."""
    matched = _LOOKUP.fullmatch(text)
    if matched is None or catalog is None:
        raise BadRequest(f"Malformed order item {_shown(text)!r}", details=f"in {_shown(where)}",
                         hint="Order by col, col->key, or a to-one embed's column as emb(col).")
    key, column = matched.groups()
    embed = embeds.get(key)
    if embed is None:
        raise BadRequest(f"'{key}' is not an embedded resource in this request", code="PGRST108",
                         details=f"in {_shown(where)}", hint=f"Embed it in select= to order by it: {key}(...)")
    if embed.many:
        raise BadRequest(f"A related order on '{key}' is not possible", code="PGRST118",
                         details=f"'{key}' is a to-many embed: its rows have no one value to order by",
                         hint=f"Order the embedded rows instead, with {key}.order={column}.")
    _column(catalog[embed.target], column, where)
    if catalog[embed.target].column(column).type in _UNORDERED_TYPES:
        raise BadRequest(f"Cannot order by the {_type_word(catalog[embed.target], column)} column '{key}({column})'",
                         details=f"in {_shown(where)}")
    return Lookup(key, embed.target, embed.columns, embed.target_columns, column, embed.where)


def parse_order(table: Table, text: str, aggregates: Iterable[Aggregate] = (),
                grouping: Iterable[object] | None = None, *, name: str = "order",
                catalog: Catalog | None = None, embeds: dict[str, Embed] | None = None) -> tuple[OrderBy, ...]:
    """`col.desc.nullslast,col2->key,emb(col)`; with aggregates, the names are grouping columns (or
    paths) or aggregate keys; `emb(col)` names a to-one embed among `embeds`."""
    aggregate_keys = {a.key for a in aggregates}
    group = set(grouping) if grouping is not None else None
    items = []
    where = f"{name}={text}"
    for part in split_top(text, where):
        head, *modifiers = part.strip().split(".")
        ref: str | JsonPath | Lookup
        if head in aggregate_keys:
            ref = head
        else:
            ref = _order_lookup(catalog, embeds or {}, head, where) if "(" in head else parse_ref(table, head, where)
            if isinstance(ref, str) and table.column(ref).type in _UNORDERED_TYPES:
                json = table.column(ref).type is ColumnType.JSON
                raise BadRequest(f"Cannot order by the {_type_word(table, ref)} column '{ref}'",
                                 details=f"in {_shown(where)}", hint=f"Order by a member: {ref}->key" if json else None)
            if group is not None and aggregate_keys and ref not in group:
                raise BadRequest(f"Ordering an aggregate read by '{_shown(head)}', which is neither selected nor an "
                                 "aggregate", details=f"in {_shown(where)}",
                                 hint=f"Order by a grouping column or one of {', '.join(sorted(aggregate_keys))}")
        descending, nulls_first = False, None
        if len(modifiers) > 2:
            raise BadRequest(f"Too many order modifiers in {_shown(part)!r}", details=f"in {_shown(where)}")
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
                    raise BadRequest(f"Unknown order modifier {_shown(modifier)!r} in {_shown(where)}",
                                     hint="Use asc, desc, nullsfirst or nullslast.")
        items.append(OrderBy(ref, descending, nulls_first))
    names = [i.column for i in items]
    if len(set(names)) != len(names):
        raise BadRequest(f"{_shown(where)} names a column twice")
    return tuple(items)


def parse_non_negative(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {_shown(text)!r}") from None
    if value < 0:
        raise BadRequest(f"{name} must not be negative, got {value}")
    if value > _MAX_INT:
        raise BadRequest(f"{name} is too large, got {_shown(text)}")
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
        raise BadRequest(f"Malformed Range header {_shown(header)!r}", hint="Send Range: 0-24") from None
    if not dash or start < 0 or (end is not None and end < start) or max(start, end or 0) > _MAX_INT:
        raise BadRequest(f"Malformed Range header {_shown(header)!r}", hint="Send Range: 0-24")
    return start, (None if end is None else end - start + 1)


def parse_page(values: dict[str, str], range_header: str | None, max_rows: int | None) -> tuple[int, int | None]:
    """(offset, limit) from the Range header, then offset= and limit=, capped at max_rows (None: no cap)."""
    offset, limit = 0, None
    ranged = parse_range(range_header)
    if ranged is not None:
        offset, limit = ranged
    if "offset" in values:
        offset = parse_non_negative("offset", values["offset"])
    if "limit" in values:
        limit = parse_non_negative("limit", values["limit"])
    if max_rows is not None:
        limit = max_rows if limit is None else min(limit, max_rows)
    return offset, limit


def _signature(order: tuple[OrderBy, ...]) -> str:
    return ",".join(f"{name_of(o.column)}.{'desc' if o.descending else 'asc'}"
                    f".{'nf' if o.effective_nulls_first else 'nl'}" for o in order)


def _plain(value: object) -> object:
    if isinstance(value, dt.date | dt.datetime | decimal.Decimal):
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    return value


def encode_cursor(order: tuple[OrderBy, ...], values: tuple) -> str:
    """The opaque `after=` of a row: its values in the (total) order, and which order that was."""
    raw = orjson.dumps({"o": _signature(order), "v": [_plain(v) for v in values]})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(table: Table, order: tuple[OrderBy, ...], text: str, catalog: Catalog | None = None) -> tuple:
    malformed = BadRequest("Malformed after= cursor", details=_shown(text),
                           hint="Use the after= of a Link header as it is, with the same order=.")
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise malformed from None
    if not isinstance(payload, dict) or not isinstance(payload.get("v"), list):
        raise malformed
    if payload.get("o") != _signature(order) or len(payload["v"]) != len(order):
        raise BadRequest("The after= cursor was made for another order", details=_shown(text),
                         hint="Keep order= (and select=) as they were when the cursor was issued.")
    values = []
    for item, raw in zip(order, payload["v"], strict=True):
        if raw is None:
            values.append(None)
            continue
        ref = item.column
        try:
            if isinstance(ref, JsonPath):  # only ->> pages by keyset: text
                if not isinstance(raw, str):
                    raise malformed
                values.append(raw)
            elif isinstance(ref, Lookup):
                values.append(parse_value(catalog[ref.target].column(ref.column), raw))  # type: ignore[index]
            else:
                values.append(parse_value(table.column(ref), raw))
        except ValueRefused:
            raise malformed from None
    return tuple(values)


_EMBED_OPTIONS = ("order", "limit", "offset")


def _route(items: tuple[SelectItem, ...], name: str) -> tuple[tuple[str, ...], str]:
    """`a.b.col` into the embed path (a, b) and the name at that level (col), following the embeds
    that select= declared; a name that leads to no embed stays whole, for the level to refuse."""
    path: list[str] = []
    rest = name
    while True:
        if rest in LOGIC or (path and rest in _EMBED_OPTIONS):
            return tuple(path), rest
        head, dot, tail = rest.partition(".")
        embed = next((i for i in items if isinstance(i, Embed) and i.key == head), None)
        if not dot or embed is None:
            return tuple(path), rest
        path.append(head)
        items, rest = embed.items, tail


def _finish(catalog: Catalog, table: Table, items: tuple[SelectItem, ...], path: tuple[str, ...],
            routed: dict[tuple[str, ...], list[tuple[str, str]]],
            include_deleted: bool = False) -> tuple[tuple[SelectItem, ...], Where | None]:
    """One level's items with their embeds' filters, order and page filled in (deepest first, so a
    parent's `emb=is.null` or `!inner` sees the embed's own filters), and the level's where.

    Unless `include_deleted`, each level of a soft-delete table leaves its deleted rows out here, in
    its where: the embeds, their filters (`emb=is.null`, `!inner`) and the orders by an embed's
    column all read that where, so a deleted row is out of every one of them."""
    finished: list[SelectItem] = []
    embeds: dict[str, Embed] = {}
    for item in items:
        if isinstance(item, Embed):
            item = _finish_embed(catalog, item, (*path, item.key), routed, include_deleted)
            embeds[item.key] = item
        finished.append(item)
    prefix = "".join(f"{p}." for p in path)
    own = [(n, v) for n, v in routed.get(path, []) if not (path and n in _EMBED_OPTIONS)]
    where = parse_filters(table, own, embeds, prefix)
    if not include_deleted:
        where = live_only(table, where)
    inner = [e.related() for e in embeds.values() if e.inner]
    return tuple(finished), conjunction([*([where] if where is not None else []), *inner])


def _finish_embed(catalog: Catalog, embed: Embed, path: tuple[str, ...],
                  routed: dict[tuple[str, ...], list[tuple[str, str]]], include_deleted: bool = False) -> Embed:
    target = catalog[embed.target]
    items, where = _finish(catalog, target, embed.items, path, routed, include_deleted)
    options: dict[str, str] = {}
    prefix = ".".join(path)
    for name, value in routed.get(path, []):
        if name in _EMBED_OPTIONS:
            if name in options:
                raise BadRequest(f"{prefix}.{name}= is given more than once")
            options[name] = value
    if options and embed.hidden:
        raise BadRequest(f"{prefix}() selects nothing, so it has no order or page",
                         details=", ".join(f"{prefix}.{n}" for n in options))
    order: tuple[OrderBy, ...] = ()
    if options.get("order"):
        aggregates = [i for i in items if isinstance(i, Aggregate)]
        grouping = [i.column for i in items if isinstance(i, Field)]
        order = parse_order(target, options["order"], aggregates, grouping, name=f"{prefix}.order",
                            catalog=catalog, embeds={i.key: i for i in items if isinstance(i, Embed)})
    limit = parse_non_negative(f"{prefix}.limit", options["limit"]) if "limit" in options else None
    offset = parse_non_negative(f"{prefix}.offset", options["offset"]) if "offset" in options else 0
    return dataclasses.replace(embed, items=items, where=where, order=order, limit=limit, offset=offset)


def parse_read(catalog: Catalog, table: Table, params: list[tuple[str, str]], range_header: str | None,
               max_rows: int | None) -> Read:
    """The whole read a query string asks for. `max_rows` None: no cap (CSV export)."""
    values: dict[str, str] = {}
    for name, value in params:
        if name in values and name in ("select", "order", "limit", "offset", "after", "as_of", "include_deleted"):
            raise BadRequest(f"{name}= is given more than once")
        values[name] = value
    include_deleted = parse_include_deleted(table, values.get("include_deleted"))
    items = parse_select(catalog, table, values["select"]) if "select" in values else ()
    if "distinct" in values:
        items = _distinct_items(table, items, values["distinct"])
    routed: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for name, value in params:
        if name not in RESERVED:
            path, local = _route(items, name)
            routed.setdefault(path, []).append((local, value))
    items, where = _finish(catalog, table, items, (), routed, include_deleted)
    aggregates = [i for i in items if isinstance(i, Aggregate)]
    grouping = [i.column for i in items if isinstance(i, Field)]
    embeds = {i.key: i for i in items if isinstance(i, Embed)}
    order = parse_order(table, values["order"], aggregates, grouping, catalog=catalog,
                        embeds=embeds) if values.get("order") else ()
    offset, limit = parse_page(values, range_header, max_rows)
    having = parse_having(table, aggregates, [v for n, v in params if n == "having"])
    distinct = "distinct" in values
    if distinct:
        fields = {f.column for f in items if isinstance(f, Field)}
        for item in order:
            if item.column not in fields:
                raise BadRequest(f"A distinct read orders by its distinct columns only, not {name_of(item.column)!r}",
                                 details=f"distinct={_shown(values['distinct'])}")
    read = Read(items=items, where=where, order=order, limit=limit, offset=offset, having=having, distinct=distinct)
    if "after" in values:
        if aggregates:
            raise BadRequest("after= pages plain reads; aggregate reads page with offset=")
        if not read.keyset_pages:
            raise BadRequest("after= cannot page an order by a jsonb member (->); page it with offset=",
                             hint="Or order by the member's text, with ->>.")
        if offset:
            raise BadRequest("after= and offset (or a Range header) cannot be combined",
                             hint="after= already says where the page starts.")
        keyset = read.keyset_order(table)
        read = dataclasses.replace(read, offset=0, after=decode_cursor(table, keyset, values["after"], catalog))
    if "as_of" in values:
        read = dataclasses.replace(read, as_of=parse_as_of(table, values["as_of"]))
    return read


def _distinct_items(table: Table, items: tuple[SelectItem, ...], text: str) -> tuple[SelectItem, ...]:
    """`distinct` (over the select's columns) or `distinct=a,b` (those columns, which the select, if
    any, must be): plain columns only, each combination of their values once."""
    where = f"distinct={text}"
    if text.strip():
        names = [_column(table, n.strip(), where) for n in text.split(",")]
        if not items:
            items = tuple(Field(n) for n in names)
        elif sorted(str(i.column) for i in items if isinstance(i, Field)) != sorted(names):
            raise BadRequest("distinct= names the columns of the select", details=f"in {_shown(where)}",
                             hint="Select just those columns, or write distinct alone to use the select's.")
    elif not items:
        raise BadRequest("distinct alone needs a select= of the columns to be distinct", details=f"in {_shown(where)}")
    for item in items:
        if not isinstance(item, Field) or not isinstance(item.column, str):
            raise BadRequest("A distinct read selects plain columns only (no aggregates, embeds, paths or casts)",
                             details=f"in {_shown(where)}")
        if table.column(item.column).type in _UNORDERED_TYPES:
            raise BadRequest(f"Cannot make the {_type_word(table, item.column)} column '{item.column}' distinct",
                             details=f"in {_shown(where)}")
    return items


_HAVING_OPERATORS = ("eq", "neq", "gt", "gte", "lt", "lte", "is")


def _aggregate_value(table: Table, aggregate: Aggregate, text: str, where: str):
    """A value typed as the aggregate's result is (see Aggregate)."""
    if aggregate.cast is not None:
        kind = CAST_TYPES[aggregate.cast]
    elif aggregate.function == "count":
        kind = ColumnType.BIGINT
    elif aggregate.function == "avg":
        kind = ColumnType.FLOAT
    else:
        return _typed(table, aggregate.column, text, where)  # type: ignore[arg-type]
    try:
        return parse_value(Column(aggregate.key, kind), text)
    except ValueRefused as refused:
        raise BadRequest(f"Invalid value {_shown(text)!r} for the aggregate '{aggregate.key}' ({kind.value})",
                         details=f"in {_shown(where)}: {refused.message}", code="22P02") from None


def parse_having(table: Table, aggregates: list[Aggregate], texts: list[str]) -> Where | None:
    """`having=key.op.value` (repeatable, and'ed): conditions on the aggregates' keys after grouping."""
    if not texts:
        return None
    if not aggregates:
        raise BadRequest("having= filters the groups of an aggregate read; this read has no aggregates",
                         hint="Select an aggregate, as in select=carrier,n:count()&having=n.gt.100")
    by_key = {a.key: a for a in aggregates}
    conditions: list[Where] = []
    for text in texts:
        where = f"having={text}"
        key, dot, expression = text.partition(".")
        aggregate = by_key.get(key)
        if aggregate is None or not dot:
            raise BadRequest(f"having= names an aggregate of the select: {_shown(text)!r}",
                             details=f"in {_shown(where)}",
                             hint=f"Aggregates here: {', '.join(by_key)}; write having=key.gt.value")
        negated = expression.startswith("not.")
        op, dot, value = (expression[4:] if negated else expression).partition(".")
        if op not in _HAVING_OPERATORS or not dot:
            raise BadRequest(f"having= takes {', '.join(_HAVING_OPERATORS)}: {_shown(text)!r}",
                             details=f"in {_shown(where)}")
        if op == "is":
            if value.lower() != "null":
                raise BadRequest(f"having= takes is.null, got {_shown(value)!r}", details=f"in {_shown(where)}")
            conditions.append(Condition(key, "is", None, negated))
        else:
            conditions.append(Condition(key, op, _aggregate_value(table, aggregate, value, where), negated))
    return conjunction(conditions)


def parse_as_of(table: Table, text: str) -> dt.datetime:
    """`as_of=2026-11-01T00:00:00Z`: an instant with its offset, on a table that keeps history."""
    if not table.history:
        raise BadRequest(f"as_of= reads a table's history, and '{table.name}' keeps none",
                         hint="Declare the table with history=True (the default for its data tables).")
    try:
        return coerce_value(Column("as_of", ColumnType.TIMESTAMPTZ), text)
    except ValueRefused:
        raise BadRequest("as_of= takes an instant with its UTC offset", details=_shown(text),
                         hint="For example as_of=2026-11-01T00:00:00Z") from None


def parse_include_deleted(table: Table, text: str | None) -> bool:
    """`include_deleted=true|false`: whether reads show the rows a soft delete marked (false when absent)."""
    if text is None or text == "false":
        return False
    if text == "true":
        return True
    raise BadRequest("include_deleted= takes true or false", details=f"include_deleted={_shown(text)}",
                     hint=f"include_deleted=true shows the rows whose {table.system.deleted_at} is set"
                          if table.soft_delete else "It matters on tables declared soft_delete=True only.")


def parse_query(table: Table, params: list[tuple[str, str]], range_header: str | None, max_rows: int) -> Query:
    """Filters, order and page only (what `AbstractRepository.list` answers)."""
    values = dict(params)
    where = parse_filters(table, params)
    order = parse_order(table, values["order"]) if values.get("order") else ()
    offset, limit = parse_page(values, range_header, max_rows)
    return Query(where=where, order=order, limit=limit, offset=offset)
