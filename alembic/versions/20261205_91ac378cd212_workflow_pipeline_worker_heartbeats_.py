"""Workflow: lock reasons, submission warnings, worker heartbeats, e-mail notifications

Revision ID: 91ac378cd212
Revises: 7c41e2b9d0a3
Create Date: 2026-12-05

Adds learning_cycles.lock_reason (why a cycle was locked with data missing) and
submissions.warnings (the warnings a member justified, for reviewers); new tables
worker_heartbeats (live job consumers), notification_opt_outs and sent_notifications (every
mail, unique per user, kind and topic so no reminder goes twice). Downgrade drops them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "91ac378cd212"
down_revision = "7c41e2b9d0a3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("beat_at", sa.DateTime(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_heartbeats")),
        sa.UniqueConstraint("name", name=op.f("uq_worker_heartbeats_name")),
    )
    with op.batch_alter_table("worker_heartbeats", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_worker_heartbeats_beat_at"), ["beat_at"], unique=False)

    op.create_table(
        "notification_opt_outs",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "window-opened",
                "deadline-reminder",
                "submission-returned",
                "reopening-granted",
                "results-published",
                "monthly-report-due",
                name="notification_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notification_opt_outs_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "kind", name=op.f("pk_notification_opt_outs")),
    )
    op.create_table(
        "sent_notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "window-opened",
                "deadline-reminder",
                "submission-returned",
                "reopening-granted",
                "results-published",
                "monthly-report-due",
                name="notification_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "sent",
                "failed",
                name="delivery_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_sent_notifications_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sent_notifications")),
        sa.UniqueConstraint(
            "user_id", "kind", "topic", name=op.f("uq_sent_notifications_user_id_kind_topic")
        ),
    )
    with op.batch_alter_table("learning_cycles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lock_reason", sa.Text(), nullable=True))

    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "warnings",
                sa.JSON(none_as_null=True).with_variant(
                    postgresql.JSONB(none_as_null=True), "postgresql"
                ),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_column("warnings")

    with op.batch_alter_table("learning_cycles", schema=None) as batch_op:
        batch_op.drop_column("lock_reason")

    op.drop_table("sent_notifications")
    op.drop_table("notification_opt_outs")
    with op.batch_alter_table("worker_heartbeats", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_worker_heartbeats_beat_at"))

    op.drop_table("worker_heartbeats")
