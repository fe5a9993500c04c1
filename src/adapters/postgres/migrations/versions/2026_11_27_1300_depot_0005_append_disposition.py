"""append disposition: ingest_batches.disposition may be append (tables declared unique_natural_key=False)

Revision ID: depot_0005
Revises: depot_0004
Create Date: 2026-11-27 13:00:00.000000
"""
from collections.abc import Sequence

from alembic import op

revision: str = 'depot_0005'
down_revision: str | None = 'depot_0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = 'ck_ingest_batches_disposition_choice'


def upgrade() -> None:
    op.drop_constraint(op.f(CHECK), 'ingest_batches')
    op.create_check_constraint(op.f(CHECK), 'ingest_batches',
                               "\"disposition\" IN ('upsert', 'insert_only', 'replace_partition', 'delete', 'append')")


def downgrade() -> None:
    # An append batch recorded meanwhile would fail the old check: it is named upsert, the closest.
    op.execute("UPDATE ingest_batches SET disposition = 'upsert' WHERE disposition = 'append'")
    op.drop_constraint(op.f(CHECK), 'ingest_batches')
    op.create_check_constraint(op.f(CHECK), 'ingest_batches',
                               "\"disposition\" IN ('upsert', 'insert_only', 'replace_partition', 'delete')")
