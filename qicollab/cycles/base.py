"""The cycle service's core: one collaborative's cycles, measures, members and periods.

The workflow's use cases (planning, transitions, reopenings, review, completeness) are mixins
over this base, composed into :class:`qicollab.cycles.services.CycleService`; each works in
the caller's transaction and audits what it changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from qicollab.audit.services import record
from qicollab.cycles.models import LearningSession
from qicollab.db import utcnow
from qicollab.measures.models import Measure
from qicollab.members.models import Member
from qicollab.schedule.calendar import CycleReopening, CycleStatus, LearningCycle
from qicollab.schedule.periods import Granularity, ReportingPeriod

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qicollab.accounts.models import User
    from qicollab.notifications.services import Notifier


class CycleBase:
    """One collaborative's learning cycles, in the caller's transaction (audited)."""

    def __init__(
        self,
        db: Session,
        collaborative_id: int,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        notifier: Notifier | None = None,
    ) -> None:
        self.db = db
        self.collaborative_id = collaborative_id
        self.clock = clock
        #: Mails members about what changed (after commit); None sends nothing (CLI, demo).
        self.notifier = notifier
        self._cycles: list[LearningCycle] | None = None

    # --- reading --------------------------------------------------------------------------------

    def cycles(self) -> list[LearningCycle]:
        """Every cycle, newest periods first (read once per service)."""
        if self._cycles is None:
            self._cycles = list(
                self.db.scalars(
                    sa.select(LearningCycle)
                    .where(LearningCycle.collaborative_id == self.collaborative_id)
                    .order_by(LearningCycle.first_period_start.desc(), LearningCycle.code)
                )
            )
        return list(self._cycles)

    def by_code(self, code: str) -> LearningCycle | None:
        """One cycle by its code."""
        return self.db.scalar(
            sa.select(LearningCycle).where(
                LearningCycle.collaborative_id == self.collaborative_id,
                LearningCycle.code == code,
            )
        )

    def current_cycle(self) -> LearningCycle | None:
        """The cycle members care about now: open first, else the latest by periods."""
        cycles = self.cycles()
        for status in (CycleStatus.OPEN, CycleStatus.CLOSED, CycleStatus.PLANNED):
            found = [c for c in cycles if c.status is status]
            if found:
                return found[-1] if status is CycleStatus.PLANNED else found[0]
        return cycles[0] if cycles else None

    def measures(self, cycle: LearningCycle | None = None) -> list[Measure]:
        """The cycle's measures (every active measure when it lists none)."""
        if cycle is not None and cycle.measures:
            return sorted(cycle.measures, key=lambda m: m.code)
        return list(
            self.db.scalars(
                sa.select(Measure)
                .where(Measure.collaborative_id == self.collaborative_id, Measure.active.is_(True))
                .order_by(Measure.code)
            )
        )

    def members(self, member_ids: Iterable[int] | None = None) -> list[Member]:
        """Active members (or just those of ``member_ids``), by code."""
        query = sa.select(Member).where(
            Member.collaborative_id == self.collaborative_id, Member.active.is_(True)
        )
        if member_ids is not None:
            query = query.where(Member.id.in_(list(member_ids)))
        return list(self.db.scalars(query.order_by(Member.code)))

    def periods(
        self, cycle: LearningCycle, granularity: Granularity | None = None
    ) -> list[ReportingPeriod]:
        """The cycle's periods (of one granularity, or all), oldest first."""
        query = sa.select(ReportingPeriod).where(
            ReportingPeriod.collaborative_id == self.collaborative_id,
            ReportingPeriod.start_date >= cycle.first_period_start,
            ReportingPeriod.end_date <= cycle.last_period_end,
        )
        if granularity is not None:
            query = query.where(ReportingPeriod.granularity == granularity)
        return list(self.db.scalars(query.order_by(ReportingPeriod.start_date)))

    def reopenings(self, cycle: LearningCycle) -> list[CycleReopening]:
        """The cycle's reopenings, newest first."""
        return list(
            self.db.scalars(
                sa.select(CycleReopening)
                .where(CycleReopening.cycle_id == cycle.id)
                .order_by(CycleReopening.created_at.desc(), CycleReopening.id.desc())
            )
        )

    def sessions(self, cycle: LearningCycle) -> list[LearningSession]:
        """The cycle's learning sessions, by date."""
        return list(
            self.db.scalars(
                sa.select(LearningSession)
                .where(LearningSession.cycle_id == cycle.id)
                .order_by(LearningSession.held_on, LearningSession.id)
            )
        )

    def _describe(self, cycle: LearningCycle) -> dict[str, object]:
        return {
            "code": cycle.code,
            "title": cycle.title,
            "first_period": f"{cycle.first_period_start:%Y-%m}",
            "last_period": f"{cycle.last_period_end:%Y-%m}",
            "window_opens_at": cycle.window_opens_at.isoformat(),
            "deadline": cycle.deadline.isoformat(),
            "lock_date": cycle.lock_date.isoformat() if cycle.lock_date else None,
            "measures": sorted(m.code for m in cycle.measures),
        }

    def _audit(
        self,
        action: str,
        cycle: LearningCycle,
        actor: User | str | None,
        *,
        details: dict[str, object],
    ) -> None:
        record(
            self.db,
            action,
            actor=actor,
            object_type="learning_cycle",
            object_id=cycle.id,
            collaborative_id=self.collaborative_id,
            details={"cycle": cycle.code, **details},
        )
