"""API keys and roles, the exposure check, the body limit and the access log, on the memory storage."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from entrypoints.app import create_app
from entrypoints.security import (
    BodyLimitMiddleware,
    ConfigurationError,
    exposure_problem,
    parse_api_keys,
    role_of,
)
from entrypoints.settings import Settings
from tests.unit.conftest import memory_container

READ_KEY = "r-" + "a" * 30
WRITE_KEY = "w-" + "b" * 30
KEYS = f"{READ_KEY}:read, {WRITE_KEY}:write"
AIRLINE = {"carrier": "ZZ", "name": "Zed Air"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed() -> TestClient:
    with TestClient(create_app(memory_container(api_keys=KEYS))) as client:
        yield client


def assert_error_shape(response, status: int) -> dict:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"code", "message", "details", "hint"}
    return body


# --- keys ------------------------------------------------------------------------------------------


def test_keys_parse_with_roles_and_spaces():
    keys = parse_api_keys(f" {READ_KEY}:read ,{WRITE_KEY}:WRITE,")
    assert role_of(READ_KEY, keys) == "read"
    assert role_of(WRITE_KEY, keys) == "write"
    assert role_of("nope", keys) is None
    assert role_of(READ_KEY[:-1], keys) is None


def test_every_key_is_compared_in_constant_time_without_early_exit(monkeypatch):
    import hmac

    from entrypoints import security

    keys = parse_api_keys(f"{READ_KEY}:read,{WRITE_KEY}:write,third-{'c' * 20}:read")
    calls = []
    compare = hmac.compare_digest

    def counting(a, b):
        calls.append((len(a), len(b)))
        return compare(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", counting)
    for token in (READ_KEY, "no-such-key", "x"):
        calls.clear()
        security.role_of(token, keys)
        assert calls == [(32, 32)] * 3, "one fixed-length digest comparison per configured key"


@pytest.mark.parametrize("bad", ["justakey", ":read", "k:admin", "kkk:read,kkk:write", "spaced key:read"])
def test_malformed_keys_are_refused_without_echoing_the_key(bad):
    with pytest.raises(ConfigurationError) as refused:
        parse_api_keys(bad)
    secret_part = bad.split(":")[0]
    if len(secret_part) > 2:
        assert secret_part not in str(refused.value)


def test_malformed_keys_stop_settings_and_pydantic_hides_them():
    with pytest.raises(ValidationError) as refused:
        Settings(api_keys="supersecretvalue:owner")
    assert "supersecretvalue" not in str(refused.value)
    assert "read or write" in str(refused.value)


def test_no_key_is_401_with_a_bearer_challenge(keyed):
    response = keyed.get("/api/airlines")
    body = assert_error_shape(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in body["hint"]


@pytest.mark.parametrize("header", [f"Bearer {READ_KEY}x", f"Basic {READ_KEY}", "Bearer", "Bearer  ", READ_KEY])
def test_invalid_credentials_are_401(keyed, header):
    response = keyed.get("/api/airlines", headers={"Authorization": header})
    assert_error_shape(response, 401)
    assert "Bearer" in response.headers["www-authenticate"]


def test_read_key_reads_but_cannot_write(keyed):
    assert keyed.get("/api/airlines", headers=bearer(READ_KEY)).status_code == 200
    assert keyed.head("/api/airlines", headers=bearer(READ_KEY)).status_code in (200, 405)
    for method in ("POST", "PATCH", "DELETE", "PUT"):
        response = keyed.request(method, "/api/airlines?carrier=eq.ZZ", json=AIRLINE, headers=bearer(READ_KEY))
        body = assert_error_shape(response, 403)
        assert body["code"] == "42501"
    assert keyed.get("/api/airlines", headers=bearer(READ_KEY)).json() == []


def test_write_key_writes_and_reads(keyed):
    assert keyed.post("/api/airlines", json=AIRLINE, headers=bearer(WRITE_KEY)).status_code == 201
    rows = keyed.get("/api/airlines?carrier=eq.ZZ", headers=bearer(WRITE_KEY)).json()
    assert [r["name"] for r in rows] == ["Zed Air"]


def test_the_scheme_is_case_insensitive(keyed):
    assert keyed.get("/api/airlines", headers={"Authorization": f"bearer {READ_KEY}"}).status_code == 200


@pytest.mark.parametrize("path", ["/health", "/openapi.json", "/docs"])
def test_health_and_docs_need_no_key(keyed, path):
    assert keyed.get(path).status_code == 200


def test_unknown_paths_need_a_key_too(keyed):
    """No key, no information: not even which tables exist."""
    assert keyed.get("/api/secret_table").status_code == 401


def test_without_keys_everything_is_open_on_loopback(client):
    assert client.get("/api/airlines").status_code == 200
    assert client.post("/api/airlines", json=AIRLINE).status_code == 201


# --- exposure -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_without_keys_is_fine(host):
    assert exposure_problem(host, "") is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "depot.example.org"])
def test_non_loopback_without_keys_is_refused_with_the_fix(host):
    problem = exposure_problem(host, "")
    assert "DEPOT_API_KEYS" in problem and "127.0.0.1" in problem
    assert exposure_problem(host, f"{WRITE_KEY}:write") is None


def test_create_app_refuses_a_public_host_without_keys():
    with pytest.raises(ConfigurationError, match="DEPOT_API_KEYS"):
        create_app(memory_container(host="0.0.0.0"))
    create_app(memory_container(host="0.0.0.0", api_keys=f"{WRITE_KEY}:write"))


def test_serve_refuses_a_public_host_without_keys(monkeypatch):
    from typer.testing import CliRunner

    from entrypoints.cli import app as cli

    monkeypatch.delenv("DEPOT_API_KEYS", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--storage", "memory"])
    assert result.exit_code != 0
    assert "DEPOT_API_KEYS" in result.output and "127.0.0.1" in result.output


def test_serve_refuses_malformed_keys_without_printing_them(monkeypatch):
    from typer.testing import CliRunner

    from entrypoints.cli import app as cli

    monkeypatch.setenv("DEPOT_API_KEYS", "hunter2hunter2:root")
    result = CliRunner().invoke(cli, ["serve", "--storage", "memory"])
    assert result.exit_code != 0
    assert "read or write" in result.output
    assert "hunter2hunter2" not in result.output


# --- body limit -------------------------------------------------------------------------------------


def test_declared_body_over_the_limit_is_413_before_the_app_runs():
    with TestClient(create_app(memory_container(max_body_bytes=100))) as client:
        # /api/nope would be a 404 and /health a 405: the limit answers first, for every route.
        for path in ("/api/airlines", "/api/nope", "/health"):
            response = client.post(path, content=b"x" * 101, headers={"content-type": "application/json"})
            assert_error_shape(response, 413)
        ok = client.post("/api/airlines", json=AIRLINE)
        assert ok.status_code == 201


def test_chunked_body_over_the_limit_is_413():
    def chunks():
        for _ in range(10):
            yield b"[" + b" " * 48 + b"]"

    with TestClient(create_app(memory_container(max_body_bytes=200))) as client:
        response = client.post("/api/airlines", content=chunks(), headers={"content-type": "application/json"})
        body = assert_error_shape(response, 413)
        assert body["code"] == "PGRST413"


def test_the_limit_stops_reading_at_the_chunk_that_crosses_it():
    """The middleware alone, on a route that would read everything: it pulls no chunk past the limit."""
    pulled = 0
    sent: list[dict] = []

    async def receive():
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * 10, "more_body": pulled < 1000}

    async def send(message):
        sent.append(message)

    async def greedy_app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = BodyLimitMiddleware(greedy_app, max_body_bytes=95)
    scope = {"type": "http", "method": "POST", "path": "/ingest/flights", "headers": []}
    asyncio.run(middleware(scope, receive, send))
    assert pulled == 10
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["code"] == "PGRST413"


# --- access log ---------------------------------------------------------------------------------------


def access_lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "depot.access"]


def test_each_request_logs_one_line_with_its_id_and_no_secret(keyed, caplog):
    caplog.set_level(logging.INFO, logger="depot")
    response = keyed.get("/api/airlines?name=eq.hush-hush", headers=bearer(READ_KEY))
    request_id = response.headers["x-request-id"]
    lines = access_lines(caplog)
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == request_id
    assert (line["method"], line["path"], line["status"], line["role"]) == ("GET", "/api/airlines", 200, "read")
    assert line["duration_ms"] >= 0
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert READ_KEY not in text and "hush-hush" not in text


def test_refused_requests_are_logged_too_and_never_the_bodies(keyed, caplog):
    caplog.set_level(logging.INFO, logger="depot")
    response = keyed.post("/api/airlines", json={"carrier": "QQ", "name": "body-secret"},
                          headers=bearer(WRITE_KEY + "wrong"))
    assert response.status_code == 401
    [line] = access_lines(caplog)
    assert line["status"] == 401 and line["request_id"] == response.headers["x-request-id"]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "body-secret" not in text and WRITE_KEY not in text


def test_a_sane_incoming_request_id_is_kept_and_a_wild_one_replaced(client):
    assert client.get("/health", headers={"X-Request-Id": "abc-123.x"}).headers["x-request-id"] == "abc-123.x"
    replaced = client.get("/health", headers={"X-Request-Id": "a b\"<script>"}).headers["x-request-id"]
    assert replaced != "a b\"<script>" and len(replaced) == 32
    first, second = client.get("/health"), client.get("/health")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_openapi_documents_the_bearer_scheme_when_keys_are_set(keyed, client):
    document = keyed.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["paths"]["/api/airlines"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in document["paths"]["/health"]["get"]
    assert "securitySchemes" not in client.get("/openapi.json").json()["components"]


def test_no_response_holds_more_than_max_rows_and_content_range_tells_the_truth():
    with TestClient(create_app(memory_container(max_rows=2))) as client:
        rows = [{"carrier": f"M{n}", "name": f"Max {n}"} for n in range(5)]
        assert client.post("/api/airlines", json=rows).status_code == 201
        for query in ("", "?limit=100", "?limit=100&offset=1"):
            response = client.get(f"/api/airlines{query}", headers={"Prefer": "count=exact"})
            assert response.status_code in (200, 206)
            assert len(response.json()) <= 2
            span, total = response.headers["content-range"].split("/")
            assert total == "5"
            first, last = (int(n) for n in span.split("-"))
            assert last - first + 1 == len(response.json())
