"""CSV bodies are parsed by pyarrow into columns, with the csv module for what pyarrow refuses: whatever
the body and however it arrives, the records must be exactly the csv module's."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import BadRequest
from entrypoints.streams import ColumnarRows, CsvStream, Rechunker
from service_layer.ingest import Chunk


def feed_all(parser: CsvStream, body: bytes, size: int) -> list:
    out: list = []
    for k in range(0, len(body), size):
        out += parser.feed(body[k:k + size])
    return out + list(parser.finish())


class CsvModuleStream(CsvStream):
    """The same stream with pyarrow left out: every record read by the csv module."""

    def _take_header(self, text: str) -> str:
        rest = super()._take_header(text)
        self.arrow = None
        return rest


def csv_module(body: bytes, null: str) -> tuple[list[str] | None, list[list]]:
    """What the csv module alone reads of the whole body: the header and the records."""
    parser = CsvModuleStream(null)
    records = feed_all(parser, body, len(body))
    return parser.header, records


# Every character that means something to a CSV reader, and a few that do not.
CELLS = st.text(alphabet='a ,"\n\r\\NUL\x00é', max_size=12)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=st.sampled_from(["x,y", "x, y ", '"x","y"', "x", "x,y,z"]), rows=st.lists(CELLS, max_size=8),
       null=st.sampled_from(["", "NULL"]), size=st.integers(1, 40), seed=st.integers(0, 3))
def test_records_are_the_csv_modules_whatever_the_body_and_its_pieces(header, rows, null, size, seed):
    body = (header + "\n" + "\n".join(rows) + random.Random(seed).choice(["", "\n", "\r\n"])).encode()
    try:
        expected_header, expected = csv_module(body, null)
    except BadRequest:
        with pytest.raises(BadRequest):
            feed_all(CsvStream(null), body, size)
        return
    parser = CsvStream(null)
    assert feed_all(parser, body, size) == expected
    assert parser.header == expected_header


def test_a_plain_body_stays_columns_and_an_odd_record_falls_back_to_records():
    """The fast path is taken (a body of good records is never read record by record), and a record with
    the wrong field count, which pyarrow refuses, still comes out as the csv module read it."""
    parser = CsvStream()
    good = parser.feed(b'a,b\n1,"x, y"\n2,\n')
    assert isinstance(good, ColumnarRows)
    assert good.columns() == [["1", "2"], ["x, y", None]] and list(good) == [["1", "x, y"], ["2", None]]
    odd = parser.feed(b"3,z,extra\n4,w\n")
    assert not isinstance(odd, ColumnarRows) and odd == [["3", "z", "extra"], ["4", "w"]]


def test_a_repeated_header_name_is_read_by_the_csv_module():
    parser = CsvStream()
    assert parser.feed(b"a,a\n1,2\n") == [["1", "2"]] and parser.header == ["a", "a"]


def test_chunks_are_cut_at_their_size_in_order_across_both_kinds_of_pieces():
    parser = CsvStream()
    chunks = Rechunker(parser)
    out: list[Chunk] = []
    lines = [f"{i},v{i}" for i in range(23)]
    lines[9] += ",extra"  # one piece read by the csv module
    for k in range(0, 23, 4):
        text = ("a,b\n" if k == 0 else "") + "\n".join(lines[k:k + 4]) + "\n"
        out += chunks.add(parser.feed(text.encode()), 5)
    out += chunks.add(parser.finish(), 5) + chunks.rest()
    assert [len(c) for c in out] == [5, 5, 5, 5, 3]
    assert [r for c in out for r in c.records] == [line.split(",") for line in lines]
    assert all(c.header == ["a", "b"] for c in out)
    columnar = [isinstance(c.records, ColumnarRows) for c in out]
    assert columnar == [True, False, False, True, True]  # the chunks with the odd piece are records
    assert out[0].payload(1) == {"a": "1", "b": "v1"}


def test_cells_written_back_as_csv_every_value_quoted_and_null_an_empty_field():
    parser = CsvStream("NA")
    rows = parser.feed('a,b,c\n1,"x ""y"", z",NA\n2,,é\n3,"two\nlines",x\n'.encode())
    assert isinstance(rows, ColumnarRows)
    assert rows.csv([0, 1, 2], [0, 1]) == ['"1","x ""y"", z",\n', '"2","","é"\n']  # NA is null, "" a string
    assert rows.csv([2, 0], [1]) == ['"é","2"\n']  # the columns and records asked for, in that order
    assert rows.csv([1], [0, 1, 2]) is None  # a line break in a value: a record would not be a line
    assert rows.csv([0], [0, 1, 2]) == ['"1"\n', '"2"\n', '"3"\n']
    assert rows.matches(0, "[0-9]+") and not rows.matches(1, "[a-z ]+") and rows.matches(2, "[a-zé]")
    assert not CsvStream().feed(b"a\n12\n3\n").matches(0, "[0-9]")  # the whole cell must match, not a part


def test_a_piece_pyarrow_fails_on_for_any_reason_is_read_by_the_csv_module(monkeypatch):
    import pyarrow as pa

    from entrypoints import streams

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise pa.ArrowCapacityError("a value over 2 GiB")

    monkeypatch.setattr(streams.pyarrow_csv, "read_csv", failing)
    assert feed_all(CsvStream(), b'a,b\n1,"x, y"\n2,\n', 5) == [["1", "x, y"], ["2", None]]
