"""The cycle's long work as portal jobs: compute its benchmark run, render its reports.

Pressing a button while the same work is queued or running returns that job instead of
queueing a second one. Jobs are created in the caller's transaction; the caller enqueues them
after it commits (:meth:`qicollab.jobs.queue.JobQueue.enqueue_after_commit`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from qicollab.audit.services import record
from qicollab.benchmarking.models import RunStatus
from qicollab.cycles.pipeline import LOCKED_STATES, RENDER_JOB_KIND, Pipeline
from qicollab.cycles.reasons import CycleError
from qicollab.jobs.services import JobService

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from qicollab.accounts.models import User
    from qicollab.schedule.calendar import LearningCycle


@dataclass(frozen=True, slots=True)
class StartedJob:
    """The job doing the work, and whether this press queued it (else it was running)."""

    job_id: int
    created: bool


class CycleJobs(Pipeline):
    """Starting a cycle's compute and render jobs."""

    def start_compute(
        self,
        cycle: LearningCycle,
        *,
        actor: User | None,
        session_factory: sessionmaker[Session],
    ) -> StartedJob:
        """Queue a benchmark run of the locked cycle (or return the one already under way)."""
        from qicollab.benchmarking.services import BenchmarkRunService, RunError  # noqa: PLC0415

        if cycle.status not in LOCKED_STATES:
            msg = f"{cycle.code} is {cycle.status.value}: lock it before computing benchmarks"
            raise CycleError(msg)
        for run in self.runs_since_lock(cycle):
            if run.status in {RunStatus.QUEUED, RunStatus.RUNNING} and run.job_id is not None:
                return StartedJob(run.job_id, created=False)
        service = BenchmarkRunService(
            session_factory, jobs=JobService(session_factory, clock=self.clock), clock=self.clock
        )
        try:
            run = service.create(
                cycle_id=cycle.id, created_by_id=getattr(actor, "id", None), session=self.db
            )
        except RunError as error:
            raise CycleError(str(error)) from error
        assert run.job_id is not None
        self._audit("cycle.compute_requested", cycle, actor, details={"run_id": run.id})
        return StartedJob(run.job_id, created=True)

    def start_render(
        self,
        cycle: LearningCycle,
        *,
        actor: User | None,
        session_factory: sessionmaker[Session],
    ) -> StartedJob:
        """Queue rendering of the cycle's newest succeeded run (or return the running job)."""
        run_id = self.succeeded_run_id(cycle)
        if run_id is None:
            msg = f"{cycle.code} has no succeeded benchmark run to render reports from"
            raise CycleError(msg)
        running = self.render_job(run_id)
        if running is not None and not running.finished:
            return StartedJob(running.id, created=False)
        job = JobService(session_factory, clock=self.clock).create(
            RENDER_JOB_KIND,
            params={"run_id": run_id},
            collaborative_id=self.collaborative_id,
            created_by_id=getattr(actor, "id", None),
            session=self.db,
        )
        record(
            self.db,
            "reports.render_requested",
            actor=actor,
            object_type="benchmark_run",
            object_id=run_id,
            collaborative_id=self.collaborative_id,
            details={"job_id": job.id, "cycle": cycle.code},
        )
        return StartedJob(job.id, created=True)
