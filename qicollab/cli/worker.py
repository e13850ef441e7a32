"""``qicollab worker``: the huey consumer, in this process, running queued jobs."""

from __future__ import annotations

import logging

import click

from qicollab.cli import cli
from qicollab.cli.context import LazyApp


@cli.command()
@click.option("-w", "--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "-k",
    "--worker-type",
    type=click.Choice(["thread", "process"]),
    default="thread",
    show_default=True,
    help="Threads share one process (enough for one run at a time); processes use every core.",
)
@click.option("--drain", is_flag=True, help="Run what is queued now, then exit.")
@click.pass_obj
def worker(app: LazyApp, workers: int, worker_type: str, drain: bool) -> None:
    """Run queued jobs (benchmark runs, report batches) until stopped with Ctrl-C.

    The queue is configured by ``qicollab.queue.backend`` (SQLite file in the storage folder by
    default; PostgreSQL or Redis for several worker machines). A report batch or benchmark run
    is split into tasks (one per report, one per measure) that every worker takes from; each
    task's timing is logged with this worker's host:pid, and tasks of a worker that died are
    taken over once their lease runs out.
    """
    from qicollab.jobs.local import consume  # noqa: PLC0415
    from qicollab.jobs.queue import BACKEND, JobQueue  # noqa: PLC0415

    if drain:
        queue = JobQueue(app.settings)
        try:
            count = queue.drain()
        finally:
            queue.close()
        click.echo(f"ran {count} queued task{'s' if count != 1 else ''}")
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # WeasyPrint logs every page of every layout pass at INFO: noise, and CPU, per report.
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)
    backend = app.settings.get(BACKEND) or "sqlite"
    click.echo(f"worker: {workers} {worker_type} worker(s) on the {backend} queue")
    consume(app.settings, workers=workers, worker_type=worker_type)
