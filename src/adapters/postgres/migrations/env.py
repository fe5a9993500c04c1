"""Alembic's environment: the target is the metadata derived from the catalog."""

from alembic import context

from adapters.postgres.db import make_engine
from adapters.postgres.tables import build_metadata, render_item
from domain.catalog import CATALOG

target_metadata = build_metadata(CATALOG)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True,
                      render_item=render_item)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # `alembic` run by hand: DEPOT_DATABASE_URL names the database
    import os

    with make_engine(os.environ["DEPOT_DATABASE_URL"]).begin() as own:
        _run(own)
