"""The collaborative's calendar: learning cycles' windows and deadlines, and reopenings.

These rows decide when members may submit (:mod:`qicollab.schedule.windows`); the workflow
that moves a cycle through its life lives in :mod:`qicollab.cycles`.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qicollab.db import Base, CreatedAtMixin, enum_column

if TYPE_CHECKING:
    from qicollab.measures.models import Measure


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
    #: Why the coordinators locked with data missing or unreviewed (kept while locked; every
    #: lock and unlock reason also stays in the audit log).
    lock_reason: Mapped[str | None] = mapped_column(sa.Text)

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
