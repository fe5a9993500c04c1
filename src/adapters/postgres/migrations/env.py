"""Alembic's environment: the target is the metadata derived from the catalog that depot hands in.

depot always runs Alembic itself (`depot migrate`, `depot makemigration`, or at start), passing the
connection and the catalog in `config.attributes`; see adapters/postgres/db.py.
"""

from alembic import context

from adapters.postgres.tables import build_metadata, render_item

attributes = context.config.attributes
owns_table = attributes.get("owns_table")  # set by makemigration: which tables this history may touch


def include_object(obj, name, type_, reflected, compare_to) -> bool:  # noqa: ANN001
    return type_ != "table" or owns_table is None or owns_table(name)


def process_revision_directives(context_, revision, directives) -> None:  # noqa: ANN001
    if directives and directives[0].upgrade_ops.is_empty():
        directives[:] = []  # no change: write no file


connection = attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=build_metadata(attributes["catalog"]),
    compare_type=True,
    include_object=include_object,
    process_revision_directives=process_revision_directives,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
