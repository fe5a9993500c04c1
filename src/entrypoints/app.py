"""The FastAPI application factory. Nothing is built at import: tests and the CLI call create_app()."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI, Response
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from entrypoints import metrics
from entrypoints.batch import install_batch_route
from entrypoints.catalog_route import install_catalog_route
from entrypoints.container import Container
from entrypoints.docs import install_offline_docs
from entrypoints.health import Readiness, install_probes
from entrypoints.http import JSONResponse, install_error_handlers
from entrypoints.ingest_routes import install_ingest_routes
from entrypoints.lifecycle import collect_garbage_less_often, die_with_parent, sweeping_orphans
from entrypoints.openapi import components
from entrypoints.routes import api_routes, install_table_routes
from entrypoints.security import document_security, install_security

try:
    VERSION = version("depot")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    VERSION = "0.0.0"


def prepare_storage(container: Container) -> None:
    """Bring the store up to the catalog before the first request: migrations on PostgreSQL, then the
    live schema compared with the catalog (SchemaDrift, MigrationFailed: depot does not serve a store
    that is not what its catalog says); then mark failed the ingest batches a dead process left running."""
    settings = container.settings()
    if settings.storage == "postgres":
        from adapters.postgres.db import migrate, refuse_drift

        if settings.migrate_on_start:
            migrate(container.engine(), container.history())
        refuse_drift(container.engine(), container.catalog())
    from service_layer.ingest import fail_orphaned_batches

    fail_orphaned_batches(container.uow())


class StoreRefused(Exception):
    """The store could not be migrated, or is not what the catalog declares; the message says why."""


class RefusedStoreAtStartup:
    """Says in one line why the store was refused at start, instead of the traceback that Starlette
    sends the server when a lifespan fails (uvicorn logs that message, then exits)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold_failure(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                held.append(message)
            else:
                await send(message)

        try:
            await self.app(scope, receive, hold_failure)
        except StoreRefused as refused:
            await send({"type": "lifespan.startup.failed", "message": f"depot: {refused}"})
            raise
        except BaseException:
            for message in held:
                await send(message)
            raise


def _prepare_or_refuse(container: Container) -> None:
    from adapters.postgres.schema_changes import MigrationFailed, SchemaDrift  # memory raises neither
    from entrypoints.failures import record_failure

    try:
        prepare_storage(container)
    except (SchemaDrift, MigrationFailed) as refused:
        raise StoreRefused(str(refused)) from None
    except Exception as error:  # noqa: BLE001 - one line at start, the traceback in the failure log
        raise StoreRefused(record_failure(container.settings().data_dir, error, "at start")) from None


def create_app(container: Container | None = None) -> FastAPI:
    die_with_parent()  # a no-op unless this is a worker of `depot serve --workers N`
    container = container or Container()
    settings = container.settings()
    catalog = container.catalog()
    readiness = Readiness()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_prepare_or_refuse, container)
        collect_garbage_less_often()
        readiness.prepared = True
        readiness.drain_on_sigterm()
        async with sweeping_orphans(container), metrics.sampling(container) as pools:
            app.state.pools = pools
            yield
        readiness.draining = True
        container.shutdown_resources()

    app = FastAPI(
        title="depot",
        version=VERSION,
        description="A data-ingestion REST service over PostgreSQL. Every table below is derived "
                    "from one declaration in the catalog.",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        docs_url=None,  # served from a package by install_offline_docs, not from a CDN
        redoc_url=None,
    )
    app.state.container = container
    app.state.settings = settings
    app.state.readiness = readiness
    install_error_handlers(app)
    install_security(app, settings)
    if settings.read_database_url and settings.storage == "postgres":
        from entrypoints.replicas import ReadYourWritesMiddleware

        app.add_middleware(ReadYourWritesMiddleware)
    app.add_middleware(metrics.RequestMetricsMiddleware)
    app.add_middleware(RefusedStoreAtStartup)

    @app.get("/health", tags=["service"], operation_id="health")
    def health() -> JSONResponse:
        return JSONResponse({"status": "ok", "storage": settings.storage, "version": VERSION})

    install_probes(app, container, readiness)
    install_offline_docs(app)
    app.state.pools = []

    @app.get("/metrics", tags=["service"], operation_id="metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        body, content_type = metrics.metrics_response(app.state.pools)
        return Response(body, media_type=content_type)

    install_batch_route(app)  # before the table routes, whose /api/{table} would take /api/_batch
    install_table_routes(app, catalog)
    install_ingest_routes(app)
    install_catalog_route(app, catalog)
    if settings.console:
        from entrypoints.console import install_console

        install_console(app, VERSION)

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
