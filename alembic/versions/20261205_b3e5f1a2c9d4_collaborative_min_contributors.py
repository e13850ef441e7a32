"""Collaboratives: the minimum number of contributing members before peer figures are shown

Revision ID: b3e5f1a2c9d4
Revises: 91ac378cd212
Create Date: 2026-12-05

Figures about peers (distributions, quantiles, the benchmark and who reaches it, funnels,
deciles, outlier statuses) are withheld, with the reason, when fewer members contribute.
Existing collaboratives get the default, 5.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b3e5f1a2c9d4"
down_revision = "91ac378cd212"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("collaboratives", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("min_contributors", sa.Integer(), nullable=False, server_default="5")
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_collaboratives_min_contributors_positive"), "min_contributors >= 1"
        )


def downgrade() -> None:
    with op.batch_alter_table("collaboratives", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("ck_collaboratives_min_contributors_positive"), type_="check"
        )
        batch_op.drop_column("min_contributors")
