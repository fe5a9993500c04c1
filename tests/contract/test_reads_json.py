"""JSON paths (-> and ->>) in select, filters and order, on both adapters with the same answers,
jsonb's own order and equality included; bad paths are 400s."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import BadRequest
from tests.contract.documents import both_documents, documents, names, page  # noqa: F401 - the fixtures


def test_paths_in_select_are_named_after_their_last_key(documents):  # noqa: F811
    got = page(documents, "select=name,data->>s,num:data->n,data->nested->>k,data->tags->0&name=in.(a,c,d)").rows
    assert got == [
        {"name": "a", "s": "x", "num": 1, "k": "v1", "0": "red"},
        {"name": "c", "s": None, "num": "3", "k": None, "0": None},  # JSON null, as text: null
        {"name": "d", "s": "Z", "num": None, "k": None, "0": "green"},
    ]
    nested = page(documents, "select=data->nested&name=eq.e").rows
    assert nested == [{"nested": {"k": {"deep": 1}}}]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("data->>s=eq.x", ["a"]),
        ("data->n=gt.2", ["b", "e"]),  # jsonb: the string "3" is not a number
        ("data->n=eq.1.0", ["a"]),  # jsonb numbers compare by value
        ('data->n=eq."3"', ["c"]),
        ("data->>n=eq.3", ["c"]),
        ("data->>n=eq.2.5", ["b"]),
        ("data->n=in.(1,\"3\")", ["a"]),  # in's quotes protect commas: this is the number 3
        ('data->n=in.(1,"\\"3\\"")', ["a", "c"]),
        ("data->nested->>k=like.v*", ["a", "b"]),
        ("data->s=is.null", ["e", "f"]),  # missing; c's JSON null is a value
        ("data->s=not.is.null", ["a", "b", "c", "d"]),
        ("data->>s=is.null", ["c", "e", "f"]),  # ->> of JSON null is SQL's null
        ("data->s=eq.null", ["c"]),
        ("data->0=eq.1", ["f"]),
        ("data->-1->>three=eq.3", ["f"]),
        ('data->tags->0=eq."blue"', ["b"]),
        ("data->flag=eq.true", ["a"]),
        ("data->flag=not.eq.true", ["b"]),
        ("data->nested=eq.{\"k\":\"v2\"}", ["b"]),
        ("data->>s=gt.Z", ["a", "b"]),  # byte order: upper case first
        ("or=(data->>s.eq.Z,data->n.gte.10)", ["d", "e"]),
    ],
)
def test_path_filters_agree(documents, query, expected):  # noqa: F811
    assert names(documents, query) == expected


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("data->n.desc.nullslast", ["e", "b", "a", "c", "d", "f"]),  # numbers above strings in jsonb
        ("data->>s", ["d", "a", "b", "c", "e", "f"]),
        ("data->>s.desc.nullslast,name.desc", ["b", "a", "d", "f", "e", "c"]),
        ("data->nested", ["c", "a", "b", "e", "d", "f"]),  # {"k": null} < strings < an object
        ("data->tags.nullsfirst", ["e", "f", "c", "b", "d", "a"]),  # shorter arrays first, then by member
    ],
)
def test_path_order_follows_jsonb_order(documents, order, expected):  # noqa: F811
    assert names(documents, f"order={order}") == expected


def test_grouping_by_a_path(documents):  # noqa: F811
    got = page(documents, "select=data->flag,count()&order=data->flag").rows
    assert got == [{"flag": False, "count": 1}, {"flag": True, "count": 1}, {"flag": None, "count": 4}]


def test_text_paths_page_by_keyset_and_jsonb_paths_by_offset(documents):  # noqa: F811
    first = page(documents, "select=name&order=data->>s&limit=2")
    assert [r["name"] for r in first.rows] == ["d", "a"] and first.more and first.last is not None
    by_jsonb = page(documents, "select=name&order=data->n&limit=2")
    assert by_jsonb.more and by_jsonb.last is None  # the Link then pages with offset=
    with pytest.raises(BadRequest, match="offset"):
        page(documents, "select=name&order=data->n&after=eyJvIjoiIiwidiI6W119")


@pytest.mark.parametrize(
    ("query", "says", "code"),
    [
        ("data->=eq.1", "Invalid key", "PGRST100"),
        ("name->a=eq.1", "JSON columns", "42883"),
        ("data->>a->b=eq.1", "can only end", "PGRST100"),
        ("data" + "->a" * 10_000 + "=eq.1", "at most", "PGRST100"),
        ("data->a=eq.notjson", "Invalid JSON", "22P02"),
        ("data->a=like.x*", "->>", "PGRST100"),
        ("data=eq.1", "only is.null", "PGRST100"),
        ("data->a=is.true", "boolean", "PGRST100"),
        ("data->a'b=eq.1", "Invalid key", "PGRST100"),
        ("data->>a=eq.x\x00", "NUL", "22P05"),
        ("data->a=eq.\"\\u0000\"", "NUL", "22P05"),
        ("select=data->a.sum()", "cannot be aggregated", "PGRST100"),
        ("order=data->a b", "Invalid key", "PGRST100"),
        ("order=data", "JSON column", "PGRST100"),
    ],
)
def test_bad_paths_are_400s(documents, query, says, code):  # noqa: F811
    with pytest.raises(BadRequest) as caught:
        page(documents, query)
    error = caught.value
    assert says.lower() in f"{error.message} {error.details} {error.hint}".lower()
    assert error.code == code


PATHS = st.sampled_from(["data->n", "data->>n", "data->s", "data->>s", "data->nested", "data->nested->>k",
                         "data->tags", "data->tags->0", "data->>tags", "data->0", "data->flag", "data->list->-1"])
VALUES = st.sampled_from(["1", "2.5", '"3"', "3", "null", "true", '"x"', "x", "Z", "[]", '{"k":"v1"}', "v*"])
OPS = st.sampled_from(["eq", "neq", "gt", "gte", "lt", "lte", "like", "is", "not.eq", "in"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(PATHS, OPS, VALUES), max_size=2), st.lists(PATHS, max_size=2, unique=True),
       st.booleans())
def test_memory_answers_paths_exactly_as_postgresql(both_documents, filters, order, descending):  # noqa: F811
    memory, postgres = both_documents
    params = [f"{p}={op}.{f'({v})' if op == 'in' else v}" for p, op, v in filters]
    if order:
        params.append("order=" + ",".join(f"{o}.{'desc' if descending else 'asc'}" for o in order))
    query = "&".join(["select=name,data->n,data->>s,data->nested", *params])
    answers = []
    for uow in (memory, postgres):
        try:
            answers.append(page(uow, query).rows)
        except BadRequest as error:
            answers.append(error.code)
    assert answers[0] == answers[1], query


def test_over_http_a_bad_path_is_a_postgrest_error_and_jsonb_orders_link_by_offset():
    from fastapi.testclient import TestClient

    from entrypoints.app import create_app
    from entrypoints.container import Container
    from entrypoints.settings import Settings
    from tests.contract.documents import DOCUMENTS, ROWS

    container = Container()
    container.catalog.override(DOCUMENTS)
    container.settings.override(Settings(storage="memory"))
    with TestClient(create_app(container)) as client:
        assert client.post("/api/documents", json=ROWS).status_code == 201
        bad = client.get("/api/documents", params={"data->n": "eq.not json"})
        assert bad.status_code == 400
        assert set(bad.json()) == {"code", "message", "details", "hint"} and bad.json()["code"] == "22P02"
        deep = client.get("/api/documents", params={"data" + "->a" * 10_000: "eq.1"})
        assert deep.status_code in (400, 414)
        listed = client.get("/api/documents", params={"select": "name,n:data->n", "order": "data->n", "limit": "2"})
        assert listed.json() == [{"name": "c", "n": "3"}, {"name": "a", "n": 1}]  # jsonb: strings below numbers
        assert "offset=2" in listed.headers["link"] and "after=" not in listed.headers["link"]
        by_text = client.get("/api/documents", params={"select": "name", "order": "data->>s", "limit": "2"})
        assert by_text.json() == [{"name": "d"}, {"name": "a"}] and "after=" in by_text.headers["link"]
        following = client.get(by_text.headers["link"].split(">")[0][1:])
        assert following.json() == [{"name": "b"}, {"name": "c"}]


def test_a_null_json_column_is_sql_null_on_both_adapters(documents):  # noqa: F811
    from service_layer import services

    services.create_rows(documents(), "documents", [{"name": "g", "data": None, "body": "x"}])
    assert names(documents, "data=is.null") == ["g"]
    assert names(documents, "data->s=is.null&data=is.null") == ["g"]
