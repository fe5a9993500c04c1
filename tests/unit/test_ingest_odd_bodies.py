"""Real-world body oddities found in the QA round: byte order marks, stray quotes, huge and multi-line fields."""

from __future__ import annotations

import random
import time

import pytest

from entrypoints.streams import CsvStream, JsonArrayStream, NdjsonStream

BOM = b"\xef\xbb\xbf"


def feed_all(parser, body: bytes, size: int) -> list:
    out = []
    for k in range(0, len(body), size):
        out += parser.feed(body[k:k + size])
    return out + parser.finish()


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 1000])
def test_a_byte_order_mark_before_json_is_skipped(size):
    assert feed_all(NdjsonStream(), BOM + b'{"a": 1}\r\n{"b": 2}\r\n', size) == [{"a": 1}, {"b": 2}]
    assert feed_all(JsonArrayStream(), BOM + b'[{"a": 1}, {"b": 2}]', size) == [{"a": 1}, {"b": 2}]
    assert feed_all(JsonArrayStream(), BOM + b'  \n[]', size) == []


def stray_quote_csv(rows: int) -> bytes:
    lines = ["faa,name", 'AAA,A 5" pipe and a "quoted" word']
    lines += [f"B{i:03d},name {i}" for i in range(rows)]
    return ("\r\n".join(lines) + "\r\n").encode()


def test_a_quote_inside_an_unquoted_field_is_a_character_and_rows_keep_streaming():
    """csv reads `5" pipe` as text; the record splitter must agree, not wait for a closing quote."""
    body = stray_quote_csv(1000)
    parser = CsvStream()
    early = parser.feed(body[: len(body) // 2])
    assert len(early) > 400  # records come out as the body arrives, not all at the end
    rows = [*early, *parser.feed(body[len(body) // 2:]), *parser.finish()]
    assert rows[0] == ["AAA", 'A 5" pipe and a "quoted" word'] and len(rows) == 1001
    for size in (1, 5, 64):
        assert feed_all(CsvStream(), body[:400], size) == feed_all(CsvStream(), body[:400], 400)


def test_splitting_records_is_linear_in_the_body():
    """A stray quote (or a long multi-line quoted field) once made every piece rescan the buffered text:
    a 1.4 MB body took 44 s. Work is bounded by comparing with a body 8 times smaller."""
    def cost(rows: int) -> float:
        body = stray_quote_csv(rows)
        started = time.perf_counter()
        feed_all(CsvStream(), body, 4096)
        return time.perf_counter() - started

    small, large = min(cost(5_000) for _ in range(3)), min(cost(40_000) for _ in range(3))
    assert large < small * 8 * 4  # linear, with room for noise; quadratic would be 64 times


def test_a_quoted_field_with_many_line_breaks():
    value = "line\r\n" * 20_000
    body = ('name,n\r\n"' + value + '",1\r\nx,2\r\n').encode()
    rng = random.Random(3)
    for size in (rng.randint(1, 4096) for _ in range(5)):
        assert feed_all(CsvStream(), body, size) == [[value, "1"], ["x", "2"]]


def test_a_field_larger_than_pythons_default_csv_limit():
    """csv refuses fields over 128 KiB by default; PostgreSQL text holds far more, the body limit bounds it."""
    big = "y" * 300_000
    assert feed_all(CsvStream(), f'carrier,name\nQQ,{big}\nQR,"{big}"\n'.encode(), 65536) == [["QQ", big], ["QR", big]]
