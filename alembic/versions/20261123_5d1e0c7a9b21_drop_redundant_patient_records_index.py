"""Drop the redundant index on patient_records.submission_id

Revision ID: 5d1e0c7a9b21
Revises: a752b1ea1c4f
Create Date: 2026-11-23

The unique constraint on (submission_id, case_key) already serves lookups by submission; the
separate index only cost time on every bulk load of patient rows.

One concern per revision; reversible; no data loss. It must run on SQLite (batch mode) and
PostgreSQL: use op.batch_alter_table for ALTERs and name every constraint.
"""

from __future__ import annotations

from alembic import op

revision = "5d1e0c7a9b21"
down_revision = "a752b1ea1c4f"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("patient_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_records_submission_id"))


def downgrade() -> None:
    with op.batch_alter_table("patient_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_patient_records_submission_id"), ["submission_id"], unique=False
        )
