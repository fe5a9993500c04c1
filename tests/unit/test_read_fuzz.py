"""No query string, however mangled, gets anything but an answer or a 4xx: never a 500."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entrypoints.app import create_app
from tests.unit.conftest import memory_container
from tests.unit.test_read_http import seed

PIECES = ["select", "order", "limit", "offset", "after", "or", "and", "not.or", "flight", "dep_delay", "carrier",
          "airlines", "airports", "origin", "count()", "avg()", "(", ")", ",", ".", ":", "!", "*", '"', "\\", "eq",
          "in", "is", "null", "not", "desc", "nullslast", "1", "-1", "2.5", "x", "'", ";", "--", "%00", "=", "&"]


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(memory_container(max_rows=5)), raise_server_exceptions=False) as test_client:
        seed(test_client, flights=4)
        yield test_client


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=12), st.sampled_from(["", "text/csv"]))
def test_mangled_query_strings_never_500(client, pieces, accept):
    response = client.get("/api/flights?" + "".join(pieces), headers={"Accept": accept} if accept else {})
    assert response.status_code < 500, response.text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["select", "order", "or", "flight", "carrier", "after", "limit"]), st.text(max_size=30))
def test_arbitrary_values_never_500(client, name, value):
    response = client.get(f"/api/flights?{name}={quote(value, safe='')}")
    assert response.status_code < 500, response.text
