"""The read fast path on PostgreSQL: reads run in autocommit on connections of their own, with the
statement timeout set when a connection opens (not per transaction), no pre-ping, and one retry
when the server has dropped the connection. Real PostgreSQL, real locks, real terminations."""

from __future__ import annotations

import psycopg2.extensions
import pytest
import sqlalchemy as sa

from adapters.postgres.db import make_engine, read_engine
from adapters.postgres.repository import SqlAlchemyUnitOfWork
from adapters.postgres.tables import system_table_sql
from depot.examples.flights.catalog import CATALOG
from domain.errors import Unavailable
from domain.query import Query, key_condition
from service_layer import services

pytestmark = pytest.mark.postgres

TIMEOUT_MS = 300


@pytest.fixture
def timed_engine(pg_server, pg_uow):
    """A brand-new engine, as a freshly started process has: no connection opened yet."""
    engine = make_engine(pg_server, pool_size=2, statement_timeout_ms=TIMEOUT_MS)
    yield engine
    engine.dispose()


def _locked(pg_engine, table: str):
    holder = pg_engine.connect()
    holder.begin()
    holder.exec_driver_sql(f"LOCK TABLE {system_table_sql(CATALOG, table)} IN ACCESS EXCLUSIVE MODE")
    return holder


def test_a_read_on_a_fresh_connection_honours_the_statement_timeout(timed_engine, pg_engine, catalog):
    holder = _locked(pg_engine, "sources")
    try:
        uow = SqlAlchemyUnitOfWork(timed_engine, catalog)
        with pytest.raises(Unavailable) as raised, uow.reading():
            uow.repository("sources").list(Query())
        assert raised.value.code == "57014"
        assert read_engine(timed_engine).pool.checkedin() == 1, "the read ran on the readers' own pool"
    finally:
        holder.rollback()
        holder.close()


def test_both_pools_open_their_connections_with_the_timeout_set(timed_engine, catalog):
    uow = SqlAlchemyUnitOfWork(timed_engine, catalog)
    with uow.reading():
        assert uow.connection.exec_driver_sql("SHOW statement_timeout").scalar_one() == f"{TIMEOUT_MS}ms"
    with uow:
        assert uow.connection.exec_driver_sql("SHOW statement_timeout").scalar_one() == f"{TIMEOUT_MS}ms"
        uow.connection.exec_driver_sql("SET LOCAL statement_timeout = 5")  # a transaction's own change...
    with uow.reading():  # ...stays in it: the connection keeps the setting it was opened with
        assert uow.connection.exec_driver_sql("SHOW statement_timeout").scalar_one() == f"{TIMEOUT_MS}ms"


def test_a_read_is_one_statement_outside_any_transaction(pg_uow):
    uow = pg_uow()
    with uow.reading():
        uow.repository("sources").list(Query())
        dbapi = uow.connection.connection.dbapi_connection
        # No BEGIN was sent before the SELECT, so there is no transaction to ROLLBACK after it.
        assert dbapi.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    with uow:
        uow.repository("sources").list(Query())
        dbapi = uow.connection.connection.dbapi_connection
        assert dbapi.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INTRANS


def test_a_read_on_a_connection_the_server_dropped_runs_again_on_a_new_one(pg_uow, pg_engine):
    uow = pg_uow()
    with uow.reading():  # open a reader connection and give it back to the pool
        uow.repository("sources").list(Query())
    with pg_engine.connect() as admin:
        killed = admin.exec_driver_sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'depot' AND pid <> pg_backend_pid() AND state = 'idle'"
        ).scalar_one()
    assert killed >= 1
    assert services.get_row(uow, "sources", "manual")["code"] == "manual"


def test_a_unit_of_work_opened_for_reading_refuses_to_write(pg_uow):
    uow = pg_uow()
    with uow.reading():
        with pytest.raises(RuntimeError):
            uow.repository("sources").add([{"code": "x", "name": "X"}])
        with pytest.raises(RuntimeError):
            uow.commit()
    with uow:  # and the next unit of work is a transaction again
        assert uow.read_only is False
        uow.connection.exec_driver_sql("SELECT 1")
        assert uow.connection.in_transaction()


def test_the_migration_lock_wait_is_not_cut_by_the_statement_timeout(pg_server):
    """`migrate` waits for another process's migration; DEPOT_STATEMENT_TIMEOUT_MS is for requests."""
    from adapters.postgres.db import _MIGRATION_LOCK, migrate
    from entrypoints.catalogs import load_catalog

    engine = make_engine(pg_server, pool_size=1, statement_timeout_ms=50)
    holder = sa.create_engine(pg_server.replace("postgresql://", "postgresql+psycopg2://", 1)).connect()
    holder.begin()
    holder.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
    import threading

    release = threading.Timer(0.5, holder.rollback)  # ten timeouts later
    release.start()
    try:
        migrate(engine, load_catalog().history)
    finally:
        release.cancel()
        holder.close()
        engine.dispose()


def test_a_get_by_key_on_a_fresh_connection_honours_the_timeout_and_is_seen_by_error_listeners(
        timed_engine, pg_engine, catalog):
    """The get runs on the driver's cursor (SqlAlchemyRepository._fetch_one): the timeout still
    holds, the error still has PostgreSQL's code, and handle_error listeners (the metrics') still fire."""
    seen: list[str | None] = []
    sa.event.listen(read_engine(timed_engine), "handle_error",
                    lambda context: seen.append(getattr(context.original_exception, "pgcode", None)))
    holder = _locked(pg_engine, "sources")
    try:
        with pytest.raises(Unavailable) as raised:
            services.get_row(SqlAlchemyUnitOfWork(timed_engine, catalog), "sources", "manual")
        assert raised.value.code == "57014" and seen == ["57014"]
    finally:
        holder.rollback()
        holder.close()
    assert services.get_row(SqlAlchemyUnitOfWork(timed_engine, catalog), "sources", "manual")["code"] == "manual"


def test_a_get_by_key_answers_what_a_filtered_list_does_and_sees_its_own_transaction(pg_uow):
    uow = pg_uow()
    with uow:
        uow.repository("sources").add([{"code": "fast", "name": "Fast", "priority": 3}])
        mine = uow.repository("sources").get(("fast",))  # inside the write's transaction, uncommitted
        assert mine is not None and mine["priority"] == 3
        uow.commit()
    with uow.reading():
        got = uow.repository("sources").get(("fast",))
        listed = uow.repository("sources").list(Query(where=key_condition(("code",), ("fast",))))
        assert uow.repository("sources").get(("nothing",)) is None
    assert got == listed[0] and list(got) == list(listed[0])
    assert all(type(got[k]) is type(listed[0][k]) for k in got)
