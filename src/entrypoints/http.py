"""HTTP plumbing shared by every route: JSON rendering, the error shape, Prefer, bodies, ETags."""

from __future__ import annotations

import csv
import decimal
import io
import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse as StarletteJSONResponse
from starlette.responses import Response

from domain.errors import (
    AmbiguousEmbed,
    BadRequest,
    Conflict,
    DepotError,
    InvalidRows,
    NotAcceptable,
    NotAllowed,
    NotFound,
    PreconditionFailed,
    Unavailable,
    UnknownTable,
)
from domain.schema import Table
from domain.validation import empty_cell_defaults

log = logging.getLogger("depot.http")

STATUS: list[tuple[type[DepotError], int]] = [
    (UnknownTable, 404),
    (NotFound, 404),
    (NotAllowed, 405),
    (AmbiguousEmbed, 300),  # before BadRequest, which it is a kind of
    (BadRequest, 400),
    (NotAcceptable, 406),
    (Conflict, 409),
    (PreconditionFailed, 412),
    (InvalidRows, 422),
    (Unavailable, 503),
]


def status_of(error: DepotError) -> int:
    for cls, status in STATUS:
        if isinstance(error, cls):
            return status
    return 400


class HttpError(DepotError):
    """An error that only exists in HTTP (401, 403, 405, 413, 415), with its status."""

    def __init__(self, status: int, message: str, *, code: str, hint: str | None = None, details: Any = None):
        super().__init__(message, code=code, hint=hint, details=details)
        self.status = status


def _default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        # numeric's digits as they are stored, as PostgREST writes them: a float would round a
        # numeric(20, 6) and print 19.90 as 19.9. NaN and the infinities are no JSON numbers: strings.
        return orjson.Fragment(str(value).encode()) if value.is_finite() else str(value)
    raise TypeError(type(value).__name__)


def dumps(value: Any) -> bytes:
    # OPT_NON_STR_KEYS: rows from SQLAlchemy have quoted_name keys (a str subclass orjson refuses otherwise).
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


class JSONResponse(StarletteJSONResponse):
    """orjson-rendered. A subclass of Starlette's, so FastAPI documents its body as JSON (the row
    schemas), not as {"type": "string"} beside them."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def error_response(error: DepotError) -> JSONResponse:
    status = error.status if isinstance(error, HttpError) else status_of(error)
    return JSONResponse(error.as_dict(), status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DepotError)
    async def depot_error(request: Request, error: DepotError) -> Response:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "code": e.get("type"), "message": e.get("msg")}
            for e in error.errors()
        ]
        return error_response(BadRequest("The request's parameters are invalid", details=details))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404:
            return error_response(HttpError(404, f"No route for {request.url.path}", code="PGRST125"))
        if error.status_code == 405:
            response = error_response(HttpError(405, f"{request.method} is not allowed on {request.url.path}",
                                                code="PGRST117"))
            response.headers.update(error.headers or {})  # Allow: the methods that are (RFC 9110)
            return response
        return error_response(HttpError(error.status_code, str(error.detail), code=f"HTTP{error.status_code}"))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(HttpError(500, "Internal error; the server log has the details", code="DEPOT500"))


# --- Prefer, ETag --------------------------------------------------------------------------------


# The preferences depot knows, each with the values it takes (None: a whole number).
PREFERENCES: dict[str, tuple[str, ...] | None] = {
    "return": ("minimal", "representation", "headers-only"),
    "count": ("exact", "planned", "estimated"),
    "resolution": ("merge-duplicates", "ignore-duplicates"),
    "missing": ("default", "null"),
    "handling": ("strict", "lenient"),
    "tx": ("commit", "rollback"),
    "max-affected": None,
}


def prefer(request: Request) -> dict[str, str]:
    """`Prefer: return=representation, count=exact` as {"return": "representation", "count": "exact"}.

    Unknown or malformed preferences are ignored, as PostgREST does, unless the client asked for
    `handling=strict`: then they are a 400 (PGRST122) naming them."""
    result: dict[str, str] = {}
    items: list[str] = []
    for header in request.headers.getlist("prefer"):
        for item in header.split(","):
            name, _, value = item.strip().partition("=")
            if name:
                result[name.strip().lower()] = value.strip().strip('"')
                items.append(item.strip())
    if result.get("handling") == "strict":
        invalid = [i for i in items if not _valid_preference(i)]
        if invalid:
            raise BadRequest("Invalid preferences given with handling=strict", code="PGRST122",
                             details=f"Invalid preferences: {', '.join(i[:100] for i in invalid[:20])}")
    return result


def _valid_preference(item: str) -> bool:
    name, _, value = item.partition("=")
    name, value = name.strip().lower(), value.strip().strip('"')
    if name not in PREFERENCES:
        return False
    allowed = PREFERENCES[name]
    return value.isascii() and value.isdigit() and len(value) < 19 if allowed is None else value in allowed


def max_affected(prefs: dict[str, str]) -> int | None:
    """`max-affected=N`, which PostgREST enforces under handling=strict only (and ignores otherwise)."""
    value = prefs.get("max-affected", "")
    if prefs.get("handling") != "strict" or not (value.isascii() and value.isdigit() and len(value) < 19):
        return None
    return int(value)


def preference_applied(prefs: dict[str, str], honoured: tuple[str, ...]) -> str | None:
    """The Preference-Applied header: each of `honoured` (what the route acted on) that the client sent
    with a valid value, as it sent it."""
    applied = [f"{n}={prefs[n]}" for n in honoured if n in prefs and _valid_preference(f"{n}={prefs[n]}")]
    if "max-affected" in honoured and max_affected(prefs) is None:
        applied = [a for a in applied if not a.startswith("max-affected=")]
    return ", ".join(applied) or None


def etag(table: Table, row: dict[str, Any]) -> str:
    """A row's entity tag: its version, which depot moves on at every change of its values."""
    return f'"{row[table.system.version]}"'


def none_match(request: Request, tag: str) -> bool:
    """Whether If-None-Match names `tag`: a list of entity tags, compared weakly (RFC 9110 13.1.2), or `*`."""
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(item.strip().removeprefix("W/") == tag for item in header.split(","))


def if_match_version(request: Request) -> int | None:
    """The version an If-Match asks for; None when absent or `*`; a garbled one matches nothing."""
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    text = header.strip().removeprefix("W/").strip('"')
    try:
        return int(text)
    except ValueError:
        raise PreconditionFailed(f"If-Match {header!r} matches no version of this row",
                                 hint="Send the ETag a GET returned.") from None


# --- bodies --------------------------------------------------------------------------------------


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise BadRequest("The request body is empty", code="PGRST102", hint="Send a JSON object or array.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"The request body is not valid JSON: {error}", code="PGRST102") from None


def parse_csv(raw: bytes, null: str = "", empty_defaults: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows of a CSV body; a `null` cell is None, or the column's default where
    `empty_defaults` (domain.validation.empty_cell_defaults) names one."""
    defaults = empty_defaults or {}
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("The CSV body is not UTF-8", code="PGRST102") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise BadRequest("The CSV body is empty; it needs a header row", code="PGRST102") from None
    except csv.Error as error:
        raise BadRequest(f"Malformed CSV: {error}", code="PGRST102") from None
    rows = []
    try:
        for number, record in enumerate(reader, start=2):
            if not record:
                continue
            if len(record) != len(header):
                raise BadRequest(f"CSV line {number} has {len(record)} fields; the header has {len(header)}",
                                 code="PGRST102")
            rows.append({k: (defaults.get(k) if v == null else v) for k, v in zip(header, record, strict=True)})
    except csv.Error as error:
        raise BadRequest(f"Malformed CSV: {error}", code="PGRST102") from None
    return rows


async def read_body(request: Request) -> bytes:
    """The whole body of a table write. Its size is capped while it arrives by the
    BodyLimitMiddleware (entrypoints/security.py), which answers 413 for every route."""
    return await request.body()


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "application/json").split(";")[0].strip().lower()


async def rows_from_body(request: Request, table: Table) -> tuple[list[Any], bool]:
    """The rows a write to `table` sends, and whether it sent a single object rather than a list."""
    kind = media_type(request)
    raw = await read_body(request)
    if kind in ("application/json", "", "*/*"):
        value = parse_json(raw)
        if isinstance(value, list):
            return value, False
        if isinstance(value, dict):
            return [value], True
        raise BadRequest("The body must be a JSON object or an array of objects", code="PGRST102")
    if kind == "text/csv":
        return parse_csv(raw, empty_defaults=empty_cell_defaults(table)), False
    raise HttpError(415, f"Content-Type {kind!r} is not supported here", code="PGRST415",
                    hint="Send application/json or text/csv.")
