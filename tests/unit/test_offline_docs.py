"""/docs and /redoc load with no network: their pages name no external host, and depot serves their assets."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from entrypoints.app import create_app
from tests.unit.conftest import memory_container

KEY = "w-" + "a" * 30


@pytest.fixture
def keyed() -> TestClient:
    with TestClient(create_app(memory_container(api_keys=f"{KEY}:write"))) as client:
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_page_names_no_external_host_and_its_assets_load(keyed, page):
    response = keyed.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not re.search(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}", html), "the page names an external host"
    references = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
    assets = [r for r in references if r.startswith("/docs/")]
    assert assets, html
    for asset in assets:  # without a key, as a browser opening the page has none yet
        loaded = keyed.get(asset)
        assert loaded.status_code == 200, asset
        assert len(loaded.content) > 1000


def test_swagger_ui_points_at_the_openapi_document(keyed):
    html = keyed.get("/docs").text
    assert "'/openapi.json'" in html or '"/openapi.json"' in html
    assert keyed.get("/openapi.json").status_code == 200


def test_the_redoc_script_is_served_as_javascript(keyed):
    response = keyed.get("/docs/redoc.standalone.js")
    assert "javascript" in response.headers["content-type"]
    assert "max-age" in response.headers["cache-control"]
