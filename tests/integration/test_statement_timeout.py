"""DEPOT_STATEMENT_TIMEOUT_MS: a statement held up past the limit is cancelled; the client gets a 503
in the error shape and the server goes on serving. Real PostgreSQL, real lock, the real route."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from entrypoints.app import create_app
from entrypoints.container import Container
from entrypoints.settings import Settings

pytestmark = pytest.mark.postgres

TIMEOUT_MS = 300
RELEASE_AFTER_S = 6  # far past the timeout: without it, the request would wait for the lock and get 200


@pytest.fixture
def client(pg_server, pg_uow):
    container = Container()
    container.settings.override(Settings(storage="postgres", database_url=pg_server, migrate_on_start=False,
                                         statement_timeout_ms=TIMEOUT_MS, pool_size=2))
    with TestClient(create_app(container)) as test_client:
        yield test_client


def test_a_statement_past_the_timeout_is_a_503_and_the_server_keeps_serving(client, pg_engine):
    assert client.post("/api/airlines", json={"carrier": "TO", "name": "Timeout Air"}).status_code == 201
    holder = pg_engine.connect()
    transaction = holder.begin()
    holder.exec_driver_sql("LOCK TABLE airlines IN ACCESS EXCLUSIVE MODE")
    release = threading.Timer(RELEASE_AFTER_S, transaction.rollback)
    release.start()
    try:
        for response in (client.get("/api/airlines"),
                         client.post("/api/airlines", json={"carrier": "TP", "name": "Blocked"})):
            assert response.status_code == 503, response.text
            body = response.json()
            assert set(body) == {"code", "message", "details", "hint"}
            assert body["code"] == "57014"
            assert "timeout" in body["message"]
    finally:
        release.cancel()
        if transaction.is_active:
            transaction.rollback()
        holder.close()
    rows = client.get("/api/airlines?carrier=like.T*").json()
    assert [r["carrier"] for r in rows] == ["TO"]
