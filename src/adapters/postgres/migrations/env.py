"""Alembic's environment: the target is the metadata derived from the catalog that depot hands in.

depot always runs Alembic itself (`depot migrate`, `depot makemigration`, or at start), passing the
connection and the catalog in `config.attributes`; see adapters/postgres/db.py.
"""

from alembic import context

from adapters.postgres.schema_changes import compared_schemas, refine, reverse, summary
from adapters.postgres.tables import build_metadata, render_item

attributes = context.config.attributes
owns_table = attributes.get("owns_table")  # set by makemigration: which tables this history may touch
metadata = build_metadata(attributes["catalog"])


def include_object(obj, name, type_, reflected, compare_to) -> bool:  # noqa: ANN001
    return type_ != "table" or owns_table is None or owns_table(name)


def process_revision_directives(context_, revision, directives) -> None:  # noqa: ANN001
    """Renames, casts, check contents and drop order, which autogenerate does not do (schema_changes.py)."""
    script = directives[0]
    script.upgrade_ops = refine(
        script.upgrade_ops, context_.connection, attributes["catalog"], metadata,
        owns=owns_table or (lambda name: True), allow_drop=attributes.get("allow_drop", False),
        compare_type=context_.impl.compare_type,
    )
    script.downgrade_ops = reverse(script.upgrade_ops)
    if script.upgrade_ops.is_empty():
        directives[:] = []  # no change: write no file
        return
    if attributes.get("summary") is not None:
        attributes["summary"] += summary(script.upgrade_ops)


connection = attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    compare_type=True,
    render_item=render_item,  # keeps the escaped colons of CHECKs in the written migration
    include_object=include_object,
    **compared_schemas(attributes["catalog"]),
    version_table_schema=attributes.get("version_table_schema"),
    process_revision_directives=process_revision_directives,
)
with context.begin_transaction():
    context.run_migrations()
