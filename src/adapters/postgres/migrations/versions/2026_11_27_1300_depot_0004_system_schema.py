"""depot's tables in a schema of their own: each batch records the schema of the catalog that ran it, and an
idempotency key is unique per schema and table

The move itself (tables and version table) happens before this runs: adapters/postgres/db.py
_move_system_tables, since the version table it would be recorded in is what moves.

Revision ID: depot_0004
Revises: depot_0003
Create Date: 2026-11-27 13:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'depot_0004'
down_revision: str | None = 'depot_0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('ingest_batches', sa.Column('schema', sa.Text(collation='C'), server_default=sa.text("'public'"),
                                              nullable=False))
    op.drop_constraint('uq_ingest_batches_table_idempotency_key', 'ingest_batches', type_='unique')
    op.create_unique_constraint('uq_ingest_batches_schema_table_idempotency_key', 'ingest_batches',
                                ['schema', 'table', 'idempotency_key'])


def downgrade() -> None:
    op.drop_constraint('uq_ingest_batches_schema_table_idempotency_key', 'ingest_batches', type_='unique')
    op.create_unique_constraint('uq_ingest_batches_table_idempotency_key', 'ingest_batches',
                                ['table', 'idempotency_key'])
    op.drop_column('ingest_batches', 'schema')
