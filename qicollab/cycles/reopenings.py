"""Reopening a closed or locked period for a member, with a reason kept on record."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from qicollab.audit.services import record
from qicollab.cycles.base import CycleBase
from qicollab.cycles.reasons import CycleError, clean_reason
from qicollab.notifications import events
from qicollab.schedule.calendar import CycleReopening, CycleStatus, LearningCycle

if TYPE_CHECKING:
    from qicollab.accounts.models import User
    from qicollab.measures.models import Measure
    from qicollab.members.models import Member
    from qicollab.schedule.periods import ReportingPeriod


class Reopenings(CycleBase):
    """Coordinators' reopenings of periods past their window."""

    def reopen(
        self,
        cycle: LearningCycle,
        *,
        reason: str,
        closes_at: dt.datetime,
        actor: User | str | None,
        member: Member | None = None,
        measure: Measure | None = None,
        period: ReportingPeriod | None = None,
    ) -> CycleReopening:
        """Let a member (blank: every member) submit a measure's period again (audited).

        The reason stays on record beside the reopening and in the audit log.
        """
        reason = clean_reason(reason)
        now = self.clock()
        if cycle.status is CycleStatus.PLANNED:
            msg = f"{cycle.code} has not opened yet; open it instead"
            raise CycleError(msg)
        if cycle.status is CycleStatus.OPEN and cycle.window_opens_at <= now <= cycle.deadline:
            msg = f"the window of {cycle.code} is still open; nothing to reopen"
            raise CycleError(msg)
        if closes_at.tzinfo is None or closes_at <= now:
            msg = "a reopening must close in the future"
            raise CycleError(msg)
        for thing, label in ((member, "member"), (measure, "measure"), (period, "period")):
            if thing is not None and thing.collaborative_id != self.collaborative_id:
                msg = f"unknown {label}"
                raise CycleError(msg)
        if measure is not None and cycle.measures and measure not in cycle.measures:
            msg = f"{cycle.code} does not collect {measure.code}"
            raise CycleError(msg)
        if period is not None and not (
            cycle.first_period_start <= period.start_date
            and period.end_date <= cycle.last_period_end
        ):
            msg = f"{period.label} is not one of the periods of {cycle.code}"
            raise CycleError(msg)
        if getattr(actor, "id", None) is None:
            msg = "a reopening must be made by a signed-in coordinator"
            raise CycleError(msg)
        reopening = CycleReopening(
            cycle_id=cycle.id,
            member_id=member.id if member else None,
            measure_id=measure.id if measure else None,
            period_id=period.id if period else None,
            reason=reason,
            reopened_by_id=getattr(actor, "id", None),
            closes_at=closes_at,
            created_at=now,
        )
        self.db.add(reopening)
        self.db.flush()
        record(
            self.db,
            "cycle.reopened",
            actor=actor,
            object_type="cycle_reopening",
            object_id=reopening.id,
            collaborative_id=self.collaborative_id,
            member_id=reopening.member_id,
            details={
                "cycle": cycle.code,
                "member": member.code if member else None,
                "measure": measure.code if measure else None,
                "period": period.label if period else None,
                "closes_at": closes_at.isoformat(),
                "reason": reason,
            },
        )
        if self.notifier is not None:
            events.reopening_granted(
                self.notifier,
                reopening=reopening,
                cycle=cycle,
                member=member,
                measure=measure,
                period=period,
            )
        return reopening
