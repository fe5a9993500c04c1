"""The `depot` command: serve, migrate, tables, makemigration, ingest, init, adopt, backup, restore."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from entrypoints.catalogs import CatalogNotFound
from entrypoints.container import Container, database_url
from entrypoints.settings import Settings

app = typer.Typer(help="depot: a data-ingestion REST service over PostgreSQL.", no_args_is_help=True,
                  add_completion=False)


CatalogOption = Annotated[
    str | None, typer.Option("--catalog", help="Your catalog: ./catalog.py or a module (DEPOT_CATALOG).")
]


def _container(**overrides: object) -> Container:
    """The composition root with the command line's settings, and the catalog loaded (or exit 2)."""
    container = Container()
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        container.settings.override(Settings(**values))
        container.loaded_catalog()
    except (ValueError, CatalogNotFound) as error:  # pydantic's ValidationError hides keys: the reason only
        typer.echo(f"depot: {error}", err=True)
        raise typer.Exit(2) from None
    return container


@contextmanager
def _store_refusals(container: Container, *, cleanup: Callable[[], None] | None = None) -> Iterator[None]:
    """A migration that failed, or a store that is not the catalog's: a short message and exit 2."""
    from adapters.postgres.schema_changes import MigrationFailed, SchemaDrift

    try:
        yield
    except (MigrationFailed, SchemaDrift) as refused:
        typer.echo(f"depot: {refused}", err=True)
        container.shutdown_resources()
        if cleanup is not None:
            cleanup()
        raise typer.Exit(2) from None


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
    catalog: CatalogOption = None,
) -> None:
    """Serve the HTTP API."""
    from adapters.postgres.embedded import EmbeddedNotReady
    from entrypoints.failures import record_failure

    # typer's own exits and usage errors (it vendors its click): answers, not failures.
    expected = (typer.Exit, typer.Abort, KeyboardInterrupt,
                *(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"))
    container = _container(host=host, port=port, workers=workers, storage=storage, catalog=catalog)
    settings = container.settings()
    try:
        _serve(container, settings)
    except expected:
        raise
    except EmbeddedNotReady as not_ready:
        typer.echo(f"depot: {not_ready}", err=True)
        raise typer.Exit(2) from None
    except Exception as error:  # noqa: BLE001 - the promise is: no traceback on the terminal, ever
        typer.echo(f"depot: {record_failure(settings.data_dir, error, 'in depot serve')}", err=True)
        raise typer.Exit(1) from None


def _serve(container: Container, settings: Settings) -> None:
    if settings.workers > 1 and settings.storage == "postgres":
        _metrics_dir_for_workers()
    import uvicorn

    from entrypoints.security import exposure_problem

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

            embedded = start_embedded(settings.data_dir, timeout=settings.start_timeout_seconds)
            os.environ["DEPOT_EMBEDDED_DATABASE"] = "1"  # for the metrics of the workers
            # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal; this
            # handler then stops the embedded PostgreSQL (atexit does not run on a signal).
            stop_on_signals(embedded)
        os.environ["DEPOT_DATABASE_URL"] = database_url(settings)
        from entrypoints.app import prepare_storage

        # Here, once, so that no worker starts on a store that failed to migrate or drifted.
        with _store_refusals(container, cleanup=embedded.stop if embedded is not None else None):
            prepare_storage(container)
        if embedded is None:
            from adapters.postgres.pooler import pooler_warning

            warning = pooler_warning(container.engine())
            if warning:
                typer.echo(f"depot: warning: {warning}", err=True)
        os.environ["DEPOT_MIGRATE_ON_START"] = "false"
        container.shutdown_resources()
    # The workers build their own container from the environment: hand them what the command line said.
    for name in ("storage", "host", "port", "workers", "catalog", "migrations_dir"):
        if getattr(settings, name) is not None:
            os.environ[f"DEPOT_{name.upper()}"] = str(getattr(settings, name))
    if settings.workers > 1:
        from entrypoints.lifecycle import PARENT_ENV

        os.environ[PARENT_ENV] = str(os.getpid())  # workers stop if this process is killed
    typer.echo(f"depot on http://{settings.host}:{settings.port} ({settings.storage}, catalog "
               f"{container.loaded_catalog().name})", err=True)
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
            **_worker_healthcheck(uvicorn.run),
        )
    finally:
        if embedded is not None:
            embedded.stop()


def _worker_healthcheck(run: Callable[..., object]) -> dict[str, int]:
    """uvicorn's supervisor kills a worker that does not answer its ping in 5 s, and a worker still
    importing depot on a loaded machine does not: it was killed and started again, over and over,
    and never served. 30 s, where this uvicorn has the setting (0.3x and later)."""
    import inspect

    return {"timeout_worker_healthcheck": 30} if "timeout_worker_healthcheck" in inspect.signature(run).parameters \
        else {}


def _metrics_dir_for_workers() -> None:
    """Several workers write their metrics to files that a scrape adds up (prometheus-client's
    multiprocess mode): a fresh folder per run, set before anything imports prometheus_client, and
    removed at exit. One set by the user (PROMETHEUS_MULTIPROC_DIR) is theirs: used, never removed."""
    import atexit
    import shutil
    import tempfile

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    folder = tempfile.mkdtemp(prefix="depot-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)


@app.command()
def migrate(catalog: CatalogOption = None) -> None:
    """Bring the database up to the newest migration of depot and of your catalog, and stop."""
    from adapters.postgres.db import current_revisions, refuse_drift
    from adapters.postgres.db import migrate as run_migrations

    container = _container(storage="postgres", catalog=catalog)
    engine = container.engine()
    with _store_refusals(container):
        run_migrations(engine, container.history())
        refuse_drift(engine, container.catalog())
    typer.echo(f"database at revision {', '.join(current_revisions(engine, container.catalog()))}")
    container.shutdown_resources()


@app.command()
def tables(
    storage: Annotated[str | None, typer.Option(help="postgres or memory.")] = None,
    catalog: CatalogOption = None,
) -> None:
    """Every table of the catalog with its row count."""
    from entrypoints.app import prepare_storage
    from service_layer.services import count_rows

    container = _container(storage=storage, catalog=catalog)
    with _store_refusals(container):
        prepare_storage(container)
    counts = count_rows(container.uow())
    catalog = container.catalog()
    width = max(len(name) for name in counts)
    for name, count in counts.items():
        typer.echo(f"{name:<{width}}  {catalog[name].group:<10}  {count:>10}")
    container.shutdown_resources()


@app.command()
def makemigration(
    message: Annotated[str, typer.Argument(help="What the migration does.")],
    catalog: CatalogOption = None,
    system: Annotated[bool, typer.Option(hidden=True, help="Write depot's own history (depot's developers).")] = False,
    allow_drop: Annotated[bool, typer.Option(
        "--allow-drop", help="Write a dropped column as dropped even where another of its kind is added.")] = False,
) -> None:
    """Write the migration that brings the schema up to your catalog (after you declare or change a table).

    It starts a scratch embedded PostgreSQL, applies every migration there, and writes the
    difference into your catalog's migrations/ folder (or DEPOT_MIGRATIONS_DIR). A column renamed
    is declared with Renamed("old"); a table that loses a column and gains one of the same kind is
    refused as a likely rename unless --allow-drop.
    """
    import tempfile

    from adapters.postgres.db import generate_migration, make_engine
    from adapters.postgres.embedded import start_embedded
    from adapters.postgres.schema_changes import ChangeRefused

    container = _container(catalog=catalog)
    history = container.history()
    summary: list[str] = []
    with tempfile.TemporaryDirectory(prefix="depot-makemigration-") as scratch:
        server = start_embedded(scratch)
        engine = make_engine(server.url, schema=history.catalog.schema)
        try:
            with _store_refusals(container):
                written = generate_migration(engine, history, message, system=system, allow_drop=allow_drop,
                                             summary=summary)
        except ChangeRefused as refused:
            typer.echo(f"depot makemigration: nothing written.\n{refused}", err=True)
            raise typer.Exit(2) from None
        finally:
            engine.dispose()
            server.stop()
    typer.echo(f"wrote {written}" if written else "no changes")
    for line in summary:
        typer.echo(f"  {line}")


@app.command()
def ingest(
    table: Annotated[str, typer.Argument(help="The table to ingest into.")],
    file: Annotated[str, typer.Argument(
        help="A .csv, .json (array), .ndjson/.jsonl or .parquet file; .csv.gz and .ndjson.gz; or a .zip of one.")],
    source: Annotated[str, typer.Option(help="The source code (a row of sources).")] = "manual",
    mode: Annotated[str, typer.Option(help="best_effort or atomic.")] = "best_effort",
    on_conflict: Annotated[str, typer.Option(help="update, ignore or error.")] = "update",
    csv_null: Annotated[str | None, typer.Option(help="The CSV null token (default: the empty field).")] = None,
    storage: Annotated[str | None, typer.Option(help="postgres or memory.")] = None,
    catalog: CatalogOption = None,
    url: Annotated[str | None, typer.Option(
        help="A running depot (http://HOST:PORT): POST the file to its /ingest, not straight to the store.")] = None,
    disposition: Annotated[str | None, typer.Option(
        help="upsert, insert_only, replace_partition, delete, or append (tables declared unique_natural_key=False). "
             "Default: append on those tables, upsert on the others.")
    ] = None,
    partition: Annotated[str | None, typer.Option(help="replace_partition: COLUMN[,COLUMN].")] = None,
) -> None:
    """Ingest a file straight into the store, as POST /ingest/{table} would; print the batch report."""
    import json

    from rich.console import Console
    from rich.progress import Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    from domain.errors import DepotError, InvalidRows
    from entrypoints.app import prepare_storage
    from entrypoints.streams import file_chunks, open_data_file
    from service_layer.ingest import IngestRequest, check_request, ingest_batch

    class RowsPerSecond(ProgressColumn):
        def render(self, task) -> Text:  # type: ignore[no-untyped-def]
            elapsed = task.elapsed or 0
            return Text(f"{task.completed / elapsed:,.0f} rows/s" if elapsed else "")

    console = Console(stderr=True)
    if url is not None:
        params = {"source": source, "mode": mode, "on_conflict": on_conflict,
                  **({"disposition": disposition} if disposition is not None else {}),
                  **({"csv_null": csv_null} if csv_null is not None else {}),
                  **({"partition": partition} if partition else {})}
        _post_file(url, table, file, params, console)
        return
    container = _container(storage=storage, catalog=catalog)
    status = 0
    try:
        with _store_refusals(container):
            prepare_storage(container)
        stream, kind = open_data_file(file)
        request = IngestRequest(table, source, mode, on_conflict, disposition=disposition,
                                partition=tuple(filter(None, (partition or "").split(","))))
        # the source's profile says where a JSON file's rows sit
        record_path = check_request(container.uow(), request).profile.get("record_path") if kind == "json" else None
        with stream, Progress(SpinnerColumn(), TextColumn("{task.description}"),
                              TextColumn("{task.completed:,.0f} rows"), RowsPerSecond(), TimeElapsedColumn(),
                              console=console) as progress:
            task = progress.add_task(f"{table} <- {file}", total=None)
            report = ingest_batch(
                container.uow(), request, file_chunks(stream, kind, csv_null=csv_null, record_path=record_path),
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


def _post_file(url: str, table: str, file: str, params: dict[str, str], console: object) -> None:
    """depot ingest --url: the file streamed to a running server's POST /ingest/{table} (gzip files as they
    are, with Content-Encoding: gzip), a progress bar over the bytes sent, and the server's report."""
    import json

    import httpx
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    from domain.errors import DepotError
    from entrypoints.streams import MEDIA_TYPES, file_kind

    try:
        kind = file_kind(file)
        size = os.path.getsize(file)
        handle = open(file, "rb")  # noqa: SIM115 (closed below)
    except (DepotError, OSError) as error:
        typer.echo(f"depot: {getattr(error, 'message', error)}", err=True)
        raise typer.Exit(2) from None
    headers = {"Content-Type": MEDIA_TYPES[kind]}
    if file.lower().endswith(".gz"):
        headers["Content-Encoding"] = "gzip"
    with handle, Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                          console=console) as progress:  # type: ignore[arg-type]
        task = progress.add_task(f"{table} <- {file}", total=size)

        def body():
            while block := handle.read(1 << 20):
                progress.advance(task, len(block))
                yield block

        try:
            response = httpx.post(f"{url.rstrip('/')}/ingest/{table}", params=params, content=body(),
                                  headers=headers, timeout=None)
        except httpx.HTTPError as error:
            typer.echo(f"depot: {url} did not answer ({error})", err=True)
            raise typer.Exit(2) from None
    try:
        answer = response.json()
    except ValueError:
        answer = {"status": response.status_code, "body": response.text[:500]}
    if response.status_code == 422 and isinstance(answer, dict) and isinstance(answer.get("details"), dict):
        answer = answer["details"]  # a failed atomic batch: its report
    typer.echo(json.dumps(answer, indent=2, default=str))
    if response.status_code >= 400 and response.status_code != 422:
        raise typer.Exit(2)
    if answer.get("status") != "completed":
        raise typer.Exit(1)


@app.command()
def init(directory: Annotated[Path, typer.Argument(help="The project folder to create.")]) -> None:
    """Create a project of your own: catalog.py with one example table, migrations/, a README, .gitignore."""
    from importlib.resources import files

    if directory.exists() and any(directory.iterdir()):
        typer.echo(f"depot: {directory} is not empty; init writes a new project into an empty or new folder",
                   err=True)
        raise typer.Exit(2)
    template = files("depot") / "templates" / "project"
    (directory / "migrations").mkdir(parents=True)
    for name, target in (("catalog.py", "catalog.py"), ("README.md", "README.md"), ("gitignore", ".gitignore")):
        (directory / target).write_text((template / name).read_text(encoding="utf-8"), encoding="utf-8")
    typer.echo(f"created {directory}/: catalog.py, migrations/, README.md, .gitignore\n"
               f"next: cd {directory} && depot makemigration \"first\" && depot serve")


@app.command()
def adopt(
    database_url: Annotated[str, typer.Option("--database-url", help="The database whose tables to adopt.")],
    out: Annotated[Path, typer.Option("--out", help="The folder for catalog.py and migrations/ (new or empty).")],
    schema: Annotated[str, typer.Option(help="The schema to read.")] = "public",
    natural_key: Annotated[list[str] | None, typer.Option(
        "--natural-key", help="TABLE=col1,col2: the natural key of a table that has only a surrogate id (repeatable).",
    )] = None,
) -> None:
    """Write a catalog and its first migration for a database that already has tables (create_all, by hand, ...).

    Reads the database and changes nothing in it; `depot migrate` with DEPOT_CATALOG=OUT/catalog.py
    then adds depot's system columns to the tables, keeping every row. What cannot be declared is
    printed and written into catalog.py as a comment.
    """
    from entrypoints.adoption import AdoptRefused, parse_natural_keys
    from entrypoints.adoption import adopt as run_adoption

    try:
        result = run_adoption(database_url, out, schema=schema, natural_keys=parse_natural_keys(natural_key or []))
    except AdoptRefused as refused:
        typer.echo(f"depot: {refused}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"adopted {len(result.adopted)} tables: {', '.join(result.adopted)}")
    if result.views:
        typer.echo(f"and {len(result.views)} views (read-only): {', '.join(result.views)}")
    typer.echo(f"wrote {result.catalog}\nwrote {result.migration}")
    if result.unmapped:
        typer.echo(f"to read ({len(result.unmapped)}; also comments in catalog.py, where they belong):", err=True)
        for line in result.unmapped:
            typer.echo(f"  {line}", err=True)
    typer.echo(f"next: DEPOT_CATALOG={result.catalog} DEPOT_DATABASE_URL=... depot migrate")


def _embedded_url(settings: Settings) -> tuple[str, bool]:
    """The embedded database's libpq URL (a socket in the data folder) and whether it runs now."""
    from adapters.postgres.embedded import DATABASE, embedded_socket

    socket_dir, running = embedded_socket(settings.data_dir)
    return f"postgresql://postgres@/{DATABASE}?host={socket_dir}", running


@app.command("db-url")
def db_url() -> None:
    """Print the database URL, for psql, pgcli, BI tools and scripts (libpq syntax)."""
    container = _container(storage="postgres")
    settings = container.settings()
    if settings.database_url:
        typer.echo(settings.database_url.replace("postgresql+psycopg2://", "postgresql://", 1))
        return
    url, running = _embedded_url(settings)
    typer.echo(url)
    if not running:
        typer.echo("depot: the embedded PostgreSQL is not running now: it runs while `depot serve` does "
                   "(or `depot psql`)", err=True)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def psql(ctx: typer.Context) -> None:
    """Open psql on the database (the embedded one is started for the session if it is not running).
    Arguments after the command go to psql: depot psql -c 'select count(*) from sources'."""
    import subprocess

    from adapters.postgres.embedded import psql_binary, start_embedded

    container = _container(storage="postgres")
    settings = container.settings()
    embedded = None
    if settings.database_url:
        url = settings.database_url.replace("postgresql+psycopg2://", "postgresql://", 1)
    else:
        embedded = start_embedded(settings.data_dir)
        url, _ = _embedded_url(settings)
    try:
        status = subprocess.call([str(psql_binary()), url, *ctx.args])
    finally:
        if embedded is not None:
            embedded.stop()  # stops the server only if no other depot process uses it
    raise typer.Exit(status)


@contextmanager
def _database(settings: Settings) -> Iterator[str]:
    """The configured database's URL; the embedded one is started for the command if it is not running
    (and stopped after, unless a `depot serve` uses it)."""
    from adapters.postgres.embedded import EmbeddedNotReady, start_embedded

    if settings.database_url:
        yield settings.database_url
        return
    try:
        embedded = start_embedded(settings.data_dir, timeout=settings.start_timeout_seconds)
    except EmbeddedNotReady as not_ready:
        typer.echo(f"depot: {not_ready}", err=True)
        raise typer.Exit(2) from None
    try:
        yield embedded.url
    finally:
        embedded.stop()


@app.command()
def backup(file: Annotated[Path, typer.Argument(help="The dump to write (PostgreSQL's custom format).")]) -> None:
    """Dump the whole database (your tables, depot's, the migration state) with the wheel's pg_dump."""
    from adapters.postgres.backup import BackupFailed
    from adapters.postgres.backup import backup as dump

    settings = _container(storage="postgres").settings()
    with _database(settings) as url:
        try:
            dump(url, file)
        except BackupFailed as failed:
            typer.echo(f"depot backup: {failed}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"wrote {file} ({file.stat().st_size:,} bytes)")


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="A dump written by depot backup (or pg_dump --format=custom).")],
    force: Annotated[bool, typer.Option("--force", help="Restore into a database that has tables already: "
                                        "the dump's tables are dropped and made again.")] = False,
) -> None:
    """Restore a dump with the wheel's pg_restore, in one transaction. Stop depot serve first."""
    from adapters.postgres.backup import BackupFailed, RestoreRefused
    from adapters.postgres.backup import restore as load

    settings = _container(storage="postgres").settings()
    with _database(settings) as url:
        try:
            load(url, file, force=force)
        except BackupFailed as failed:
            typer.echo(f"depot restore: {failed}", err=True)
            raise typer.Exit(2 if isinstance(failed, RestoreRefused) else 1) from None
    typer.echo(f"restored {file}")


history_app = typer.Typer(help="The history tables: what every row was, and when.", no_args_is_help=True)
app.add_typer(history_app, name="history")


@history_app.command("prune")
def history_prune(
    days: Annotated[int | None, typer.Option(help="Days to keep (default DEPOT_HISTORY_DAYS).", min=0)] = None,
    catalog: CatalogOption = None,
) -> None:
    """Delete the versions that ended more than DAYS ago, in chunks; current versions stay."""
    from entrypoints.app import prepare_storage
    from service_layer.history import prune_history

    container = _container(storage="postgres", catalog=catalog)
    keep = days if days is not None else container.settings().history_days
    if keep is None:
        typer.echo("nothing to prune: DEPOT_HISTORY_DAYS is unset (keep everything); or give --days", err=True)
        container.shutdown_resources()
        raise typer.Exit(2)
    with _store_refusals(container):
        prepare_storage(container)
    pruned = prune_history(container.uow(), keep)
    container.shutdown_resources()
    for table, count in pruned.items():
        typer.echo(f"{table}: {count} pruned")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
