"""The table API, generated from the catalog: one set of routes per table, no per-table code."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URLPath
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from domain.errors import BadRequest, NotSingular, UnknownTable
from domain.ports import AbstractUnitOfWork
from domain.schema import Catalog, Table
from entrypoints.dependencies import get_settings, get_uow
from entrypoints.http import (
    HttpError,
    JSONResponse,
    etag,
    if_match_version,
    none_match,
    parse_json,
    prefer,
    read_body,
    rows_from_body,
)
from entrypoints.openapi import ref, schema_names
from entrypoints.query_string import parse_filters
from entrypoints.reading import OBJECT_MEDIA, read_response
from entrypoints.settings import Settings
from service_layer import services

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
    ]


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


def _written(request: Request, rows: list[dict], status: int) -> Response:
    prefs = prefer(request)
    # As PostgREST: Content-Range */N tells how many rows the write touched when asked to count.
    headers = {"content-range": f"*/{len(rows)}" if "count" in prefs else "*/*"}
    if prefs.get("return") == "representation":
        return _rows_or_object(request, rows, status=status, headers=headers)
    return Response(status_code=204 if status == 200 else status, headers=headers)


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


def table_router(table: Table) -> APIRouter:
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
    async def create_rows(request: Request, uow: UoW) -> Response:
        raws, single = await rows_from_body(request, table)
        prefs = prefer(request)
        on_conflict = request.query_params.get("on_conflict")
        written = await run_in_threadpool(
            services.create_rows, uow, name, raws,
            resolution=RESOLUTIONS.get(prefs.get("resolution", "")),
            on_conflict=on_conflict.split(",") if on_conflict else None, singular=_singular(request),
        )
        response = _written(request, written, 201)
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
        rows = await run_in_threadpool(services.update_rows, uow, name, where, changes,
                                       singular=_singular(request))
        return _written(request, rows, 200)

    @router.delete(
        "",
        operation_id=f"delete_{name}",
        summary=f"Delete {name} rows matching filters",
        responses={200: _rows_response(names["row"], "Deleted rows (with Prefer: return=representation)"),
                   400: _error("No filter")},
        openapi_extra={"parameters": _filter_parameters(table)},
    )
    def delete_rows(request: Request, uow: UoW) -> Response:
        where = _required_filter(table, request, "DELETE")
        rows = services.delete_rows(uow, name, where, singular=_singular(request))
        return _written(request, rows, 200)

    if table.key_column is None:
        return router
    key = table.key_column

    @router.get(
        "/{key:path}",
        operation_id=f"get_{name}",
        summary=f"Read one {name} row by {key}",
        responses={200: {"description": "The row; its ETag is its version",
                         "content": {"application/json": {"schema": ref(names["row"])}}},
                   404: _error("No such row")},
    )
    async def read_row(key: str, request: Request, uow: UoW) -> Response:
        row = await run_in_threadpool(services.get_row, uow, name, key)  # the request's one thread hop
        tag = etag(table, row)
        if none_match(request, tag):
            return Response(status_code=304, headers={"etag": tag})
        return JSONResponse(row, headers={"etag": tag})

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
        row = await run_in_threadpool(services.update_row, uow, name, key, changes, expected_version=expected)
        return JSONResponse(row, headers={"etag": etag(table, row)})

    @router.delete(
        "/{key:path}",
        operation_id=f"remove_{name}",
        summary=f"Delete one {name} row by {key}",
        status_code=204,
        responses={204: {"description": "Deleted"}, 412: _error("Stale If-Match"), 404: _error("No such row")},
    )
    def delete_row(key: str, request: Request, uow: UoW) -> Response:
        row = services.delete_row(uow, name, key, expected_version=if_match_version(request))
        return _written(request, [row], 200)

    return router


class TableRoutes(BaseRoute):
    """One table's routes behind one substring test of the path.

    FastAPI matches an included router by scanning its routes, then scans them again to dispatch,
    with bookkeeping per route on the way; with every table's router included one after the
    other, matching /api/flights/{key} cost more than a whole bare request (profiled, see the
    README's Performance). Here a request tries only its own table's routes, as plain routes of
    the app. `api_routes` lists them for the OpenAPI document.
    """

    def __init__(self, prefix: str, routes: list[BaseRoute]):
        self.prefix = prefix
        self.routes = routes

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # A route matches a suffix of scope["path"] (after root_path) that starts with the
        # prefix, so a path without the prefix in it matches none of them.
        if self.prefix not in scope.get("path", ""):
            return Match.NONE, {}
        partial: tuple[Match, Scope] | None = None
        for route in self.routes:
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
    """The app's routes with each TableRoutes opened up: what the OpenAPI document describes."""
    return [r for route in routes for r in (route.routes if isinstance(route, TableRoutes) else [route])]


def install_table_routes(app: FastAPI, catalog: Catalog) -> None:
    for table in catalog:
        app.router.routes.append(TableRoutes(f"/api/{table.name}", table_router(table).routes))

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

