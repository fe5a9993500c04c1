"""QA round: grouping an aggregate read by a JSON column was a 500 on the memory adapter."""

from __future__ import annotations

import pytest

from tests.unit.test_table_api import assert_error


@pytest.fixture
def rejections(client):
    response = client.post("/ingest/airlines", json=[{"carrier": "BB"}, {"carrier": "CC"}])
    assert response.status_code == 200 and response.json()["rejected"] == 2


@pytest.mark.parametrize("select", ["payload,count()", "errors,n:count()", "batch_id,errors,id.max()"])
def test_grouping_by_a_json_column_is_a_400(client, rejections, select):
    # A dict or list is unhashable in the memory fake (500); PostgreSQL grouped and ordered jsonb.
    # JSON columns cannot be ordered here, and every grouping column is part of the total order.
    body = assert_error(client.get(f"/api/rejected_rows?select={select}"), 400)
    assert "JSON column" in body["message"]


def test_aggregates_of_a_json_column_still_work(client, rejections):
    response = client.get("/api/rejected_rows?select=batch_id,payload.count()")
    assert response.status_code == 200 and response.json() == [{"batch_id": 1, "count": 2}]
