"""Running a job the CLI created: on the running workers, or here (see qicollab.jobs.local)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from qicollab.cli.context import LazyApp
    from qicollab.jobs.services import JobState


def run_job(
    app: LazyApp,
    job_id: int,
    *,
    processes: int | None,
    default_processes: int,
    description: str,
    bar: bool = True,
) -> JobState:
    """Run the job and follow it to its end with a progress bar.

    ``processes`` None hands the job to the running workers when any is alive (else runs it
    here with ``default_processes``); 0 runs it in this process; N in N consumer processes
    started for it."""
    from qicollab.jobs.local import run_here, workers_running  # noqa: PLC0415
    from qicollab.jobs.progress import follow_job  # noqa: PLC0415
    from qicollab.jobs.queue import JobQueue  # noqa: PLC0415
    from qicollab.jobs.services import JobService  # noqa: PLC0415

    jobs = JobService(app.session_factory)
    output = None if bar else io.StringIO()
    if processes is None and workers_running(app.settings, app.session_factory):
        queue = JobQueue(app.settings, engine=app.engine)
        try:
            queue.enqueue(job_id)
        finally:
            queue.close()
        click.echo(f"job {job_id} queued for the running workers", err=True)
        return follow_job(jobs, job_id, description=description, file=output)
    count = default_processes if processes is None else processes
    with run_here(app.settings, job_id, processes=count, engine=app.engine):
        return follow_job(jobs, job_id, description=description, file=output)
