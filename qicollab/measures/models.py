"""The measure catalogue: what is counted, how, which way is better, and how it is adjusted."""

from __future__ import annotations

import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from qicollab.db import Base, CreatedAtMixin, enum_column


class MeasureType(enum.StrEnum):
    """The statistical kind of a measure; it decides the intervals and the control chart."""

    PROPORTION = "proportion"
    RATE = "rate"  # events per unit of exposure (line-days, patient-days)
    RATIO = "ratio"  # observed / expected
    MEAN = "mean"
    TIME_BETWEEN_EVENTS = "time-between-events"


class DataLevel(enum.StrEnum):
    """Aggregate counts per period, or one de-identified row per case."""

    AGGREGATE = "aggregate"
    PATIENT = "patient"


class Direction(enum.StrEnum):
    """Which way is improvement."""

    INCREASE = "increase"
    DECREASE = "decrease"


class Measure(CreatedAtMixin, Base):
    """One quality measure as defined by the coordinators."""

    __tablename__ = "measures"

    id: Mapped[int] = mapped_column(primary_key=True)
    collaborative_id: Mapped[int] = mapped_column(
        sa.ForeignKey("collaboratives.id", ondelete="RESTRICT"), index=True
    )
    code: Mapped[str] = mapped_column(sa.String(32))
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    measure_type: Mapped[MeasureType] = mapped_column(enum_column(MeasureType, name="measure_type"))
    level: Mapped[DataLevel] = mapped_column(enum_column(DataLevel, name="data_level"))
    numerator_definition: Mapped[str] = mapped_column(sa.Text, default="")
    denominator_definition: Mapped[str] = mapped_column(sa.Text, default="")
    exclusion_definition: Mapped[str] = mapped_column(sa.Text, default="")
    direction: Mapped[Direction] = mapped_column(enum_column(Direction, name="direction"))
    #: Display unit, e.g. "%", "per 1,000 line-days", "minutes".
    unit: Mapped[str] = mapped_column(sa.String(64), default="")
    #: Rates are shown multiplied by this (100 for percentages, 1000 per 1,000 days).
    multiplier: Mapped[float] = mapped_column(default=1.0)
    #: On the data scale, like submitted values and stored results (a proportion 0.9, a rate
    #: 0.0008 events per line-day); every page shows it x ``multiplier`` (:attr:`shown_target`).
    target: Mapped[float | None]
    #: Members below this denominator (or case count) are reported as "too few cases".
    minimum_volume: Mapped[int] = mapped_column(default=0)
    #: Coordinator override of the control chart chosen from the measure type.
    chart_override: Mapped[str | None] = mapped_column(sa.String(8))
    #: Patient-level measures: outcome, family and covariates (see ``measures.spec``).
    risk_model: Mapped[dict[str, Any] | None]
    active: Mapped[bool] = mapped_column(default=True)

    __table_args__ = (
        sa.UniqueConstraint("collaborative_id", "code"),
        sa.CheckConstraint("multiplier > 0", name="multiplier_positive"),
        sa.CheckConstraint("minimum_volume >= 0", name="minimum_volume_non_negative"),
        sa.CheckConstraint(
            "(level = 'patient') = (risk_model IS NOT NULL)",
            name="patient_level_has_risk_model",
        ),
    )

    @property
    def shown_target(self) -> str | None:
        """The target as pages show it: on the display scale with the unit ("0.8 per 1,000
        line-days", "90 %"), so the catalogue reads like the results and reports."""
        if self.target is None:
            return None
        return f"{self.target * self.multiplier:g} {self.unit}".strip()
