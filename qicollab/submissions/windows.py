"""Is a period open for submissions now? Decided from learning cycles and reopenings.

A period is open for a member and measure when a learning cycle covering it (its periods range
includes the period; it collects the measure, or lists no measures) has status ``open`` and
``window_opens_at <= now <= deadline``; or when a coordinator's reopening of such a cycle for
that member, measure and period (a blank field on the reopening matches any) has not closed.
Otherwise the reason says why not, so the member sees it instead of a bare refusal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from qicollab.cycles.models import CycleReopening, CycleStatus, LearningCycle, cycle_measures
from qicollab.submissions.errors import WindowReason


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


@dataclass(frozen=True, slots=True)
class Reopening:
    """A coordinator's reopening (blank member, measure or period match any)."""

    cycle_id: int
    member_id: int | None
    measure_id: int | None
    period_id: int | None
    closes_at: dt.datetime | None
    reason: str


@dataclass(frozen=True, slots=True)
class WindowStatus:
    """Whether submissions for a period are accepted now, and why (not)."""

    reason: WindowReason
    cycle_code: str | None = None
    opens_at: dt.datetime | None = None
    deadline: dt.datetime | None = None

    @property
    def is_open(self) -> bool:
        """Submissions are accepted."""
        return self.reason.is_open

    def message(self, label: str) -> str:
        """What the member reads."""
        when = "%Y-%m-%d %H:%M UTC"
        if self.reason is WindowReason.OPEN:
            return f"{label} is open until {self.deadline:{when}}" if self.deadline else "open"
        if self.reason is WindowReason.REOPENED:
            if self.deadline:
                return f"{label} was reopened by a coordinator until {self.deadline:{when}}"
            return f"{label} was reopened by a coordinator"
        if self.reason is WindowReason.BEFORE_WINDOW:
            opens = f" on {self.opens_at:{when}}" if self.opens_at else " later"
            return f"the submission window for {label} has not opened yet; it opens{opens}"
        if self.reason is WindowReason.AFTER_DEADLINE:
            closed = f" on {self.deadline:{when}}" if self.deadline else ""
            return f"the submission deadline for {label} has passed{closed}"
        if self.reason is WindowReason.CYCLE_LOCKED:
            return (
                f"{label} is locked in learning cycle {self.cycle_code}; a coordinator can "
                "reopen it with a reason"
            )
        return f"no learning cycle collects {label} for this measure"


#: When several cycles cover a period, the most hopeful reason is reported.
_PREFERENCE = (
    WindowReason.OPEN,
    WindowReason.REOPENED,
    WindowReason.BEFORE_WINDOW,
    WindowReason.AFTER_DEADLINE,
    WindowReason.CYCLE_LOCKED,
)


def window_status(  # noqa: PLR0917 - a pure decision over plain facts
    period_id: int,
    period_start: dt.date,
    period_end: dt.date,
    member_id: int,
    measure_id: int,
    cycles: Sequence[CycleWindow],
    reopenings: Sequence[Reopening],
    now: dt.datetime,
) -> WindowStatus:
    """The window of one period for one member and measure at ``now``."""
    found: list[WindowStatus] = []
    for cycle in cycles:
        if not (cycle.first_period_start <= period_start and period_end <= cycle.last_period_end):
            continue
        if cycle.measure_ids and measure_id not in cycle.measure_ids:
            continue
        found.append(_cycle_status(cycle, now))
        for reopening in reopenings:
            if (
                reopening.cycle_id == cycle.id
                and reopening.member_id in (None, member_id)
                and reopening.measure_id in (None, measure_id)
                and reopening.period_id in (None, period_id)
                and (reopening.closes_at is None or now <= reopening.closes_at)
            ):
                found.append(
                    WindowStatus(WindowReason.REOPENED, cycle.code, deadline=reopening.closes_at)
                )
    if not found:
        return WindowStatus(WindowReason.NO_CYCLE)
    return min(found, key=lambda status: _PREFERENCE.index(status.reason))


def _cycle_status(cycle: CycleWindow, now: dt.datetime) -> WindowStatus:
    opens, deadline = cycle.window_opens_at, cycle.deadline
    if cycle.status in {CycleStatus.LOCKED, CycleStatus.PUBLISHED}:
        return WindowStatus(WindowReason.CYCLE_LOCKED, cycle.code, opens, deadline)
    if cycle.status is CycleStatus.PLANNED or now < opens:
        return WindowStatus(WindowReason.BEFORE_WINDOW, cycle.code, opens, deadline)
    if cycle.status is CycleStatus.CLOSED or now > deadline:
        return WindowStatus(WindowReason.AFTER_DEADLINE, cycle.code, opens, deadline)
    return WindowStatus(WindowReason.OPEN, cycle.code, opens, deadline)


def load_windows(db: Session, collaborative_id: int) -> tuple[list[CycleWindow], list[Reopening]]:
    """The collaborative's cycles and reopenings (a handful of rows)."""
    cycles = db.scalars(
        sa.select(LearningCycle).where(LearningCycle.collaborative_id == collaborative_id)
    ).all()
    links = db.execute(
        sa.select(cycle_measures.c.cycle_id, cycle_measures.c.measure_id).where(
            cycle_measures.c.cycle_id.in_([cycle.id for cycle in cycles])
        )
    ).all()
    measures: dict[int, set[int]] = {}
    for cycle_id, measure_id in links:
        measures.setdefault(cycle_id, set()).add(measure_id)
    windows = [
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
        for cycle in cycles
    ]
    reopenings = [
        Reopening(
            cycle_id=row.cycle_id,
            member_id=row.member_id,
            measure_id=row.measure_id,
            period_id=row.period_id,
            closes_at=row.closes_at,
            reason=row.reason,
        )
        for row in db.scalars(
            sa.select(CycleReopening).where(
                CycleReopening.cycle_id.in_([cycle.id for cycle in cycles])
            )
        )
    ]
    return windows, reopenings
