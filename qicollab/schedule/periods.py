"""Reporting periods: the months, quarters and years that values and charts refer to."""

from __future__ import annotations

import calendar
import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from qicollab.db import Base, enum_column


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


def month_end(day: dt.date) -> dt.date:
    """The last day of ``day``'s month."""
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def next_month(day: dt.date) -> dt.date:
    """The first day of the month after ``day``'s."""
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def ensure_periods(db: Session, collaborative_id: int, first: dt.date, last: dt.date) -> None:
    """Monthly periods for every month of ``first..last``, yearly ones for every whole year."""
    existing = set(
        db.scalars(
            sa.select(ReportingPeriod.label).where(
                ReportingPeriod.collaborative_id == collaborative_id
            )
        )
    )
    day = first.replace(day=1)
    while day <= last:
        label = f"{day:%Y-%m}"
        if label not in existing:
            db.add(
                ReportingPeriod(
                    collaborative_id=collaborative_id,
                    label=label,
                    granularity=Granularity.MONTH,
                    start_date=day,
                    end_date=month_end(day),
                )
            )
            existing.add(label)
        year_end = dt.date(day.year, 12, 31)
        if day.month == 1 and year_end <= last and str(day.year) not in existing:
            db.add(
                ReportingPeriod(
                    collaborative_id=collaborative_id,
                    label=str(day.year),
                    granularity=Granularity.YEAR,
                    start_date=dt.date(day.year, 1, 1),
                    end_date=year_end,
                )
            )
            existing.add(str(day.year))
        day = next_month(day)
