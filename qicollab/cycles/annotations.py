"""Annotations: dated notes (a change, a PDSA cycle, a data issue) on a member's charts.

A note belongs to a member and a measure; a note without a member applies to every member's
chart of that measure (e.g. a definition change), one without a measure to every measure of the
member. A note flagged ``starts_phase`` opens a new control-chart phase (new limits) from the
period that contains its date: the benchmark run's chart step and the portal read them here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from qicollab.audit.services import record
from qicollab.cycles.models import Annotation, AnnotationKind
from qicollab.measures.models import Measure
from qicollab.members.models import Member

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qicollab.accounts.models import User

MAX_LABEL = 80


class AnnotationError(ValueError):
    """An annotation that cannot be saved, with the reason."""


@dataclass
class AnnotationService:
    """Create and list a collaborative's annotations in the caller's transaction."""

    db: Session
    collaborative_id: int

    def create(
        self,
        *,
        member_id: int | None,
        measure_id: int | None,
        kind: AnnotationKind | str,
        occurred_on: dt.date,
        label: str,
        body: str = "",
        starts_phase: bool = False,
        actor: User | str | None = None,
    ) -> Annotation:
        """Add a note (audited). Phase starts need a member and a measure: limits are per chart."""
        try:
            kind = AnnotationKind(kind)
        except ValueError as error:
            msg = f"unknown annotation kind {kind!r}"
            raise AnnotationError(msg) from error
        label = (label or "").strip()
        if not label:
            msg = "an annotation needs a short label"
            raise AnnotationError(msg)
        if len(label) > MAX_LABEL:
            msg = f"the label is longer than {MAX_LABEL} characters"
            raise AnnotationError(msg)
        if not isinstance(occurred_on, dt.date) or isinstance(occurred_on, dt.datetime):
            msg = "the date must be a calendar date"
            raise AnnotationError(msg)
        if member_id is not None:
            member = self.db.get(Member, member_id)
            if member is None or member.collaborative_id != self.collaborative_id:
                msg = "unknown member"
                raise AnnotationError(msg)
        if measure_id is not None:
            measure = self.db.get(Measure, measure_id)
            if measure is None or measure.collaborative_id != self.collaborative_id:
                msg = "unknown measure"
                raise AnnotationError(msg)
        if starts_phase and (member_id is None or measure_id is None):
            msg = "a note that starts a phase must name the member and the measure"
            raise AnnotationError(msg)
        note = Annotation(
            collaborative_id=self.collaborative_id,
            member_id=member_id,
            measure_id=measure_id,
            kind=kind,
            occurred_on=occurred_on,
            label=label,
            body=body or "",
            starts_phase=bool(starts_phase),
            created_by_id=getattr(actor, "id", None),
        )
        self.db.add(note)
        self.db.flush()
        record(
            self.db,
            "annotation.created",
            actor=actor,
            object_type="annotation",
            object_id=note.id,
            collaborative_id=self.collaborative_id,
            member_id=member_id,
            details={
                "measure_id": measure_id,
                "kind": kind.value,
                "occurred_on": occurred_on.isoformat(),
                "starts_phase": bool(starts_phase),
            },
        )
        return note

    def list(
        self, *, member_id: int | None = None, measure_id: int | None = None
    ) -> list[Annotation]:
        """Notes that apply to a member's chart of a measure (including the general ones),
        oldest first; without arguments, every note of the collaborative."""
        query = sa.select(Annotation).where(Annotation.collaborative_id == self.collaborative_id)
        if member_id is not None:
            query = query.where(
                sa.or_(Annotation.member_id == member_id, Annotation.member_id.is_(None))
            )
        if measure_id is not None:
            query = query.where(
                sa.or_(Annotation.measure_id == measure_id, Annotation.measure_id.is_(None))
            )
        return list(self.db.scalars(query.order_by(Annotation.occurred_on, Annotation.id)))

    def phase_starts(self, member_id: int, measure_id: int) -> list[dt.date]:
        """Dates from which the member's chart of the measure starts a new phase."""
        return [
            note.occurred_on
            for note in self.list(member_id=member_id, measure_id=measure_id)
            if note.starts_phase
        ]
