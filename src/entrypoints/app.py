"""The FastAPI application factory. Nothing is built at import: tests and the CLI call create_app()."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool

from entrypoints import dependencies
from entrypoints.container import Container
from entrypoints.http import JSONResponse, install_error_handlers
from entrypoints.ingest_routes import install_ingest_routes
from entrypoints.lifecycle import die_with_parent
from entrypoints.openapi import components
from entrypoints.routes import api_routes, install_table_routes
from entrypoints.security import document_security, install_security

try:
    VERSION = version("depot")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    VERSION = "0.0.0"


def prepare_storage(container: Container) -> None:
    """Bring the store up to the catalog before the first request: migrations on PostgreSQL; then
    mark failed the ingest batches a dead process left running."""
    settings = container.settings()
    if settings.storage == "postgres" and settings.migrate_on_start:
        from adapters.postgres.db import migrate

        migrate(container.engine())
    from service_layer.ingest import fail_orphaned_batches

    fail_orphaned_batches(container.uow())


def create_app(container: Container | None = None) -> FastAPI:
    die_with_parent()  # a no-op unless this is a worker of `depot serve --workers N`
    container = container or Container()
    container.wire(modules=[dependencies])
    settings = container.settings()
    catalog = container.catalog()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(prepare_storage, container)
        yield
        container.shutdown_resources()

    app = FastAPI(
        title="depot",
        version=VERSION,
        description="A data-ingestion REST service over PostgreSQL. Every table below is derived "
                    "from one declaration in the catalog.",
        lifespan=lifespan,
        default_response_class=JSONResponse,
    )
    app.state.container = container
    app.state.settings = settings
    install_error_handlers(app)
    install_security(app, settings)

    @app.get("/health", tags=["service"], operation_id="health")
    def health() -> JSONResponse:
        return JSONResponse({"status": "ok", "storage": settings.storage, "version": VERSION})

    install_table_routes(app, catalog)
    install_ingest_routes(app)

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=api_routes(app.routes))
            schema.setdefault("components", {}).setdefault("schemas", {}).update(components(list(catalog)))
            document_security(schema, settings)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
