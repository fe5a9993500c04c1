"""QA round: HEAD and If-None-Match on /api/{table}/{key} (memory storage, over HTTP)."""

from __future__ import annotations

import pytest


@pytest.fixture
def airlines(client):
    response = client.post("/api/airlines", json=[{"carrier": "AA", "name": "American"},
                                                  {"carrier": "UA", "name": "United"}])
    assert response.status_code == 201


def test_head_of_a_row_answers_the_headers_of_its_get(client, airlines):
    # HEAD is GET without the body (RFC 9110); it answered 405 on /api/{table}/{key}.
    got = client.get("/api/airlines/AA")
    head = client.head("/api/airlines/AA")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == got.headers["etag"]
    assert head.headers["content-type"] == got.headers["content-type"]
    assert client.head("/api/airlines/AA", headers={"if-none-match": got.headers["etag"]}).status_code == 304
    assert client.head("/api/airlines/ZZ").status_code == 404


@pytest.mark.parametrize("header", ['W/"1"', '"7", "1"', '"7",W/"1"', "*"])
def test_if_none_match_compares_weakly_and_takes_a_list_or_a_star(client, airlines, header):
    # RFC 9110 13.1.2: If-None-Match uses the weak comparison, lists entity tags, and "*" matches any row.
    assert client.get("/api/airlines/AA").headers["etag"] == '"1"'
    response = client.get("/api/airlines/AA", headers={"if-none-match": header})
    assert response.status_code == 304 and response.headers["etag"] == '"1"'


@pytest.mark.parametrize("header", ['"2"', 'W/"2", "3"', '"1 "'])
def test_if_none_match_with_other_tags_answers_the_row(client, airlines, header):
    assert client.get("/api/airlines/AA", headers={"if-none-match": header}).status_code == 200
