"""The measure catalogue: reading definitions and saving coordinators' edits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from qicollab.measures.models import DataLevel, Direction, Measure, MeasureType
from qicollab.measures.spec import RiskModelSpec, SpecError

#: Control charts a coordinator may force instead of the one chosen from the measure type.
CHART_CHOICES = ("run", "i", "xbar", "p", "pp", "u", "up", "c", "g", "t")


class MeasureError(ValueError):
    """A measure definition that cannot be saved, naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class MeasureDraft:
    """A measure as entered by a coordinator, before validation."""

    code: str
    title: str
    measure_type: str
    level: str
    direction: str
    numerator_definition: str
    denominator_definition: str
    exclusion_definition: str = ""
    description: str = ""
    unit: str = ""
    multiplier: float = 1.0
    target: float | None = None
    minimum_volume: int = 0
    chart_override: str | None = None
    risk_model: dict[str, Any] | None = None


class MeasureService:
    """Measures of one collaborative."""

    def __init__(self, db: Session, collaborative_id: int) -> None:
        self.db = db
        self.collaborative_id = collaborative_id

    def measures(self, *, active_only: bool = False) -> list[Measure]:
        """The catalogue, by code."""
        query = sa.select(Measure).where(Measure.collaborative_id == self.collaborative_id)
        if active_only:
            query = query.where(Measure.active.is_(True))
        return list(self.db.scalars(query.order_by(Measure.code)))

    def by_code(self, code: str) -> Measure | None:
        """One measure by its code, or None."""
        return self.db.scalar(
            sa.select(Measure).where(
                Measure.collaborative_id == self.collaborative_id, Measure.code == code
            )
        )

    def save(self, draft: MeasureDraft, measure: Measure | None = None) -> Measure:
        """Validate and create or update a measure; errors name the field."""
        code = draft.code.strip().upper()
        if not code or len(code) > 32 or not code.replace("-", "").isalnum():
            raise MeasureError("code", "1-32 letters, digits or dashes")
        existing = self.by_code(code)
        if existing is not None and existing is not measure:
            raise MeasureError("code", f"{code} is used by another measure")
        if not draft.title.strip():
            raise MeasureError("title", "a measure needs a title")
        try:
            measure_type = MeasureType(draft.measure_type)
            level = DataLevel(draft.level)
            direction = Direction(draft.direction)
        except ValueError as error:
            raise MeasureError("type", str(error)) from error
        if draft.multiplier <= 0:
            raise MeasureError("multiplier", "must be positive (100 for %, 1000 per 1,000)")
        if draft.minimum_volume < 0:
            raise MeasureError("minimum_volume", "cannot be negative")
        if draft.chart_override and draft.chart_override not in CHART_CHOICES:
            raise MeasureError("chart_override", f"one of {', '.join(CHART_CHOICES)}")
        if (
            measure_type is MeasureType.PROPORTION
            and draft.target is not None
            and not (0 <= draft.target <= 1)
        ):
            raise MeasureError("target", "a proportion target is between 0 and 1")
        risk_model: dict[str, Any] | None = None
        if level is DataLevel.PATIENT:
            if not draft.risk_model:
                raise MeasureError("risk_model", "patient-level measures need a risk model")
            try:
                risk_model = RiskModelSpec.from_json(draft.risk_model).to_json()
            except (SpecError, KeyError, TypeError) as error:
                raise MeasureError("risk_model", str(error)) from error
        elif draft.risk_model:
            raise MeasureError("risk_model", "only patient-level measures are risk-adjusted")
        if measure is None:
            measure = Measure(collaborative_id=self.collaborative_id)
            self.db.add(measure)
        measure.code = code
        measure.title = draft.title.strip()
        measure.description = draft.description.strip()
        measure.measure_type = measure_type
        measure.level = level
        measure.direction = direction
        measure.numerator_definition = draft.numerator_definition.strip()
        measure.denominator_definition = draft.denominator_definition.strip()
        measure.exclusion_definition = draft.exclusion_definition.strip()
        measure.unit = draft.unit.strip()
        measure.multiplier = draft.multiplier
        measure.target = draft.target
        measure.minimum_volume = draft.minimum_volume
        measure.chart_override = draft.chart_override or None
        measure.risk_model = risk_model
        self.db.flush()
        return measure
