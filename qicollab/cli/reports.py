"""``qicollab reports``: render a run's PDF reports and list what was rendered."""

from __future__ import annotations

import os
import time

import click

from qicollab.cli import cli
from qicollab.cli.context import LazyApp


def _default_processes() -> int:
    """Worker processes started for a batch when no ``qicollab worker`` is running: two
    (each keeps WeasyPrint and the run's data warm), never more than the cores."""
    return max(1, min(2, os.cpu_count() or 1))


@cli.group()
def reports() -> None:
    """PDF benchmark reports: member reports, the collaborative report, the blinded summary."""


@reports.command("render")
@click.option("--run", "run_id", required=True, type=int, help="The benchmark run to report.")
@click.option(
    "-w",
    "--workers",
    default=None,
    type=click.IntRange(0, 64),
    help="Worker processes to start for this batch (0 renders in this process). Default: "
    "the running `qicollab worker` processes when any is alive, else 2 started for it.",
)
@click.option(
    "--member",
    "member_ids",
    multiple=True,
    type=int,
    help="Only these members' reports (by id); repeatable. Default: every member.",
)
@click.option("--members-only", is_flag=True, help="Skip the collaborative report and summary.")
@click.pass_obj
def render_command(
    app: LazyApp, run_id: int, workers: int | None, member_ids: tuple[int, ...], members_only: bool
) -> None:
    """Render every report of run R as a job (one task per report), with a progress bar.

    Files go to the file store (qicollab.file_store: the storage folder or the database) as
    reports/run-R/..., each written atomically with its SHA-256 recorded; a report that fails
    keeps its previous file. Exits 1 if any report failed.
    """
    from qicollab.cli._dispatch import run_job  # noqa: PLC0415
    from qicollab.reporting.rendering import RenderError  # noqa: PLC0415

    try:
        job_id = _render_job(
            app, run_id, member_ids=list(member_ids) or None, members_only=members_only
        )
    except RenderError as error:
        raise click.ClickException(str(error)) from None
    state = run_job(
        app,
        job_id,
        processes=workers,
        default_processes=_default_processes(),
        description=f"reports of run {run_id}",
    )
    result = state.result or {}
    seconds = 0.0
    if state.started_at and state.finished_at:
        seconds = (state.finished_at - state.started_at).total_seconds()
    click.echo(
        f"job {job_id}: {result.get('rendered', 0)} report(s) written to "
        f"reports/run-{run_id}/ in {seconds:.1f} s"
    )
    for failed in result.get("failed", []):
        click.echo(f"FAILED {failed['report']}: {failed['error']}", err=True)
    if state.status.value != "succeeded":
        if not result.get("failed"):
            click.echo(f"FAILED: {state.error}", err=True)
        raise SystemExit(1)


def _render_job(
    app: LazyApp, run_id: int, *, member_ids: list[int] | None, members_only: bool
) -> int:
    """A queued report batch job of the run (checked to have results first)."""
    from qicollab.benchmarking.models import BenchmarkRun  # noqa: PLC0415
    from qicollab.jobs.services import JobService  # noqa: PLC0415
    from qicollab.reporting.models import ReportKind  # noqa: PLC0415
    from qicollab.reporting.rendering import JOB_KIND, ReportRenderer  # noqa: PLC0415

    # Refuses (RenderError) a run without results before any job exists.
    ReportRenderer(app.session_factory, app.settings).plan(
        run_id, kinds=[ReportKind.MEMBER] if members_only else None, member_ids=member_ids
    )
    with app.session_factory() as session:
        run = session.get(BenchmarkRun, run_id)
        collaborative_id = run.collaborative_id if run is not None else None
    params: dict[str, object] = {"run_id": run_id}
    if member_ids is not None:
        params["member_ids"] = member_ids
    if members_only:
        params["kinds"] = [ReportKind.MEMBER.value]
    job = JobService(app.session_factory).create(
        JOB_KIND, params=params, collaborative_id=collaborative_id
    )
    return job.id


@reports.command("list")
@click.option("--run", "run_id", required=True, type=int, help="The benchmark run.")
@click.pass_obj
def list_command(app: LazyApp, run_id: int) -> None:
    """The rendered reports of a run with their size and SHA-256."""
    import sqlalchemy as sa  # noqa: PLC0415

    from qicollab.reporting.models import Report  # noqa: PLC0415

    with app.session_factory() as session:
        rows = list(
            session.scalars(
                sa.select(Report).where(Report.run_id == run_id).order_by(Report.kind, Report.id)
            )
        )
    if not rows:
        click.echo("no reports")
        return
    for row in rows:
        click.echo(f"{row.kind.value:<16} {row.size_bytes:>9,} B  {row.sha256[:16]}  {row.path}")


def demo_step(app: LazyApp, _seed: int) -> None:
    """The demo's "Rendering reports" step: every report of the demo's newest run."""
    import sqlalchemy as sa  # noqa: PLC0415

    from qicollab.benchmarking.models import BenchmarkRun, RunStatus  # noqa: PLC0415
    from qicollab.cli._dispatch import run_job  # noqa: PLC0415
    from qicollab.demo.loader import DEMO_SLUG  # noqa: PLC0415
    from qicollab.members.models import Collaborative  # noqa: PLC0415
    from qicollab.reporting.models import Report  # noqa: PLC0415

    with app.session_factory() as session:
        run = session.execute(
            sa.select(BenchmarkRun.id, BenchmarkRun.collaborative_id)
            .join(Collaborative, Collaborative.id == BenchmarkRun.collaborative_id)
            .where(Collaborative.slug == DEMO_SLUG, BenchmarkRun.status == RunStatus.SUCCEEDED)
            .order_by(BenchmarkRun.id.desc())
            .limit(1)
        ).first()
        if run is None:
            click.echo("      no finished benchmark run to report on")
            return
        rendered = session.scalar(
            sa.select(sa.func.count()).select_from(Report).where(Report.run_id == run.id)
        )
    if rendered:
        click.echo(f"      already rendered ({rendered} reports of run {run.id}); keeping them")
        return
    started = time.perf_counter()
    job_id = _render_job(app, run.id, member_ids=None, members_only=False)
    state = run_job(
        app,
        job_id,
        processes=None,
        default_processes=_default_processes(),
        description="reports",
        bar=False,
    )
    result = state.result or {}
    click.echo(
        f"      {result.get('rendered', 0)} reports of run {run.id} in "
        f"{time.perf_counter() - started:.0f} s (job {job_id}); "
        f"failed: {len(result.get('failed', []))}"
    )
