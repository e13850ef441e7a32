"""The job handler that renders a run's reports when a coordinator asks from the portal.

The queue's worker finds it through ``qicollab.jobs.queue.HANDLER_MODULES`` (which must list
this module); the portal imports it before enqueueing, so immediate mode works too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qicollab.jobs.queue import job_handler
from qicollab.reporting.rendering import JOB_KIND, ReportRenderer, cpu_workers, render_run_as_job

if TYPE_CHECKING:
    from qicollab.jobs.queue import JobContext


@job_handler(JOB_KIND)
def render_reports(context: JobContext) -> dict[str, Any] | None:
    """Render every report of ``params["run_id"]`` in a pool of warm workers."""
    run_id = int(context.job.params["run_id"])
    workers = int(context.job.params.get("workers", cpu_workers()))
    renderer = ReportRenderer(
        context.session_factory, context.settings, workers=workers, jobs=context.jobs
    )
    _job_id, summary = render_run_as_job(
        renderer,
        context.jobs,
        run_id,
        collaborative_id=context.job.collaborative_id,
        job_id=context.job.id,
    )
    return summary.to_json()
