"""The job handler that executes benchmark runs on the queue (``qicollab worker``)."""

from __future__ import annotations

from typing import Any

from qicollab.benchmarking.services import JOB_KIND, BenchmarkRunService
from qicollab.jobs.queue import JobContext, job_handler


@job_handler(JOB_KIND)
def execute_run(context: JobContext) -> dict[str, Any] | None:
    """Execute the run named in the job's params; the run marks the job succeeded or failed."""
    run_id = int(context.job.params["run_id"])
    BenchmarkRunService(context.session_factory, jobs=context.jobs).execute(run_id)
    return None
