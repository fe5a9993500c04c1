"""`POST /api/_batch`: a JSON list of operations ({method, path, body, headers}) run in order in one
transaction, all committed or none; the answers come back in the same order.

Each operation is answered by the same use cases as its own route (service_layer.batch lends them
the batch's transaction); the parsing is the routes' own, given the operation as a request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from domain.errors import BadRequest
from domain.ports import AbstractUnitOfWork
from entrypoints.http import HttpError, JSONResponse, error_response, max_affected, parse_json, prefer, read_body
from entrypoints.query_string import parse_read
from entrypoints.routes import RESOLUTIONS, Config, UoW, _only_columns, _required_filter, _singular
from service_layer import batch, reads, services

_METHODS = ("GET", "POST", "PATCH", "DELETE")
Operation = Callable[[AbstractUnitOfWork], dict[str, Any]]


def _as_request(method: str, path: str, query: str, headers: dict[str, str]) -> Request:
    """An operation as a request, so the routes' own parsing (filters, Prefer) reads it."""
    scope = {"type": "http", "method": method, "path": path, "query_string": query.encode(),
             "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]}
    return Request(scope)


def _refused(index: int, message: str) -> BadRequest:
    return BadRequest(f"Operation {index} of the batch is malformed: {message}",
                      hint='Each operation is {"method": "GET|POST|PATCH|DELETE", "path": "/api/table?query", '
                           '"body": ..., "headers": {"Prefer": ...}}')


def _operation(index: int, raw: Any, max_rows: int, budget: list[int]) -> Operation:
    """What one operation does, as a function of the batch's unit of work; checked for shape here,
    before anything runs, and parsed when it runs (so its errors name it too)."""
    if not isinstance(raw, dict) or set(raw) - {"method", "path", "body", "headers"}:
        raise _refused(index, "an object with method, path, and optionally body and headers")
    method, path, body, headers = raw.get("method"), raw.get("path"), raw.get("body"), raw.get("headers") or {}
    if method not in _METHODS or not isinstance(path, str) or not path.startswith("/api/"):
        raise _refused(index, f"method one of {', '.join(_METHODS)} and a path under /api/")
    if not isinstance(headers, dict) or not all(k.isascii() and isinstance(v, str) and v.isascii()
                                                for k, v in headers.items()):
        raise _refused(index, "headers is an object of ASCII strings")
    route, _, query = path.partition("?")
    name, _, key = route[len("/api/"):].partition("/")
    request = _as_request(method, route, query, headers)

    def counted(rows: list) -> list:
        budget[0] -= len(rows)
        if budget[0] < 0:  # DEPOT_MAX_ROWS bounds the whole answer, as it bounds one read's
            raise HttpError(413, f"The batch's answers would hold more than {max_rows} rows (DEPOT_MAX_ROWS)",
                            code="PGRST413", hint="Split the batch, or read with smaller limits.")
        return rows

    def run(uow: AbstractUnitOfWork) -> dict[str, Any]:
        prefs = prefer(request)
        represent = prefs.get("return") == "representation"
        table = services.table_of(uow, name, writing=method != "GET")
        if method == "GET":
            if key:
                return {"status": 200, "body": services.get_row(uow, name, unquote(key))}
            read = parse_read(uow.catalog, table, parse_qsl(query, keep_blank_values=True), headers.get("Range"),
                              max_rows)
            return {"status": 200, "body": counted(reads.read_page(uow, name, read, max_rows=max_rows).rows)}
        if method == "POST":
            if key or not isinstance(body, dict | list):
                raise BadRequest("A POST takes /api/table and a body of one object or an array", code="PGRST102")
            raws = body if isinstance(body, list) else [body]
            columns = request.query_params.get("columns")
            on_conflict = request.query_params.get("on_conflict")
            rows = services.create_rows(uow, name, _only_columns(table, columns, raws) if columns else raws,
                                        resolution=RESOLUTIONS.get(prefs.get("resolution", "")),  # type: ignore[arg-type]
                                        on_conflict=on_conflict.split(",") if on_conflict else None)
            return {"status": 201, "body": counted(rows) if represent else None}
        if key:
            if method == "PATCH":
                row = services.update_row(uow, name, unquote(key), body)
                return {"status": 200, "body": row}
            services.delete_row(uow, name, unquote(key))
            return {"status": 204, "body": None}
        where = _required_filter(table, request, method)
        if method == "PATCH":
            rows = services.update_rows(uow, name, where, body, singular=_singular(request),
                                        max_affected=max_affected(prefs))
        else:
            rows = services.delete_rows(uow, name, where, singular=_singular(request),
                                        max_affected=max_affected(prefs))
        return {"status": 200 if represent else 204, "body": counted(rows) if represent else None}

    return run


def install_batch_route(app: FastAPI) -> None:
    router = APIRouter(tags=["service"])

    @router.post("/api/_batch", operation_id="batch",
                 summary="Several reads and writes in one transaction",
                 description="A JSON array of {method, path, body, headers}; all are committed or none is. "
                             "The answer is an array of {status, body}, in the same order.")
    async def run_batch(request: Request, uow: UoW, settings: Config) -> Response:
        raw = parse_json(await read_body(request))
        if not isinstance(raw, list):
            raise BadRequest("A batch is a JSON array of operations", code="PGRST102")
        if len(raw) > settings.max_rows:
            raise HttpError(413, f"A batch holds at most {settings.max_rows} operations (DEPOT_MAX_ROWS), "
                                 f"this one {len(raw)}", code="PGRST413", hint="Split it into several batches.")
        budget = [settings.max_rows]
        operations = [_operation(i, op, settings.max_rows, budget) for i, op in enumerate(raw)]
        try:
            answers = await run_in_threadpool(batch.run_batch, uow, operations)
        except batch.OperationFailed as failed:
            response = error_response(failed.error)
            shaped = failed.error.as_dict()
            shaped["message"] = f"Operation {failed.index} failed, so the batch wrote nothing: {shaped['message']}"
            return JSONResponse(shaped, status_code=response.status_code)
        return JSONResponse(answers)

    app.include_router(router)


