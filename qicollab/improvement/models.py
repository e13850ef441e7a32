"""Teams' improvement work: the change package, PDSA cycles, progress scores, monthly reports and
what learning sessions hold (agenda, material, attendance).

The change package is the collaborative's driver diagram: one aim, primary drivers, secondary
drivers under them, and change ideas under the secondary drivers. PDSA cycles belong to one
member team; each draws a dated marker on the linked measures' charts through the annotations
the charts already read (``pdsa_annotations`` remembers which ones are its own).
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qicollab.db import Base, CreatedAtMixin, enum_column, utcnow
from qicollab.measures.models import Measure


class ChangePackage(CreatedAtMixin, Base):
    """The collaborative's aim, at the root of its driver diagram (one per collaborative)."""

    __tablename__ = "change_packages"

    id: Mapped[int] = mapped_column(primary_key=True)
    collaborative_id: Mapped[int] = mapped_column(
        sa.ForeignKey("collaboratives.id", ondelete="RESTRICT"), unique=True
    )
    aim: Mapped[str] = mapped_column(sa.Text)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Driver(CreatedAtMixin, Base):
    """A primary driver (no parent) or a secondary driver (under a primary one)."""

    __tablename__ = "change_drivers"

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(
        sa.ForeignKey("change_packages.id", ondelete="CASCADE"), index=True
    )
    parent_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("change_drivers.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    position: Mapped[int] = mapped_column(default=0)


class ChangeIdea(CreatedAtMixin, Base):
    """A change teams can test, under a secondary driver; evidence links say why it works."""

    __tablename__ = "change_ideas"

    id: Mapped[int] = mapped_column(primary_key=True)
    package_id: Mapped[int] = mapped_column(
        sa.ForeignKey("change_packages.id", ondelete="CASCADE"), index=True
    )
    driver_id: Mapped[int] = mapped_column(
        sa.ForeignKey("change_drivers.id", ondelete="RESTRICT"), index=True
    )
    #: A short stable label teams and reports use, e.g. ``C4``.
    code: Mapped[str] = mapped_column(sa.String(16))
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    position: Mapped[int] = mapped_column(default=0)

    evidence: Mapped[list[ChangeEvidence]] = relationship(
        order_by="ChangeEvidence.id", cascade="all, delete-orphan"
    )

    __table_args__ = (sa.UniqueConstraint("package_id", "code"),)


class ChangeEvidence(Base):
    """A reference behind a change idea: a guideline, a trial, another collaborative's report."""

    __tablename__ = "change_evidence"

    id: Mapped[int] = mapped_column(primary_key=True)
    change_idea_id: Mapped[int] = mapped_column(
        sa.ForeignKey("change_ideas.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(sa.String(200))
    url: Mapped[str] = mapped_column(sa.String(500))


class ActDecision(enum.StrEnum):
    """What the team decided after studying a cycle."""

    ADOPT = "adopt"
    ADAPT = "adapt"
    ABANDON = "abandon"


pdsa_measures = sa.Table(
    "pdsa_measures",
    Base.metadata,
    sa.Column("pdsa_id", sa.ForeignKey("pdsa_cycles.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("measure_id", sa.ForeignKey("measures.id", ondelete="RESTRICT"), primary_key=True),
)

#: The chart annotations a PDSA cycle drew (rewritten whenever the cycle is saved).
pdsa_annotations = sa.Table(
    "pdsa_annotations",
    Base.metadata,
    sa.Column("pdsa_id", sa.ForeignKey("pdsa_cycles.id", ondelete="CASCADE"), primary_key=True),
    sa.Column(
        "annotation_id", sa.ForeignKey("annotations.id", ondelete="CASCADE"), primary_key=True
    ),
)


class PdsaCycle(CreatedAtMixin, Base):
    """One Plan-Do-Study-Act cycle of a member team; ``follows_id`` chains a ramp of cycles."""

    __tablename__ = "pdsa_cycles"

    id: Mapped[int] = mapped_column(primary_key=True)
    collaborative_id: Mapped[int] = mapped_column(
        sa.ForeignKey("collaboratives.id", ondelete="RESTRICT"), index=True
    )
    member_id: Mapped[int] = mapped_column(
        sa.ForeignKey("members.id", ondelete="CASCADE"), index=True
    )
    #: The previous cycle of the same ramp (None for a ramp's first cycle).
    follows_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("pdsa_cycles.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(sa.String(200))
    #: The change tested: one of the package's ideas, or the team's own (``own_change``).
    change_idea_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("change_ideas.id", ondelete="SET NULL"), index=True
    )
    own_change: Mapped[str] = mapped_column(sa.String(200), default="")
    # Plan
    objective: Mapped[str] = mapped_column(sa.Text, default="")
    prediction: Mapped[str] = mapped_column(sa.Text, default="")
    starts_on: Mapped[dt.date]
    ends_on: Mapped[dt.date | None]
    # Do
    what_was_done: Mapped[str] = mapped_column(sa.Text, default="")
    observations: Mapped[str] = mapped_column(sa.Text, default="")
    # Study
    study: Mapped[str] = mapped_column(sa.Text, default="")
    # Act
    decision: Mapped[ActDecision | None] = mapped_column(
        enum_column(ActDecision, name="act_decision")
    )
    decided_on: Mapped[dt.date | None]
    next_steps: Mapped[str] = mapped_column(sa.Text, default="")
    #: An adopted change starts a new control-chart phase from ``decided_on``.
    starts_phase: Mapped[bool] = mapped_column(default=False)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    measures: Mapped[list[Measure]] = relationship(secondary=pdsa_measures, order_by=Measure.code)
    change_idea: Mapped[ChangeIdea | None] = relationship()

    __table_args__ = (
        sa.CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name="pdsa_not_reversed"),
        sa.CheckConstraint(
            "decided_on IS NULL OR decided_on >= starts_on", name="pdsa_decided_after_start"
        ),
    )


class Scorer(enum.StrEnum):
    """Who gave a progress score: the team itself or the collaborative's faculty."""

    TEAM = "team"
    FACULTY = "faculty"


class ProgressScore(CreatedAtMixin, Base):
    """A month's score on the IHI Assessment Scale (1.0 to 5.0 in steps of 0.5)."""

    __tablename__ = "progress_scores"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(
        sa.ForeignKey("members.id", ondelete="CASCADE"), index=True
    )
    #: The first day of the month scored.
    month: Mapped[dt.date]
    scorer: Mapped[Scorer] = mapped_column(enum_column(Scorer, name="progress_scorer"))
    #: Twice the score (2..10), so that only whole half-steps can be stored.
    halves: Mapped[int]
    comment: Mapped[str] = mapped_column(sa.Text, default="")
    scored_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))

    __table_args__ = (
        sa.UniqueConstraint("member_id", "month", "scorer"),
        sa.CheckConstraint("halves BETWEEN 2 AND 10", name="score_on_scale"),
    )

    @property
    def score(self) -> float:
        """The score on the scale."""
        return self.halves / 2


class MonthlyReport(CreatedAtMixin, Base):
    """A team's short account of a month: what it tested, what it learned, its barriers."""

    __tablename__ = "monthly_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(
        sa.ForeignKey("members.id", ondelete="CASCADE"), index=True
    )
    month: Mapped[dt.date]
    tested: Mapped[str] = mapped_column(sa.Text, default="")
    learned: Mapped[str] = mapped_column(sa.Text, default="")
    barriers: Mapped[str] = mapped_column(sa.Text, default="")
    submitted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("member_id", "month"),)


class AgendaItem(Base):
    """One item of a learning session's agenda."""

    __tablename__ = "session_agenda_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        sa.ForeignKey("learning_sessions.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)
    #: Local start time as ``HH:MM`` (optional).
    starts_at: Mapped[str] = mapped_column(sa.String(5), default="")
    title: Mapped[str] = mapped_column(sa.String(200))
    presenter: Mapped[str] = mapped_column(sa.String(200), default="")


class MaterialKind(enum.StrEnum):
    """What is attached to a learning session."""

    BLINDED_SUMMARY = "blinded-summary"
    CHANGE_PACKAGE = "change-package"
    LINK = "link"


class SessionMaterial(Base):
    """Material handed out at a session: a run's blinded summary, the change package, a link."""

    __tablename__ = "session_materials"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(
        sa.ForeignKey("learning_sessions.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[MaterialKind] = mapped_column(enum_column(MaterialKind, name="material_kind"))
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("benchmark_runs.id"))
    title: Mapped[str] = mapped_column(sa.String(200))
    url: Mapped[str] = mapped_column(sa.String(500), default="")


class SessionAttendance(Base):
    """How many people of a member team attended a learning session."""

    __tablename__ = "session_attendance"

    session_id: Mapped[int] = mapped_column(
        sa.ForeignKey("learning_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[int] = mapped_column(
        sa.ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    people: Mapped[int] = mapped_column(default=1)

    __table_args__ = (sa.CheckConstraint("people >= 0", name="attendance_not_negative"),)
