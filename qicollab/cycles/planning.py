"""Planning a cycle: create and edit its periods, window, deadline and measures; sessions."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from qicollab.cycles.base import CycleBase
from qicollab.cycles.models import LearningSession
from qicollab.cycles.reasons import CycleError
from qicollab.measures.models import Measure
from qicollab.schedule.calendar import CycleStatus, LearningCycle
from qicollab.schedule.periods import ensure_periods, month_end

if TYPE_CHECKING:
    from qicollab.accounts.models import User

CODE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
MAX_TITLE = 200
MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True)
class CycleDraft:
    """What a coordinator types to create or edit a cycle (already typed by the view)."""

    code: str
    title: str
    first_period: str  # YYYY-MM
    last_period: str  # YYYY-MM
    window_opens_at: dt.datetime
    deadline: dt.datetime
    lock_date: dt.datetime | None = None
    measure_codes: tuple[str, ...] = ()


def parse_month(text: str, *, field_name: str) -> dt.date:
    """``YYYY-MM`` as the first day of that month."""
    found = MONTH_PATTERN.match((text or "").strip())
    if not found or not 1 <= int(found.group(2)) <= 12 or not 2000 <= int(found.group(1)) <= 2100:
        msg = f"the {field_name} must be a month written YYYY-MM, e.g. 2026-01"
        raise CycleError(msg)
    return dt.date(int(found.group(1)), int(found.group(2)), 1)


class Planning(CycleBase):
    """Creating and editing cycles, and recording their learning sessions."""

    def _measures_by_code(self, codes: Sequence[str]) -> list[Measure]:
        if not codes:
            return []
        found = {
            m.code: m
            for m in self.db.scalars(
                sa.select(Measure).where(
                    Measure.collaborative_id == self.collaborative_id, Measure.code.in_(codes)
                )
            )
        }
        unknown = sorted(set(codes) - set(found))
        if unknown:
            msg = f"unknown measure(s): {', '.join(unknown)}"
            raise CycleError(msg)
        return [found[code] for code in sorted(set(codes))]

    def _check_draft(self, draft: CycleDraft, *, editing: LearningCycle | None) -> tuple:
        title = " ".join((draft.title or "").split())
        if not title:
            msg = "a cycle needs a title"
            raise CycleError(msg)
        if len(title) > MAX_TITLE:
            msg = f"the title is longer than {MAX_TITLE} characters"
            raise CycleError(msg)
        first = parse_month(draft.first_period, field_name="first period")
        last = month_end(parse_month(draft.last_period, field_name="last period"))
        if last < first:
            msg = "the last period comes before the first"
            raise CycleError(msg)
        for name in ("window_opens_at", "deadline", "lock_date"):
            value = getattr(draft, name)
            if value is not None and value.tzinfo is None:
                msg = f"{name} must be timezone-aware (UTC)"
                raise CycleError(msg)
        if draft.deadline <= draft.window_opens_at:
            msg = "the deadline must come after the window opens"
            raise CycleError(msg)
        if draft.lock_date is not None and draft.lock_date < draft.deadline:
            msg = "the lock date cannot come before the deadline"
            raise CycleError(msg)
        measures = self._measures_by_code(draft.measure_codes)
        self._check_overlap(first, last, measures, editing)
        return title, first, last, measures

    def _check_overlap(
        self,
        first: dt.date,
        last: dt.date,
        measures: list[Measure],
        editing: LearningCycle | None,
    ) -> None:
        """Two cycles collecting the same measure for the same month would make windows moot."""
        wanted = {m.id for m in measures}
        for other in self.cycles():
            if editing is not None and other.id == editing.id:
                continue
            if other.last_period_end < first or other.first_period_start > last:
                continue
            theirs = {m.id for m in other.measures}
            if not wanted or not theirs or wanted & theirs:
                msg = (
                    f"learning cycle {other.code} already collects these measures for "
                    f"{other.first_period_start:%Y-%m} to {other.last_period_end:%Y-%m}"
                )
                raise CycleError(msg)

    def create(self, draft: CycleDraft, *, actor: User | str | None) -> LearningCycle:
        """A new cycle in ``planned`` status (audited); missing periods are created."""
        code = (draft.code or "").strip()
        if not CODE_PATTERN.match(code):
            msg = "the code must be 1-32 letters, digits, '-', '_' or '.', e.g. C2027"
            raise CycleError(msg)
        if self.by_code(code) is not None:
            msg = f"a learning cycle {code} already exists"
            raise CycleError(msg)
        title, first, last, measures = self._check_draft(draft, editing=None)
        ensure_periods(self.db, self.collaborative_id, first, last)
        cycle = LearningCycle(
            collaborative_id=self.collaborative_id,
            code=code,
            title=title,
            status=CycleStatus.PLANNED,
            first_period_start=first,
            last_period_end=last,
            window_opens_at=draft.window_opens_at,
            deadline=draft.deadline,
            lock_date=draft.lock_date,
            measures=measures,
        )
        self.db.add(cycle)
        self.db.flush()
        self._audit("cycle.created", cycle, actor, details=self._describe(cycle))
        return cycle

    def update(
        self, cycle: LearningCycle, draft: CycleDraft, *, actor: User | str | None
    ) -> LearningCycle:
        """Change a cycle's title, periods, window, deadline, lock date or measures (audited).

        A locked or published cycle's data are frozen: it cannot be edited (reopen instead).
        """
        if cycle.status in {CycleStatus.LOCKED, CycleStatus.PUBLISHED}:
            msg = f"{cycle.code} is {cycle.status.value}: reopen periods instead of editing it"
            raise CycleError(msg)
        before = self._describe(cycle)
        title, first, last, measures = self._check_draft(draft, editing=cycle)
        ensure_periods(self.db, self.collaborative_id, first, last)
        cycle.title = title
        cycle.first_period_start = first
        cycle.last_period_end = last
        cycle.window_opens_at = draft.window_opens_at
        cycle.deadline = draft.deadline
        cycle.lock_date = draft.lock_date
        cycle.measures = measures
        self.db.flush()
        after = self._describe(cycle)
        changed = {key: [before[key], after[key]] for key in after if before[key] != after[key]}
        self._audit("cycle.updated", cycle, actor, details={"changed": changed})
        return cycle

    def add_session(
        self,
        cycle: LearningCycle,
        *,
        held_on: dt.date,
        title: str,
        notes: str = "",
        actor: User | str | None,
    ) -> LearningSession:
        """Record a learning session of the cycle (audited)."""
        title = " ".join((title or "").split())
        if not title:
            msg = "a learning session needs a title"
            raise CycleError(msg)
        if len(title) > MAX_TITLE:
            msg = f"the title is longer than {MAX_TITLE} characters"
            raise CycleError(msg)
        if not isinstance(held_on, dt.date) or isinstance(held_on, dt.datetime):
            msg = "the session date must be a calendar date"
            raise CycleError(msg)
        session = LearningSession(
            cycle_id=cycle.id, held_on=held_on, title=title, notes=(notes or "").strip()
        )
        self.db.add(session)
        self.db.flush()
        self._audit(
            "learning_session.created",
            cycle,
            actor,
            details={"session_id": session.id, "held_on": held_on.isoformat(), "title": title},
        )
        return session
