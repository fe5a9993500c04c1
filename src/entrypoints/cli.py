"""The `depot` command: serve, migrate, tables, makemigration, ingest."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated

import typer

from entrypoints.container import Container, database_url
from entrypoints.settings import Settings

app = typer.Typer(help="depot: a data-ingestion REST service over PostgreSQL.", no_args_is_help=True,
                  add_completion=False)


def _container(**overrides: object) -> Container:
    container = Container()
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        container.settings.override(Settings(**values))
    except ValueError as error:  # pydantic's ValidationError (keys hidden): the reason, not a traceback
        typer.echo(f"depot: {error}", err=True)
        raise typer.Exit(2) from None
    return container


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (DEPOT_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (DEPOT_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (DEPOT_WORKERS).")] = None,
    storage: Annotated[str | None, typer.Option(help="postgres or memory (DEPOT_STORAGE).")] = None,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from entrypoints.security import exposure_problem

    try:
        container = _container(host=host, port=port, workers=workers, storage=storage)
        settings = container.settings()
    except ValueError as error:  # pydantic's ValidationError, with the keys themselves hidden
        typer.echo(f"depot: {error}", err=True)
        raise typer.Exit(2) from None
    if settings.storage == "memory" and settings.workers > 1:
        raise typer.BadParameter("--storage memory keeps rows in one process; use --workers 1", param_hint="--workers")
    problem = exposure_problem(settings.host, settings.api_keys)
    if problem:
        typer.echo(f"depot: {problem}", err=True)
        raise typer.Exit(2)
    embedded = None
    if settings.storage == "postgres":
        # Start (or find) the database once, here, and hand its URL to every worker.
        if not settings.database_url:
            from adapters.postgres.embedded import start_embedded, stop_on_signals

            embedded = start_embedded(settings.data_dir)
            # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal; this
            # handler then stops the embedded PostgreSQL (atexit does not run on a signal).
            stop_on_signals(embedded)
        os.environ["DEPOT_DATABASE_URL"] = database_url(settings)
        if settings.migrate_on_start:
            from adapters.postgres.db import migrate

            migrate(container.engine())
            container.shutdown_resources()
            os.environ["DEPOT_MIGRATE_ON_START"] = "false"
    for name in ("storage", "host", "port", "workers"):
        os.environ[f"DEPOT_{name.upper()}"] = str(getattr(settings, name))
    if settings.workers > 1:
        from entrypoints.lifecycle import PARENT_ENV

        os.environ[PARENT_ENV] = str(os.getpid())  # workers stop if this process is killed
    typer.echo(f"depot on http://{settings.host}:{settings.port} ({settings.storage})", err=True)
    try:
        uvicorn.run(
            "entrypoints.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            access_log=False,  # depot writes its own line per request (entrypoints/access_log.py)
            timeout_graceful_shutdown=30,
        )
    finally:
        if embedded is not None:
            embedded.stop()


@app.command()
def migrate() -> None:
    """Bring the database up to the newest migration, and stop."""
    from adapters.postgres.db import current_revision
    from adapters.postgres.db import migrate as run_migrations

    container = _container(storage="postgres")
    engine = container.engine()
    run_migrations(engine)
    typer.echo(f"database at revision {current_revision(engine)}")
    container.shutdown_resources()


@app.command()
def tables(
    storage: Annotated[str | None, typer.Option(help="postgres or memory.")] = None,
) -> None:
    """Every table of the catalog with its row count."""
    from entrypoints.app import prepare_storage
    from service_layer.services import count_rows

    container = _container(storage=storage)
    prepare_storage(container)
    counts = count_rows(container.uow())
    catalog = container.catalog()
    width = max(len(name) for name in counts)
    for name, count in counts.items():
        typer.echo(f"{name:<{width}}  {catalog[name].group:<10}  {count:>10}")
    container.shutdown_resources()


@app.command()
def makemigration(message: Annotated[str, typer.Argument(help="What the migration does.")]) -> None:
    """Generate the migration that brings the schema up to the catalog (after you declare a table)."""
    import tempfile

    from alembic import command

    from adapters.postgres.db import alembic_config, make_engine
    from adapters.postgres.db import migrate as run_migrations
    from adapters.postgres.embedded import start_embedded

    with tempfile.TemporaryDirectory(prefix="depot-makemigration-") as scratch:
        server = start_embedded(scratch)
        engine = make_engine(server.url)
        try:
            run_migrations(engine)
            with engine.begin() as connection:
                command.revision(alembic_config(connection), message=message, autogenerate=True)
        finally:
            engine.dispose()
            server.stop()


@app.command()
def ingest(
    table: Annotated[str, typer.Argument(help="The table to ingest into.")],
    file: Annotated[str, typer.Argument(help="A .csv, .json (array), .ndjson/.jsonl file, or a .zip of one.")],
    source: Annotated[str, typer.Option(help="The source code (a row of sources).")] = "manual",
    mode: Annotated[str, typer.Option(help="best_effort or atomic.")] = "best_effort",
    on_conflict: Annotated[str, typer.Option(help="update, ignore or error.")] = "update",
    csv_null: Annotated[str | None, typer.Option(help="The CSV null token (default: the empty field).")] = None,
    storage: Annotated[str | None, typer.Option(help="postgres or memory.")] = None,
) -> None:
    """Ingest a file straight into the store, as POST /ingest/{table} would; print the batch report."""
    import json

    from rich.console import Console
    from rich.progress import Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    from domain.errors import DepotError, InvalidRows
    from entrypoints.app import prepare_storage
    from entrypoints.streams import file_chunks, open_data_file
    from service_layer.ingest import IngestRequest, ingest_batch

    class RowsPerSecond(ProgressColumn):
        def render(self, task) -> Text:  # type: ignore[no-untyped-def]
            elapsed = task.elapsed or 0
            return Text(f"{task.completed / elapsed:,.0f} rows/s" if elapsed else "")

    console = Console(stderr=True)
    container = _container(storage=storage)
    status = 0
    try:
        prepare_storage(container)
        stream, kind = open_data_file(file)
        with stream, Progress(SpinnerColumn(), TextColumn("{task.description}"),
                              TextColumn("{task.completed:,.0f} rows"), RowsPerSecond(), TimeElapsedColumn(),
                              console=console) as progress:
            task = progress.add_task(f"{table} <- {file}", total=None)
            report = ingest_batch(
                container.uow(), IngestRequest(table, source, mode, on_conflict),
                file_chunks(stream, kind, csv_null=csv_null),
                on_progress=lambda r: progress.update(task, completed=r.received),
            ).as_dict()
    except InvalidRows as failed:
        report, status = failed.details, 1
    except DepotError as error:
        console.print(f"[red]{error.message}[/red]" + (f"\n{error.details}" if error.details else ""))
        container.shutdown_resources()
        raise typer.Exit(2) from None
    except OSError as error:
        console.print(f"[red]{error}[/red]")
        container.shutdown_resources()
        raise typer.Exit(2) from None
    container.shutdown_resources()
    typer.echo(json.dumps(report, indent=2, default=str))
    if status or report.get("status") != "completed":
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
