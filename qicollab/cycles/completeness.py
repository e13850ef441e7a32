"""Completeness: where every member x measure x period of a cycle stands, and its window."""

from __future__ import annotations

import datetime as dt
import enum
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa

from qicollab.cycles.base import CycleBase
from qicollab.cycles.deadlines import days_until, due_text
from qicollab.measures.models import DataLevel, Measure
from qicollab.members.models import Member
from qicollab.schedule.calendar import LearningCycle
from qicollab.schedule.periods import Granularity, ReportingPeriod
from qicollab.schedule.windows import SubmissionWindow, WindowCalendar
from qicollab.submissions.models import Submission, SubmissionStatus


class CellStatus(enum.StrEnum):
    """Where one member x measure x period stands."""

    MISSING = "missing"
    DRAFT = "draft"
    SUBMITTED = "submitted"
    RETURNED = "returned"
    ACCEPTED = "accepted"


CELL_ORDER = (
    CellStatus.MISSING,
    CellStatus.DRAFT,
    CellStatus.RETURNED,
    CellStatus.SUBMITTED,
    CellStatus.ACCEPTED,
)


#: Which outstanding status colours a member x measure first.
URGENCY = (CellStatus.RETURNED, CellStatus.MISSING, CellStatus.DRAFT, CellStatus.SUBMITTED)


@dataclass(frozen=True, slots=True)
class Cell:
    """One member x measure x period: its status, current version and window."""

    member_id: int
    measure_id: int
    period_id: int
    period_label: str
    status: CellStatus
    window: SubmissionWindow
    submission_id: int | None = None
    version: int | None = None
    review_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Completeness:
    """The completeness grid of one cycle, for some members."""

    cycle: LearningCycle
    now: dt.datetime
    members: tuple[Member, ...]
    measures: tuple[Measure, ...]
    periods: dict[int, tuple[ReportingPeriod, ...]]
    cells: dict[tuple[int, int, int], Cell] = field(repr=False)
    #: Status counts per (member, measure), built once: the coordinators' page asks for
    #: every pair, and scanning all cells for each would be quadratic.
    _pairs: dict[tuple[int, int], Counter[CellStatus]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        for (member, measure, _), cell in self.cells.items():
            self._pairs.setdefault((member, measure), Counter())[cell.status] += 1

    @property
    def due(self) -> str:
        """The cycle's deadline as "due in N days" (or days past it)."""
        return due_text(self.cycle.deadline, self.now)

    @property
    def days_left(self) -> int:
        """Days before the deadline (negative after)."""
        return days_until(self.cycle.deadline, self.now)

    def row(self, member_id: int, measure_id: int) -> list[Cell]:
        """The cells of one member and measure, period by period."""
        return [
            self.cells[(member_id, measure_id, period.id)] for period in self.periods[measure_id]
        ]

    def counts(
        self, *, member_id: int | None = None, measure_id: int | None = None
    ) -> dict[CellStatus, int]:
        """How many cells have each status (every status present, zero included)."""
        found: Counter[CellStatus] = Counter()
        for (member, measure), counter in self._pairs.items():
            if (member_id is None or member == member_id) and (
                measure_id is None or measure == measure_id
            ):
                found.update(counter)
        return {status: found.get(status, 0) for status in CELL_ORDER}

    def headline(self, member_id: int, measure_id: int) -> CellStatus:
        """The one status that colours a member x measure: the most urgent one present
        (returned, then missing, draft, awaiting review), else accepted."""
        counts = self._pairs.get((member_id, measure_id), Counter())
        for status in URGENCY:
            if counts.get(status):
                return status
        return CellStatus.ACCEPTED

    @property
    def total(self) -> int:
        """Every expected cell."""
        return len(self.cells)


Version = tuple[int, int, SubmissionStatus, str | None]  # id, version, status, review reason


def _cell_status(
    versions: Sequence[Version],
) -> tuple[CellStatus, int | None, int | None, str | None]:
    """Status, submission id, version and review reason from a period's versions."""
    current = max(
        (v for v in versions if v[2] not in {SubmissionStatus.DRAFT, SubmissionStatus.SUPERSEDED}),
        key=lambda v: v[1],
        default=None,
    )
    if current is not None:
        return CellStatus(current[2].value), current[0], current[1], current[3]
    draft = max(
        (v for v in versions if v[2] is SubmissionStatus.DRAFT), key=lambda v: v[1], default=None
    )
    if draft is not None:
        return CellStatus.DRAFT, draft[0], draft[1], None
    return CellStatus.MISSING, None, None, None


class CompletenessQueries(CycleBase):
    """The completeness grid of a cycle."""

    def completeness(
        self, cycle: LearningCycle, *, member_ids: Iterable[int] | None = None
    ) -> Completeness:
        """Missing / draft / submitted / returned / accepted per member x measure x period."""
        now = self.clock()
        members = self.members(member_ids)
        measures = self.measures(cycle)
        by_granularity: dict[Granularity, list[ReportingPeriod]] = {
            Granularity.MONTH: [],
            Granularity.YEAR: [],
        }
        for period in self.periods(cycle):
            by_granularity.setdefault(period.granularity, []).append(period)
        periods = {
            measure.id: tuple(
                by_granularity[
                    Granularity.YEAR if measure.level is DataLevel.PATIENT else Granularity.MONTH
                ]
            )
            for measure in measures
        }
        period_ids = {p.id for group in by_granularity.values() for p in group}
        versions: dict[tuple[int, int, int], list[Version]] = {}
        if members and measures and period_ids:
            rows = self.db.execute(
                sa.select(
                    Submission.member_id,
                    Submission.measure_id,
                    Submission.period_id,
                    Submission.id,
                    Submission.version,
                    Submission.status,
                    Submission.review_reason,
                ).where(
                    Submission.member_id.in_([m.id for m in members]),
                    Submission.measure_id.in_([m.id for m in measures]),
                    Submission.period_id.in_(period_ids),
                )
            )
            for member_id, measure_id, period_id, sid, version, status, why in rows:
                versions.setdefault((member_id, measure_id, period_id), []).append(
                    (sid, version, status, why)
                )
        windows = WindowCalendar.load(self.db, self.collaborative_id)
        cells: dict[tuple[int, int, int], Cell] = {}
        for member in members:
            for measure in measures:
                for period in periods[measure.id]:
                    key = (member.id, measure.id, period.id)
                    status, sid, version, why = _cell_status(versions.get(key, ()))
                    cells[key] = Cell(
                        member_id=member.id,
                        measure_id=measure.id,
                        period_id=period.id,
                        period_label=period.label,
                        status=status,
                        window=windows.status(member.id, measure.id, period, now),
                        submission_id=sid,
                        version=version,
                        review_reason=why,
                    )
        return Completeness(cycle, now, tuple(members), tuple(measures), periods, cells)
