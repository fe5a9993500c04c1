"""The incremental body parsers give the same rows whatever the sizes of the pieces the body comes in."""

from __future__ import annotations

import random

import orjson
import pytest

from domain.errors import BadRequest
from entrypoints.streams import CsvStream, JsonArrayStream, NdjsonStream

TRICKY = [{"a": 'x}, {"b": 1'}, {"n": {"m": [1, {"z": "}"}]}}, 3, "s,]}", {"q": "\\"}, [1, 2], None, {"e": {}},
          {"f": 'q"}'}, {"u": "é"}]


def feed_all(parser, body: bytes, size: int) -> list:
    out = []
    for k in range(0, len(body), size):
        out += parser.feed(body[k:k + size])
    return out + parser.finish()


def test_json_array_elements_whatever_the_pieces():
    rng = random.Random(7)
    for trial in range(500):
        array = [rng.choice(TRICKY) for _ in range(rng.randint(0, 10))]
        body = orjson.dumps(array, option=orjson.OPT_INDENT_2 if trial % 2 else 0)
        assert feed_all(JsonArrayStream(), body, rng.randint(1, 50)) == array


def test_ndjson_lines_whatever_the_pieces():
    rng = random.Random(8)
    for _ in range(200):
        values = [rng.choice(TRICKY) for _ in range(rng.randint(0, 10))]
        body = b"\n".join(orjson.dumps(v) for v in values) + rng.choice([b"", b"\n", b"\n\n"])
        assert feed_all(NdjsonStream(), body, rng.randint(1, 50)) == values


def test_csv_records_whatever_the_pieces():
    body = 'a,b\r\n1,"x\ny, ""z"""\n2,NA\n"3",\n4,é\n'.encode()
    for size in range(1, len(body) + 1):
        parser = CsvStream("NA")
        assert feed_all(parser, body, size) == [["1", 'x\ny, "z"'], ["2", None], ["3", ""], ["4", "é"]]
        assert parser.header == ["a", "b"]


@pytest.mark.parametrize("body", [b"", b"{}", b"[1, 2", b"[1] x"])
def test_malformed_json_arrays_are_400(body):
    with pytest.raises(BadRequest):
        feed_all(JsonArrayStream(), body, 3)
