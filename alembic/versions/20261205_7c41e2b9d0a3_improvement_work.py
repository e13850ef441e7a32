"""Improvement work: change package, PDSA cycles, progress scores, monthly reports, sessions

Revision ID: 7c41e2b9d0a3
Revises: 5d1e0c7a9b21
Create Date: 2026-12-05

New tables only: the driver diagram (change_packages, change_drivers, change_ideas,
change_evidence), PDSA cycles with their linked measures and the chart annotations they drew,
monthly progress scores and team reports, and learning sessions' agenda, material and
attendance. Downgrade drops them (with their rows).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "7c41e2b9d0a3"
down_revision = "5d1e0c7a9b21"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "change_packages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collaborative_id", sa.Integer(), nullable=False),
        sa.Column("aim", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collaborative_id"],
            ["collaboratives.id"],
            name=op.f("fk_change_packages_collaborative_id_collaboratives"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_packages")),
        sa.UniqueConstraint("collaborative_id", name=op.f("uq_change_packages_collaborative_id")),
    )
    op.create_table(
        "change_drivers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("package_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["change_packages.id"],
            name=op.f("fk_change_drivers_package_id_change_packages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["change_drivers.id"],
            name=op.f("fk_change_drivers_parent_id_change_drivers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_drivers")),
    )
    with op.batch_alter_table("change_drivers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_change_drivers_package_id"), ["package_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_change_drivers_parent_id"), ["parent_id"], unique=False
        )

    op.create_table(
        "change_ideas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("package_id", sa.Integer(), nullable=False),
        sa.Column("driver_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["driver_id"],
            ["change_drivers.id"],
            name=op.f("fk_change_ideas_driver_id_change_drivers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["change_packages.id"],
            name=op.f("fk_change_ideas_package_id_change_packages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_ideas")),
        sa.UniqueConstraint("package_id", "code", name=op.f("uq_change_ideas_package_id_code")),
    )
    with op.batch_alter_table("change_ideas", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_change_ideas_driver_id"), ["driver_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_change_ideas_package_id"), ["package_id"], unique=False
        )

    op.create_table(
        "monthly_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("tested", sa.Text(), nullable=False),
        sa.Column("learned", sa.Text(), nullable=False),
        sa.Column("barriers", sa.Text(), nullable=False),
        sa.Column("submitted_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_monthly_reports_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by_id"], ["users.id"], name=op.f("fk_monthly_reports_submitted_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monthly_reports")),
        sa.UniqueConstraint("member_id", "month", name=op.f("uq_monthly_reports_member_id_month")),
    )
    with op.batch_alter_table("monthly_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_monthly_reports_member_id"), ["member_id"], unique=False
        )

    op.create_table(
        "progress_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column(
            "scorer",
            sa.Enum(
                "team",
                "faculty",
                name="progress_scorer",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("halves", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("scored_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "halves BETWEEN 2 AND 10", name=op.f("ck_progress_scores_score_on_scale")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_progress_scores_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["scored_by_id"], ["users.id"], name=op.f("fk_progress_scores_scored_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_progress_scores")),
        sa.UniqueConstraint(
            "member_id", "month", "scorer", name=op.f("uq_progress_scores_member_id_month_scorer")
        ),
    )
    with op.batch_alter_table("progress_scores", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_progress_scores_member_id"), ["member_id"], unique=False
        )

    op.create_table(
        "change_evidence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_idea_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["change_idea_id"],
            ["change_ideas.id"],
            name=op.f("fk_change_evidence_change_idea_id_change_ideas"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_evidence")),
    )
    with op.batch_alter_table("change_evidence", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_change_evidence_change_idea_id"), ["change_idea_id"], unique=False
        )

    op.create_table(
        "pdsa_cycles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collaborative_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("follows_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("change_idea_id", sa.Integer(), nullable=True),
        sa.Column("own_change", sa.String(length=200), nullable=False),
        sa.Column("objective", sa.Text(), nullable=False),
        sa.Column("prediction", sa.Text(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column("what_was_done", sa.Text(), nullable=False),
        sa.Column("observations", sa.Text(), nullable=False),
        sa.Column("study", sa.Text(), nullable=False),
        sa.Column(
            "decision",
            sa.Enum(
                "adopt",
                "adapt",
                "abandon",
                name="act_decision",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("decided_on", sa.Date(), nullable=True),
        sa.Column("next_steps", sa.Text(), nullable=False),
        sa.Column("starts_phase", sa.Boolean(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "decided_on IS NULL OR decided_on >= starts_on",
            name=op.f("ck_pdsa_cycles_pdsa_decided_after_start"),
        ),
        sa.CheckConstraint(
            "ends_on IS NULL OR ends_on >= starts_on", name=op.f("ck_pdsa_cycles_pdsa_not_reversed")
        ),
        sa.ForeignKeyConstraint(
            ["change_idea_id"],
            ["change_ideas.id"],
            name=op.f("fk_pdsa_cycles_change_idea_id_change_ideas"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["collaborative_id"],
            ["collaboratives.id"],
            name=op.f("fk_pdsa_cycles_collaborative_id_collaboratives"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_pdsa_cycles_created_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["follows_id"],
            ["pdsa_cycles.id"],
            name=op.f("fk_pdsa_cycles_follows_id_pdsa_cycles"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_pdsa_cycles_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pdsa_cycles")),
    )
    with op.batch_alter_table("pdsa_cycles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pdsa_cycles_change_idea_id"), ["change_idea_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_pdsa_cycles_collaborative_id"), ["collaborative_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_pdsa_cycles_follows_id"), ["follows_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_pdsa_cycles_member_id"), ["member_id"], unique=False)

    op.create_table(
        "pdsa_annotations",
        sa.Column("pdsa_id", sa.Integer(), nullable=False),
        sa.Column("annotation_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["annotation_id"],
            ["annotations.id"],
            name=op.f("fk_pdsa_annotations_annotation_id_annotations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["pdsa_id"],
            ["pdsa_cycles.id"],
            name=op.f("fk_pdsa_annotations_pdsa_id_pdsa_cycles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pdsa_id", "annotation_id", name=op.f("pk_pdsa_annotations")),
    )
    op.create_table(
        "pdsa_measures",
        sa.Column("pdsa_id", sa.Integer(), nullable=False),
        sa.Column("measure_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["measure_id"],
            ["measures.id"],
            name=op.f("fk_pdsa_measures_measure_id_measures"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["pdsa_id"],
            ["pdsa_cycles.id"],
            name=op.f("fk_pdsa_measures_pdsa_id_pdsa_cycles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pdsa_id", "measure_id", name=op.f("pk_pdsa_measures")),
    )
    op.create_table(
        "session_agenda_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.String(length=5), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("presenter", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["learning_sessions.id"],
            name=op.f("fk_session_agenda_items_session_id_learning_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_agenda_items")),
    )
    with op.batch_alter_table("session_agenda_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_session_agenda_items_session_id"), ["session_id"], unique=False
        )

    op.create_table(
        "session_attendance",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("people", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "people >= 0", name=op.f("ck_session_attendance_attendance_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_session_attendance_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["learning_sessions.id"],
            name=op.f("fk_session_attendance_session_id_learning_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "member_id", name=op.f("pk_session_attendance")),
    )
    op.create_table(
        "session_materials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "blinded-summary",
                "change-package",
                "link",
                name="material_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["benchmark_runs.id"],
            name=op.f("fk_session_materials_run_id_benchmark_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["learning_sessions.id"],
            name=op.f("fk_session_materials_session_id_learning_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_materials")),
    )
    with op.batch_alter_table("session_materials", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_session_materials_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("session_materials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_materials_session_id"))

    op.drop_table("session_materials")
    op.drop_table("session_attendance")
    with op.batch_alter_table("session_agenda_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_agenda_items_session_id"))

    op.drop_table("session_agenda_items")
    op.drop_table("pdsa_measures")
    op.drop_table("pdsa_annotations")
    with op.batch_alter_table("pdsa_cycles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pdsa_cycles_member_id"))
        batch_op.drop_index(batch_op.f("ix_pdsa_cycles_follows_id"))
        batch_op.drop_index(batch_op.f("ix_pdsa_cycles_collaborative_id"))
        batch_op.drop_index(batch_op.f("ix_pdsa_cycles_change_idea_id"))

    op.drop_table("pdsa_cycles")
    with op.batch_alter_table("change_evidence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_evidence_change_idea_id"))

    op.drop_table("change_evidence")
    with op.batch_alter_table("progress_scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_progress_scores_member_id"))

    op.drop_table("progress_scores")
    with op.batch_alter_table("monthly_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monthly_reports_member_id"))

    op.drop_table("monthly_reports")
    with op.batch_alter_table("change_ideas", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_ideas_package_id"))
        batch_op.drop_index(batch_op.f("ix_change_ideas_driver_id"))

    op.drop_table("change_ideas")
    with op.batch_alter_table("change_drivers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_change_drivers_parent_id"))
        batch_op.drop_index(batch_op.f("ix_change_drivers_package_id"))

    op.drop_table("change_drivers")
    op.drop_table("change_packages")
