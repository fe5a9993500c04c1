"""source profiles, dispositions, rejections acted on: sources.profile; each batch's effective profile,
disposition, counts and failure; a rejected row's dismissal

Revision ID: depot_0003
Revises: depot_0001
Create Date: 2026-11-27 09:45:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'depot_0003'
down_revision: str | None = 'depot_0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('sources', sa.Column('profile', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('ingest_batches', sa.Column('profile', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('ingest_batches', sa.Column('profile_hash', sa.Text(collation='C'), nullable=True))
    op.add_column('ingest_batches', sa.Column('retired', sa.Integer(), server_default=sa.text('0'), nullable=False))
    op.add_column('ingest_batches', sa.Column('deleted', sa.Integer(), server_default=sa.text('0'), nullable=False))
    op.add_column('ingest_batches', sa.Column('disposition', sa.Text(collation='C'),
                                              server_default=sa.text("'upsert'"), nullable=False))
    op.add_column('ingest_batches', sa.Column('error', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('rejected_rows', sa.Column('dismissed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('rejected_rows', sa.Column('dismissed_reason', sa.Text(collation='C'), nullable=True))
    op.create_check_constraint(op.f('ck_ingest_batches_disposition_choice'), 'ingest_batches',
                               "\"disposition\" IN ('upsert', 'insert_only', 'replace_partition', 'delete')")


def downgrade() -> None:
    op.drop_column('rejected_rows', 'dismissed_reason')
    op.drop_column('rejected_rows', 'dismissed_at')
    op.drop_column('ingest_batches', 'error')
    op.drop_constraint(op.f('ck_ingest_batches_disposition_choice'), 'ingest_batches')
    for column in ('disposition', 'deleted', 'retired'):
        op.drop_column('ingest_batches', column)
    op.drop_column('ingest_batches', 'profile_hash')
    op.drop_column('ingest_batches', 'profile')
    op.drop_column('sources', 'profile')
