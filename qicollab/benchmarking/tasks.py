"""Benchmark runs on the queue: one task per measure, the run visible only once all committed.

The job handler marks the run running, reads its plan (inputs, measures, snapshot) and plans one
task per measure; any ``qicollab worker`` takes measures. A task computes its measure (the
worker keeps the run's plan between its measures) and stages the output as JSON on its task
row, in the transaction that re-checks its claim. When the last measure ends, one transaction
stores every measure's rows and flips the run to succeeded with its job: pages, which read only
succeeded runs, never see part of a run. A failed measure fails the run; the previous run stays
the one pages show.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import TYPE_CHECKING

from qicollab.benchmarking.inputs import MeasureOutput
from qicollab.benchmarking.services import JOB_KIND, BenchmarkRunService, RunPlan
from qicollab.jobs import fanout
from qicollab.jobs.models import TaskStatus
from qicollab.jobs.queue import JobContext, job_handler
from qicollab.jobs.services import JobService, JobState, error_text

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

#: This worker's plan of the run it last worked on: (engine, run id) -> plan.
_PLANS: dict[tuple[object, int], RunPlan] = {}
_PLANS_LOCK = threading.Lock()


def _plan(session_factory: sessionmaker[Session], run_id: int, job_id: int) -> RunPlan:
    """The run's plan, read once per worker process and run (kept warm across measures)."""
    key = (session_factory.kw["bind"], run_id)
    with _PLANS_LOCK:
        plan = _PLANS.get(key)
        if plan is None:
            _PLANS.clear()  # one run at a time per worker: keep memory flat
            service = BenchmarkRunService(session_factory, jobs=JobService(session_factory))
            plan = _PLANS[key] = service.plan(run_id, job_id)
        return plan


def output_to_json(output: MeasureOutput) -> str:
    """A measure's output as the JSON text staged on its task row (NaN kept)."""
    return json.dumps(dataclasses.asdict(output), allow_nan=True)


def output_from_json(text: str) -> MeasureOutput:
    """The staged output back (the inverse of :func:`output_to_json`)."""
    return MeasureOutput(**json.loads(text))


@job_handler(JOB_KIND)
def execute_run(context: JobContext) -> fanout.FannedOut:
    """Start the run named in the job's params and plan one task per measure."""
    run_id = int(context.job.params["run_id"])
    service = BenchmarkRunService(context.session_factory, jobs=context.jobs)
    job_id = service.start_run(run_id)
    assert job_id == context.job.id
    try:
        plan = service.plan(run_id, job_id)
        return fanout.plan_tasks(
            context.session_factory,
            job_id,
            [
                fanout.TaskSpec(f"measure:{m.code}", {"run_id": run_id, "measure_id": m.id})
                for m in plan.measures
            ],
        )
    except Exception as error:
        service.mark_failed(run_id, job_id, error_text(error))
        raise


class MeasureTasks:
    """The task kind of benchmark runs."""

    def run(self, context: fanout.TaskContext) -> MeasureOutput:
        """Load and compute one measure (no transaction held while computing)."""
        from qicollab.benchmarking.compute import measure_job  # noqa: PLC0415

        run_id = int(context.task.params["run_id"])
        plan = _plan(context.session_factory, run_id, context.job.id)
        measure_id = int(context.task.params["measure_id"])
        measure = next(m for m in plan.measures if m.id == measure_id)
        ids = plan.snapshot.by_measure.get(measure_id, ())
        engine = context.session_factory.kw["bind"]
        return measure_job(ids, measure, plan.inputs, engine=engine)

    def record(
        self, session: Session, context: fanout.TaskContext, outcome: MeasureOutput
    ) -> str | None:
        """Stage the output on the task row (the run's tables are written at the end)."""
        del session, context
        return output_to_json(outcome)

    def finish(
        self,
        session: Session,
        job: JobState,
        tasks: list[fanout.TaskState],
        session_factory: sessionmaker[Session],
    ) -> fanout.JobOutcome:
        """Store every measure and flip the run visible, or fail it naming the measures."""
        failed = [task for task in tasks if task.status is TaskStatus.FAILED]
        if failed:
            names = ", ".join(f"{task.key} ({(task.error or '')[:200]})" for task in failed[:5])
            return fanout.JobOutcome(
                False, "failed", error=f"{len(failed)} measure(s) failed: {names}"
            )
        run_id = int(job.params["run_id"])
        outputs = sorted(
            (output_from_json(task.output or "{}") for task in tasks),
            key=lambda output: output.measure_id,
        )
        service = BenchmarkRunService(session_factory, jobs=JobService(session_factory))
        service.store_results(session, _plan(session_factory, run_id, job.id), outputs)
        return fanout.JobOutcome(True, "results stored")

    def abandon(self, job: JobState, error: str, session_factory: sessionmaker[Session]) -> None:
        """Mark the run failed (its job is already)."""
        service = BenchmarkRunService(session_factory, jobs=JobService(session_factory))
        service.mark_failed(int(job.params["run_id"]), job.id, error)


fanout.task_kind(JOB_KIND, MeasureTasks())
