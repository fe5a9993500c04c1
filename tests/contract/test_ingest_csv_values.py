"""A CSV body's values, whatever their scalar type, are stored as validated on both stores: on PostgreSQL they
go through the encoding the validating thread writes for COPY (bulk_encoder), on the memory store as
they are. Awkward text (quotes, commas, line breaks, an empty string, the word NULL) stays text."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from domain.schema import Catalog
from tests.serving import served


def readings_catalog() -> Catalog:
    catalog = Catalog()

    @catalog.table("readings", group="primary", natural_key=("station", "taken_at"), surrogate_id=True)
    class Reading:
        station: str
        taken_at: dt.datetime
        day: dt.date
        value: float | None = None
        exact: decimal.Decimal | None = None
        valid: bool | None = None
        count: int | None = None
        note: str | None = None

    return catalog


def on_both_stores(declare: Callable[[], Catalog]) -> Callable[..., Iterator[TestClient]]:
    """A fixture: a client of the app serving `declare()`'s catalog, on each store in turn."""
    @pytest.fixture(params=["memory", "postgres"])
    def fixture(request: pytest.FixtureRequest) -> Iterator[TestClient]:
        with served(declare(), request.param, request) as test_client:
            test_client.storage = request.param  # type: ignore[attr-defined]
            yield test_client

    return fixture


client = on_both_stores(readings_catalog)


CSV = (
    b'station,taken_at,day,value,exact,valid,count,note\n'
    b'JFK,2024-05-01T10:30:00Z,2024-05-01,0.1,19.90,true,7,"a ""quoted"", comma"\n'
    b'JFK,2024-05-01 11:00:00+02:00,2024-05-01,-0.0,1E+2,false,-3,"two\nlines"\n'
    b'EWR,2024-05-02T00:00:00,2024-05-02,1e300,0.000,NA,NA,NULL\n'
    b'EWR,2024-05-03T00:00:00,2024-05-03,NA,NA,NA,NA,""\n'
)

EXPECTED = [
    {"station": "EWR", "taken_at": "2024-05-02T00:00:00+00:00", "day": "2024-05-02", "value": 1e300, "exact": 0.000,
     "valid": None, "count": None, "note": "NULL"},
    {"station": "EWR", "taken_at": "2024-05-03T00:00:00+00:00", "day": "2024-05-03", "value": None, "exact": None,
     "valid": None, "count": None, "note": ""},
    {"station": "JFK", "taken_at": "2024-05-01T09:00:00+00:00", "day": "2024-05-01", "value": -0.0, "exact": 100,
     "valid": False, "count": -3, "note": "two\nlines"},
    {"station": "JFK", "taken_at": "2024-05-01T10:30:00+00:00", "day": "2024-05-01", "value": 0.1, "exact": 19.90,
     "valid": True, "count": 7, "note": 'a "quoted", comma'},
]


def stored(client: TestClient) -> list[dict]:
    response = client.get("/api/readings", params={
        "order": "station,taken_at", "select": "station,taken_at,day,value,exact,valid,count,note"})
    assert response.status_code == 200, response.text
    return response.json()


def post(client: TestClient) -> dict:
    response = client.post("/ingest/readings", params={"csv_null": "NA"}, content=CSV,
                           headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    return response.json()


def test_csv_values_of_every_type_are_stored_as_validated_and_count_unchanged_when_sent_again(client):
    first = post(client)
    assert (first["inserted"], first["rejected"]) == (4, 0), first
    rows = stored(client)
    assert rows == EXPECTED
    assert [r["id"] for r in client.get("/api/readings", params={"order": "id", "select": "id,station"}).json()] \
        == [1, 2, 3, 4]  # ids in file order, on both stores
    again = post(client)
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 4), again
    assert stored(client) == EXPECTED


def documents_catalog() -> Catalog:
    catalog = Catalog()

    @catalog.table("documents", group="primary", natural_key=("code",))
    class Document:
        code: str
        body: dict | None = None
        any_value: list | None = None  # a bare list is a JSON column too, which takes any JSON value

    return catalog


documents = on_both_stores(documents_catalog)


def test_a_json_column_in_csv_is_json_text_both_ways_so_an_export_loads_back_unchanged(documents):
    """`"a"` is the string a and `5` the number five, in a CSV cell as in PostgreSQL's json text: a CSV
    export writes every JSON value so (a string too, quoted), and loading that export changes nothing."""
    body = (b'code,body,any_value\n'
            b'a,"{""k"": [1, 2.5, null], ""s"": ""x,y""}","""five"""\n'
            b'b,{},5\n'
            b'c,,true\n'
            b'd,"[""not"", ""an object""]",\n')
    response = documents.post("/ingest/documents", content=body, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200 and response.json()["inserted"] == 4, response.text
    rows = documents.get("/api/documents", params={"order": "code", "select": "code,body,any_value"}).json()
    assert rows == [
        {"code": "a", "body": {"k": [1, 2.5, None], "s": "x,y"}, "any_value": "five"},
        {"code": "b", "body": {}, "any_value": 5},
        {"code": "c", "body": None, "any_value": True},
        {"code": "d", "body": ["not", "an object"], "any_value": None},
    ]
    exported = documents.get("/api/documents", params={"order": "code", "select": "code,body,any_value"},
                             headers={"Accept": "text/csv"})
    assert exported.status_code == 200
    lines = exported.text.splitlines()
    assert lines[1] == 'a,"{""k"":[1,2.5,null],""s"":""x,y""}","""five"""' and lines[2] == "b,{},5"
    again = documents.post("/ingest/documents", content=exported.content, headers={"Content-Type": "text/csv"})
    assert (again.json()["unchanged"], again.json()["updated"]) == (4, 0), again.text
    parquet = documents.get("/api/documents", params={"select": "code,body,any_value"},
                            headers={"Accept": "application/vnd.apache.parquet"})
    assert parquet.status_code == 200
    again = documents.post("/ingest/documents", content=parquet.content,
                           headers={"Content-Type": "application/vnd.apache.parquet"})
    assert (again.json()["unchanged"], again.json()["updated"]) == (4, 0), again.text


@pytest.mark.parametrize("cell", ["five", "{'k': 1}", "[1, 2", "NaN", "1e400", '"\\u0000"'])
def test_a_json_cell_that_is_not_json_text_is_rejected_with_its_reason(documents, cell):
    body = ("code,body\n" + f'x,"{cell.replace(chr(34), chr(34) * 2)}"\n' + "y,{}\n").encode()
    response = documents.post("/ingest/documents", content=body, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["inserted"], report["rejected"]) == (1, 1), report
    rejection = documents.get(f"/ingest/batches/{report['batch_id']}/rejections").json()[0]
    assert rejection["errors"][0]["field"] == "body" and rejection["errors"][0]["code"] == "type"
    assert rejection["payload"] == {"code": "x", "body": cell}


def cells_catalog() -> Catalog:
    catalog = Catalog()

    @catalog.table("cells", group="primary", natural_key=("code",))
    class Cell:
        code: str
        n: int | None = None
        at: dt.datetime | None = None
        note: str | None = None
        x: float | None = None
        d: dt.date | None = None

    return catalog


cells = on_both_stores(cells_catalog)


CELLS = (
    'code,n,at,note,x,d\n'
    'a,007,2024-05-01T10:30:00Z,"a ""quoted"", comma",0.1,2024-02-29\n'
    'b, -42 ,2024-05-01 11:00:00+02:00,"carriage\rreturn",-0,0001-01-01\n'
    'c,+0,2024-05-01T10:30:00.5,"",123456789012345.123456789012345,9999-12-31\n'
    'd,NA,2024-05-01T10:30,NA,NA,NA\n'
    'e,2147483647,NA,é,000000000000001.000000000000009,2024-05-01\n'
)

CELLS_STORED = [
    {"code": "a", "n": 7, "at": "2024-05-01T10:30:00+00:00", "note": 'a "quoted", comma', "x": 0.1,
     "d": "2024-02-29"},
    {"code": "b", "n": -42, "at": "2024-05-01T09:00:00+00:00", "note": "carriage\rreturn", "x": -0.0,
     "d": "0001-01-01"},
    {"code": "c", "n": 0, "at": "2024-05-01T10:30:00.500000+00:00", "note": "", "x": 123456789012345.123456789012345,
     "d": "9999-12-31"},
    {"code": "d", "n": None, "at": "2024-05-01T10:30:00+00:00", "note": None, "x": None, "d": None},
    {"code": "e", "n": 2147483647, "at": None, "note": "é", "x": 1.000000000000009, "d": "2024-05-01"},
]


def test_cells_copied_as_they_were_sent_are_stored_as_validated(cells, monkeypatch):
    """Text, integer, float, date and timestamp cells that validation took as they are go to COPY as the body's
    own text (written by pyarrow, not by Python), signs and spaces around an integer too: stored as the
    memory store stores the validated values. A chunk with a cell in another form (a date alone) is
    encoded by Python, and stored alike."""
    from entrypoints.streams import ColumnarRows

    written: list[int] = []
    csv = ColumnarRows.csv

    def spied(self, columns, rows):  # type: ignore[no-untyped-def]
        lines = csv(self, columns, rows)
        written.append(len(lines or ()))
        return lines

    monkeypatch.setattr(ColumnarRows, "csv", spied)
    response = cells.post("/ingest/cells", params={"csv_null": "NA"}, content=CELLS.encode(),
                          headers={"Content-Type": "text/csv"})
    assert response.status_code == 200 and response.json()["inserted"] == 5, response.text
    stored = cells.get("/api/cells", params={"order": "code", "select": "code,n,at,note,x,d"}).json()
    assert stored == CELLS_STORED and math.copysign(1, stored[1]["x"]) == -1  # -0 too
    assert written == ([5] if cells.storage == "postgres" else [])  # the memory store encodes nothing
    odd = 'code,n,at,note,d\nf,+5,2024-05-02,"line\nbreak", 2024-05-02\n'
    response = cells.post("/ingest/cells", content=odd.encode(), headers={"Content-Type": "text/csv"})
    assert response.status_code == 200 and response.json()["inserted"] == 1, response.text
    assert cells.get("/api/cells", params={"code": "eq.f", "select": "code,n,at,note,x,d"}).json() == [
        {"code": "f", "n": 5, "at": "2024-05-02T00:00:00+00:00", "note": "line\nbreak", "x": None, "d": "2024-05-02"}]
    again = cells.post("/ingest/cells", params={"csv_null": "NA"}, content=CELLS.encode(),
                       headers={"Content-Type": "text/csv"})
    assert again.json()["unchanged"] == 5, again.text


STAMPS = ["2024-05-01T10:30:00Z", "2024-05-01 10:30", "2024-05-01T10:30:00.000001", "2024-05-01T10:30:59.5+15:59",
          "2024-05-01T10:30:00-00:30", "2024-05-01T10:30:00+20:00", "2024-05-01T23:30:00-23:59", "9998-12-31T23:59:59Z",
          "0002-01-01T00:00:00+01:00", "2024-02-29T00:00:00", "2024-05-01", "20240501T103000"]


def test_timestamps_in_every_form_python_reads_are_stored_as_python_reads_them(cells):
    """Whether a chunk's cells go to COPY as their own text (the common forms) or as Python's encoding
    of the values (offsets beyond PostgreSQL's 15:59, a date alone, the basic format), the instant is
    the one datetime.fromisoformat reads, on both stores."""
    common = "code,at\n" + "".join(f"s{i:02d},{s}\n" for i, s in enumerate(STAMPS) if i < 5)  # their own text
    every = "code,at\n" + "".join(f"s{i:02d},{stamp}\n" for i, stamp in enumerate(STAMPS))  # Python's encoding
    reports = [cells.post("/ingest/cells", content=body.encode(), headers={"Content-Type": "text/csv"}).json()
               for body in (common, every)]
    assert [(r["inserted"], r["unchanged"], r["rejected"]) for r in reports] == [(5, 0, 0), (7, 5, 0)], reports
    stored = cells.get("/api/cells", params={"order": "code", "select": "at"}).json()
    expected = [dt.datetime.fromisoformat(s) for s in STAMPS]
    expected = [(v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v).astimezone(dt.UTC) for v in expected]
    assert [dt.datetime.fromisoformat(r["at"]) for r in stored] == expected
