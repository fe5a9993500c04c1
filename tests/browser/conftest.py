"""Headless Chromium (Debian's `chromium`, driven by Playwright for Python) against a real `depot serve`.

Playwright's own browser download cannot work offline, so the tests use the system browser through
`executable_path`; without it (or without the Python driver) they are skipped with a message.
One depot and one browser serve the whole module: the machine is shared.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.e2e.conftest import _database
from tests.e2e.depot_process import DepotProcess

SCREENSHOTS = Path(__file__).parent / "screenshots"
READ_KEY, WRITE_KEY = "console-read-" + "r" * 20, "console-write-" + "w" * 20


def chromium_path() -> str | None:
    return os.environ.get("DEPOT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium); the console's browser "
                    "tests did not run")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install -e '.[dev]'); browser tests did not run")
    with sync_playwright() as playwright:
        # --no-sandbox: CI and this machine run as root, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def depot(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`depot serve` with a read and a write key, over a database of its own, dropped after."""
    name = f"depot_console_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(_database(pg_server, "postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    process = DepotProcess(database_url=_database(pg_server, name).replace("+psycopg2", ""), log_level="warning",
                           log_dir=tmp_path_factory.mktemp("console-server"),
                           api_keys=f"{READ_KEY}:read,{WRITE_KEY}:write")
    try:
        yield process.wait_healthy().url
    finally:
        process.stop()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="module")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS
