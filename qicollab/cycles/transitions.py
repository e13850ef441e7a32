"""Moving a cycle through its life: open, close, lock, unlock, publish (audited)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qicollab.cycles.base import CycleBase
from qicollab.cycles.reasons import CycleError
from qicollab.schedule.calendar import CycleStatus, LearningCycle

if TYPE_CHECKING:
    from qicollab.accounts.models import User

#: Which transitions each action makes (from -> to).
TRANSITIONS: dict[str, tuple[frozenset[CycleStatus], CycleStatus]] = {
    "open": (frozenset({CycleStatus.PLANNED, CycleStatus.CLOSED}), CycleStatus.OPEN),
    "close": (frozenset({CycleStatus.OPEN}), CycleStatus.CLOSED),
    "lock": (frozenset({CycleStatus.OPEN, CycleStatus.CLOSED}), CycleStatus.LOCKED),
    "publish": (frozenset({CycleStatus.LOCKED}), CycleStatus.PUBLISHED),
}


class Transitions(CycleBase):
    """Status changes of a cycle."""

    def transition(
        self, cycle: LearningCycle, action: str, *, actor: User | str | None
    ) -> LearningCycle:
        """Open, close, lock or publish a cycle (audited)."""
        if action not in TRANSITIONS:
            msg = f"unknown action {action!r}"
            raise CycleError(msg)
        allowed, target = TRANSITIONS[action]
        if cycle.status not in allowed:
            msg = f"{cycle.code} is {cycle.status.value} and cannot be {_past(action)}"
            raise CycleError(msg)
        before = cycle.status
        cycle.status = target
        details: dict[str, object] = {"from": before.value, "to": target.value}
        if target is CycleStatus.LOCKED:
            cycle.locked_at = self.clock()
            cycle.locked_by_id = getattr(actor, "id", None)
            details["unreviewed"] = len(self.awaiting_review(cycle))
        self.db.flush()
        self._audit(f"cycle.{_past(action)}", cycle, actor, details=details)
        return cycle


def _past(action: str) -> str:
    return {"open": "opened", "close": "closed", "lock": "locked", "publish": "published"}[action]
