"""Incremental parsers for ingest bodies: bytes in as they arrive, chunks of rows out, bounded memory.

Each parser's `feed(data)` returns the rows completed by `data`; `finish()` the rest. Rows of a
CSV are lists under the header; rows of JSON bodies are the decoded values (a line or an array
element that is not valid JSON comes out as its text, so that validation rejects it with its
payload instead of the whole body failing).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

import orjson
import pyarrow as pa
import pyarrow.compute as pyarrow_compute
import pyarrow.csv as pyarrow_csv

from domain.errors import BadRequest
from domain.ingestion import ColumnarRecords
from service_layer.ingest import Chunk


def _malformed(message: str) -> BadRequest:
    return BadRequest(message, code="PGRST102")


def _decode_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


# PostgreSQL's text holds far more than csv's default 128 KiB per field; DEPOT_MAX_BODY_BYTES bounds a body.
csv.field_size_limit(2**31 - 1)


class CsvStream:
    """CSV with a header row. A line break inside a quoted field is part of a value, not a record's end.

    Records are cut where csv itself would end them: a quote opens a quoted field only at the start
    of a field (a quote inside an unquoted field, as in `5" pipe`, is a character), and `""` inside a
    quoted field is a quote. The scan resumes where it stopped, so each byte is looked at once.
    """

    def __init__(self, null: str = ""):
        self.null = null
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.pending = ""
        self.header: list[str] | None = None
        self.scanned = 0  # how much of `pending` the record scanner has read
        self.quoted = False  # the scan stopped inside a quoted field
        self.arrow: dict[str, Any] | None = None  # pyarrow's options, once the header is known

    def feed(self, data: bytes) -> Sequence[list[Any]]:
        try:
            text = self.pending + self.decoder.decode(data)
        except UnicodeDecodeError:
            raise _malformed("The CSV body is not UTF-8") from None
        cut = self._last_record_end(text)
        if cut < 0:
            self.pending = text
            return []
        self.pending = text[cut + 1:]
        self.scanned -= cut + 1
        return self._parse(text[: cut + 1])

    def _last_record_end(self, text: str) -> int:
        """The position of the last line break that ends a record in `text`, or -1."""
        pos, quoted, cut = self.scanned, self.quoted, -1
        while True:
            if quoted:
                q = text.find('"', pos)
                if q < 0 or q + 1 == len(text):  # no closing quote yet, or cannot tell "" from a close yet
                    pos = len(text) if q < 0 else q
                    break
                if text[q + 1] == '"':
                    pos = q + 2
                    continue
                quoted, pos = False, q + 1
                continue
            q = text.find('"', pos)
            end = len(text) if q < 0 else q
            newline = text.rfind("\n", pos, end)
            if newline >= 0:
                cut = newline
            if q < 0:
                pos = len(text)
                break
            pos = q + 1
            if q == 0 or text[q - 1] in ",\r\n":  # a quote at a field's start opens a quoted field
                quoted = True
        self.scanned, self.quoted = pos, quoted
        return cut

    def finish(self) -> Sequence[list[Any]]:
        try:
            text = self.pending + self.decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise _malformed("The CSV body is not UTF-8") from None
        self.pending, self.scanned, self.quoted = "", 0, False
        rows = self._parse(text) if text.strip() else []
        if self.header is None:
            raise _malformed("The CSV body is empty; it needs a header row")
        return rows

    def _parse(self, text: str) -> Sequence[list[Any]]:
        """The records of `text` (whole records). pyarrow parses them in C, with the GIL released, into
        columns that stay columns; the csv module reads what pyarrow refuses (a record whose field count
        is not the header's, which validation rejects with its values) and the header."""
        if self.header is None:
            text = self._take_header(text)
        if self.arrow is not None and text:
            try:
                return ColumnarRows(pyarrow_csv.read_csv(
                    pa.BufferReader(encoded := text.encode()),
                    read_options=pyarrow_csv.ReadOptions(**self.arrow["read"], block_size=len(encoded) + 1),
                    parse_options=self.arrow["parse"], convert_options=self.arrow["convert"]))
            except pa.ArrowException:  # what pyarrow cannot read, the csv module reads as before
                pass
        null = self.null
        records = self._records(text)
        # Most records hold no null token: `in` tells so in C, and only the others are rebuilt.
        return [[None if v == null else v for v in r] if null in r else r for r in records]

    def _take_header(self, text: str) -> str:
        """Reads the header (the first record that is not blank) off `text`, and returns the rest."""
        buffer = io.StringIO(text, newline="")
        try:
            header = next(filter(None, csv.reader(buffer)), None)
        except csv.Error as error:
            raise _malformed(f"Malformed CSV: {error}") from None
        if header is None:
            return ""
        self.header = [h.strip() for h in header]
        if len(set(self.header)) == len(self.header):  # a repeated name is refused with the header anyway
            self.arrow = {
                "read": {"column_names": self.header, "use_threads": False},
                "parse": pyarrow_csv.ParseOptions(newlines_in_values=True),
                # quoted_strings_can_be_null: the csv module cannot tell "" from an empty field either
                "convert": pyarrow_csv.ConvertOptions(
                    column_types=dict.fromkeys(self.header, pa.string()), strings_can_be_null=True,
                    quoted_strings_can_be_null=True, null_values=[self.null]),
            }
        return text[buffer.tell():]

    @staticmethod
    def _records(text: str) -> list[list[str]]:
        try:
            return [r for r in csv.reader(io.StringIO(text, newline="")) if r]
        except csv.Error as error:
            raise _malformed(f"Malformed CSV: {error}") from None


class ColumnarRows(ColumnarRecords):
    """CSV records as pyarrow parsed them: string columns, converted to Python a column at a time."""

    def __init__(self, table: pa.Table):
        self.table = table

    def __len__(self) -> int:
        return self.table.num_rows

    @overload
    def __getitem__(self, i: int) -> list[Any]: ...

    @overload
    def __getitem__(self, i: slice) -> ColumnarRows: ...

    def __getitem__(self, i: int | slice) -> list[Any] | ColumnarRows:
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step != 1:
                raise ValueError("ColumnarRows are sliced in order")
            return ColumnarRows(self.table.slice(start, max(stop - start, 0)))
        return [column[i].as_py() for column in self.table.columns]

    def __iter__(self) -> Iterator[list[Any]]:
        return map(list, zip(*self.columns(), strict=True))

    def columns(self) -> list[list[Any]]:
        # Not kept: the writer asks for a few records at most (rejected rows), and a chunk's Python strings
        # kept until it is written raised the server's peak memory on the flights by a third.
        return [column.to_pylist() for column in self.table.columns]

    def matches(self, column: int, pattern: str) -> bool:
        matched = pyarrow_compute.match_substring_regex(self.table.column(column), f"^(?:{pattern})$")
        return pyarrow_compute.all(matched).as_py() is not False  # None: no cell that is not null

    def csv(self, columns: Sequence[int], rows: Sequence[int]) -> list[str] | None:
        table = self.table.select(list(columns))
        if len(rows) != table.num_rows or (rows and rows[-1] != len(rows) - 1):  # not every record, in order
            table = table.take(pa.array(rows, pa.int64()))
        if any(pyarrow_compute.any(pyarrow_compute.match_substring(c, "\n")).as_py() for c in table.columns):
            return None
        out = pa.BufferOutputStream()
        pyarrow_csv.write_csv(table, out, pyarrow_csv.WriteOptions(include_header=False, quoting_style="all_valid"))
        text = out.getvalue().to_pybytes().decode()
        return [line + "\n" for line in text.split("\n")[:-1]]


def _joined(pieces: list[Sequence[Any]]) -> Sequence[Any]:
    """Consecutive parsed pieces as one: columns stay columns when every piece is."""
    if len(pieces) == 1:
        return pieces[0]
    if all(isinstance(p, ColumnarRows) for p in pieces):
        return ColumnarRows(pa.concat_tables([p.table for p in pieces]))  # type: ignore[attr-defined]
    return [row for piece in pieces for row in piece]


class Rechunker:
    """What a parser gives, as it gives it, cut into chunks of `size` rows in arrival order."""

    def __init__(self, parser: Any):
        self.parser = parser
        self.pieces: list[Sequence[Any]] = []
        self.count = 0

    def add(self, rows: Sequence[Any], size: int) -> list[Chunk]:
        """The whole chunks that `rows` completes; the rest waits for more, or for `rest`."""
        if len(rows):
            self.pieces.append(rows)
            self.count += len(rows)
        out = []
        while self.count >= size:
            out.append(self._take(size))
        return out

    def rest(self) -> list[Chunk]:
        return [self._take(self.count)] if self.count else []

    def _take(self, n: int) -> Chunk:
        taken: list[Sequence[Any]] = []
        need = n
        while need:
            piece = self.pieces[0]
            if len(piece) <= need:
                taken.append(self.pieces.pop(0))
                need -= len(piece)
            else:
                taken.append(piece[:need])
                self.pieces[0] = piece[need:]
                need = 0
        self.count -= n
        return Chunk(_joined(taken), getattr(self.parser, "header", None))


BOM = codecs.BOM_UTF8  # which Windows tools write before UTF-8 text; JSON parsers may ignore it (RFC 8259)


class NdjsonStream:
    """One JSON value per line; blank lines are skipped, and so is a byte order mark before the first."""

    def __init__(self) -> None:
        self.pending = b""
        self.started = False

    def feed(self, data: bytes) -> list[Any]:
        data = self.pending + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self.pending = data
            return []
        if not self.started:  # the first line is whole: its BOM is too
            data, cut, self.started = data.removeprefix(BOM), cut - (len(BOM) if data.startswith(BOM) else 0), True
        self.pending = data[cut + 1:]
        return [_decode_json(line) for line in data[:cut].split(b"\n") if line.strip()]

    def finish(self) -> list[Any]:
        rest, self.pending = self.pending, b""
        if not self.started:
            rest = rest.removeprefix(BOM)
        return [_decode_json(rest)] if rest.strip() else []


class JsonArrayStream:
    """The elements of one top-level JSON array, each decoded as soon as it is complete.

    A scanner that only knows strings, brackets and commas finds where each element ends; orjson
    decodes the element.
    """

    _TOKENS = re.compile(rb'["{}\[\],]')
    _STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*"', re.S)
    _SPACE = b" \t\r\n"

    def __init__(self, *, embedded: bool = False) -> None:
        self.buf = b""
        self.pos = 0  # where scanning resumes
        self.state = "before"  # before the '[', inside, after the ']'
        # inside a wrapping body (record_path): what follows the ']' is the wrapper's, kept in `rest`
        self.embedded = embedded
        self.rest = b""
        self.depth = 0  # nesting inside the current element
        self.start = 0  # where the current element (or the text since the last comma) begins
        self.emitted = False  # the current element was an object or array, already emitted

    def feed(self, data: bytes) -> list[Any]:
        self.buf += data
        out: list[Any] = []
        buf = self.buf
        i = self.pos
        if self.state == "before":
            if BOM.startswith(buf[:3]) and len(buf) < 3:
                return out  # perhaps the start of a byte order mark
            buf = self.buf = buf.removeprefix(BOM)
            stripped = buf.lstrip(self._SPACE)
            if not stripped:
                return out
            if stripped[:1] != b"[":
                raise _malformed("The body must be a JSON array of objects (or send application/x-ndjson)")
            i = len(buf) - len(stripped) + 1
            self.state = "inside"
            self.start = i
        fast = True
        while self.state == "inside":
            if fast and self.depth == 0 and not self.emitted and self.start == i:
                fast = False  # once per feed: a failed attempt costs a pass over the buffer
                done = self._whole_elements(buf, i, out)
                if done > i:
                    i = self.start = done
                    self.emitted = True
                    continue
            m = self._TOKENS.search(buf, i)
            if m is None:
                i = len(buf)
                break
            j = m.start()
            c = buf[j]
            if c == 0x22:  # a string: skip to its closing quote
                end = self._STRING_REST.match(buf, j + 1)
                if end is None:
                    i = j
                    break
                i = end.end()
                continue
            i = j + 1
            if c in (0x7B, 0x5B):  # { [
                if self.depth == 0:
                    self.start = j
                self.depth += 1
            elif c in (0x7D, 0x5D):  # } ]
                if self.depth == 0:
                    if c == 0x7D:
                        raise _malformed("Malformed JSON array: unbalanced '}'")
                    self._scalar(buf[self.start:j], out)
                    self.state = "after"
                    break
                self.depth -= 1
                if self.depth == 0:
                    out.append(_decode_json(buf[self.start:j + 1]))
                    self.emitted = True
            elif self.depth == 0:  # a comma between elements
                self._scalar(buf[self.start:j], out)
                self.start = i
                self.emitted = False
        if self.state == "after":
            if self.embedded:
                self.rest += buf[i:]
            elif buf[i:].strip(self._SPACE):
                raise _malformed("Malformed JSON: text after the array's closing ']'")
            self.buf, self.pos, self.start = b"", 0, 0
            return out
        keep = min(self.start, i)
        self.buf = buf[keep:]
        self.pos = i - keep
        self.start -= keep
        return out

    def _whole_elements(self, buf: bytes, i: int, out: list[Any]) -> int:
        """The fast path: orjson decodes, in one call, everything from `i` (an element's start) to
        the last '}' of the buffer, when that text is a list of whole elements; where it ends, or i.

        Sound because the scan state at `i` is known (outside strings, between elements): if
        "[" + text + "]" is valid JSON, the text lexes the same way in the stream, so it is
        exactly a sequence of complete elements."""
        cut = buf.rfind(b"}")
        if cut <= i:
            return i
        try:
            elements = orjson.loads(b"[" + buf[i:cut + 1] + b"]")
        except orjson.JSONDecodeError:
            return i
        if not elements or not isinstance(elements[-1], dict):
            return i  # a scalar last element would be lost to the emitted flag; let the scanner take it
        out.extend(elements)
        return cut + 1

    def _scalar(self, text: bytes, out: list[Any]) -> None:
        """What stood between two commas when it was not an object: kept so validation rejects it."""
        if not self.emitted and text.strip(self._SPACE):
            out.append(_decode_json(text.strip(self._SPACE)))

    def finish(self) -> list[Any]:
        if self.state == "before":
            raise _malformed("The request body is empty", )
        if self.state != "after":
            raise _malformed("Malformed JSON array: the body ended before its closing ']'")
        return []


class RecordPathStream:
    """The rows of a JSON body that wraps them (`{"data": {"results": [...]}}`), at a profile's record_path,
    decoded as they arrive, as a bare array's are.

    A scanner walks the wrapper down the path's keys and hands the array to a JsonArrayStream. Only the
    wrapper (the text around the array) is kept: at the end it is checked as JSON with the array
    emptied, so a malformed wrapper is refused as a malformed body is.
    """

    _TOKENS = re.compile(rb'["{}\[\]:]')
    _SPACE = JsonArrayStream._SPACE
    _VALUE = re.compile(rb"[^ \t\r\n]")  # where a value starts
    _KINDS = {ord("{"): "an object", ord('"'): "a string", ord("t"): "a boolean", ord("f"): "a boolean",
              ord("n"): "null"}

    def __init__(self, record_path: str) -> None:
        self.path = record_path
        self.parts = record_path.split(".")
        self.wrapper = bytearray()  # the body without the rows' array
        self.scanned = 0  # where scanning resumes in `wrapper`
        # per open container of the wrapper: how many of the path's keys lead to it, or -1 off the path
        self.stack: list[int] = []
        self.key = b""  # the last string read: the key, when a ':' follows
        self.leads = 0  # the next container opened is on the path, this deep (-1: it is not)
        self.rows: JsonArrayStream | None = None
        self.state = "seeking"  # seeking the array, reading its rows, after it

    def feed(self, data: bytes) -> list[Any]:
        if self.state == "rows":
            out = self.rows.feed(data)
            if self.rows.state == "after":
                self.state = "after"
                self._scan(self.rows.rest)
            return out
        return self._scan(data)

    def _scan(self, data: bytes) -> list[Any]:
        buf = self.wrapper
        buf += data
        if not self.scanned:
            if BOM.startswith(bytes(buf[:3])) and len(buf) < 3:
                return []
            if buf.startswith(BOM):
                del buf[:3]
        i = self.scanned
        if self.leads == 0:  # the body's first value: it must be an object to hold the path
            first = self._VALUE.search(buf, i)
            if first is None:
                return []
            if buf[first.start()] != 0x7B:
                raise self._not_there(0)
        while True:
            m = self._TOKENS.search(buf, i)
            if m is None:
                break
            j = m.start()
            c = buf[j]
            if c == 0x22:  # a string: skip to its closing quote, keep it as the key a ':' may make it
                end = JsonArrayStream._STRING_REST.match(buf, j + 1)
                if end is None:
                    break
                self.key, i = bytes(buf[j:end.end()]), end.end()
                continue
            if c == 0x3A:  # ':' — the value that follows belongs to self.key
                value = self._VALUE.search(buf, j + 1)
                if value is None:
                    break  # the value's first byte decides what to do; wait for it
                found = self._lead(value.start(), buf[value.start()])
                i = j + 1
                if found is not None:
                    return found
                continue
            i = j + 1
            if c in (0x7B, 0x5B):  # { [
                self.stack.append(self.leads if c == 0x7B else -1)
                self.leads = -1
            elif c in (0x7D, 0x5D):  # } ]
                if not self.stack:
                    raise _malformed("Malformed JSON: unbalanced brackets")
                depth = self.stack.pop()
                if depth >= 0 and self.state == "seeking":
                    raise self._not_there(depth)  # the object the path leads to closed without the key
        self.scanned = i
        return []

    def _lead(self, at: int, first: int) -> list[Any] | None:
        """After a key's ':' — the rows when this is the path's last key (then the scan hands over)."""
        depth = self.stack[-1] if self.stack else -1
        if self.state != "seeking" or depth < 0 or _decode_json(self.key) != self.parts[depth]:
            return None
        if depth + 1 < len(self.parts):
            if first != 0x7B:
                raise self._not_there(depth + 1)
            self.leads = depth + 1
            return None
        if first != 0x5B:
            kind = self._KINDS.get(first, "a number")
            raise BadRequest(f"record_path {self.path!r} holds {kind}, not an array of rows", code="PGRST102")
        rest = bytes(self.wrapper[at:])
        del self.wrapper[at:]
        self.wrapper += b"[]"  # the wrapper, as checked at the end
        self.scanned = len(self.wrapper)
        self.state = "rows"
        self.rows = JsonArrayStream(embedded=True)
        out = self.rows.feed(rest)
        if self.rows.state == "after":
            self.state = "after"
            self._scan(self.rows.rest)
        return out

    def _not_there(self, depth: int) -> BadRequest:
        where = ".".join(self.parts[:depth]) or "the body"
        return BadRequest(f"record_path {self.path!r} is not in the body: {where} has no key {self.parts[depth]!r}",
                          code="PGRST102", hint="Fix record_path (profile or query) to where the rows are.")

    def finish(self) -> list[Any]:
        if self.state == "rows":
            self.rows.finish()  # the body ended inside the array: its error says so
        if not bytes(self.wrapper).strip(self._SPACE):
            raise _malformed("The request body is empty")
        try:
            orjson.loads(bytes(self.wrapper))
        except orjson.JSONDecodeError as error:
            raise _malformed(f"Malformed JSON: {error}") from None
        if self.state == "seeking":
            raise self._not_there(0)
        return []


class Inflate:
    """A gzip body (Content-Encoding: gzip) inflated as it arrives, a block at a time; `limit` bounds what
    it inflates to, so a small body cannot expand past DEPOT_MAX_BODY_BYTES."""

    def __init__(self, limit: int, too_large: Callable[[], Exception]) -> None:
        self.inflater = zlib.decompressobj(wbits=31)  # the gzip container, not raw deflate
        self.limit, self.total, self.too_large = limit, 0, too_large

    def feed(self, data: bytes) -> bytes:
        try:
            out = self.inflater.decompress(data)
        except zlib.error as error:
            raise _malformed(f"The body is not valid gzip ({error})") from None
        self.total += len(out)
        if self.total > self.limit:
            raise self.too_large()
        return out

    def finish(self) -> bytes:
        out = self.feed(b"") + self.inflater.flush()
        if not self.inflater.eof:
            raise _malformed("The gzip body ended before its end")
        return out


# --- files (the CLI) -----------------------------------------------------------------------------

PARSERS = {".csv": "csv", ".json": "json", ".ndjson": "ndjson", ".jsonl": "ndjson", ".parquet": "parquet"}
# what each kind is sent as over HTTP (depot ingest --url)
MEDIA_TYPES = {"csv": "text/csv", "json": "application/json", "ndjson": "application/x-ndjson",
               "parquet": "application/vnd.apache.parquet"}


def parser_for(kind: str, csv_null: str | None = None, record_path: str | None = None
               ) -> CsvStream | NdjsonStream | JsonArrayStream | RecordPathStream:
    """A body's parser by format; a JSON body with a record_path is read at that path."""
    if kind == "csv":
        return CsvStream("" if csv_null is None else csv_null)
    if kind == "ndjson":
        return NdjsonStream()
    return JsonArrayStream() if record_path is None else RecordPathStream(record_path)


def file_kind(name: str) -> str:
    name = name[:-3] if name.lower().endswith(".gz") else name
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix not in PARSERS:
        raise BadRequest(f"Cannot tell the format of {name!r}",
                         hint="Name it .csv, .json, .ndjson, .jsonl or .parquet (the text ones may end in .gz).")
    return PARSERS[suffix]


def open_data_file(path: str) -> tuple[io.BufferedIOBase, str]:
    """The file's bytes and its format; a .zip holding exactly one data file is read inside."""
    import zipfile

    if path.lower().endswith(".zip"):
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as error:
            raise BadRequest(f"{path} is not a zip archive ({error})") from None
        members = [m for m in archive.namelist() if not m.endswith("/") and not m.startswith("__MACOSX")]
        if len(members) != 1:
            raise BadRequest(f"{path} holds {len(members)} files; depot reads a zip with exactly one")
        return archive.open(members[0]), file_kind(members[0])  # type: ignore[return-value]
    if path.lower().endswith(".gz"):
        import gzip

        if file_kind(path) == "parquet":
            raise BadRequest("A Parquet file is compressed inside already; depot reads it as .parquet")
        return gzip.open(path, "rb"), file_kind(path)  # type: ignore[return-value]
    return open(path, "rb"), file_kind(path)


def file_chunks(stream: io.BufferedIOBase, kind: str, *, csv_null: str | None = None,
                chunk_rows: int = 5_000, block: int = 1 << 20, record_path: str | None = None) -> Any:
    """Chunks of rows from a file, read a block at a time."""
    if kind == "parquet":
        from entrypoints.parquet import record_batches

        for header, records in record_batches(stream, chunk_rows):
            yield Chunk(records, header)
        return
    parser = parser_for(kind, csv_null, record_path)
    chunks = Rechunker(parser)
    while data := stream.read(block):
        yield from chunks.add(parser.feed(data), chunk_rows)
    yield from chunks.add(parser.finish(), chunk_rows)
    yield from chunks.rest()
