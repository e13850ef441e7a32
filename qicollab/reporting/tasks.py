"""Rendering a run's reports on the queue: one task per report, taken by any worker.

The job handler plans one task per report (member reports, then the collaborative report and
the blinded summary) and returns; every ``qicollab worker`` then takes reports of the batch.
A task lays out its PDF with the process's warm WeasyPrint and run data, then, in the
transaction that re-checks its claim, puts the file in the file store (:mod:`qicollab.storage`;
with the database store, inside that transaction) and records its row (key, SHA-256, size,
worker): a retried report is recorded once, and a report that fails keeps its previous file
and row. The job ends when its last report does, failed if any report failed.

The queue's worker finds this module through ``qicollab.jobs.queue.HANDLER_MODULES``; the
portal imports it before enqueueing, so immediate mode works too.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from qicollab.config import storage_path
from qicollab.jobs import fanout
from qicollab.jobs.models import TaskStatus
from qicollab.jobs.queue import job_handler
from qicollab.jobs.services import JobState
from qicollab.reporting.models import ReportKind
from qicollab.reporting.rendering import (
    JOB_KIND,
    RenderTask,
    ReportRenderer,
    render_in_task,
    store_report,
)
from qicollab.reporting.reports import ReportSpec
from qicollab.storage import DatabaseFileStore, file_store

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from qicollab.jobs.queue import JobContext


def _spec_params(task: RenderTask) -> dict[str, Any]:
    return {
        "run_id": task.run_id,
        "kind": task.spec.kind.value,
        "member_id": task.spec.member_id,
        "path": task.relative_path,
    }


def _render_task(params: dict[str, Any]) -> RenderTask:
    spec = ReportSpec(ReportKind(params["kind"]), params.get("member_id"))
    return RenderTask(int(params["run_id"]), spec, str(params["path"]))


@job_handler(JOB_KIND)
def render_reports(context: JobContext) -> fanout.FannedOut:
    """Plan one task per report of ``params["run_id"]`` (optionally only the members in
    ``params["member_ids"]`` and the kinds in ``params["kinds"]``); the workers render them."""
    params = context.job.params
    run_id = int(params["run_id"])
    renderer = ReportRenderer(context.session_factory, context.settings)
    kinds = params.get("kinds")
    planned = renderer.plan(
        run_id,
        kinds=[ReportKind(kind) for kind in kinds] if kinds else None,
        member_ids=params.get("member_ids"),
    )
    context.jobs.start(context.job.id, message=f"rendering {len(planned)} reports of run {run_id}")
    return fanout.plan_tasks(
        context.session_factory,
        context.job.id,
        [fanout.TaskSpec(task.spec.filename, _spec_params(task)) for task in planned],
    )


class ReportTasks:
    """The task kind of report batches."""

    def run(self, context: fanout.TaskContext) -> tuple[RenderTask, bytes]:
        """Lay out the report (nothing is written yet)."""
        task = _render_task(context.task.params)
        pdf = render_in_task(
            context.session_factory, storage_path(context.settings), task, context.job.id
        )
        return task, pdf

    def record(
        self,
        session: Session,
        context: fanout.TaskContext,
        outcome: tuple[RenderTask, bytes],
    ) -> str | None:
        """Write the file to the file store and record its row, under the held claim
        (:func:`store_report`: with the database store the file and its row commit together;
        with either store a failure leaves the previous file and row)."""
        task, pdf = outcome
        cleanup = file_store(context.settings, session.get_bind())
        store = cleanup.bound(session) if isinstance(cleanup, DatabaseFileStore) else cleanup
        written = store_report(
            session, store, cleanup, task, pdf, worker=context.worker, job_id=context.job.id
        )
        return json.dumps(written.to_json())

    def finish(
        self,
        session: Session,
        job: JobState,
        tasks: list[fanout.TaskState],
        session_factory: sessionmaker[Session],
    ) -> fanout.JobOutcome:
        """Succeeded when every report rendered; otherwise failed, naming the reports."""
        del session, session_factory
        failed = [task for task in tasks if task.status is TaskStatus.FAILED]
        rendered = len(tasks) - len(failed)
        result = {
            "run_id": job.params.get("run_id"),
            "rendered": rendered,
            "failed": [{"report": task.key, "error": (task.error or "")[:300]} for task in failed],
            "seconds": round(sum(task.seconds or 0.0 for task in tasks), 2),
            "workers": sorted({task.worker for task in tasks if task.worker}),
        }
        if failed:
            names = ", ".join(task.key for task in failed[:10])
            return fanout.JobOutcome(
                False,
                "failed",
                result=result,
                error=f"{len(failed)} report(s) failed, previous files kept: {names}",
            )
        return fanout.JobOutcome(True, f"{rendered} reports", result=result)

    def abandon(self, job: JobState, error: str, session_factory: sessionmaker[Session]) -> None:
        """Nothing to undo: failed reports kept their previous files and rows."""
        del job, error, session_factory


fanout.task_kind(JOB_KIND, ReportTasks())
