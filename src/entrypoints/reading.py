"""The read route's HTTP side: content negotiation (JSON, one object, streamed CSV), Content-Range,
Prefer: count, and the Link to the next page with its opaque after= cursor."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import decimal
import io
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from domain import query as query_model
from domain.errors import NotAcceptable, NotSingular
from domain.ports import AbstractUnitOfWork
from domain.query import Read, Where, conjunction
from domain.schema import Catalog, ColumnType, Table
from entrypoints.http import HttpError, JSONResponse, prefer, preference_applied
from entrypoints.parquet import PARQUET_MEDIA, ParquetEncoder
from entrypoints.query_string import encode_cursor, parse_read
from service_layer import reads

OBJECT_MEDIA = "application/vnd.pgrst.object+json"
CSV_MEDIA = "text/csv"
_JSON_MEDIA = ("application/json", "application/vnd.pgrst.array+json", "application/*", "*/*")
COUNT_METHODS = ("exact", "planned", "estimated")
log = logging.getLogger("depot.reads")


def representation(request: Request) -> tuple[str, bool]:
    """`json`, `object` or `csv`, by the Accept header in the client's order of preference, and
    whether the client asked for null members to be left out (`;nulls=stripped`, as PostgREST)."""
    header = request.headers.get("accept", "").strip()
    if not header:
        return "json", False
    offered = []
    for n, part in enumerate(header.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        quality, stripped = 1.0, False
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
            elif name.strip() == "nulls" and value.strip() == "stripped":
                stripped = True
        offered.append((-quality, n, media.lower(), stripped))
    for _, _, media, stripped in sorted(offered):
        if media == OBJECT_MEDIA:
            return "object", stripped
        if media == CSV_MEDIA:
            return "csv", False
        if media == PARQUET_MEDIA:
            return "parquet", False
        if media in _JSON_MEDIA:
            return "json", stripped
    raise NotAcceptable(f"None of the media types in Accept: {header[:200]!r} is offered here",
                        hint=f"Ask for application/json, {OBJECT_MEDIA}, {CSV_MEDIA} or {PARQUET_MEDIA}.")


def output_keys(table: Table, read: Read) -> list[str]:
    return query_model.output_keys(read.items) if read.items else list(table.column_names)


def content_range(start: int | None, count: int, total: int | None) -> str | None:
    if start is None:
        return None if total is None else f"*/{total}"
    span = f"{start}-{start + count - 1}" if count else "*"
    return f"{span}/{'*' if total is None else total}"


def next_link(request: Request, table: Table, read: Read, page: reads.ReadPage) -> str | None:
    """`<...>; rel="next"`: the same query, with after= (or offset= for aggregate reads)."""
    if not page.more or read.limit is None:
        return None
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("after", "offset", "limit")]
    kept.append(("limit", str(read.limit)))
    if read.grouped or page.last is None:
        kept.append(("offset", str(read.offset + len(page.rows))))
    else:
        kept.append(("after", encode_cursor(read.keyset_order(table), page.last)))
    return f'<{request.url.path}?{urlencode(kept, safe=",()!:*")}>; rel="next"'


def _strip_nulls(row: dict) -> dict:
    return {k: v for k, v in row.items() if v is not None}


def _within(read: Read, where: Where | None) -> Read:
    if where is None:
        return read
    return dataclasses.replace(read, where=conjunction([where, *([read.where] if read.where else [])]))


async def read_response(request: Request, catalog: Catalog, table: Table, uow: AbstractUnitOfWork,
                        max_rows: int, *, head: bool = False, within: Where | None = None,
                        defaults: tuple[tuple[str, str], ...] = ()) -> Response:
    """GET (or HEAD: the same status and headers, no body) of a table's rows. A route that reads a
    part of a table (a row's history) gives the condition `within`, and query parameters it takes
    by default (an order) as `defaults`."""
    kind, stripped = representation(request)
    params = request.query_params.multi_items()
    given = {name for name, _ in params}
    params += [(name, value) for name, value in defaults if name not in given]
    if kind in ("csv", "parquet"):
        read = _within(parse_read(catalog, table, params, request.headers.get("range"), None), within)
        media = "text/csv; charset=utf-8" if kind == "csv" else PARQUET_MEDIA
        if head:
            return Response(media_type=media)
        encoder = _CsvEncoder(table, output_keys(table, read)) if kind == "csv" else ParquetEncoder(
            table, output_keys(table, read))
        def batches():
            # No cap on the rows a CSV streams; DEPOT_MAX_ROWS bounds what embeds nest per batch.
            return reads.stream_rows(uow, table.name, read, max_rows=max_rows)

        if uow.kind == "memory":
            # The memory store's lock is held for a unit of work: collect the rows at once (they
            # are in memory already) so a slow client does not hold every other request up.
            return await _streamed(table, encoder, media, lambda: iter(list(batches())))
        return await _streamed(table, encoder, media, batches)
    read = _within(parse_read(catalog, table, params, request.headers.get("range"), max_rows), within)
    prefs = prefer(request) if "prefer" in request.headers else {}
    method = prefs.get("count")
    counting = method if method in COUNT_METHODS else None
    page = await run_in_threadpool(reads.read_page, uow, table.name, read, count=counting,  # type: ignore[arg-type]
                                   count_threshold=max_rows, max_rows=max_rows)
    if counting == "exact" and page.start is not None and page.total is not None and page.start > page.total:
        # As PostgREST (planned and estimated totals are guesses, so only an exact one refuses a page)
        raise HttpError(416, "Requested range not satisfiable", code="PGRST103",
                        details=f"An offset of {page.start} was requested, but there are only {page.total} rows.")
    headers: dict[str, str] = {}
    span = content_range(page.start, len(page.rows), page.total)
    if span is not None:
        headers["content-range"] = span
    link = next_link(request, table, read, page)
    if link is not None:
        headers["link"] = link
    if prefs:
        applied = preference_applied(prefs, ("count", "handling"))
        if applied:
            headers["preference-applied"] = applied
    rows = [_strip_nulls(r) for r in page.rows] if stripped else page.rows
    if kind == "object":
        if len(rows) != 1:
            raise NotSingular(len(rows))
        status, body, media = 200, rows[0], OBJECT_MEDIA
    else:
        partial = page.total is not None and len(rows) < page.total
        status, body, media = (206 if partial else 200), rows, "application/json"
    if head:
        return Response(status_code=status, headers=headers, media_type=media)
    response = JSONResponse(body, status_code=status, headers=headers)
    response.headers["content-type"] = media
    return response


# --- CSV, streamed -------------------------------------------------------------------------------


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return _json_text(value)
    return value


def _json_text(value: Any) -> str:
    return orjson.dumps(value, default=lambda v: str(v) if isinstance(v, decimal.Decimal) else v.isoformat()).decode()


def _json_cell(value: Any) -> Any:
    """A JSON column's cell: its value's JSON text whatever the value (`"a"` for the string a, as PostgreSQL
    writes json), so that a string and a number stay apart and the file loads back as it was."""
    return "" if value is None else _json_text(value)


def _csv_cells(table: Table, keys: list[str]) -> list[tuple[str, Callable[[Any], Any]]]:
    """Each key with the function that writes its value as a cell."""
    return [(k, _json_cell if table.has_column(k) and table.column(k).type is ColumnType.JSON else _csv_value)
            for k in keys]


def _csv_chunk(keys: list[str], cells: list[tuple[str, Callable[[Any], Any]]], rows: list[dict],
               header: bool) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(keys)
    writer.writerows([cell(r.get(k)) for k, cell in cells] for r in rows)
    return buffer.getvalue().encode()


_END = object()


class _Producer:
    """Runs a sync iterator of batches in one thread of its own (a unit of work must begin and end
    in one thread), handing them over through a small queue: a slow client slows the database
    reads down instead of making memory grow."""

    def __init__(self, batches: Callable[[], Iterator[list[dict]]]):
        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(batches,), daemon=True, name="depot-csv")
        self.thread.start()

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.25)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, batches: Callable[[], Iterator[list[dict]]]) -> None:
        iterator = None
        try:
            iterator = batches()
            for batch in iterator:
                if not self._put(batch):
                    return
            self._put(_END)
        except BaseException as error:  # handed to the consumer, which raises or logs it
            self._put(error)
        finally:
            if iterator is not None and hasattr(iterator, "close"):
                iterator.close()

    async def next(self) -> object:
        return await run_in_threadpool(self.queue.get)


class _CsvEncoder:
    def __init__(self, table: Table, keys: list[str]) -> None:
        self.keys = keys
        self.cells = _csv_cells(table, keys)
        self.header = True

    def chunk(self, rows: list[dict]) -> bytes:
        data, self.header = _csv_chunk(self.keys, self.cells, rows, self.header), False
        return data

    def end(self) -> bytes:
        return _csv_chunk(self.keys, self.cells, [], True) if self.header else b""


async def _streamed(table: Table, encoder: _CsvEncoder | ParquetEncoder, media: str,
                    batches: Callable[[], Iterator[list[dict]]]) -> Response:
    """Rows streamed as they are read, a batch at a time, in CSV or Parquet (one row group a batch)."""
    producer = _Producer(batches)
    first = await producer.next()
    if isinstance(first, BaseException):
        producer.stop.set()
        raise first

    async def body() -> AsyncIterator[bytes]:
        try:
            item = first
            while item is not _END:
                if isinstance(item, BaseException):
                    log.error("Export of %s stopped: %s", table.name, item)
                    return
                yield encoder.chunk(item)  # type: ignore[arg-type]
                item = await producer.next()
            yield encoder.end()
        finally:
            producer.stop.set()

    return StreamingResponse(body(), media_type=media)


