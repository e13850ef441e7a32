"""Plain, picklable descriptions of what a run computes: measures, periods, peers, annotations.

The compute step never touches the ORM: the service reads these once, and they travel to worker
processes when measures are computed in parallel.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from qicollab.benchmarking.settings import RunSettings
from qicollab.measures.spec import RiskModelSpec


@dataclass(frozen=True, slots=True)
class MeasureInfo:
    """The parts of a measure definition the statistics need."""

    id: int
    code: str
    title: str
    measure_type: str  # proportion | rate | ratio | mean | time-between-events
    level: str  # aggregate | patient
    direction: str  # increase | decrease
    target: float | None
    minimum_volume: int
    multiplier: float
    unit: str = ""
    chart_override: str | None = None
    risk_model: dict[str, Any] | None = None

    @property
    def spec(self) -> RiskModelSpec | None:
        """The typed risk-model specification of a patient-level measure."""
        return None if self.risk_model is None else RiskModelSpec.from_json(self.risk_model)

    @property
    def higher_is_better(self) -> bool:
        """Improvement direction as a flag."""
        return self.direction == "increase"


@dataclass(frozen=True, slots=True)
class PeriodInfo:
    """A reporting period."""

    id: int
    label: str
    granularity: str  # month | quarter | year
    start: dt.date
    end: dt.date


@dataclass(frozen=True, slots=True)
class AnnotationInfo:
    """A dated note for a member's chart; ``starts_phase`` opens new limits from its period."""

    id: int
    member_id: int | None
    measure_id: int | None
    kind: str
    occurred_on: dt.date
    label: str
    starts_phase: bool


@dataclass(frozen=True, slots=True)
class PeerGroupInfo:
    """A peer group and its members."""

    id: int
    code: str
    name: str
    member_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RunInputs:
    """Everything about the collaborative that every measure's computation shares."""

    settings: RunSettings
    member_ids: tuple[int, ...]
    member_codes: dict[int, str]
    peer_groups: tuple[PeerGroupInfo, ...]
    periods: dict[int, PeriodInfo]
    annotations: tuple[AnnotationInfo, ...] = ()
    #: Members whose patient rows may be put in case order (limited data set + DUA).
    case_order_members: frozenset[int] = field(default_factory=frozenset)

    def annotations_for(self, member_id: int, measure_id: int) -> list[AnnotationInfo]:
        """Notes that apply to this member's chart of this measure, oldest first."""
        return sorted(
            (
                note
                for note in self.annotations
                if note.member_id in (None, member_id) and note.measure_id in (None, measure_id)
            ),
            key=lambda note: (note.occurred_on, note.id),
        )


@dataclass
class MeasureOutput:
    """What one measure's computation produced, as rows ready to insert."""

    measure_id: int
    members: list[dict[str, Any]] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    fit: dict[str, Any] | None = None
    charts: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: ``host:pid`` of the process that computed it.
    worker: str | None = None
