"""The table API, generated from the catalog: one set of routes per table, no per-table code."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URLPath
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import ASGIApp, Receive, Scope, Send

from domain.errors import BadRequest, NotSingular, UnknownColumn, UnknownTable
from domain.ports import AbstractUnitOfWork
from domain.query import key_condition
from domain.schema import HISTORY_ID, HISTORY_SUFFIX, Catalog, Table
from entrypoints.dependencies import get_settings, get_uow
from entrypoints.http import (
    HttpError,
    JSONResponse,
    etag,
    if_match_version,
    max_affected,
    none_match,
    parse_json,
    prefer,
    preference_applied,
    read_body,
    rows_from_body,
)
from entrypoints.openapi import ref, schema_names
from entrypoints.query_string import parse_filters, parse_include_deleted, resolve_embed
from entrypoints.reading import OBJECT_MEDIA, read_response
from entrypoints.settings import Settings
from service_layer import history, nested, services

UoW = Annotated[AbstractUnitOfWork, Depends(get_uow)]
Config = Annotated[Settings, Depends(get_settings)]

RESOLUTIONS = {"merge-duplicates": "merge", "ignore-duplicates": "ignore"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


def _filter_parameters(table: Table) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": f"Filter on {c.name} ({c.type_name}): op.value, op one of "
                           "eq neq gt gte lt lte like ilike in is, optionally after not.",
        }
        for c in table.columns
    ]


def _read_parameters(table: Table) -> list[dict[str, Any]]:
    return [
        *_filter_parameters(table),
        {"name": "select", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "Columns to return: col, alias:col, embeds like airlines(name) or "
                        "origin_airport:airports!origin(name), aggregates like count() or dep_delay.avg()."},
        {"name": "order", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "col.asc|desc.nullsfirst|nullslast, comma-separated."},
        {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}},
        {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}},
        {"name": "after", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "Keyset cursor: the after= of the previous page's Link: rel=next header."},
        *([{"name": "as_of", "in": "query", "required": False, "schema": {"type": "string", "format": "date-time"},
            "description": "Read the table as it stood at this instant (from its history), embeds too: "
                           "2026-11-01T00:00:00Z."}] if table.history else []),
        *_include_deleted_parameter(table),
    ]


def _include_deleted_parameter(table: Table) -> list[dict[str, Any]]:
    if not table.soft_delete:
        return []
    return [{"name": "include_deleted", "in": "query", "required": False,
             "schema": {"type": "boolean", "default": False},
             "description": f"true: the rows a delete marked (their {table.system.deleted_at} is set) are read too, "
                            "embeds included; false (the default) leaves them out everywhere."}]


def _body(schema_name: str, *, many: bool) -> dict[str, Any]:
    schema: dict[str, Any] = ref(schema_name)
    if many:
        schema = {"anyOf": [schema, {"type": "array", "items": ref(schema_name)}]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _rows_response(name: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"type": "array", "items": ref(name)}}}}


def _rows_or_object(request: Request, rows: list[dict], *, status: int = 200, headers: dict | None = None) -> Response:
    accept = request.headers.get("accept", "")
    if OBJECT_MEDIA in accept:
        if len(rows) != 1:
            raise NotSingular(len(rows))
        response = JSONResponse(rows[0], status_code=status, headers=headers)
        response.headers["content-type"] = OBJECT_MEDIA
        return response
    return JSONResponse(rows, status_code=status, headers=headers)


def _singular(request: Request) -> bool:
    """Whether the client wants one object back from a write: then the write must touch exactly one row."""
    return prefer(request).get("return") == "representation" and OBJECT_MEDIA in request.headers.get("accept", "")


# The preferences each kind of write acts on, echoed in Preference-Applied when the client sent them.
_CREATE_PREFERENCES = ("return", "count", "resolution", "missing", "handling", "tx")
_FILTERED_PREFERENCES = ("return", "count", "handling", "tx", "max-affected")
_KEY_PREFERENCES = ("return", "handling", "tx")


def _dry_run(prefs: dict[str, str]) -> bool:
    """Prefer: tx=rollback: the write runs, answers as it would, and is rolled back."""
    return prefs.get("tx") == "rollback"


def _written(request: Request, rows: list[dict], status: int, honoured: tuple[str, ...] = _KEY_PREFERENCES
             ) -> Response:
    prefs = prefer(request)
    # As PostgREST: Content-Range */N tells how many rows the write touched when asked to count.
    headers = {"content-range": f"*/{len(rows)}" if "count" in prefs else "*/*"}
    applied = preference_applied(prefs, honoured)
    if applied:
        headers["preference-applied"] = applied
    if prefs.get("return") == "representation":
        return _rows_or_object(request, rows, status=status, headers=headers)
    return Response(status_code=204 if status == 200 else status, headers=headers)


def _relation(catalog: Catalog) -> nested.Resolver:
    """How a nested write's key (`manufacturers`, `flights!origin`) joins its table: the embed the
    same name would select, so reading and writing name relationships alike."""
    def resolve(table: Table, key: str) -> nested.Relation:
        name, _, hint = key.partition("!")
        embed = resolve_embed(catalog, table, name, hint or None, name, "", f"the nested key {key!r}", 0)
        return nested.Relation(embed.target, embed.columns, embed.target_columns, embed.many)

    return resolve


def _only_columns(table: Table, text: str, raws: list) -> list:
    """`?columns=a,b`: each row's a and b only, as PostgREST takes them (other keys ignored, missing
    ones filled as when absent: the column's default, or null)."""
    names = [n.strip() for n in text.split(",")]
    for n in names:
        if not table.has_column(n) or not table.column(n).writable:
            raise UnknownColumn(f"Could not find the '{n[:80]}' column of '{table.name}' among its writable columns",
                                details=f"in columns={text[:80]}",
                                hint=f"Writable: {', '.join(c.name for c in table.columns if c.writable)}")
    return [{k: r[k] for k in names if k in r} if isinstance(r, dict) else r for r in raws]


def _required_filter(table: Table, request: Request, verb: str):
    paged = [p for p in ("limit", "offset") if p in request.query_params]
    if paged:
        # Ignoring them would change every matching row where PostgREST changes at most `limit`.
        raise BadRequest(f"{verb} on /api/{table.name} does not take {' or '.join(paged)}=",
                         details="Limited updates and deletes are not supported: the filters alone choose the rows.",
                         hint="Narrow the filters until they match only the rows to change.")
    where = parse_filters(table, request.query_params.multi_items())
    if where is None:
        raise BadRequest(
            f"{verb} on /api/{table.name} needs a filter",
            code="PGRST106",
            hint=f"Add one, such as ?{table.natural_key[0]}=eq.…, or use /api/{table.name}/{{key}}.",
        )
    return where


async def _row_response(table: Table, key: str, request: Request, uow: AbstractUnitOfWork) -> Response:
    """GET /api/{table}/{key}: the row with its ETag, or 304 when If-None-Match names that ETag."""
    deleted = table.soft_delete and parse_include_deleted(table, request.query_params.get("include_deleted"))
    row = await run_in_threadpool(services.get_row, uow, table.name, key,  # the request's one thread hop
                                  include_deleted=deleted)
    tag = etag(table, row)
    if none_match(request, tag):
        return Response(status_code=304, headers={"etag": tag})
    return JSONResponse(row, headers={"etag": tag})


def _lean_get(table: Table) -> ASGIApp:
    """GET /api/{table}/{key} as a bare ASGI app. A DepotError it raises reaches the app's
    exception middleware, which answers with the same handlers as FastAPI's wrapper would."""
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await _row_response(table, scope["path_params"]["key"], request, await get_uow(request))
        await response(scope, receive, send)

    return app


def table_router(table: Table, catalog: Catalog) -> APIRouter:
    """Every route of one table, documented with its own columns."""
    router = APIRouter(prefix=f"/api/{table.name}", tags=[table.group])
    names = schema_names(table)
    name = table.name

    @router.get(
        "",
        operation_id=f"list_{name}",
        summary=f"Read {name}",
        description=(f"Rows of the {table.kind} {name} (read-only), " if table.is_view else f"Rows of {name}, ")
        + "filtered, ordered and paged PostgREST-style.",
        responses={200: _rows_response(names["row"], f"Rows of {name}"), 400: _error("Malformed query")},
        openapi_extra={"parameters": _read_parameters(table)},
    )
    async def read_rows(request: Request, uow: UoW, settings: Config) -> Response:
        return await read_response(request, uow.catalog, table, uow, settings.max_rows)

    @router.head("", include_in_schema=False)
    async def head_rows(request: Request, uow: UoW, settings: Config) -> Response:
        return await read_response(request, uow.catalog, table, uow, settings.max_rows, head=True)

    if table.materialized:
        @router.post(
            "/refresh",
            operation_id=f"refresh_{name}",
            summary=f"Refresh the materialized view {name}",
            description="REFRESH MATERIALIZED VIEW, CONCURRENTLY (readers not blocked) where the view has a "
                        "unique index. Needs a write key.",
            responses={200: {"description": "Refreshed", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"view": {"type": "string"}, "concurrently": {"type": "boolean"}}}}}},
                405: _error("Not a materialized view")},
        )
        def refresh(uow: UoW) -> Response:
            concurrently = services.refresh_view(uow, name)
            return JSONResponse({"view": name, "concurrently": concurrently})

    if table.read_only:
        return router

    @router.post(
        "",
        operation_id=f"create_{name}",
        summary=f"Create {name} rows",
        description="One object or an array (or CSV), written atomically. "
                    "Prefer: resolution=merge-duplicates|ignore-duplicates upserts on the natural key.",
        status_code=201,
        responses={201: _rows_response(names["row"], "Created (body with Prefer: return=representation)"),
                   409: _error("Duplicate key or missing reference"), 422: _error("Invalid rows")},
        openapi_extra=_body(names["insert"], many=True),
    )
    async def create_rows(request: Request, uow: UoW, settings: Config) -> Response:
        raws, single = await rows_from_body(request, table)
        if "columns" in request.query_params:
            raws = _only_columns(table, request.query_params["columns"], raws)
        prefs = prefer(request)
        on_conflict = request.query_params.get("on_conflict")
        if nested.has_nested(table, raws):
            written = await run_in_threadpool(
                nested.create_nested, uow, name, raws, _relation(uow.catalog),
                resolution=RESOLUTIONS.get(prefs.get("resolution", "")), max_rows=settings.max_rows,
            )
            return _written(request, written, 201, _CREATE_PREFERENCES)
        written = await run_in_threadpool(
            services.create_rows, uow, name, raws,
            resolution=RESOLUTIONS.get(prefs.get("resolution", "")),
            on_conflict=on_conflict.split(",") if on_conflict else None, singular=_singular(request),
            dry_run=_dry_run(prefs),
        )
        response = _written(request, written, 201, _CREATE_PREFERENCES)
        if single and len(written) == 1 and table.key_column:
            # Percent-encoded: a key is any text, a header only latin-1 (a raw "ü" key was a 500).
            response.headers["location"] = f"/api/{name}/{quote(str(written[0][table.key_column]), safe='')}"
        return response

    @router.patch(
        "",
        operation_id=f"update_{name}",
        summary=f"Update {name} rows matching filters",
        responses={200: _rows_response(names["row"], "Updated rows (with Prefer: return=representation)"),
                   400: _error("No filter")},
        openapi_extra={"parameters": _filter_parameters(table), **_body(names["patch"], many=False)},
    )
    async def update_rows(request: Request, uow: UoW) -> Response:
        where = _required_filter(table, request, "PATCH")
        changes = parse_json(await read_body(request))
        prefs = prefer(request)
        rows = await run_in_threadpool(services.update_rows, uow, name, where, changes,
                                       singular=_singular(request), max_affected=max_affected(prefs),
                                       dry_run=_dry_run(prefs))
        return _written(request, rows, 200, _FILTERED_PREFERENCES)

    @router.delete(
        "",
        operation_id=f"delete_{name}",
        summary=f"Delete {name} rows matching filters",
        responses={200: _rows_response(names["row"], "Deleted rows (with Prefer: return=representation)"),
                   400: _error("No filter")},
        openapi_extra={"parameters": _filter_parameters(table)},
    )
    def delete_rows(request: Request, uow: UoW, settings: Config) -> Response:
        where = _required_filter(table, request, "DELETE")
        prefs = prefer(request)
        rows = services.delete_rows(uow, name, where, singular=_singular(request), max_affected=max_affected(prefs),
                                    dry_run=_dry_run(prefs),
                                    promote_claims=settings.promote_claims)
        return _written(request, rows, 200, _FILTERED_PREFERENCES)

    if table.key_column is None:
        return router
    key = table.key_column

    if table.history:
        history_name = f"{name}{HISTORY_SUFFIX}"

        # Before /{key:path}, which would take "AA/history" for a key.
        @router.get(
            "/{key:path}/history",
            operation_id=f"history_{name}",
            summary=f"The versions of one {name} row",
            description="Every version of the row, newest first: its values from `updated_at` until "
                        "`valid_to` (null: the current one), the `operation` that made it, its source and "
                        f"batch. Read, filtered and paged like /api/{history_name}; a deleted row's versions stay.",
            responses={200: _rows_response(schema_names(catalog[history_name])["row"], "The row's versions"),
                       400: _error("Malformed query or key")},
            openapi_extra={"parameters": _read_parameters(catalog[history_name])},
        )
        async def row_history(key: str, request: Request, uow: UoW, settings: Config) -> Response:
            within = key_condition(table.primary_key, services.parse_key(table, key))
            return await read_response(request, uow.catalog, uow.catalog[history_name], uow, settings.max_rows,
                                       within=within, defaults=(("order", f"{HISTORY_ID}.desc"),))

    if table.keeps_claims:
        @router.get(
            "/{key:path}/claims",
            operation_id=f"claims_{name}",
            summary=f"What each source claims about one {name} row",
            description="Every source's current claim on the row, strongest first: the stored row's "
                        "(`stored: true`), then the values each source that lost on priority last sent, "
                        "each with its priority, batch and time.",
            responses={200: {"description": "The claims", "content": {"application/json": {
                "schema": {"type": "array", "items": {"type": "object"}}}}}, 404: _error("No such row")},
        )
        async def row_claims(key: str, uow: UoW) -> Response:
            return JSONResponse(await run_in_threadpool(history.list_claims, uow, name, key))

        @router.post(
            "/{key:path}/claims/{source}/promote",
            operation_id=f"promote_claim_{name}",
            summary=f"Store a source's claim as the {name} row",
            description="The claim's values and source become the row's (an update, in its history); the "
                        "values it replaces become their source's claim.",
            responses={200: {"description": "The row as stored now", "content": {"application/json": {
                "schema": ref(names["row"])}}}, 404: _error("No such row, or no claim of that source")},
        )
        async def promote_claim(key: str, source: str, uow: UoW) -> Response:
            row = await run_in_threadpool(history.promote_claim, uow, name, key, source)
            return JSONResponse(row, headers={"etag": etag(table, row)})

    @router.get(
        "/{key:path}",
        operation_id=f"get_{name}",
        summary=f"Read one {name} row by {key}",
        responses={200: {"description": "The row; its ETag is its version",
                         "content": {"application/json": {"schema": ref(names["row"])}}},
                   404: _error("No such row" + (" (or it is deleted)" if table.soft_delete else ""))},
        openapi_extra={"parameters": _include_deleted_parameter(table)} if table.soft_delete else None,
    )
    async def read_row(key: str, request: Request, uow: UoW) -> Response:
        return await _row_response(table, key, request, uow)

    # The route above documents GET /{key} and answers HEAD; GET itself is answered by a plain ASGI
    # app doing the same, without FastAPI's request wrapper and dependency solving (a fifth of a
    # get's Python time, profiled: see the README's Performance).
    get_route = router.routes[-1]
    assert isinstance(get_route, APIRoute) and get_route.endpoint is read_row
    get_route.app = _lean_get(table)

    @router.head("/{key:path}", include_in_schema=False)
    async def head_row(key: str, request: Request, uow: UoW) -> Response:
        response = await read_row(key, request, uow)
        return Response(status_code=response.status_code, headers=dict(response.headers))

    @router.patch(
        "/{key:path}",
        operation_id=f"patch_{name}",
        summary=f"Update one {name} row by {key}",
        description="With If-Match: the ETag of the version you read; a stale one gets 412 and changes nothing.",
        responses={200: {"description": "The row as stored now", "content": {"application/json": {
            "schema": ref(names["row"])}}}, 412: _error("Stale If-Match"), 404: _error("No such row")},
        openapi_extra=_body(names["patch"], many=False),
    )
    async def update_row(key: str, request: Request, uow: UoW) -> Response:
        expected = if_match_version(request)
        changes = parse_json(await read_body(request))
        prefs = prefer(request)
        row = await run_in_threadpool(services.update_row, uow, name, key, changes, expected_version=expected,
                                      dry_run=_dry_run(prefs))
        headers = {"etag": etag(table, row)}
        applied = preference_applied(prefs, ("handling", "tx"))
        if applied:
            headers["preference-applied"] = applied
        return JSONResponse(row, headers=headers)

    @router.delete(
        "/{key:path}",
        operation_id=f"remove_{name}",
        summary=f"Delete one {name} row by {key}",
        status_code=204,
        responses={204: {"description": "Deleted"}, 412: _error("Stale If-Match"), 404: _error("No such row")},
    )
    def delete_row(key: str, request: Request, uow: UoW, settings: Config) -> Response:
        row = services.delete_row(uow, name, key, expected_version=if_match_version(request),
                                  dry_run=_dry_run(prefer(request)), promote_claims=settings.promote_claims)
        return _written(request, [row], 200)

    return router


class TableRoutes(BaseRoute):
    """Every table's routes behind one dictionary lookup of the path's table name.

    FastAPI matches an included router by scanning its routes, then scans them again to dispatch,
    with bookkeeping per route on the way; with every table's router included one after the
    other, matching /api/flights/{key} cost more than a whole bare request (profiled, see the
    README's Performance). Here a request tries only its own table's routes, as plain routes of
    the app, and it tries them first: the probes, docs and metrics routes, and the history and
    claims tables' routes, are not scanned before a table's (with three routes a table since
    issue 10, a scan was 7% of a get-by-key's Python time). `api_routes` lists them for the
    OpenAPI document.
    """

    def __init__(self, tables: dict[str, list[BaseRoute]]):
        self.tables = tables
        self.routes = [route for routes in tables.values() for route in routes]

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # The table name is the segment after /api/ in the path below the app's root_path, which
        # uvicorn's --root-path leaves in scope["path"] (as Starlette's own routes read it).
        path: str = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        if not path.startswith("/api/"):
            return Match.NONE, {}
        routes = self.tables.get(path[5:].partition("/")[0])
        if routes is None:
            return Match.NONE, {}
        partial: tuple[Match, Scope] | None = None
        for route in routes:
            match, child_scope = route.matches(scope)  # sets child_scope["route"] to the route
            if match is Match.FULL:
                return match, child_scope
            if match is Match.PARTIAL and partial is None:
                partial = (match, child_scope)
        return partial or (Match.NONE, {})

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await scope["route"].handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        for route in self.routes:
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                continue
        raise NoMatchFound(name, path_params)


def api_routes(routes: list[BaseRoute]) -> list[BaseRoute]:
    """The app's routes with the TableRoutes opened up: what the OpenAPI document describes."""
    return [r for route in routes for r in (route.routes if isinstance(route, TableRoutes) else [route])]


def install_table_routes(app: FastAPI, catalog: Catalog) -> None:
    app.router.routes.insert(0, TableRoutes({table.name: table_router(table, catalog).routes for table in catalog}))

    async def unknown_table(table: str, request: Request) -> Response:
        if table not in catalog:
            raise UnknownTable(
                f"Could not find the table '{table}'",
                hint=f"Known tables: {', '.join(catalog.names)}",
            )
        spec = catalog[table]
        if spec.is_view:
            if request.path_params.get("key") == "refresh" and request.method == "POST":
                raise services.not_refreshable(spec)  # a materialized view's own route took it otherwise
            raise services.view_is_read_only(spec)
        if "key" in request.path_params and spec.key_column is None:
            raise HttpError(404, f"The table '{table}' has a composite key and no /{{key}} route", code="PGRST125",
                            hint=f"Filter instead: /api/{table}?" + "&".join(f"{c}=eq.…" for c in spec.primary_key))
        raise HttpError(405, f"{request.method} is not allowed on {request.url.path}", code="PGRST117",
                        hint="ingest_batches and rejected_rows are read-only." if spec.read_only else None)

    methods = ["GET", "HEAD", "POST", "PATCH", "DELETE", "PUT"]
    app.add_api_route("/api/{table}", unknown_table, methods=methods, include_in_schema=False)
    app.add_api_route("/api/{table}/{key:path}", unknown_table, methods=methods, include_in_schema=False)

