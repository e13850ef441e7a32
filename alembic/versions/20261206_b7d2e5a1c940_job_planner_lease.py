"""Jobs record the consumer running their handler, with a lease it renews

Revision ID: b7d2e5a1c940
Revises: 8141d3b4dae4
Create Date: 2026-12-06

jobs.worker (host:pid) and jobs.lease_until: the consumer that runs a job's handler (e.g. a
benchmark run planning its measure tasks) renews the lease while it works, so the reaper can
fail a job whose consumer was killed before its tasks were queued. NULL for jobs run in
process and for rows made before. Downgrade drops both columns.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b7d2e5a1c940"
down_revision = "8141d3b4dae4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("worker", sa.String(length=200), nullable=True))
    op.add_column("jobs", sa.Column("lease_until", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("worker")
