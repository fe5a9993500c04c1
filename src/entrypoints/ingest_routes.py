"""The /ingest routes: a body streamed in chunks of rows to one worker thread running the ingest service.

The event loop reads the body and parses it incrementally; each chunk of rows goes through a
small bounded queue to a thread that validates and writes it (psycopg2 blocks). When the
writer falls behind, the queue is full and reading the body waits: the client is slowed down
instead of the server's memory growing.
"""

from __future__ import annotations

import asyncio
import hashlib
import queue
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from domain.ingestion import DISPOSITIONS, MODES, ON_CONFLICT, STATUSES
from domain.ports import AbstractUnitOfWork
from domain.profiles import REQUEST_PARAMETERS, overrides_from_parameters
from entrypoints.dependencies import get_settings, get_uow
from entrypoints.http import HttpError, JSONResponse, media_type
from entrypoints.parquet import PARQUET_MEDIA, ParquetStream
from entrypoints.reading import content_range
from entrypoints.security import BodyTooLarge
from entrypoints.settings import Settings
from entrypoints.streams import Inflate, Rechunker, parser_for
from service_layer import history, ingest
from service_layer.ingest import Chunk, IngestRequest

UoW = Annotated[AbstractUnitOfWork, Depends(get_uow)]
Config = Annotated[Settings, Depends(get_settings)]

CHUNK_ROWS = 5_000  # rows handed to the writer at a time
QUEUE_CHUNKS = 2  # chunks parsed ahead of the writer, at most
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")

_COUNT = {"type": "integer", "minimum": 0}
REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "IngestReport",
    "properties": {
        "batch_id": {"type": ["integer", "null"], "description": "null: a replay that accepted no row made no batch."},
        "table": {"type": "string"},
        "source": {"type": "string"},
        "mode": {"type": "string", "enum": list(MODES)},
        "on_conflict": {"type": "string", "enum": list(ON_CONFLICT)},
        "status": {"type": "string", "enum": list(STATUSES)},
        "received": _COUNT, "inserted": _COUNT, "updated": _COUNT, "unchanged": _COUNT,
        "superseded": _COUNT, "rejected": _COUNT, "retired": _COUNT, "deleted": _COUNT,
        "disposition": {"type": "string", "enum": list(DISPOSITIONS)},
        "warnings": {"type": "array", "description": "Values nulled by the contract invalid=discard_value.",
                     "items": {"type": "object"}},
        "errors": {
            "type": "array",
            "description": "The first errors: row number (1-based within the batch), field, code, message.",
            "items": {"type": "object", "properties": {
                "row": {"type": "integer"}, "field": {"type": "string"},
                "code": {"type": "string"}, "message": {"type": "string"}}},
        },
    },
}
_ERROR = {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                            "details": {}, "hint": {"type": ["string", "null"]}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _json(schema: dict[str, Any], description: str, headers: dict | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


_CONTENT_RANGE = {"Content-Range": {"schema": {"type": "string"}, "description": "first-last/total"}}
INGEST_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"},
                         "example": "carrier,name\nAA,American Airlines Inc.\n"},
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            PARQUET_MEDIA: {"schema": {"type": "string", "format": "binary"}},
            "application/x-ndjson": {"schema": {"type": "string"},
                                     "example": '{"carrier": "AA", "name": "American Airlines Inc."}\n'},
        },
    },
    "parameters": [*({"name": name, "in": "query", "required": False, "schema": {"type": "string"},
                      "description": "Overrides the source profile's " + ".".join(path) + " for this batch."}
                     for name, path in REQUEST_PARAMETERS.items()),
                   {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"},
                    "description": "Same key and same body: the first report, nothing written. "
                                   "Same key and another body: 409."}],
    "responses": {
        "200": _json(REPORT_SCHEMA, "The batch ran to its end (rejections or not): its report."),
        "400": _error("Unknown source, mode or on_conflict; malformed body or CSV header."),
        "404": _error("Unknown table."),
        "409": _error("Idempotency-Key clash."),
        "413": _error("The body is larger than DEPOT_MAX_BODY_BYTES."),
        "415": _error("Content-Type other than text/csv, application/json, application/x-ndjson."),
        "422": _error("An atomic batch had invalid rows and wrote nothing; the report is under details."),
    },
}


class _Abort(Exception):
    """The body could not be read to its end (the client left, or it was refused)."""


class ChunkFeed:
    """A bounded queue of chunks from the event loop to the worker thread, iterated by the service."""

    _END = object()

    def __init__(self) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
        self.aborted: BaseException | None = None

    def __iter__(self) -> Iterator[Chunk]:
        while True:
            item = self.queue.get()
            if self.aborted is not None:
                raise _Abort(str(self.aborted) or type(self.aborted).__name__)
            if item is self._END:
                return
            yield item

    async def put(self, item: Any, worker: asyncio.Future) -> None:
        while not worker.done():
            try:
                await run_in_threadpool(self.queue.put, item, True, 0.25)
                return
            except queue.Full:
                continue

    def abort(self, error: BaseException) -> None:
        self.aborted = error
        try:
            self.queue.put_nowait(self._END)
        except queue.Full:
            pass  # the worker sees `aborted` when it takes its next item


def _body_kind(kind: str) -> str:
    if kind == "text/csv":
        return "csv"
    if kind in NDJSON_TYPES:
        return "ndjson"
    if kind in ("application/json", "", "*/*"):
        return "json"
    if kind == PARQUET_MEDIA:
        return "parquet"
    raise HttpError(415, f"Content-Type {kind!r} is not supported by /ingest", code="PGRST415",
                    hint=f"Send text/csv, application/json (an array), application/x-ndjson or {PARQUET_MEDIA}.")


def _inflater(request: Request, settings: Settings) -> Inflate | None:
    """Content-Encoding: gzip is inflated as it streams; any other coding is refused (415)."""
    coding = request.headers.get("content-encoding", "").strip().lower()
    if coding in ("", "identity"):
        return None
    if coding in ("gzip", "x-gzip"):
        return Inflate(settings.max_body_bytes, lambda: BodyTooLarge(settings.max_body_bytes))
    raise HttpError(415, f"Content-Encoding {coding!r} is not supported by /ingest", code="PGRST415",
                    hint="Send the body as it is, or gzip it (Content-Encoding: gzip).")


async def _json_body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as error:
        raise HttpError(400, f"The body is not JSON ({error})", code="PGRST102") from None


def _page(limit: int | None, settings: Settings) -> int:
    return min(limit if limit is not None else 100, settings.max_rows)


def ingest_router() -> APIRouter:
    router = APIRouter(prefix="/ingest", tags=["ingest"])

    @router.get("/batches", operation_id="ingest_list_batches", responses={
        200: _json({"type": "array", "items": {"type": "object"}}, "Batches, newest first.", _CONTENT_RANGE)})
    def list_batches(
        uow: UoW, settings: Config, limit: Annotated[int | None, Query(ge=0)] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Response:
        listing = ingest.list_batches(uow, limit=_page(limit, settings), offset=offset)
        return JSONResponse(listing.rows, headers={
            "Content-Range": content_range(offset, len(listing.rows), listing.total)})

    @router.get("/batches/{batch_id}", operation_id="ingest_get_batch", responses={
        200: _json(REPORT_SCHEMA, "The batch's report, with its first errors."), 404: _error("No such batch.")})
    def get_batch(batch_id: int, uow: UoW) -> Response:
        batch = ingest.get_batch(uow, batch_id)
        report = ingest.batch_report(uow, batch_id)
        return JSONResponse({**batch, **report.as_dict()})

    @router.get("/batches/{batch_id}/rejections", operation_id="ingest_list_rejections", responses={
        200: _json({"type": "array", "items": {"type": "object"}},
                   "Rejected rows by row number: payload as received, errors, resolved_at.", _CONTENT_RANGE),
        404: _error("No such batch.")})
    def list_rejections(
        batch_id: int, uow: UoW, settings: Config, limit: Annotated[int | None, Query(ge=0)] = None,
        offset: Annotated[int, Query(ge=0)] = 0, unresolved: bool = False,
    ) -> Response:
        listing = ingest.list_rejections(uow, batch_id, limit=_page(limit, settings), offset=offset,
                                         unresolved=unresolved)
        return JSONResponse(listing.rows, headers={
            "Content-Range": content_range(offset, len(listing.rows), listing.total)})

    @router.get("/batches/{batch_id}/changes", operation_id="ingest_batch_changes", responses={
        200: _json({"type": "array", "items": {"type": "object"}},
                   "What the batch did, row by row, in its order: each row's key, `change` (inserted, updated, "
                   "deleted, retired, reverted), its time, version and source; `new` values of an inserted "
                   "row, `old` values of a deleted one, and for an updated one each changed column's old "
                   "and new value; `current`: whether that version is still the row's.", _CONTENT_RANGE),
        404: _error("No such batch.")})
    def batch_changes(
        batch_id: int, uow: UoW, settings: Config, limit: Annotated[int | None, Query(ge=0)] = None,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> Response:
        listing = history.batch_changes(uow, batch_id, limit=_page(limit, settings), offset=offset)
        return JSONResponse(listing.rows, headers={
            "Content-Range": content_range(offset, len(listing.rows), listing.total)})

    @router.post("/batches/{batch_id}/revert", operation_id="ingest_revert_batch", responses={
        200: _json({"type": "object"},
                   "The revert's report (a new batch): `updated` rows set back, `inserted` rows it had deleted, "
                   "`deleted` rows it had inserted, and `conflicts`: rows changed again since, left as they "
                   "are (each with its key, the batch's version and the current one) unless force=true."),
        404: _error("No such batch."), 409: _error("Reverted already, or still running.")})
    def revert(batch_id: int, uow: UoW, force: Annotated[bool, Query(
            description="Set back the rows changed again since the batch, too.")] = False) -> Response:
        return JSONResponse(history.revert_batch(uow, batch_id, force=force))

    @router.post("/batches/{batch_id}/replay", operation_id="ingest_replay_batch", responses={
        200: _json(REPORT_SCHEMA, "The replay's report (a new batch): accepted rows written, and resolved."),
        404: _error("No such batch.")})
    def replay(batch_id: int, uow: UoW) -> Response:
        return JSONResponse(ingest.replay(uow, batch_id).as_dict())

    @router.patch("/rejections/{rejection_id}", operation_id="ingest_correct_rejection", responses={
        200: _json({"type": "object"}, "The rejected row, with its corrected payload."),
        400: _error("The body is not a JSON object."), 404: _error("No such rejected row."),
        409: _error("The row is resolved or dismissed already.")})
    async def correct_rejection(rejection_id: int, request: Request, uow: UoW) -> Response:
        """Correct a rejected row's payload (a JSON object, under the source's names); the next replay of
        its batch checks the corrected row."""
        payload = await _json_body(request)
        return JSONResponse(await run_in_threadpool(ingest.correct_rejection, uow, rejection_id, payload))

    @router.post("/rejections/{rejection_id}/dismiss", operation_id="ingest_dismiss_rejection", responses={
        200: _json({"type": "object"}, "The rejected row, dismissed."),
        400: _error("No reason given."), 404: _error("No such rejected row."),
        409: _error("The row is resolved or dismissed already.")})
    async def dismiss_rejection(rejection_id: int, request: Request, uow: UoW) -> Response:
        """Abandon a rejected row, with {"reason": "..."}; replays leave it alone."""
        body = await _json_body(request)
        reason = body.get("reason") if isinstance(body, dict) else None
        return JSONResponse(await run_in_threadpool(ingest.dismiss_rejection, uow, rejection_id, reason))

    @router.get("/sources/{code}/watermark", operation_id="ingest_source_watermark", responses={
        200: _json({"type": "object", "properties": {
            "source": {"type": "string"}, "table": {"type": "string"}, "cursor": {"type": "string"},
            "watermark": {"description": "The greatest cursor value the source loaded; null if none."}}},
            "Where the source resumes."),
        400: _error("The profile names no cursor for this table."), 404: _error("No such source or table.")})
    def source_watermark(code: str, table: str, uow: UoW) -> Response:
        return JSONResponse(ingest.watermark(uow, code, table))

    @router.post("/{table}", operation_id="ingest", openapi_extra=INGEST_OPENAPI)
    async def ingest_table(
        request: Request,
        table: str,
        uow: UoW,
        settings: Config,
        source: Annotated[str, Query(description="The source's code (a row of sources).")] = "manual",
        mode: Literal[MODES] = "best_effort",  # type: ignore[valid-type]
        on_conflict: Literal[ON_CONFLICT] = "update",  # type: ignore[valid-type]
        csv_null: Annotated[str | None, Query(description="The CSV null token (default: the empty field).")] = None,
        disposition: Annotated[str | None, Query(
            description="upsert, insert_only, replace_partition, delete, or append (every row new: tables declared "
                        "unique_natural_key=False). Default: append on those tables, upsert on the others.")
        ] = None,
        partition: Annotated[str | None, Query(description="replace_partition: COLUMN[,COLUMN].")] = None,
    ) -> Response:
        """Ingest a batch: validated, reference-checked, upserted by natural key with source priority.

        The source's profile maps the body onto the table; the query parameters of PROFILE_PARAMETERS
        (columns=, set=, record_path=, unknown=, invalid=, date_format=, ...) override it for this batch."""
        kind = _body_kind(media_type(request))
        inflate = _inflater(request, settings)
        overrides = overrides_from_parameters(request.query_params)
        job = IngestRequest(table, source, mode, on_conflict, request.headers.get("idempotency-key"),
                            overrides=overrides or None, disposition=disposition,
                            partition=tuple(filter(None, (partition or "").split(","))))
        # 404 / 400 before the body is read: the table, the source, the profile and its overrides
        checked = await run_in_threadpool(ingest.check_request, uow, job)
        parser: Any = ParquetStream() if kind == "parquet" else parser_for(
            kind, csv_null, checked.profile.get("record_path") if kind == "json" else None)

        digest = hashlib.sha256(repr((table, source, mode, on_conflict, csv_null, type(parser).__name__,
                                      sorted(overrides.items()), disposition, partition)).encode())
        feed = ChunkFeed()
        worker = asyncio.ensure_future(run_in_threadpool(
            ingest.ingest_batch, uow, job, feed, request_hash=lambda: digest.hexdigest()))
        chunks = Rechunker(parser)
        try:
            # DEPOT_MAX_BODY_BYTES is enforced as the body arrives by the BodyLimitMiddleware:
            # its BodyTooLarge fails the batch below and answers 413.
            async for data in request.stream():
                digest.update(data)
                if inflate is not None:
                    data = inflate.feed(data)
                for chunk in chunks.add(parser.feed(data), CHUNK_ROWS):
                    await feed.put(chunk, worker)
                if worker.done():
                    break  # the worker stopped early: its error is the answer
            if not worker.done():
                rest = parser.feed(inflate.finish()) if inflate is not None else []
                for chunk in chunks.add(rest, CHUNK_ROWS) + chunks.add(parser.finish(), CHUNK_ROWS):
                    await feed.put(chunk, worker)
                if isinstance(parser, ParquetStream):  # read a record batch at a time, off the event loop
                    batches = parser.batches(CHUNK_ROWS)
                    while not worker.done() and (records := await run_in_threadpool(next, batches, None)):
                        await feed.put(Chunk(records, parser.header), worker)
                for chunk in chunks.rest():
                    await feed.put(chunk, worker)
                await feed.put(ChunkFeed._END, worker)
        except ClientDisconnect as gone:
            feed.abort(gone)
            await asyncio.gather(worker, return_exceptions=True)  # the batch is marked failed
            return Response(status_code=499)  # nobody is listening
        except BaseException as error:
            feed.abort(error)
            await asyncio.gather(worker, return_exceptions=True)
            raise
        report = await worker
        return JSONResponse(report.as_dict())

    return router


def install_ingest_routes(app: FastAPI) -> None:
    app.include_router(ingest_router())
