"""The console's server side: the shell and its assets, the / redirect, the switch, and GET /catalog."""

from __future__ import annotations

from fastapi.testclient import TestClient

from entrypoints.app import create_app
from tests.unit.conftest import memory_container

READ_KEY, WRITE_KEY = "r" * 24, "w" * 24
KEYS = f"{READ_KEY}:read,{WRITE_KEY}:write"


def test_console_shell_and_assets_are_served_from_the_package(client):
    shell = client.get("/console")
    assert shell.status_code == 200 and shell.headers["content-type"].startswith("text/html")
    assert "/console/static/console.js" in shell.text
    assert "http://" not in shell.text and "https://" not in shell.text  # offline: nothing from elsewhere
    assert "script-src 'self'" in shell.headers["content-security-policy"]
    script = client.get("/console/static/console.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert client.get("/console/static/console.css").status_code == 200


def test_root_redirects_to_the_console(client):
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/console"


def test_console_off_serves_neither_the_console_nor_the_redirect():
    with TestClient(create_app(memory_container(console=False))) as client:
        assert client.get("/console").status_code == 404
        assert client.get("/", follow_redirects=False).status_code == 404
        assert client.get("/catalog").status_code == 200  # the API route stays


def test_the_console_is_not_part_of_the_api_document(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/catalog" in paths
    assert not [p for p in paths if p == "/" or p.startswith("/console")]


def test_catalog_describes_groups_keys_checks_and_references_both_ways(client):
    body = client.get("/catalog").json()
    assert body["access"] == "write"  # no keys configured: everyone writes
    tables = {t["name"]: t for t in body["tables"]}
    flights = tables["flights"]
    assert flights["group"] == "instances" and flights["key_column"] == "id"
    assert flights["natural_key"] == ["year", "month", "day", "carrier", "flight", "origin"]
    origin = {r["name"]: r for r in flights["references"]}["origin"]
    assert origin == {"name": "origin", "columns": ["origin"], "table": "airports",
                      "target_columns": ["faa"], "soft": False}
    assert {"name": "tailnum", "table": "planes"}.items() <= {r["name"]: r for r in flights["references"]}[
        "tailnum"].items() and {r["name"]: r for r in flights["references"]}["tailnum"]["soft"]
    assert {(r["table"], r["name"]) for r in tables["airports"]["referenced_by"]} >= {
        ("flights", "origin"), ("flights", "dest")}
    lat = {c["name"]: c for c in tables["airports"]["columns"]}["lat"]
    assert lat["schema"]["minimum"] == -90 and lat["schema"]["maximum"] == 90  # the same checks as /openapi.json
    version = {c["name"]: c for c in flights["columns"]}[flights["system_columns"]["version"]]
    assert version["system"] == "version" and not version["writable"]
    assert all(not c["writable"] for c in tables["ingest_batches"]["columns"])


def test_catalog_says_where_a_tables_history_and_claims_are_read(client):
    tables = {t["name"]: t for t in client.get("/catalog").json()["tables"]}
    assert (tables["airlines"]["history"], tables["airlines"]["claims"]) == ("airlines_history", True)
    assert tables["airlines_history"]["name"] in tables  # the versions are a read-only table of their own
    # sources keep no history (depot's configuration), and the batches log is no versioned table either
    assert (tables["sources"]["history"], tables["sources"]["claims"]) == (None, False)
    assert tables["ingest_batches"]["history"] is None


def test_with_keys_the_shell_is_open_but_the_catalog_needs_a_key_and_tells_its_role():
    with TestClient(create_app(memory_container(api_keys=KEYS))) as client:
        assert client.get("/console").status_code == 200
        assert client.get("/console/static/console.js").status_code == 200
        assert client.get("/catalog").status_code == 401
        assert client.get("/catalog", headers={"Authorization": f"Bearer {READ_KEY}"}).json()["access"] == "read"
        assert client.get("/catalog", headers={"Authorization": f"Bearer {WRITE_KEY}"}).json()["access"] == "write"
        assert client.get("/consolex").status_code == 401  # only the console's own paths are open
