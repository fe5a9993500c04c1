"""The incremental body parsers give the same rows whatever the sizes of the pieces the body comes in."""

from __future__ import annotations

import random

import orjson
import pytest

from domain.errors import BadRequest
from entrypoints.streams import CsvStream, JsonArrayStream, NdjsonStream, RecordPathStream

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


def test_rows_at_a_record_path_whatever_the_pieces_and_the_wrapper_around_them():
    """Decoys around the rows: the path's keys off the path, inside strings, in arrays, after the rows."""
    rng = random.Random(9)
    for trial in range(400):
        rows = [rng.choice(TRICKY) for _ in range(rng.randint(0, 8))]
        body = {"meta": {"results": ["not these"], "note": 'data": {"results": ['},
                "list": [{"data": {"results": [0]}}], "data": {"n": 1, "results": rows, "after": {"results": 2}},
                "tail": "]}"}
        if trial % 3 == 0:
            body = {"data": {"results": rows}}
        text = orjson.dumps(body, option=orjson.OPT_INDENT_2 if trial % 2 else 0)
        assert feed_all(RecordPathStream("data.results"), text, rng.randint(1, 40)) == rows


def test_record_path_rows_arrive_before_the_body_ends():
    parser = RecordPathStream("items")
    assert parser.feed(b'{"items": [{"a": 1}, {"a": 2}, ') == [{"a": 1}, {"a": 2}]
    assert parser.feed(b'{"a": 3}], "next": null}') == [{"a": 3}]
    assert parser.finish() == []


@pytest.mark.parametrize(("body", "message"), [
    (b'{"data": {"other": []}}', "is not in the body: data has no key 'results'"),
    (b'{"items": []}', "is not in the body: the body has no key 'data'"),
    (b'[{"data": {"results": []}}]', "the body has no key 'data'"),
    (b'{"data": [1]}', "data has no key 'results'"),
    (b'{"data": {"results": {"a": 1}}}', "holds an object, not an array of rows"),
    (b'{"data": {"results": 3}}', "holds a number, not an array of rows"),
    (b'{"data": {"results": [{"a": 1}', "ended before its closing ']'"),
    (b'{"data": {"results": [{"a": 1}]}', "Malformed JSON"),
    (b'{"data": {"results": [{"a": 1}]}} x', "Malformed JSON"),
    (b'{"data": {"results": [], }}', "Malformed JSON"),
    (b"   ", "empty"),
])
def test_a_record_path_that_is_not_there_or_a_malformed_wrapper_is_400(body, message):
    for size in (1, 4, len(body) or 1):
        with pytest.raises(BadRequest, match=message.replace("(", r"\(").replace("[", r"\[")):
            feed_all(RecordPathStream("data.results"), body, size)
