"""PDSA cycles of member teams, and the markers they draw on the linked measures' charts.

A cycle's markers are ordinary chart annotations (the mechanism the benchmark run and every
chart already read): one ``pdsa`` note per linked measure on the day the test starts and, when
the team adopted the change and asked for it, a ``change`` note on the day of the decision that
starts a new control-chart phase there. Saving a cycle rewrites its notes, so the charts always
show what the record says. Every save is audited.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from qicollab.audit.services import record
from qicollab.cycles.annotations import MAX_LABEL, AnnotationService
from qicollab.cycles.models import Annotation, AnnotationKind
from qicollab.db import utcnow
from qicollab.improvement.models import (
    ActDecision,
    ChangeIdea,
    ChangePackage,
    PdsaCycle,
    pdsa_annotations,
)
from qicollab.improvement.text import ImprovementError, required, screened
from qicollab.measures.models import Measure
from qicollab.members.models import Member

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qicollab.accounts.models import User

MAX_TITLE = 200


@dataclass(frozen=True, slots=True)
class PdsaDraft:
    """What an officer writes about a cycle, from the form or the API."""

    title: str
    starts_on: dt.date
    measure_ids: tuple[int, ...] = ()
    change_idea_id: int | None = None
    own_change: str = ""
    follows_id: int | None = None
    objective: str = ""
    prediction: str = ""
    ends_on: dt.date | None = None
    what_was_done: str = ""
    observations: str = ""
    study: str = ""
    decision: ActDecision | None = None
    decided_on: dt.date | None = None
    next_steps: str = ""
    starts_phase: bool = False


def stage(cycle: PdsaCycle) -> str:
    """Where the cycle is: the last of Plan, Do, Study, Act with anything written."""
    if cycle.decision is not None:
        return "Act"
    if cycle.study:
        return "Study"
    if cycle.what_was_done or cycle.observations:
        return "Do"
    return "Plan"


def change_label(cycle: PdsaCycle) -> str:
    """The change tested, as ``C4 Title`` for a package idea or the team's own words."""
    if cycle.change_idea is not None:
        return f"{cycle.change_idea.code} {cycle.change_idea.title}"
    return cycle.own_change


def _is_date(value: object) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


@dataclass
class PdsaService:
    """Create, edit and read member teams' PDSA cycles in the caller's transaction."""

    db: Session
    collaborative_id: int

    # --- reading ------------------------------------------------------------------------------

    def for_member(self, member_id: int) -> list[PdsaCycle]:
        """The team's cycles, newest start first."""
        return list(
            self.db.scalars(
                sa.select(PdsaCycle)
                .where(
                    PdsaCycle.collaborative_id == self.collaborative_id,
                    PdsaCycle.member_id == member_id,
                )
                .order_by(PdsaCycle.starts_on.desc(), PdsaCycle.id.desc())
            )
        )

    def get(self, member_id: int, pdsa_id: int) -> PdsaCycle | None:
        """The team's cycle, or None (another team's cycle is as if it did not exist)."""
        cycle = self.db.get(PdsaCycle, pdsa_id)
        if cycle is None or cycle.member_id != member_id:
            return None
        if cycle.collaborative_id != self.collaborative_id:
            return None
        return cycle

    def ramps(self, member_id: int) -> list[list[PdsaCycle]]:
        """The team's ramps: chains of cycles that follow one another, oldest first in each;
        ramps ordered by their latest cycle, newest first."""
        cycles = self.for_member(member_id)
        by_id = {c.id: c for c in cycles}
        followers: dict[int, list[PdsaCycle]] = {}
        for c in cycles:
            if c.follows_id in by_id:
                followers.setdefault(c.follows_id, []).append(c)
        ramps = []
        for first in (c for c in cycles if c.follows_id not in by_id):
            ramp, frontier = [], [first]
            while frontier:
                current = frontier.pop(0)
                ramp.append(current)
                frontier.extend(sorted(followers.get(current.id, []), key=lambda c: c.starts_on))
            ramps.append(sorted(ramp, key=lambda c: (c.starts_on, c.id)))
        return sorted(ramps, key=lambda r: max(c.starts_on for c in r), reverse=True)

    def ramp_of(self, cycle: PdsaCycle) -> list[PdsaCycle]:
        """The ramp a cycle belongs to."""
        return next(r for r in self.ramps(cycle.member_id) if cycle in r)

    def active_in(self, member_id: int, month: dt.date) -> list[PdsaCycle]:
        """Cycles of the team running at some time in the month of ``month``."""
        first = month.replace(day=1)
        following = (first + dt.timedelta(days=32)).replace(day=1)
        return [
            c
            for c in reversed(self.for_member(member_id))
            if c.starts_on < following and (c.decided_on or c.ends_on or c.starts_on) >= first
        ]

    # --- writing ------------------------------------------------------------------------------

    def _check(self, member_id: int, draft: PdsaDraft, editing: PdsaCycle | None) -> dict:
        member = self.db.get(Member, member_id)
        if member is None or member.collaborative_id != self.collaborative_id:
            msg = "unknown member"
            raise ImprovementError(msg, field="member")
        title = required(draft.title, field="title", label="title", max_chars=MAX_TITLE)
        if not _is_date(draft.starts_on):
            msg = "the start date is required (a calendar date)"
            raise ImprovementError(msg, field="starts_on")
        for name, label, value in (
            ("ends_on", "end date", draft.ends_on),
            ("decided_on", "decision date", draft.decided_on),
        ):
            if value is not None and not _is_date(value):
                msg = f"the {label} must be a calendar date"
                raise ImprovementError(msg, field=name)
            if value is not None and value < draft.starts_on:
                msg = f"the {label} is before the start date"
                raise ImprovementError(msg, field=name)
        idea = None
        if draft.change_idea_id is not None:
            idea = self.db.scalar(
                sa.select(ChangeIdea)
                .join(ChangePackage, ChangePackage.id == ChangeIdea.package_id)
                .where(
                    ChangeIdea.id == draft.change_idea_id,
                    ChangePackage.collaborative_id == self.collaborative_id,
                )
            )
            if idea is None:
                msg = "unknown change idea"
                raise ImprovementError(msg, field="change_idea")
        own = screened(draft.own_change, field="own_change", label="own change", max_chars=200)
        if idea is None and not own:
            msg = "name the change tested: one of the change package's ideas, or your own"
            raise ImprovementError(msg, field="change_idea")
        measures = []
        for measure_id in dict.fromkeys(draft.measure_ids):
            measure = self.db.get(Measure, measure_id)
            if measure is None or measure.collaborative_id != self.collaborative_id:
                msg = "unknown measure"
                raise ImprovementError(msg, field="measures")
            measures.append(measure)
        decision = None
        if draft.decision is not None:
            try:
                decision = ActDecision(draft.decision)
            except ValueError as error:
                msg = "the decision is adopt, adapt or abandon"
                raise ImprovementError(msg, field="decision") from error
            if draft.decided_on is None:
                msg = "give the date of the decision"
                raise ImprovementError(msg, field="decided_on")
        if draft.starts_phase:
            if decision is not ActDecision.ADOPT:
                msg = "only an adopted change can start a new chart phase"
                raise ImprovementError(msg, field="starts_phase")
            if not measures:
                msg = "link the measures whose charts start a new phase"
                raise ImprovementError(msg, field="measures")
        follows = None
        if draft.follows_id is not None:
            follows = self.get(member_id, draft.follows_id)
            if follows is None:
                msg = "the previous cycle must be one of your team's cycles"
                raise ImprovementError(msg, field="follows")
            if editing is not None and editing.id in {c.id for c in self._chain_back(follows)}:
                msg = "a cycle cannot follow itself or a cycle that follows it"
                raise ImprovementError(msg, field="follows")
        text = {
            name: screened(getattr(draft, name), field=name, label=label)
            for name, label in (
                ("objective", "objective"),
                ("prediction", "prediction"),
                ("what_was_done", "account of what was done"),
                ("observations", "observations"),
                ("study", "study of the results"),
                ("next_steps", "next steps"),
            )
        }
        return {
            "title": title,
            "change_idea_id": idea.id if idea else None,
            "own_change": own if idea is None else "",
            "follows_id": follows.id if follows else None,
            "starts_on": draft.starts_on,
            "ends_on": draft.ends_on,
            "decision": decision,
            "decided_on": draft.decided_on if decision else None,
            "starts_phase": bool(draft.starts_phase),
            "measures": measures,
            **text,
        }

    def _chain_back(self, cycle: PdsaCycle) -> list[PdsaCycle]:
        chain, seen = [], set()
        current: PdsaCycle | None = cycle
        while current is not None and current.id not in seen:
            chain.append(current)
            seen.add(current.id)
            current = self.db.get(PdsaCycle, current.follows_id) if current.follows_id else None
        return chain

    def create(self, member_id: int, draft: PdsaDraft, *, actor: User | str | None) -> PdsaCycle:
        """Record a new cycle for the team and draw its markers."""
        values = self._check(member_id, draft, None)
        cycle = PdsaCycle(
            collaborative_id=self.collaborative_id,
            member_id=member_id,
            created_by_id=getattr(actor, "id", None),
            **values,
        )
        self.db.add(cycle)
        self.db.flush()
        self._draw(cycle, actor)
        self._audit("pdsa.created", cycle, actor)
        return cycle

    def update(self, cycle: PdsaCycle, draft: PdsaDraft, *, actor: User | str | None) -> PdsaCycle:
        """Save the cycle's new version and redraw its markers."""
        values = self._check(cycle.member_id, draft, cycle)
        for name, value in values.items():
            setattr(cycle, name, value)
        cycle.updated_at = utcnow()
        self.db.flush()
        self._draw(cycle, actor)
        self._audit("pdsa.updated", cycle, actor)
        return cycle

    def delete(self, cycle: PdsaCycle, *, actor: User | str | None) -> None:
        """Delete a cycle recorded by mistake: its chart markers go with it, the cycles that
        followed it follow its predecessor instead (the ramp stays one chain), and the audit
        log keeps what it was."""
        self._audit("pdsa.deleted", cycle, actor)
        notes = list(
            self.db.scalars(
                sa.select(pdsa_annotations.c.annotation_id).where(
                    pdsa_annotations.c.pdsa_id == cycle.id
                )
            )
        )
        self.db.execute(sa.delete(pdsa_annotations).where(pdsa_annotations.c.pdsa_id == cycle.id))
        if notes:
            self.db.execute(sa.delete(Annotation).where(Annotation.id.in_(notes)))
        self.db.execute(
            sa.update(PdsaCycle)
            .where(PdsaCycle.follows_id == cycle.id)
            .values(follows_id=cycle.follows_id)
        )
        cycle.measures.clear()
        self.db.flush()
        self.db.delete(cycle)
        self.db.flush()

    def _audit(self, action: str, cycle: PdsaCycle, actor: User | str | None) -> None:
        record(
            self.db,
            action,
            actor=actor,
            object_type="pdsa",
            object_id=cycle.id,
            collaborative_id=self.collaborative_id,
            member_id=cycle.member_id,
            details={
                "title": cycle.title,
                "measures": [m.code for m in cycle.measures],
                "stage": stage(cycle),
                "decision": cycle.decision.value if cycle.decision else None,
                "starts_phase": cycle.starts_phase,
            },
        )

    def _draw(self, cycle: PdsaCycle, actor: User | str | None) -> None:
        """Replace the cycle's chart notes by the ones its record implies."""
        old = list(
            self.db.scalars(
                sa.select(pdsa_annotations.c.annotation_id).where(
                    pdsa_annotations.c.pdsa_id == cycle.id
                )
            )
        )
        if old:
            self.db.execute(sa.delete(Annotation).where(Annotation.id.in_(old)))
        notes = AnnotationService(self.db, self.collaborative_id)
        made = []
        for measure in cycle.measures:
            made.append(
                notes.create(
                    member_id=cycle.member_id,
                    measure_id=measure.id,
                    kind=AnnotationKind.PDSA,
                    occurred_on=cycle.starts_on,
                    label=f"PDSA: {cycle.title}"[:MAX_LABEL],
                    body=change_label(cycle),
                    actor=actor,
                )
            )
            if cycle.decision is ActDecision.ADOPT and cycle.starts_phase:
                made.append(
                    notes.create(
                        member_id=cycle.member_id,
                        measure_id=measure.id,
                        kind=AnnotationKind.CHANGE,
                        occurred_on=cycle.decided_on,
                        label=f"Adopted: {cycle.title}"[:MAX_LABEL],
                        body=change_label(cycle),
                        starts_phase=True,
                        actor=actor,
                    )
                )
        if made:
            self.db.execute(
                sa.insert(pdsa_annotations),
                [{"pdsa_id": cycle.id, "annotation_id": note.id} for note in made],
            )
