"""``qicollab reports``: render a run's PDF reports and list what was rendered."""

from __future__ import annotations

import click

from qicollab.cli import cli
from qicollab.cli.context import LazyApp


@cli.group()
def reports() -> None:
    """PDF benchmark reports: member reports, the collaborative report, the blinded summary."""


@reports.command("render")
@click.option("--run", "run_id", required=True, type=int, help="The benchmark run to report.")
@click.option(
    "-w",
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(0, 64),
    help="Long-lived worker processes (0 renders in this process).",
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
    app: LazyApp, run_id: int, workers: int, member_ids: tuple[int, ...], members_only: bool
) -> None:
    """Render every report of run R as a job, with a progress bar.

    Files go to the file store (qicollab.file_store: the storage folder or the database) as
    reports/run-R/..., each written atomically with its SHA-256 recorded; a report that fails
    keeps its previous file. Exits 1 if any report failed.
    """
    from qicollab.benchmarking.models import BenchmarkRun  # noqa: PLC0415
    from qicollab.jobs.progress import JobBar  # noqa: PLC0415
    from qicollab.jobs.services import JobService  # noqa: PLC0415
    from qicollab.reporting.models import ReportKind  # noqa: PLC0415
    from qicollab.reporting.rendering import (  # noqa: PLC0415
        RenderError,
        ReportRenderer,
        render_run_as_job,
    )

    with app.session_factory() as session:
        run = session.get(BenchmarkRun, run_id)
        collaborative_id = run.collaborative_id if run is not None else None
    with JobBar(description=f"reports of run {run_id}") as bar:
        jobs = JobService(app.session_factory, listener=bar)
        renderer = ReportRenderer(app.session_factory, app.settings, workers=workers, jobs=jobs)
        try:
            job_id, summary = render_run_as_job(
                renderer,
                jobs,
                run_id,
                collaborative_id=collaborative_id,
                member_ids=list(member_ids) or None,
                kinds=[ReportKind.MEMBER] if members_only else None,
            )
        except RenderError as error:
            raise click.ClickException(str(error)) from None
    click.echo(
        f"job {job_id}: {len(summary.rendered)} report(s) written to "
        f"reports/run-{run_id}/ in {summary.seconds:.1f} s"
    )
    for outcome in summary.failed:
        click.echo(f"FAILED {outcome.task.spec.filename}: {outcome.error}", err=True)
    if summary.failed:
        raise SystemExit(1)


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


def _every_tenth(done: int, total: int, _message: str) -> None:
    if done and (done == total or done % max(1, total // 10) == 0):
        click.echo(f"      {done}/{total} reports")


def demo_step(app: LazyApp, _seed: int) -> None:
    """The demo's "Rendering reports" step: every report of the demo's newest run."""
    import sqlalchemy as sa  # noqa: PLC0415

    from qicollab.benchmarking.models import BenchmarkRun, RunStatus  # noqa: PLC0415
    from qicollab.demo.loader import DEMO_SLUG  # noqa: PLC0415
    from qicollab.jobs.services import JobService  # noqa: PLC0415
    from qicollab.members.models import Collaborative  # noqa: PLC0415
    from qicollab.reporting.models import Report  # noqa: PLC0415
    from qicollab.reporting.rendering import (  # noqa: PLC0415
        ReportRenderer,
        cpu_workers,
        render_run_as_job,
    )

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
    jobs = JobService(app.session_factory)
    renderer = ReportRenderer(app.session_factory, app.settings, workers=cpu_workers(), jobs=jobs)
    job_id, summary = render_run_as_job(
        renderer,
        jobs,
        run.id,
        collaborative_id=run.collaborative_id,
        progress=_every_tenth,
    )
    click.echo(
        f"      {len(summary.rendered)} reports of run {run.id} in {summary.seconds:.0f} s "
        f"(job {job_id}); failed: {len(summary.failed)}"
    )
