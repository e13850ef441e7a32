"""A cycle as a pipeline: open -> closed -> locked -> computed -> reports rendered -> published.

:meth:`Pipeline.pipeline` says which stages are done, which action comes next, and what that
action would do in numbers (cells missing, versions unreviewed or returned, days to the
deadline), so the coordinator's confirmation states consequences instead of asking "sure?".
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from qicollab.audit.models import AuditEvent
from qicollab.benchmarking.models import BenchmarkRun, MemberResult, RunStatus
from qicollab.cycles.completeness import CellStatus, CompletenessQueries
from qicollab.cycles.deadlines import days_until
from qicollab.cycles.review import Review
from qicollab.jobs.models import Job
from qicollab.jobs.services import JobState
from qicollab.reporting.models import Report
from qicollab.schedule.calendar import CycleStatus, LearningCycle

#: The job kind of rendering a run's reports (the reporting domain's handler).
RENDER_JOB_KIND = "reports-render"
WHEN = "%Y-%m-%d %H:%M UTC"


#: Audited status changes of a cycle (``cycle.<action>``).
_STATUS_ACTIONS = ("opened", "closed", "locked", "unlocked", "published")
_LOCK_FACT_KEYS = frozenset({"days_left", "missing_cells", "cells", "unreviewed", "returned"})


class Stage(enum.StrEnum):
    """The steps of a cycle's life, in order."""

    OPEN = "open"
    CLOSED = "closed"
    LOCKED = "locked"
    COMPUTED = "computed"
    RENDERED = "reports rendered"
    PUBLISHED = "published"


def _n(count: int, thing: str, plural: str | None = None) -> str:
    return f"{count:,} {thing if count == 1 else plural or thing + 's'}"


@dataclass(frozen=True, slots=True)
class LockFacts:
    """What a lock would freeze now."""

    #: Calendar days to the deadline (0 on its day or after it).
    days_left: int
    #: The deadline is still ahead (even later today).
    before_deadline: bool
    missing: int
    total: int
    unreviewed: int
    returned: int

    @property
    def needs_reason(self) -> bool:
        """Locking early or with gaps needs a reason on record."""
        return self.before_deadline or bool(self.missing or self.unreviewed or self.returned)

    def to_json(self) -> dict[str, Any]:
        """For the audit log."""
        return {
            "days_left": self.days_left,
            "missing_cells": self.missing,
            "cells": self.total,
            "unreviewed": self.unreviewed,
            "returned": self.returned,
        }

    def sentences(self) -> list[str]:
        """The consequences in numbers, one sentence each."""
        said = []
        if self.before_deadline:
            left = _n(self.days_left, "day") + " left" if self.days_left else "it is today"
            said.append(f"The deadline is not reached yet: {left}.")
        if self.missing:
            said.append(
                f"{self.missing:,} of {_n(self.total, 'member x measure x period cell')} "
                "are missing."
            )
        if self.unreviewed:
            said.append(f"{_n(self.unreviewed, 'submission')} not reviewed yet.")
        if self.returned:
            said.append(f"{_n(self.returned, 'submission')} returned and not resubmitted.")
        return said


@dataclass(frozen=True, slots=True)
class NextAction:
    """The button the coordinator sees, and what pressing it would do."""

    action: str
    label: str
    consequences: tuple[str, ...]
    needs_reason: bool = False
    #: A job of this action already queued or running: show it instead of queueing another.
    running_job: JobState | None = None


@dataclass(frozen=True, slots=True)
class StageView:
    """One stage and whether it is done, the current one, or still to come."""

    stage: Stage
    state: str  # done / current / todo


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One recorded status change of a cycle (from the audit log): who, when, why."""

    at: dt.datetime
    #: "opened", "closed", "locked", "unlocked" or "published".
    action: str
    actor: str
    reason: str | None
    #: What a lock froze (missing cells, unreviewed and returned versions); empty otherwise.
    facts: dict[str, int]

    @property
    def consequences(self) -> str:
        """The lock's facts in words, e.g. "6 of 2,520 cells missing, 1 returned"."""
        if "cells" not in self.facts:
            return ""
        parts = [f"{self.facts.get('missing_cells', 0):,} of {self.facts['cells']:,} cells missing"]
        if self.facts.get("unreviewed"):
            parts.append(f"{self.facts['unreviewed']:,} unreviewed")
        if self.facts.get("returned"):
            parts.append(f"{self.facts['returned']:,} returned")
        if self.facts.get("days_left"):
            parts.append(_n(self.facts["days_left"], "day") + " before the deadline")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class PipelineView:
    """Everything the cycle page shows about where the cycle is and what comes next."""

    stages: tuple[StageView, ...]
    next: NextAction | None
    #: Other actions open now (unlock, publish before rendering, reopen the window).
    others: tuple[NextAction, ...]
    run: BenchmarkRun | None
    run_job: JobState | None
    render_job: JobState | None
    reports: int
    lock_facts: LockFacts | None


class Pipeline(CompletenessQueries, Review):
    """Readiness facts of a cycle and its pipeline view."""

    # --- facts ------------------------------------------------------------------------------

    def lock_facts(self, cycle: LearningCycle) -> LockFacts:
        """Days to the deadline, missing cells, unreviewed and returned versions, now."""
        now = self.clock()
        counts = self.completeness(cycle).counts()
        total = sum(counts.values())
        returned = counts[CellStatus.RETURNED]
        return LockFacts(
            days_left=max(0, days_until(cycle.deadline, now)),
            before_deadline=now < cycle.deadline,
            missing=counts[CellStatus.MISSING] + counts[CellStatus.DRAFT],
            total=total,
            unreviewed=counts[CellStatus.SUBMITTED],
            returned=returned,
        )

    def status_history(self, cycle: LearningCycle) -> list[StatusChange]:
        """Every opening, closing, lock, unlock and publication of the cycle, newest first.

        The audit log is the record (reasons live there even after an unlock clears the
        cycle's own lock reason), so the history cannot disagree with it.
        """
        events = self.db.scalars(
            sa.select(AuditEvent)
            .where(
                AuditEvent.object_type == "learning_cycle",
                AuditEvent.object_id == str(cycle.id),
                AuditEvent.action.in_([f"cycle.{past}" for past in _STATUS_ACTIONS]),
            )
            .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        )
        return [
            StatusChange(
                at=event.occurred_at,
                action=event.action.removeprefix("cycle."),
                actor=event.actor,
                reason=(event.details or {}).get("reason") or None,
                facts={
                    key: int(value)
                    for key, value in (event.details or {}).items()
                    if key in _LOCK_FACT_KEYS and isinstance(value, int)
                },
            )
            for event in events
        ]

    def runs_since_lock(self, cycle: LearningCycle) -> list[BenchmarkRun]:
        """The cycle's runs created since it was last locked, newest first."""
        if cycle.locked_at is None:
            return []
        return list(
            self.db.scalars(
                sa.select(BenchmarkRun)
                .where(
                    BenchmarkRun.cycle_id == cycle.id,
                    BenchmarkRun.created_at >= cycle.locked_at,
                )
                .order_by(BenchmarkRun.id.desc())
            )
        )

    def succeeded_run_id(self, cycle: LearningCycle) -> int | None:
        """The newest succeeded run since the cycle was last locked."""
        return next(
            (r.id for r in self.runs_since_lock(cycle) if r.status is RunStatus.SUCCEEDED), None
        )

    def render_job(self, run_id: int) -> JobState | None:
        """The newest job rendering this run's reports."""
        for job in self.db.scalars(
            sa.select(Job)
            .where(Job.kind == RENDER_JOB_KIND, Job.collaborative_id == self.collaborative_id)
            .order_by(Job.id.desc())
            .limit(50)
        ):
            if (job.params or {}).get("run_id") == run_id:
                return JobState.of(job)
        return None

    def report_count(self, run_id: int) -> int:
        """Reports stored for the run."""
        return int(
            self.db.scalar(
                sa.select(sa.func.count()).select_from(Report).where(Report.run_id == run_id)
            )
            or 0
        )

    def with_data(self, cycle: LearningCycle) -> int:
        """Current versions (submitted or accepted) the cycle's run would read."""
        counts = self.completeness(cycle).counts()
        return counts[CellStatus.SUBMITTED] + counts[CellStatus.ACCEPTED]

    # --- the view ---------------------------------------------------------------------------

    def pipeline(self, cycle: LearningCycle) -> PipelineView:
        """Stages done, the next action and its consequences, and the runs and jobs."""
        runs = self.runs_since_lock(cycle) if cycle.status in LOCKED_STATES else []
        run = runs[0] if runs else None
        succeeded = next((r for r in runs if r.status is RunStatus.SUCCEEDED), None)
        run_job = self._job(run.job_id) if run is not None and run.job_id else None
        render_job = self.render_job(succeeded.id) if succeeded else None
        reports = self.report_count(succeeded.id) if succeeded else 0
        rendered = reports > 0 and (render_job is None or render_job.finished)
        reached = self._reached(cycle, succeeded is not None, rendered)
        stages = tuple(
            StageView(stage, "done" if i < reached else "current" if i == reached else "todo")
            for i, stage in enumerate(Stage)
        )
        facts = (
            self.lock_facts(cycle)
            if cycle.status in {CycleStatus.OPEN, CycleStatus.CLOSED}
            else None
        )
        actions = self._actions(cycle, facts, run, run_job, succeeded, render_job, rendered)
        return PipelineView(
            stages=stages,
            next=actions[0] if actions else None,
            others=tuple(actions[1:]),
            run=succeeded or run,
            run_job=run_job,
            render_job=render_job,
            reports=reports,
            lock_facts=facts,
        )

    def _job(self, job_id: int) -> JobState | None:
        job = self.db.get(Job, job_id)
        return JobState.of(job) if job is not None else None

    @staticmethod
    def _reached(cycle: LearningCycle, computed: bool, rendered: bool) -> int:
        """Index of the current stage (len(Stage) when all are done)."""
        order = list(Stage)
        if cycle.status is CycleStatus.PUBLISHED:
            return len(order)
        if cycle.status is CycleStatus.PLANNED:
            return order.index(Stage.OPEN)
        if cycle.status is CycleStatus.OPEN:
            return order.index(Stage.CLOSED)
        if cycle.status is CycleStatus.CLOSED:
            return order.index(Stage.LOCKED)
        if not computed:
            return order.index(Stage.COMPUTED)
        return order.index(Stage.PUBLISHED if rendered else Stage.RENDERED)

    def _actions(  # noqa: PLR0917 - the facts the buttons depend on
        self,
        cycle: LearningCycle,
        facts: LockFacts | None,
        run: BenchmarkRun | None,
        run_job: JobState | None,
        succeeded: BenchmarkRun | None,
        render_job: JobState | None,
        rendered: bool,
    ) -> list[NextAction]:
        status = cycle.status
        if status is CycleStatus.PLANNED:
            return [self._open_action(cycle)]
        if status in {CycleStatus.OPEN, CycleStatus.CLOSED}:
            assert facts is not None
            lock = NextAction(
                "lock",
                "Lock the data",
                (
                    *facts.sentences(),
                    "Locking freezes the data for the benchmark run: members can no longer "
                    "submit or correct unless you reopen a period for them.",
                ),
                needs_reason=facts.needs_reason,
            )
            if status is CycleStatus.OPEN:
                close = NextAction(
                    "close",
                    "Close submissions",
                    (
                        *facts.sentences()[:2],
                        "Members can no longer submit; you can open the window again.",
                    ),
                )
                return [close, lock]
            return [lock, self._open_action(cycle)]
        if status is CycleStatus.PUBLISHED:
            return []
        unlock = NextAction(
            "unlock",
            "Unlock",
            (
                "Members can submit and correct again once you reopen the window; runs "
                "computed so far no longer count toward publishing.",
            ),
            needs_reason=True,
        )
        compute_running = run_job if run_job is not None and not run_job.finished else None
        if succeeded is None:
            data = self.with_data(cycle)
            compute = NextAction(
                "compute",
                "Compute benchmark run",
                (
                    f"A benchmark run over {_n(len(self.measures(cycle)), 'measure')} and "
                    f"{_n(len(self.members()), 'member')}, from {_n(data, 'submitted value')}"
                    " frozen by the lock.",
                    *(
                        [f"The last run failed: {run.error}"]
                        if run is not None and run.status is RunStatus.FAILED and run.error
                        else []
                    ),
                ),
                running_job=compute_running,
            )
            return [compute, unlock]
        members = len(self.members())
        with_results = int(
            self.db.scalar(
                sa.select(sa.func.count(sa.distinct(MemberResult.member_id))).where(
                    MemberResult.run_id == succeeded.id
                )
            )
            or 0
        )
        render = NextAction(
            "render",
            "Render reports",
            (
                f"Renders {_n(with_results, 'member report')} (members with results), the "
                f"blinded summary and the collaborative report of run {succeeded.id}.",
            ),
            running_job=render_job if render_job is not None and not render_job.finished else None,
        )
        users = self._member_users()
        publish = NextAction(
            "publish",
            "Publish results",
            (
                f"{_n(members, 'member')} ({_n(users, 'user')}) see run {succeeded.id}'s "
                "results and reports, and are told by e-mail.",
                "Published results cannot be unlocked.",
            ),
        )
        if rendered:
            return [publish, render, unlock]
        return [render, publish, unlock]

    def _open_action(self, cycle: LearningCycle) -> NextAction:
        now = self.clock()
        early = (
            [f"The window was planned to open on {cycle.window_opens_at:{WHEN}}."]
            if now < cycle.window_opens_at
            else []
        )
        return NextAction(
            "open",
            "Open submissions",
            (
                *early,
                f"Every member's officers ({_n(self._officers(), 'user')}) are told by e-mail "
                f"that {cycle.code} takes data until {cycle.deadline:{WHEN}}.",
            ),
        )

    def _officers(self) -> int:
        from qicollab.accounts.models import Role, User  # noqa: PLC0415
        from qicollab.members.models import Member  # noqa: PLC0415

        return int(
            self.db.scalar(
                sa.select(sa.func.count())
                .select_from(User)
                .join(Member, Member.id == User.member_id)
                .where(
                    Member.collaborative_id == self.collaborative_id,
                    User.is_active.is_(True),
                    User.role == Role.QUALITY_OFFICER,
                )
            )
            or 0
        )

    def _member_users(self) -> int:
        from qicollab.accounts.models import User  # noqa: PLC0415
        from qicollab.members.models import Member  # noqa: PLC0415

        return int(
            self.db.scalar(
                sa.select(sa.func.count())
                .select_from(User)
                .join(Member, Member.id == User.member_id)
                .where(Member.collaborative_id == self.collaborative_id, User.is_active.is_(True))
            )
            or 0
        )


LOCKED_STATES = frozenset({CycleStatus.LOCKED, CycleStatus.PUBLISHED})
