"""Role home pages: each person lands on what they have to do next.

An officer sees the current cycle, its deadline with days left, what of theirs is missing,
returned or awaiting review, and a submit button; a member viewer sees the newest published
results with the headline changes since the results before; a coordinator sees the review
queue, completeness, the job workers and the cycle's next step.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from qicollab.accounts.models import Role
from qicollab.audit.models import AuditEvent
from qicollab.benchmarking.models import BenchmarkRun, MemberResult, RunStatus
from qicollab.cycles.completeness import CellStatus
from qicollab.cycles.deadlines import days_until, due_text
from qicollab.jobs.workers import worker_health
from qicollab.measures.models import Direction, Measure
from qicollab.schedule.calendar import CycleStatus, LearningCycle

if TYPE_CHECKING:
    from pyramid.request import Request
    from sqlalchemy.orm import Session

    from qicollab.cycles.services import CycleService


@dataclass(frozen=True, slots=True)
class Headline:
    """One measure of a member's newest published results, against the results before."""

    code: str
    title: str
    now: str
    before: str | None
    #: "better", "worse" or "unchanged" in the measure's own direction; None without a before.
    trend: str | None
    #: The funnel verdict at the alarm limit ("worse", "as-expected", "better"), or None.
    verdict: str | None


def _shown(value: float | None, measure: Measure) -> str:
    if value is None:
        return "—"
    return f"{value * measure.multiplier:,.1f} {measure.unit}".strip()


def _trend(now: float | None, before: float | None, measure: Measure) -> str | None:
    if now is None or before is None:
        return None
    step = (now - before) * measure.multiplier
    if abs(step) < 0.05:
        return "unchanged"
    higher_is_better = measure.direction is Direction.INCREASE
    return "better" if (step > 0) == higher_is_better else "worse"


def headlines(service: CycleService, member_id: int) -> tuple[BenchmarkRun | None, list[Headline]]:
    """The member's whole-cycle results in the newest published run, beside the previous one."""
    runs = list(
        service.db.scalars(
            sa.select(BenchmarkRun)
            .join(LearningCycle, LearningCycle.id == BenchmarkRun.cycle_id)
            .where(
                BenchmarkRun.collaborative_id == service.collaborative_id,
                BenchmarkRun.status == RunStatus.SUCCEEDED,
                LearningCycle.status == CycleStatus.PUBLISHED,
            )
            .order_by(BenchmarkRun.id.desc())
            .limit(2)
        )
    )
    if not runs:
        return None, []

    def values(run: BenchmarkRun) -> dict[int, MemberResult]:
        return {
            r.measure_id: r
            for r in service.db.scalars(
                sa.select(MemberResult).where(
                    MemberResult.run_id == run.id,
                    MemberResult.member_id == member_id,
                    MemberResult.period_id.is_(None),
                )
            )
        }

    now = values(runs[0])
    before = values(runs[1]) if len(runs) > 1 else {}
    measures = {m.id: m for m in service.measures()}
    found = []
    for measure_id, result in sorted(now.items(), key=lambda item: measures[item[0]].code):
        measure = measures.get(measure_id)
        if measure is None:
            continue
        old = before.get(measure_id)
        found.append(
            Headline(
                code=measure.code,
                title=measure.title,
                now=_shown(result.value, measure),
                before=_shown(old.value, measure) if old is not None else None,
                trend=_trend(result.value, old.value if old else None, measure),
                verdict=result.outlier_status,
            )
        )
    return runs[0], found


@dataclass(frozen=True, slots=True)
class Publication:
    """Results a coordinator published: which cycle, when, and the run they came from."""

    cycle: str
    at: dt.datetime
    run_id: int | None


def previous_sign_in(db: Session, user_id: int) -> dt.datetime | None:
    """When the user signed in before this visit (the audit log keeps every sign-in)."""
    return db.scalar(
        sa.select(AuditEvent.occurred_at)
        .where(AuditEvent.action == "login.succeeded", AuditEvent.actor_id == user_id)
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .offset(1)
        .limit(1)
    )


def published_since(
    db: Session, collaborative_id: int, since: dt.datetime | None
) -> list[Publication]:
    """Results published in the collaborative after ``since`` (all of them without one)."""
    query = (
        sa.select(AuditEvent)
        .where(
            AuditEvent.action == "cycle.published",
            AuditEvent.collaborative_id == collaborative_id,
        )
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
    )
    if since is not None:
        query = query.where(AuditEvent.occurred_at > since)
    return [
        Publication(
            cycle=str((event.details or {}).get("cycle", "")),
            at=event.occurred_at,
            run_id=(event.details or {}).get("run_id"),
        )
        for event in db.scalars(query.limit(10))
    ]


def home_context(request: Request) -> dict[str, Any]:
    """What the signed-in user's home page shows (nothing extra for visitors)."""
    from qicollab.cycles.views import service_for  # noqa: PLC0415

    user = request.identity
    context: dict[str, Any] = {"user": user, "role_home": None}
    if user is None:
        return context
    service = service_for(request)
    now = service.clock()
    cycle = service.current_cycle()
    context["cycle"] = cycle
    if cycle is not None:
        context["due"] = due_text(cycle.deadline, now)
        context["days_left"] = days_until(cycle.deadline, now)
    if user.role is Role.QUALITY_OFFICER and user.member_id is not None:
        context["role_home"] = "officer"
        if cycle is not None:
            counts = service.completeness(cycle, member_ids=[user.member_id]).counts()
            context["counts"] = {
                "missing": counts[CellStatus.MISSING] + counts[CellStatus.DRAFT],
                "returned": counts[CellStatus.RETURNED],
                "awaiting review": counts[CellStatus.SUBMITTED],
                "accepted": counts[CellStatus.ACCEPTED],
            }
    elif user.role is Role.MEMBER_VIEWER and user.member_id is not None:
        context["role_home"] = "viewer"
        context["run"], context["headlines"] = headlines(service, user.member_id)
        context["last_visit"] = previous_sign_in(request.db, user.id)
        context["new_results"] = published_since(
            request.db, service.collaborative_id, context["last_visit"]
        )
    elif user.role in {Role.COORDINATOR, Role.ADMIN}:
        context["role_home"] = "coordinator"
        context["queue"] = len(service.awaiting_review())
        context["workers"] = worker_health(request.db, collaborative_id=service.collaborative_id)
        if cycle is not None:
            grid = service.completeness(cycle)
            context["counts"] = grid.counts()
            context["total"] = grid.total
            context["next"] = service.pipeline(cycle).next
    return context
