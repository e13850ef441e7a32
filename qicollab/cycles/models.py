"""The cycles domain's own records: learning sessions and chart annotations.

Periods, cycles and reopenings are the calendar every domain reads; they live in
:mod:`qicollab.schedule` and are re-exported here for the code that knows them by this name.
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from qicollab.db import Base, CreatedAtMixin, enum_column
from qicollab.schedule.calendar import CycleReopening, CycleStatus, LearningCycle, cycle_measures
from qicollab.schedule.periods import Granularity, ReportingPeriod

__all__ = [
    "Annotation",
    "AnnotationKind",
    "CycleReopening",
    "CycleStatus",
    "Granularity",
    "LearningCycle",
    "LearningSession",
    "ReportingPeriod",
    "cycle_measures",
]


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
