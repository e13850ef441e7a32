"""Is a period open for submissions now? One decision, one vocabulary, for every caller.

A period is open for a member and measure when a learning cycle covering it (its periods range
includes the period; it collects the measure, or lists no measures) has status ``open`` and
``window_opens_at <= now <= deadline``; or when a coordinator's reopening of such a cycle for
that member, measure and period (a blank field on the reopening matches any) has not closed.
Otherwise the reason says why not, so the member reads it instead of a bare refusal. The
portal, the API, uploads and validation all ask :class:`WindowCalendar`, so they never disagree.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa

from qicollab.db import utcnow
from qicollab.schedule.calendar import CycleReopening, CycleStatus, LearningCycle, cycle_measures

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qicollab.measures.models import Measure
    from qicollab.members.models import Member
    from qicollab.schedule.periods import ReportingPeriod

WHEN = "%Y-%m-%d %H:%M UTC"


class WindowState(enum.StrEnum):
    """Whether a member can submit a measure's period now; the values are the API's words."""

    OPEN = "open"
    NOT_YET_OPEN = "not-yet-open"
    CLOSED_AFTER_DEADLINE = "closed-after-deadline"
    LOCKED = "locked"
    REOPENED_UNTIL = "reopened-until"
    NO_CYCLE = "no-cycle"

    @property
    def is_open(self) -> bool:
        """Submissions are accepted."""
        return self in {WindowState.OPEN, WindowState.REOPENED_UNTIL}


#: When several cycles cover a period, the most hopeful state is reported.
_PREFERENCE = (
    WindowState.OPEN,
    WindowState.REOPENED_UNTIL,
    WindowState.NOT_YET_OPEN,
    WindowState.CLOSED_AFTER_DEADLINE,
    WindowState.LOCKED,
    WindowState.NO_CYCLE,
)


@dataclass(frozen=True, slots=True)
class CycleWindow:
    """The facts of one learning cycle that decide its window."""

    id: int
    code: str
    status: CycleStatus
    first_period_start: dt.date
    last_period_end: dt.date
    window_opens_at: dt.datetime
    deadline: dt.datetime
    measure_ids: frozenset[int]

    def covers(self, start: dt.date, end: dt.date, measure_id: int) -> bool:
        """The cycle collects ``measure_id`` for the period ``start..end``."""
        return (
            self.first_period_start <= start
            and end <= self.last_period_end
            and (not self.measure_ids or measure_id in self.measure_ids)
        )


@dataclass(frozen=True, slots=True)
class Reopening:
    """A coordinator's reopening (blank member, measure or period match any)."""

    cycle_id: int
    member_id: int | None
    measure_id: int | None
    period_id: int | None
    closes_at: dt.datetime | None
    reason: str

    def applies(
        self, cycle_id: int, member_id: int, measure_id: int, period_id: int, now: dt.datetime
    ) -> bool:
        """It reopens this cycle's member x measure x period at ``now``."""
        return (
            self.cycle_id == cycle_id
            and self.member_id in (None, member_id)
            and self.measure_id in (None, measure_id)
            and self.period_id in (None, period_id)
            and (self.closes_at is None or now <= self.closes_at)
        )


@dataclass(frozen=True, slots=True)
class SubmissionWindow:
    """The window of one member x measure x period at a moment, and why it is (not) open."""

    state: WindowState
    #: The sentence a member reads (it names the period).
    reason: str
    cycle_code: str | None = None
    opens_at: dt.datetime | None = None
    deadline: dt.datetime | None = None
    #: For ``reopened-until``: when the reopening closes (None: until further notice).
    until: dt.datetime | None = None

    @property
    def is_open(self) -> bool:
        """Submissions are accepted."""
        return self.state.is_open

    @property
    def closes_at(self) -> dt.datetime | None:
        """When submitting stops: the reopening's end, else the cycle's deadline."""
        return self.until if self.state is WindowState.REOPENED_UNTIL else self.deadline


def _cycle_window(cycle: CycleWindow, label: str, now: dt.datetime) -> SubmissionWindow:
    opens, deadline, code = cycle.window_opens_at, cycle.deadline, cycle.code
    if cycle.status in {CycleStatus.LOCKED, CycleStatus.PUBLISHED}:
        text = (
            f"{label} is locked in learning cycle {code} (data frozen for benchmarking); "
            "a coordinator can reopen it for you with a reason"
        )
        return SubmissionWindow(WindowState.LOCKED, text, code, opens, deadline)
    if cycle.status is CycleStatus.PLANNED or now < opens:
        planned = cycle.status is CycleStatus.PLANNED
        how = f": learning cycle {code} is planned to open" if planned else "; it opens"
        text = f"the submission window for {label} has not opened yet{how} on {opens:{WHEN}}"
        return SubmissionWindow(WindowState.NOT_YET_OPEN, text, code, opens, deadline)
    if cycle.status is CycleStatus.CLOSED or now > deadline:
        if cycle.status is CycleStatus.CLOSED and deadline > now:
            text = (
                f"the coordinators closed learning cycle {code} before its deadline; ask them "
                f"to reopen {label} if you still need to submit"
            )
        else:
            text = (
                f"the submission deadline for {label} passed on {deadline:{WHEN}}; ask a "
                "coordinator to reopen the period if you need to submit late"
            )
        return SubmissionWindow(WindowState.CLOSED_AFTER_DEADLINE, text, code, opens, deadline)
    text = f"{label} is open for submissions until {deadline:{WHEN}}"
    return SubmissionWindow(WindowState.OPEN, text, code, opens, deadline)


def _reopened(cycle: CycleWindow, reopening: Reopening, label: str) -> SubmissionWindow:
    why = f" ({reopening.reason})" if reopening.reason else ""
    until = reopening.closes_at
    when = f" until {until:{WHEN}}" if until else ""
    text = f"{label} was reopened by a coordinator{when}{why}"
    return SubmissionWindow(WindowState.REOPENED_UNTIL, text, cycle.code, until=until)


def decide_window(  # noqa: PLR0917 - a pure decision over plain facts
    period_id: int,
    period_label: str,
    period_start: dt.date,
    period_end: dt.date,
    member_id: int,
    measure_id: int,
    cycles: Sequence[CycleWindow],
    reopenings: Sequence[Reopening],
    now: dt.datetime,
) -> SubmissionWindow:
    """The window of one period for one member and measure at ``now``."""
    found: list[SubmissionWindow] = []
    for cycle in cycles:
        if not cycle.covers(period_start, period_end, measure_id):
            continue
        found.append(_cycle_window(cycle, period_label, now))
        found.extend(
            _reopened(cycle, reopening, period_label)
            for reopening in reopenings
            if reopening.applies(cycle.id, member_id, measure_id, period_id, now)
        )
    if not found:
        text = f"no learning cycle collects {period_label} for this measure"
        return SubmissionWindow(WindowState.NO_CYCLE, text)
    return min(found, key=lambda window: _PREFERENCE.index(window.state))


@dataclass(frozen=True, slots=True)
class WindowCalendar:
    """A collaborative's cycles and reopenings, loaded once, asked many times."""

    cycles: tuple[CycleWindow, ...]
    reopenings: tuple[Reopening, ...]
    #: Answers already given. Members no reopening names share theirs, so a grid of 40 members
    #: decides each measure x period once instead of forty times.
    _memo: dict[tuple[int | None, int, int, dt.datetime], SubmissionWindow] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def load(cls, db: Session, collaborative_id: int) -> WindowCalendar:
        """Read the handful of cycle and reopening rows."""
        rows = db.scalars(
            sa.select(LearningCycle).where(LearningCycle.collaborative_id == collaborative_id)
        ).all()
        ids = [cycle.id for cycle in rows]
        measures: dict[int, set[int]] = {}
        for cycle_id, measure_id in db.execute(
            sa.select(cycle_measures.c.cycle_id, cycle_measures.c.measure_id).where(
                cycle_measures.c.cycle_id.in_(ids)
            )
        ):
            measures.setdefault(cycle_id, set()).add(measure_id)
        cycles = tuple(
            CycleWindow(
                id=cycle.id,
                code=cycle.code,
                status=cycle.status,
                first_period_start=cycle.first_period_start,
                last_period_end=cycle.last_period_end,
                window_opens_at=cycle.window_opens_at,
                deadline=cycle.deadline,
                measure_ids=frozenset(measures.get(cycle.id, ())),
            )
            for cycle in rows
        )
        reopenings = tuple(
            Reopening(
                cycle_id=row.cycle_id,
                member_id=row.member_id,
                measure_id=row.measure_id,
                period_id=row.period_id,
                closes_at=row.closes_at,
                reason=row.reason,
            )
            for row in db.scalars(sa.select(CycleReopening).where(CycleReopening.cycle_id.in_(ids)))
        )
        return cls(cycles, reopenings)

    def status(
        self, member_id: int, measure_id: int, period: ReportingPeriod, now: dt.datetime
    ) -> SubmissionWindow:
        """The window of one member x measure x period at ``now``."""
        named = any(r.member_id == member_id for r in self.reopenings)
        key = (member_id if named else None, measure_id, period.id, now)
        if key not in self._memo:
            self._memo[key] = decide_window(
                period.id,
                period.label,
                period.start_date,
                period.end_date,
                member_id,
                measure_id,
                self.cycles,
                self.reopenings,
                now,
            )
        return self._memo[key]


def submission_window_status(
    db: Session,
    member: Member,
    measure: Measure,
    period: ReportingPeriod,
    now: dt.datetime | None = None,
) -> SubmissionWindow:
    """Can ``member`` submit ``measure`` for ``period`` at ``now`` (default: the current time)?"""
    calendar = WindowCalendar.load(db, member.collaborative_id)
    return calendar.status(member.id, measure.id, period, now or utcnow())
