"""The declaration language's newer types on both adapters, through HTTP: uuid, bounded text
(varchar(n)), naive timestamps, text and integer arrays, strict bounds, and defaults taken by empty
CSV cells. One table declared here; the memory adapter must answer as PostgreSQL does."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Annotated

import pytest
from annotated_types import Gt, Lt, MaxLen
from fastapi.testclient import TestClient

from domain.schema import Catalog, Naive
from tests.serving import served

A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
B = uuid.UUID("ffffffff-0000-4000-8000-00000000000b")
C = uuid.UUID("7fffffff-0000-4000-8000-00000000000c")


def specimen_catalog() -> Catalog:
    catalog = Catalog()

    @catalog.table("specimens", group="primary", natural_key=("code",))
    class Specimen:
        """Values of every newer type."""

        code: Annotated[str, MaxLen(6)]
        ref: uuid.UUID
        seen_at: Annotated[dt.datetime, Naive()]
        tags: list[str]
        counts: list[int] | None = None
        share: Annotated[float, Gt(0), Lt(1)] = 0.5
        status: str = "new"

    return catalog


@pytest.fixture(params=["memory", "postgres"])
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    with served(specimen_catalog(), request.param, request) as test_client:
        yield test_client


ROWS = [
    {"code": "a", "ref": str(A), "seen_at": "2024-05-01T10:30:00", "tags": ["x", "y,z"], "counts": [1, 2]},
    {"code": "b", "ref": str(B), "seen_at": "2024-05-02T08:00:00", "tags": [], "share": 0.25},
    {"code": "c", "ref": str(C), "seen_at": "2024-04-30T23:59:59", "tags": ["x", "y,z"]},
]


def codes(client: TestClient, **params) -> list[str]:
    response = client.get("/api/specimens", params=params)
    assert response.status_code == 200, response.text
    return [r["code"] for r in response.json()]


@pytest.fixture
def stored(client: TestClient) -> list[dict]:
    created = client.post("/api/specimens", json=ROWS, headers={"Prefer": "return=representation"})
    assert created.status_code == 201, created.text
    return created.json()


def test_values_of_the_new_types_come_back_as_written(client: TestClient, stored: list[dict]):
    a = client.get("/api/specimens/a").json()
    assert a["ref"] == str(A)
    assert a["seen_at"] == "2024-05-01T10:30:00"  # no offset: it never had one
    assert a["tags"] == ["x", "y,z"] and a["counts"] == [1, 2]
    assert (a["share"], a["status"]) == (0.5, "new")
    b = client.get("/api/specimens/b").json()
    assert b["tags"] == [] and b["counts"] is None and b["share"] == 0.25


def test_uuid_and_naive_timestamp_filters_and_order(client: TestClient, stored: list[dict]):
    assert codes(client, ref=f"eq.{B}") == ["b"]
    assert codes(client, ref=f"eq.{B.hex.upper()}") == ["b"]
    assert codes(client, ref=f"in.({A},{C})", order="code") == ["a", "c"]
    assert codes(client, ref=f"neq.{A}", order="code") == ["b", "c"]
    assert codes(client, order="ref") == ["a", "c", "b"]  # by the 128-bit value, as PostgreSQL's memcmp
    assert codes(client, order="ref.desc") == ["b", "c", "a"]
    assert codes(client, seen_at="gt.2024-05-01T00:00:00", order="seen_at.desc") == ["b", "a"]
    assert codes(client, seen_at="eq.2024-04-30 23:59:59") == ["c"]
    assert codes(client, seen_at="in.(2024-05-01T10:30:00,2024-05-02T08:00:00)", order="code") == ["a", "b"]
    assert codes(client, order="seen_at") == ["c", "a", "b"]


def test_keyset_pages_walk_a_uuid_order(client: TestClient, stored: list[dict]):
    first = client.get("/api/specimens", params={"order": "ref", "limit": 2})
    assert [r["code"] for r in first.json()] == ["a", "c"]
    after = first.headers["link"].split("after=")[1].split(">")[0].split("&")[0]
    second = client.get("/api/specimens", params={"order": "ref", "limit": 2, "after": after})
    assert [r["code"] for r in second.json()] == ["b"]


def test_aggregates_over_the_new_types(client: TestClient, stored: list[dict]):
    one = client.get("/api/specimens", params={"select": "first:seen_at.min(),refs:ref.count(),n:tags.count()"})
    assert one.json() == [{"first": "2024-04-30T23:59:59", "refs": 3, "n": 3}]
    grouped = client.get("/api/specimens", params={"select": "ref,n:code.count()", "order": "ref.desc"})
    assert grouped.json() == [{"ref": str(r), "n": 1} for r in (B, C, A)]


def test_a_csv_read_of_the_new_types_is_a_csv_write_that_gives_the_same_rows(client: TestClient, stored: list[dict]):
    columns = "code,ref,seen_at,tags,counts,share,status"
    before = client.get("/api/specimens", params={"order": "code", "select": columns}).json()
    exported = client.get("/api/specimens", params={"order": "code", "select": columns},
                          headers={"Accept": "text/csv"}).text
    assert exported.splitlines()[1] == f'a,{A},2024-05-01T10:30:00,"[""x"",""y,z""]","[1,2]",0.5,new'
    assert client.delete("/api/specimens", params={"code": "in.(a,b,c)"}).status_code == 204
    written = client.post("/api/specimens", content=exported.encode(), headers={"Content-Type": "text/csv"})
    assert written.status_code == 201, written.text
    assert client.get("/api/specimens", params={"order": "code", "select": columns}).json() == before


def test_array_filters_compare_whole_arrays(client: TestClient, stored: list[dict]):
    assert codes(client, tags='eq.{x,"y,z"}', order="code") == ["a", "c"]
    assert codes(client, tags='eq.["x","y,z"]', order="code") == ["a", "c"]
    assert codes(client, tags="eq.{}") == ["b"]
    assert codes(client, tags="neq.{}", order="code") == ["a", "c"]
    assert codes(client, counts="is.null", order="code") == ["b", "c"]
    assert codes(client, counts="not.is.null") == ["a"]
    assert codes(client, counts="eq.{1,2}") == ["a"]
    assert codes(client, counts='in.("{1,2}","{3}")') == ["a"]
    assert codes(client, counts="eq.{2,1}") == []


@pytest.mark.parametrize("params", [
    {"tags": "gt.{x}"}, {"order": "tags"}, {"counts": "eq.{1,x}"}, {"ref": "eq.nope"},
    {"seen_at": "eq.2024-05-01T10:30:00+02:00"}, {"tags": "like.x*"}, {"select": "tags,count()"},
    {"select": "m:ref.min()"}, {"select": "m:tags.max()"},
])
def test_filters_a_type_cannot_take_are_400(client: TestClient, stored: list[dict], params: dict):
    response = client.get("/api/specimens", params=params)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"code", "message", "details", "hint"}


def test_bad_values_are_422_per_field(client: TestClient):
    bad = client.post("/api/specimens", json={
        "code": "toolong", "ref": "nope", "seen_at": "2024-05-01T10:30:00Z", "tags": ["a", None], "share": 1,
    })
    assert bad.status_code == 422
    assert {(d["field"], d["code"]) for d in bad.json()["details"]} == {
        ("code", "too_long"), ("ref", "type"), ("seen_at", "type"), ("tags", "not_null"), ("share", "out_of_range"),
    }


CSV = (
    b'code,ref,seen_at,tags,counts,share,status\n'
    b'a,' + str(A).encode() + b',2024-05-01 10:30:00,"{x,""y,z""}","[1,2]",,\n'
    b'b,' + str(B).encode() + b',2024-05-02T08:00:00,{},,0.25,done\n'
)


def test_csv_posts_write_arrays_in_either_form_and_empty_cells_take_defaults(client: TestClient):
    created = client.post("/api/specimens", content=CSV, headers={"Content-Type": "text/csv"})
    assert created.status_code == 201, created.text
    a, b = client.get("/api/specimens", params={"order": "code"}).json()
    assert (a["tags"], a["counts"], a["share"], a["status"]) == (["x", "y,z"], [1, 2], 0.5, "new")
    assert (b["tags"], b["counts"], b["share"], b["status"]) == ([], None, 0.25, "done")


def test_csv_ingest_writes_the_same_rows_as_the_table_api(client: TestClient):
    response = client.post("/ingest/specimens", params={"mode": "atomic"}, content=CSV,
                           headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json()["inserted"] == 2
    rows = client.get("/api/specimens", params={"order": "code", "select": "code,tags,counts,share,status,seen_at"})
    assert rows.json() == [
        {"code": "a", "tags": ["x", "y,z"], "counts": [1, 2], "share": 0.5, "status": "new",
         "seen_at": "2024-05-01T10:30:00"},
        {"code": "b", "tags": [], "counts": None, "share": 0.25, "status": "done", "seen_at": "2024-05-02T08:00:00"},
    ]
    again = client.post("/ingest/specimens", content=CSV, headers={"Content-Type": "text/csv"})
    assert again.json()["unchanged"] == 2  # arrays, uuids and naive timestamps compare equal after a round trip


def test_json_ingest_of_odd_array_items_round_trips(client: TestClient):
    odd = ["", "NULL", 'quote " and \\ backslash', "{brace}", " spaced "]
    body = [{"code": "odd", "ref": str(A), "seen_at": "2024-01-01T00:00:00", "tags": odd}]
    response = client.post("/ingest/specimens", params={"mode": "atomic"}, json=body)
    assert response.status_code == 200 and response.json()["inserted"] == 1, response.text
    assert client.get("/api/specimens/odd").json()["tags"] == odd


def test_csv_ingest_rejects_an_empty_cell_where_no_default_applies(client: TestClient):
    body = b"code,ref,seen_at,tags\nz,,2024-05-01T10:30:00,{}\n"
    report = client.post("/ingest/specimens", content=body, headers={"Content-Type": "text/csv"}).json()
    assert report["rejected"] == 1
    assert [(e["field"], e["code"]) for e in report["errors"]] == [("ref", "not_null")]


def test_openapi_describes_the_new_types(client: TestClient):
    props = client.get("/openapi.json").json()["components"]["schemas"]["SpecimensInsert"]["properties"]
    assert props["ref"] == {"type": "string", "format": "uuid"}
    assert props["seen_at"] == {"type": "string", "format": "date-time"}
    assert props["code"] == {"type": "string", "maxLength": 6}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["counts"]["anyOf"][0]["items"] == {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
    assert (props["share"]["exclusiveMinimum"], props["share"]["exclusiveMaximum"]) == (0, 1)


def test_the_store_itself_refuses_text_longer_than_its_varchar(client: TestClient):
    """Validation bypassed: PostgreSQL's varchar(n) refuses with 22001, and so does the fake."""
    from domain.errors import BadRequest
    from service_layer.services import stamp_new

    uow = client.app.state.container.uow()
    table = uow.catalog["specimens"]
    row = stamp_new(table, {"code": "seven77", "ref": A, "seen_at": dt.datetime(2024, 1, 1), "tags": [],
                            "counts": None, "share": 0.5, "status": "new"}, dt.datetime.now(dt.UTC))
    with pytest.raises(BadRequest) as refused, uow:
        uow.repository("specimens").add([row])
    assert refused.value.code == "22001"
    assert "character varying(6)" in refused.value.message
