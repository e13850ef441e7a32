"""Reporting periods and learning cycles: windows, deadlines, data lock, sessions, changes."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qicollab.db import Base, CreatedAtMixin, enum_column

if TYPE_CHECKING:
    from qicollab.measures.models import Measure


class Granularity(enum.StrEnum):
    """How long a reporting period is."""

    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class ReportingPeriod(Base):
    """A calendar month, quarter or year that submitted values and charts refer to.

    Aggregate values are monthly; patient-level rows under the safe-harbor profile carry no
    date element finer than the year, so they are submitted against yearly periods.
    """

    __tablename__ = "reporting_periods"

    id: Mapped[int] = mapped_column(primary_key=True)
    collaborative_id: Mapped[int] = mapped_column(
        sa.ForeignKey("collaboratives.id", ondelete="RESTRICT"), index=True
    )
    #: A stable label such as ``2024-03``.
    label: Mapped[str] = mapped_column(sa.String(16))
    granularity: Mapped[Granularity] = mapped_column(
        enum_column(Granularity, name="granularity"), default=Granularity.MONTH
    )
    start_date: Mapped[dt.date]
    end_date: Mapped[dt.date]

    __table_args__ = (
        sa.UniqueConstraint("collaborative_id", "label"),
        sa.CheckConstraint("end_date >= start_date", name="period_not_reversed"),
    )


class CycleStatus(enum.StrEnum):
    """Where a learning cycle is in its life."""

    PLANNED = "planned"
    OPEN = "open"  # submission window open
    CLOSED = "closed"  # past the deadline, not yet locked
    LOCKED = "locked"  # data frozen for a benchmark run
    PUBLISHED = "published"  # results released to members


cycle_measures = sa.Table(
    "cycle_measures",
    Base.metadata,
    sa.Column(
        "cycle_id", sa.ForeignKey("learning_cycles.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("measure_id", sa.ForeignKey("measures.id", ondelete="RESTRICT"), primary_key=True),
)


class LearningCycle(CreatedAtMixin, Base):
    """A round of submit, lock, benchmark, report and learn, over a range of periods."""

    __tablename__ = "learning_cycles"

    id: Mapped[int] = mapped_column(primary_key=True)
    collaborative_id: Mapped[int] = mapped_column(
        sa.ForeignKey("collaboratives.id", ondelete="RESTRICT"), index=True
    )
    code: Mapped[str] = mapped_column(sa.String(32))
    title: Mapped[str] = mapped_column(sa.String(200))
    status: Mapped[CycleStatus] = mapped_column(
        enum_column(CycleStatus, name="cycle_status"), default=CycleStatus.PLANNED
    )
    #: The periods whose data this cycle collects (inclusive).
    first_period_start: Mapped[dt.date]
    last_period_end: Mapped[dt.date]
    window_opens_at: Mapped[dt.datetime]
    deadline: Mapped[dt.datetime]
    lock_date: Mapped[dt.datetime | None]
    locked_at: Mapped[dt.datetime | None]
    locked_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))

    measures: Mapped[list[Measure]] = relationship(secondary=cycle_measures)

    __table_args__ = (
        sa.UniqueConstraint("collaborative_id", "code"),
        sa.CheckConstraint("deadline > window_opens_at", name="window_before_deadline"),
        sa.CheckConstraint("last_period_end >= first_period_start", name="periods_not_reversed"),
    )


class CycleReopening(CreatedAtMixin, Base):
    """A coordinator reopened a locked period for a member; the reason stays on record."""

    __tablename__ = "cycle_reopenings"

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(
        sa.ForeignKey("learning_cycles.id", ondelete="CASCADE"), index=True
    )
    member_id: Mapped[int | None] = mapped_column(sa.ForeignKey("members.id"))
    measure_id: Mapped[int | None] = mapped_column(sa.ForeignKey("measures.id"))
    period_id: Mapped[int | None] = mapped_column(sa.ForeignKey("reporting_periods.id"))
    reason: Mapped[str] = mapped_column(sa.Text)
    reopened_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    closes_at: Mapped[dt.datetime | None]


class LearningSession(CreatedAtMixin, Base):
    """A meeting of the collaborative where results are discussed and changes shared."""

    __tablename__ = "learning_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    cycle_id: Mapped[int] = mapped_column(
        sa.ForeignKey("learning_cycles.id", ondelete="CASCADE"), index=True
    )
    held_on: Mapped[dt.date]
    title: Mapped[str] = mapped_column(sa.String(200))
    notes: Mapped[str] = mapped_column(sa.Text, default="")


class AnnotationKind(enum.StrEnum):
    """What a dated note on a chart records."""

    CHANGE = "change"
    PDSA = "pdsa"
    DATA_ISSUE = "data-issue"
    NOTE = "note"


class Annotation(CreatedAtMixin, Base):
    """A dated note (a change, a PDSA cycle, a data issue) drawn on a member's charts."""

    __tablename__ = "annotations"

    id: Mapped[int] = mapped_column(primary_key=True)
    collaborative_id: Mapped[int] = mapped_column(
        sa.ForeignKey("collaboratives.id", ondelete="RESTRICT"), index=True
    )
    member_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("members.id", ondelete="CASCADE"), index=True
    )
    measure_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("measures.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[AnnotationKind] = mapped_column(
        enum_column(AnnotationKind, name="annotation_kind")
    )
    occurred_on: Mapped[dt.date]
    label: Mapped[str] = mapped_column(sa.String(80))
    body: Mapped[str] = mapped_column(sa.Text, default="")
    #: A change that starts a new control-chart phase (new limits from this date on).
    starts_phase: Mapped[bool] = mapped_column(default=False)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
