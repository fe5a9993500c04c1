"""Property: arbitrary headers and bodies on the table routes never make a 5xx, and errors keep the shape."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entrypoints.app import create_app
from tests.unit.conftest import memory_container

ERROR_FIELDS = {"code", "message", "details", "hint"}
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
MEDIA = ["application/json", "text/csv", "application/x-ndjson", "application/vnd.pgrst.object+json",
         "text/plain", "*/*", "", "application/json; charset=utf-8"]
PREFER = ["return=representation", "return=minimal", "resolution=merge-duplicates", "resolution=ignore-duplicates",
          "count=exact", "count=planned", "missing=default", "handling=strict"]
header_text = st.one_of(st.sampled_from(MEDIA + PREFER), st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                                                 max_size=30))
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
airline_like = st.fixed_dictionaries({}, optional={"carrier": json_like | st.text(max_size=4), "name": json_like,
                                                   "source": json_like, "version": json_like})
body = st.one_of(st.binary(max_size=60), json_like.map(repr).map(str.encode),
                 st.lists(airline_like, max_size=3).map(lambda rows: json.dumps(rows).encode()))


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(memory_container())) as test_client:
        assert test_client.post("/api/airlines", json={"carrier": "UA", "name": "United"}).status_code == 201
        yield test_client


def assert_no_server_error(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400 and response.content:
        assert set(response.json()) == ERROR_FIELDS


@SETTINGS
@given(accept=header_text, prefer=header_text)
def test_reads_with_any_accept_and_prefer(client, accept, prefer):
    assert_no_server_error(client.get("/api/airlines", headers={"Accept": accept, "Prefer": prefer}))
    assert_no_server_error(client.get("/api/airlines/UA", headers={"Accept": accept, "If-None-Match": prefer}))


@SETTINGS
@given(method=st.sampled_from(["POST", "PATCH", "DELETE"]), content_type=header_text, prefer=header_text,
       content=body, query=st.sampled_from(["", "?carrier=eq.ZZ", "?on_conflict=carrier", "?on_conflict=name,x"]))
def test_writes_with_any_body_and_headers(client, method, content_type, prefer, content, query):
    response = client.request(method, f"/api/airlines{query}", content=content,
                              headers={"Content-Type": content_type, "Prefer": prefer})
    assert_no_server_error(response)


@SETTINGS
@given(key=st.text(max_size=6), if_match=header_text, content=body)
def test_patch_and_delete_by_key_with_any_if_match(client, key, if_match, content):
    path = "/api/airlines/" + quote(key, safe="")
    assert_no_server_error(client.patch(path, content=content, headers={"If-Match": if_match}))
    assert_no_server_error(client.delete(path, headers={"If-Match": if_match}))
