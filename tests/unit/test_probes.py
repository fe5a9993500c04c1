"""/live and /ready, and the periodic sweep of orphaned batches, on the memory storage."""

from __future__ import annotations

import asyncio
import types

from fastapi.testclient import TestClient

from entrypoints.app import create_app
from entrypoints.lifecycle import sweeping_orphans
from tests.unit.conftest import memory_container


def test_live_answers_before_and_after_start():
    app = create_app(memory_container())
    client = TestClient(app)  # no lifespan yet: the store is not prepared
    assert client.get("/live").json() == {"status": "ok"}
    assert client.get("/ready").status_code == 503
    with client:
        assert client.get("/live").status_code == 200


def test_ready_once_prepared_and_503_while_draining():
    app = create_app(memory_container())
    with TestClient(app) as client:
        assert client.get("/ready").json() == {"status": "ready"}
        app.state.readiness.draining = True  # what SIGTERM does (the handler is chained in the main thread only)
        response = client.get("/ready")
        assert response.status_code == 503 and response.json() == {"status": "draining"}


def test_probes_need_no_key_when_keys_are_set():
    with TestClient(create_app(memory_container(api_keys="k-" + "a" * 30 + ":write"))) as client:
        assert client.get("/live").status_code == 200
        assert client.get("/ready").status_code == 200
        assert client.get("/api/airlines").status_code == 401


def test_probes_are_not_in_the_api_description():
    with TestClient(create_app(memory_container())) as client:
        assert not {"/live", "/ready"} & set(client.get("/openapi.json").json()["paths"])


def test_orphaned_batches_are_swept_periodically(monkeypatch):
    calls: list[object] = []
    monkeypatch.setattr("service_layer.ingest.fail_orphaned_batches", lambda uow: calls.append(uow) or [7])
    container = types.SimpleNamespace(settings=lambda: types.SimpleNamespace(orphan_sweep_seconds=0.01),
                                      uow=lambda: "uow")

    async def serve_a_while() -> None:
        async with sweeping_orphans(container):
            await asyncio.sleep(0.2)

    asyncio.run(serve_a_while())
    assert len(calls) >= 3 and set(calls) == {"uow"}


def test_a_sweep_interval_of_zero_sweeps_only_at_start(monkeypatch):
    calls: list[object] = []
    monkeypatch.setattr("service_layer.ingest.fail_orphaned_batches", lambda uow: calls.append(uow) or [])
    container = types.SimpleNamespace(settings=lambda: types.SimpleNamespace(orphan_sweep_seconds=0), uow=lambda: 1)

    async def serve_a_while() -> None:
        async with sweeping_orphans(container):
            await asyncio.sleep(0.05)

    asyncio.run(serve_a_while())
    assert calls == []


def test_a_started_app_collects_garbage_at_its_thresholds(monkeypatch):
    """An ingest allocates millions of short-lived objects: the started app runs the cycle collector
    at GC_THRESHOLDS, not at CPython's defaults (700, 10, 10)."""
    import gc

    from entrypoints.lifecycle import GC_THRESHOLDS

    set_to = []
    monkeypatch.setattr(gc, "set_threshold", lambda *thresholds: set_to.append(thresholds))
    app = create_app(memory_container())
    assert set_to == []  # made, not started
    with TestClient(app):
        assert set_to == [GC_THRESHOLDS]
