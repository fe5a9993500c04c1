"""Drift is refused at start, through the real CLI: a catalog changed without its migration stops
`depot serve` and `depot migrate` with exit 2 and each difference named; a migration that fails on
the stored rows stops with PostgreSQL's message; no traceback on either path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.e2e.depot_process import DepotProcess
from tests.e2e.test_own_tables import database, depot  # noqa: F401 (database is a fixture)

CATALOG = """
    from typing import Annotated
    from depot import Catalog, OneOf

    CATALOG = Catalog()

    @CATALOG.table("stores", group="primary", natural_key=("store",))
    class Store:
        store: str
        kind: Annotated[str, OneOf({kinds!r})] = "shop"
        {more}
"""


def declare(project: Path, kinds: tuple[str, ...], more: str = "") -> None:
    (project / "catalog.py").write_text(textwrap.dedent(CATALOG).format(kinds=kinds, more=more))


def test_serve_and_migrate_refuse_a_catalog_changed_without_its_migration(tmp_path: Path, database: str):  # noqa: F811
    project = tmp_path / "shop"
    project.mkdir()
    declare(project, ("shop", "online"))
    env = {"DEPOT_DATABASE_URL": database}
    assert depot("makemigration", "first", cwd=project).returncode == 0
    assert depot("migrate", cwd=project, **env).returncode == 0
    engine = sa.create_engine(database.replace("postgresql://", "postgresql+psycopg2://"), poolclass=NullPool)
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO stores (store, kind) VALUES ('main', 'shop'), ('n7', 'online')")

    declare(project, ("shop", "kiosk"), "city: str | None = None")  # and no makemigration
    server = DepotProcess(cwd=project, database_url=database, log_dir=tmp_path)
    assert server.process.wait(120) == 2
    said = server.log()
    assert "stores.city: missing" in said
    assert "check ck_stores_kind_choice" in said and "kiosk" in said
    assert "depot makemigration" in said and "depot migrate" in said
    assert "Traceback" not in said
    refused = depot("migrate", cwd=project, **env)
    assert refused.returncode == 2 and "stores.city: missing" in refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout

    made = depot("makemigration", "kiosks", cwd=project)
    assert made.returncode == 0 and made.stdout.startswith("wrote ") and "Generating" not in made.stdout
    assert "check ck_stores_kind_choice: \"kind\" IN ('shop', 'kiosk')" in made.stdout
    failed = depot("migrate", cwd=project, **env)  # 'online' is stored: the new check refuses it
    assert failed.returncode == 2, failed.stderr
    assert "rolled back" in failed.stderr and "ck_stores_kind_choice" in failed.stderr
    assert 'stored: stores {"store":"n7","kind":"online"' in failed.stderr  # the row in the way
    assert "Traceback" not in failed.stderr + failed.stdout
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM stores WHERE kind = 'online'")
    assert depot("migrate", cwd=project, **env).returncode == 0

    server = DepotProcess(cwd=project, database_url=database, log_dir=tmp_path, log_level="warning")
    try:
        with server.wait_healthy().client() as http:
            assert http.post("/api/stores", json={"store": "gare", "kind": "kiosk", "city": "Lyon"}).status_code == 201
    finally:
        server.stop()
    engine.dispose()


def test_makemigration_refuses_a_likely_rename_and_says_both_ways_out(tmp_path: Path):
    project = tmp_path / "shop"
    project.mkdir()
    declare(project, ("shop",), "city: str | None = None")
    assert depot("makemigration", "first", cwd=project).returncode == 0
    declare(project, ("shop",), "town: str | None = None")
    refused = depot("makemigration", "second", cwd=project)
    assert refused.returncode == 2
    assert "'city'" in refused.stderr and "'town'" in refused.stderr
    assert "Renamed('city')" in refused.stderr and "--allow-drop" in refused.stderr
    assert "Traceback" not in refused.stderr and len(list((project / "migrations").glob("*.py"))) == 1

    declare(project, ("shop",), "town: Annotated[str | None, Renamed('city')] = None")
    (project / "catalog.py").write_text((project / "catalog.py").read_text().replace(
        "from depot import Catalog, OneOf", "from depot import Catalog, OneOf, Renamed"))
    renamed = depot("makemigration", "second", cwd=project)
    assert renamed.returncode == 0, renamed.stderr
    assert renamed.stdout.splitlines()[1:] == [  # the derived tables rename with their table
        "  stores.city: renamed to town", "  stores_claims.city: renamed to town",
        "  stores_history.city: renamed to town"]
