"""``qicollab jobs``: list jobs and show one (optionally following its progress)."""

from __future__ import annotations

import json

import click

from qicollab.cli import cli
from qicollab.cli.context import LazyApp


@cli.group()
def jobs() -> None:
    """Long work (benchmark runs, report batches) and its progress."""


@jobs.command("list")
@click.option("--limit", default=20, show_default=True, type=int, help="How many, newest first.")
@click.pass_obj
def list_command(app: LazyApp, limit: int) -> None:
    """The newest jobs with status and progress."""
    from qicollab.jobs.services import JobService  # noqa: PLC0415

    states = JobService(app.session_factory).recent(limit=limit)
    if not states:
        click.echo("no jobs")
        return
    click.echo(f"{'id':>6}  {'kind':<16} {'status':<10} {'progress':>9}  {'created':<19}  message")
    for state in states:
        created = state.created_at.strftime("%Y-%m-%d %H:%M:%S") if state.created_at else "-"
        progress = f"{state.done}/{state.total}" if state.total else "-"
        click.echo(
            f"{state.id:>6}  {state.kind:<16} {state.status.value:<10} {progress:>9}  "
            f"{created:<19}  {state.error or state.message}"
        )


@jobs.command("show")
@click.argument("job_id", type=int)
@click.option("--follow", is_flag=True, help="Draw a progress bar until the job finishes.")
@click.pass_obj
def show_command(app: LazyApp, job_id: int, follow: bool) -> None:
    """One job's status document as JSON (exit 1 if it failed)."""
    from qicollab.jobs.models import JobStatus  # noqa: PLC0415
    from qicollab.jobs.progress import follow_job  # noqa: PLC0415
    from qicollab.jobs.services import JobNotFoundError, JobService  # noqa: PLC0415

    service = JobService(app.session_factory)
    try:
        state = follow_job(service, job_id) if follow else service.get(job_id)
    except JobNotFoundError as error:
        raise click.ClickException(str(error)) from None
    click.echo(json.dumps(state.to_json(), indent=2, sort_keys=True, default=str))
    if state.status is JobStatus.FAILED:
        raise SystemExit(1)
