"""Fixtures of the integration tests: empty databases on the session's PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg2
import pytest


def _with_database(url: str, name: str) -> str:
    head, _, query = url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}?{query}"


@pytest.fixture
def new_database(pg_server: str) -> Iterator[Callable[[], str]]:
    """Makes empty databases on the session's server; drops them afterwards."""
    admin = psycopg2.connect(_with_database(pg_server, "postgres").replace("+psycopg2", ""))
    admin.autocommit = True
    made: list[str] = []

    def make() -> str:
        name = f"depot_schema_{uuid.uuid4().hex[:8]}"
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return _with_database(pg_server, name)

    yield make
    with admin.cursor() as cursor:
        for name in made:
            cursor.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()
