"""Citus DDL for the tables a migration creates: create_reference_table / create_distributed_table.

Each statement is a DO block that acts only where the citus extension is installed, so one
migration file serves a plain PostgreSQL (where it does nothing) and a Citus coordinator alike;
`depot makemigration` runs on a scratch PostgreSQL without Citus and still writes them.

Order matters to Citus: the tables referenced come before the ones that reference them, so
depot's sources and ingest_batches (referenced by every table with provenance) become reference
tables first, then the catalog's reference tables, then its distributed ones. A distributed table
with a surrogate id gets its primary key widened to (id, distribution column), since Citus
requires the distribution column in every unique constraint.

Only generated and tested as text here: no Citus server ran (see the README's "Scaling out").
"""

from __future__ import annotations

from domain.schema import CITUS_REFERENCE_SYSTEM_TABLES, Catalog, Table


def _literal(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _when_citus(body: str, table: str) -> str:
    """Run `body` on a Citus coordinator only, and only once per table (a rerun finds it distributed).
    Two IFs, not one AND: PL/pgSQL plans the inner query only when it runs, and pg_dist_partition
    exists only where Citus does."""
    return (
        "DO $$ BEGIN "
        "IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN "
        f"IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = {_literal(table)}::regclass) THEN "
        f"{body} END IF; END IF; END $$"
    )


def _distribute(spec: Table) -> str:
    body = ""
    if spec.surrogate is not None and spec.distribute_by not in spec.primary_key:
        name = _ident(spec.unique_constraint_name(spec.primary_key))
        columns = ", ".join(_ident(c) for c in (*spec.primary_key, spec.distribute_by))
        body += (f"ALTER TABLE {_ident(spec.name)} DROP CONSTRAINT {name}, "
                 f"ADD CONSTRAINT {name} PRIMARY KEY ({columns}); ")
    body += f"PERFORM create_distributed_table({_literal(spec.name)}, {_literal(spec.distribute_by or '')});"
    return _when_citus(body, spec.name)


def citus_statements(catalog: Catalog, created: list[str]) -> list[str]:
    """The DO blocks for the tables of `created` that the catalog declares distributed or reference."""
    specs = [catalog[name] for name in created if name in catalog]
    distributed = [s for s in specs if s.distribute_by is not None]
    references = [s for s in specs if s.reference]
    if not distributed and not references:
        return []
    # depot's own tables by their schema-qualified name: they are not on the catalog's search_path.
    system = [f"{catalog.schema_of(name)}.{name}" for name in CITUS_REFERENCE_SYSTEM_TABLES if name in catalog]
    statements = [_when_citus(f"PERFORM create_reference_table({_literal(name)});", name) for name in system]
    statements += [_when_citus(f"PERFORM create_reference_table({_literal(s.name)});", s.name) for s in references]
    statements += [_distribute(s) for s in distributed]
    return statements
