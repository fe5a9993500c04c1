"""Schemathesis against /openapi.json, on the memory storage through the ASGI app, bounded for CI.

Every operation of every table gets generated requests (valid and invalid); none may answer 5xx,
every error answers in the PostgREST shape, and every successful read conforms to its documented
row schema. The app runs with API keys, so each request also crosses the key check.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import response_schema_conformance

from entrypoints.app import create_app
from tests.unit.conftest import memory_container

WRITE_KEY = "fuzz-" + "k" * 27
# Built at import: schemathesis reads the schema when pytest collects the module.
app = create_app(memory_container(api_keys=f"{WRITE_KEY}:write"))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
ERROR_FIELDS = {"code", "message", "details", "hint"}


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx, value) -> bytes:
    """The ingest route takes NDJSON: its schema is a string, sent as the body's bytes."""
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else str(value).encode()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(case):
    response = case.call(headers={"Authorization": f"Bearer {WRITE_KEY}"})
    described = f"{case.method} {case.formatted_path} query={case.query} body={case.body!r}: {response.text[:300]}"
    assert response.status_code < 500, described
    if response.status_code >= 400:
        assert set(response.json()) == ERROR_FIELDS, described
    elif case.method == "GET":
        case.validate_response(response, checks=[response_schema_conformance])
