"""Parquet in and out, through pyarrow, a row group (or a record batch) at a time.

In: a Parquet body is spooled as it arrives (its footer, which says where the row groups are, is at
its end), then read one record batch at a time into chunks of columns' values; the ingest service
validates them like a CSV's, under the file's own column names (a profile maps them as any header).
Out: a read with `Accept: application/vnd.apache.parquet` streams one row group per batch of rows,
typed from the table's declaration.
"""

from __future__ import annotations

import decimal
import io
import json
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from domain.errors import BadRequest
from domain.schema import ColumnType, Table

PARQUET_MEDIA = "application/vnd.apache.parquet"
SPOOL_IN_MEMORY = 32 << 20  # larger bodies go to a temporary file while they arrive


def record_batches(source: Any, rows: int) -> Iterator[tuple[list[str], list[tuple]]]:
    """(header, records) of at most `rows` records each, from a Parquet file or file object."""
    try:
        parquet = pq.ParquetFile(source)
        header = list(parquet.schema_arrow.names)
        for batch in parquet.iter_batches(batch_size=rows):
            yield header, list(zip(*(column.to_pylist() for column in batch.columns), strict=True))
    except (pa.ArrowException, OSError) as error:
        raise BadRequest(f"The body is not a Parquet file depot can read ({error})", code="PGRST102") from None


class ParquetStream:
    """The ingest parser of a Parquet body: `feed` spools, `batches` reads (in a worker thread)."""

    def __init__(self) -> None:
        self.spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # closed by batches()
        self.header: list[str] | None = None

    def feed(self, data: bytes) -> list[Any]:
        self.spool.write(data)
        return []

    def finish(self) -> list[Any]:
        return []

    def batches(self, rows: int) -> Iterator[list[tuple]]:
        try:
            self.spool.seek(0)
            for header, records in record_batches(self.spool, rows):
                self.header = header
                yield records
        finally:
            self.spool.close()


# --- out ------------------------------------------------------------------------------------------


def _arrow_type(table: Table, key: str) -> tuple[pa.DataType, Any]:
    """The Arrow type of an output key, and what turns a value into it (None: as it is)."""
    if not table.has_column(key):  # an embed, an alias or an aggregate: its JSON text
        return pa.string(), lambda v: v if isinstance(v, str) else orjson.dumps(v, default=str).decode()
    column = table.column(key)
    kind = column.type
    if kind is ColumnType.NUMERIC:
        if column.precision is not None:
            return pa.decimal128(column.precision, column.scale or 0), None
        return pa.string(), str  # unbounded numeric: its exact text
    if kind is ColumnType.UUID:
        return pa.string(), lambda v: str(v) if isinstance(v, uuid.UUID) else v
    if kind is ColumnType.JSON:
        return pa.string(), lambda v: json.dumps(v, default=lambda d: str(d) if isinstance(d, decimal.Decimal) else d)
    if kind is ColumnType.ARRAY:
        return pa.list_(pa.string() if column.item is ColumnType.TEXT else pa.int64()), None
    return {
        ColumnType.TEXT: pa.string(), ColumnType.INTEGER: pa.int32(), ColumnType.BIGINT: pa.int64(),
        ColumnType.FLOAT: pa.float64(), ColumnType.BOOLEAN: pa.bool_(), ColumnType.DATE: pa.date32(),
        ColumnType.TIMESTAMPTZ: pa.timestamp("us", tz="UTC"), ColumnType.TIMESTAMP: pa.timestamp("us"),
    }[kind], None


class _Sink(io.RawIOBase):
    """Where the writer writes: the bytes are taken away as they come, while tell() keeps counting
    (the footer records each row group's offset from it)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        self.parts.append(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


class ParquetEncoder:
    """Rows in, Parquet bytes out: each batch of rows is one row group, flushed as it is written."""

    def __init__(self, table: Table, keys: list[str]) -> None:
        self.keys = keys
        typed = [_arrow_type(table, k) for k in keys]
        self.schema = pa.schema([pa.field(k, t) for k, (t, _) in zip(keys, typed, strict=True)])
        self.converters = [c for _, c in typed]
        self.sink = _Sink()
        self.writer = pq.ParquetWriter(self.sink, self.schema)

    def chunk(self, rows: list[dict]) -> bytes:
        columns = []
        for key, convert in zip(self.keys, self.converters, strict=True):
            values = [r.get(key) for r in rows]
            if convert is not None:
                values = [None if v is None else convert(v) for v in values]
            columns.append(values)
        self.writer.write_table(pa.Table.from_arrays(
            [pa.array(values, type=field.type) for values, field in zip(columns, self.schema, strict=True)],
            schema=self.schema))
        return self.sink.take()

    def end(self) -> bytes:
        self.writer.close()
        return self.sink.take()
