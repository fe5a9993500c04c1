"""The composition root: the only place where adapters meet ports."""

from __future__ import annotations

from dependency_injector import containers, providers

from adapters.memory.repository import InMemoryUnitOfWork, MemoryStore
from adapters.postgres.db import make_engine
from adapters.postgres.embedded import start_embedded
from adapters.postgres.repository import SqlAlchemyUnitOfWork
from entrypoints.catalogs import load_catalog
from entrypoints.settings import Settings


def database_url(settings: Settings) -> str:
    """The configured PostgreSQL, or the embedded one started (once) under DEPOT_DATA_DIR."""
    if settings.database_url:
        return settings.database_url
    return start_embedded(settings.data_dir).url


def _engine(settings: Settings, catalog):  # noqa: ANN001
    engine = make_engine(database_url(settings), pool_size=settings.pool_size,
                         statement_timeout_ms=settings.statement_timeout_ms, schema=catalog.schema,
                         read_url=settings.read_database_url)
    yield engine
    engine.dispose()


class Container(containers.DeclarativeContainer):
    wiring_config = containers.WiringConfiguration(modules=["entrypoints.dependencies"])

    settings = providers.Singleton(Settings)
    loaded_catalog = providers.Singleton(load_catalog, settings.provided.catalog, settings.provided.migrations_dir)
    catalog = providers.Callable(lambda loaded: loaded.catalog, loaded_catalog)
    history = providers.Callable(lambda loaded: loaded.history, loaded_catalog)
    storage = providers.Callable(lambda s: s.storage, settings)

    engine = providers.Resource(_engine, settings, catalog)
    memory_store = providers.Singleton(MemoryStore, catalog)

    uow = providers.Selector(
        storage,
        postgres=providers.Factory(SqlAlchemyUnitOfWork, engine, catalog, writers=settings.provided.ingest_writers),
        memory=providers.Factory(InMemoryUnitOfWork, memory_store),
    )
