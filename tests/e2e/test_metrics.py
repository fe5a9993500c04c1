"""GET /metrics after a known sequence of requests and one ingest, with one worker and with two (the
counters of every worker added up by prometheus-client's multiprocess mode)."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from entrypoints.metrics import SAMPLE_SECONDS
from tests.e2e.depot_process import DepotProcess, postmasters

pytestmark = pytest.mark.postgres

WRITE_KEY = "w-" + "b" * 30
METRICS_KEY = "m-" + "c" * 30


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


@pytest.mark.parametrize("workers", [1, 2])
def test_counters_after_a_known_sequence(tmp_path, workers):
    depot = DepotProcess(tmp_path / "data", args=("--workers", str(workers)),
                         api_keys=f"{WRITE_KEY}:write,{METRICS_KEY}:metrics")
    try:
        depot.wait_healthy()
        auth = {"Authorization": f"Bearer {WRITE_KEY}"}
        # Fresh connections each time, so that with two workers both of them answer some.
        for _ in range(3):
            with depot.client(headers=auth) as client:
                assert client.get("/api/airlines").status_code == 200
        for carrier in ("ZZ", "ZY"):
            with depot.client(headers=auth) as client:
                assert client.get(f"/api/airlines/{carrier}").status_code == 404
        with depot.client(headers=auth) as client:
            assert client.get("/no/such/path").status_code == 404
            report = client.post("/ingest/airlines?source=manual", json=[
                {"carrier": "AA", "name": "A"}, {"carrier": "BB", "name": "B"}, {"carrier": "bad", "name": "C"}]).json()
            assert (report["inserted"], report["rejected"]) == (2, 1)
        with depot.client() as client:
            assert client.get("/metrics").status_code == 401
        with depot.client(headers={"Authorization": f"Bearer {METRICS_KEY}"}) as client:
            assert client.get("/api/airlines").status_code == 403, "a metrics key reads no rows"
            response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        found = samples(response.text)

        requests = "depot_http_request_duration_seconds_count"
        assert value(found, requests, method="GET", route="/api/airlines", status="200") == 3
        assert value(found, requests, method="GET", route="/api/airlines/{key}", status="404") == 2
        assert value(found, requests, method="GET", route="unmatched", status="404") == 1
        assert value(found, requests, method="POST", route="/ingest/{table}", status="200") == 1
        assert value(found, requests, method="GET", route="unmatched", status="401") == 1
        assert not any(dict(labels).get("route", "").startswith("/no/") for _, labels in found), "raw path leaked"
        rows = "depot_ingest_rows_total"
        assert value(found, rows, table="airlines", source="manual", outcome="inserted") == 2
        assert value(found, rows, table="airlines", source="manual", outcome="rejected") == 1
        assert value(found, rows, table="airlines", source="manual", outcome="updated") is None
        assert value(found, "depot_ingest_batch_duration_seconds_count", table="airlines", status="completed") == 1
        assert value(found, "depot_statement_timeouts_total") == 0
        assert value(found, "depot_database_up", embedded="true") == 1
        assert value(found, "depot_db_pool_connections", pool="write", state="in_use") is not None
        # Pool gauges are each worker's as of its last sample (every SAMPLE_SECONDS): with two workers, the
        # one that served the reads may not have sampled since; it has within two periods.
        deadline = time.monotonic() + 2 * SAMPLE_SECONDS + 1
        while (value(found, "depot_db_pool_connections", pool="read", state="idle") or 0) < 1 \
                and time.monotonic() < deadline:
            time.sleep(0.5)
            with depot.client(headers={"Authorization": f"Bearer {METRICS_KEY}"}) as client:
                found = samples(client.get("/metrics").text)
        assert value(found, "depot_db_pool_connections", pool="read", state="idle") >= 1
    finally:
        depot.stop()
        for proc in postmasters((tmp_path / "data").resolve() / "pgdata"):
            proc.kill()
    assert "Traceback" not in depot.log()
