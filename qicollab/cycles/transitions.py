"""Moving a cycle through its life: open, close, lock, unlock, publish (audited).

Locking with data missing, unreviewed or returned, or before the deadline, needs a reason
that stays on record (on the cycle while it is locked, and in the audit log for good). A
locked cycle can be unlocked, with a reason, until its results are published; publishing
needs a succeeded benchmark run computed since the cycle was last locked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qicollab.cycles.pipeline import Pipeline
from qicollab.cycles.reasons import CycleError, clean_reason
from qicollab.notifications import events
from qicollab.schedule.calendar import CycleStatus, LearningCycle

if TYPE_CHECKING:
    from qicollab.accounts.models import User

#: Which transitions each action makes (from -> to).
TRANSITIONS: dict[str, tuple[frozenset[CycleStatus], CycleStatus]] = {
    "open": (frozenset({CycleStatus.PLANNED, CycleStatus.CLOSED}), CycleStatus.OPEN),
    "close": (frozenset({CycleStatus.OPEN}), CycleStatus.CLOSED),
    "lock": (frozenset({CycleStatus.OPEN, CycleStatus.CLOSED}), CycleStatus.LOCKED),
    "unlock": (frozenset({CycleStatus.LOCKED}), CycleStatus.CLOSED),
    "publish": (frozenset({CycleStatus.LOCKED}), CycleStatus.PUBLISHED),
}

PAST = {
    "open": "opened",
    "close": "closed",
    "lock": "locked",
    "unlock": "unlocked",
    "publish": "published",
}


class Transitions(Pipeline):
    """Status changes of a cycle."""

    def transition(
        self,
        cycle: LearningCycle,
        action: str,
        *,
        actor: User | str | None,
        reason: str | None = None,
    ) -> LearningCycle:
        """Open, close, lock, unlock or publish a cycle (audited; mail after commit)."""
        if action not in TRANSITIONS:
            msg = f"unknown action {action!r}"
            raise CycleError(msg)
        allowed, target = TRANSITIONS[action]
        if cycle.status not in allowed:
            msg = f"{cycle.code} is {cycle.status.value} and cannot be {PAST[action]}"
            raise CycleError(msg)
        details: dict[str, object] = {"from": cycle.status.value, "to": target.value}
        if action == "lock":
            facts = self.lock_facts(cycle)
            text = clean_reason(reason, field_name="lock reason", required=facts.needs_reason)
            cycle.locked_at = self.clock()
            cycle.locked_by_id = getattr(actor, "id", None)
            cycle.lock_reason = text or None
            details.update(facts.to_json(), reason=text or None)
        elif action == "unlock":
            text = clean_reason(reason, field_name="unlock reason")
            cycle.locked_at = None
            cycle.locked_by_id = None
            cycle.lock_reason = None
            details["reason"] = text
        elif action == "publish":
            run_id = self.succeeded_run_id(cycle)
            if run_id is None:
                msg = (
                    f"{cycle.code} has no succeeded benchmark run since it was locked: compute "
                    "one before publishing"
                )
                raise CycleError(msg)
            details["run_id"] = run_id
        cycle.status = target
        self.db.flush()
        self._audit(f"cycle.{PAST[action]}", cycle, actor, details=details)
        if self.notifier is not None:
            if action == "open":
                events.window_opened(self.notifier, cycle, self.measures(cycle))
            elif action == "publish":
                events.results_published(self.notifier, cycle)
        return cycle
