"""The pooler warning at start: said when the server's own port is not the one dialled, and only then."""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

from sqlalchemy.engine import make_url

from adapters.postgres.pooler import pooler_warning


def engine(url: str, server_port: int | None):
    @contextmanager
    def connect():
        yield SimpleNamespace(exec_driver_sql=lambda sql: SimpleNamespace(scalar=lambda: server_port))

    return SimpleNamespace(url=make_url(url), connect=connect)


def test_a_pgbouncer_port_in_front_of_postgres_is_said():
    warning = pooler_warning(engine("postgresql+psycopg2://depot@db:6432/depot", 5432))
    assert "6432" in warning and "5432" in warning and "pool_mode=session" in warning


def test_postgres_dialled_directly_is_silent():
    assert pooler_warning(engine("postgresql+psycopg2://depot@db/depot", 5432)) is None
    assert pooler_warning(engine("postgresql+psycopg2://depot@db:5433/depot", 5433)) is None


def test_a_unix_socket_is_not_looked_at():
    assert pooler_warning(engine("postgresql+psycopg2://postgres@/depot?host=/tmp/pg", None)) is None
