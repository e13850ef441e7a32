"""``qicollab compute``: a benchmark run over a locked learning cycle, from the shell."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from qicollab.cli import cli
from qicollab.cli.context import LazyApp


def _parse_settings(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as JSON when they parse (numbers, true, lists)."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            msg = f"--set expects key=value, got {pair!r}"
            raise click.BadParameter(msg)
        try:
            settings[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            settings[key.strip()] = raw
    return settings


def compute_cycle(
    app: LazyApp,
    cycle: str,
    *,
    collaborative: str | None = None,
    workers: int | None = 1,
    settings: dict[str, Any] | None = None,
    progress: bool = True,
) -> int:
    """Create a run of ``cycle`` and run its job (one task per measure) with a progress bar:
    on the running workers when ``workers`` is None and one is alive, else here (``workers``
    1 in this process, more in that many worker processes started for it); returns the run id.

    Raises :class:`click.ClickException` when the run cannot be created or fails.
    """
    from qicollab.benchmarking.services import BenchmarkRunService, RunError  # noqa: PLC0415
    from qicollab.cli._dispatch import run_job  # noqa: PLC0415

    service = BenchmarkRunService(app.session_factory)
    try:
        run = service.create(
            collaborative_id=_collaborative_id(app, collaborative),
            cycle_code=cycle,
            settings=settings,
        )
    except RunError as error:
        raise click.ClickException(str(error)) from None
    assert run.job_id is not None
    state = run_job(
        app,
        run.job_id,
        processes=None if workers is None else (0 if workers <= 1 else workers),
        default_processes=0,
        description=f"run {cycle}",
        bar=progress,
    )
    if state.error:
        raise click.ClickException(f"run {run.id} failed: {state.error}")
    return run.id


def _collaborative_id(app: LazyApp, slug: str | None) -> int | None:
    if slug is None:
        return None
    import sqlalchemy as sa  # noqa: PLC0415

    from qicollab.members.models import Collaborative  # noqa: PLC0415

    with app.session_factory() as session:
        found = session.scalar(sa.select(Collaborative.id).where(Collaborative.slug == slug))
    if found is None:
        msg = f"no collaborative {slug!r}"
        raise click.ClickException(msg)
    return found


@cli.command()
@click.option("--cycle", required=True, help="Code of a locked learning cycle, e.g. C2023-25.")
@click.option("--collaborative", default=None, help="Slug, when several have that cycle code.")
@click.option(
    "--enqueue",
    is_flag=True,
    help="Put the run on the job queue for `qicollab worker` and print the job id.",
)
@click.option(
    "--wait/--no-wait",
    default=None,
    help="With --enqueue: follow the job's progress until it finishes (default: --no-wait). "
    "Without --enqueue the run always completes before the command returns.",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    help="Without --enqueue: 1 computes in this process, more start that many worker "
    "processes for this run. Default: the running `qicollab worker` processes when any is "
    "alive, else this process.",
)
@click.option("--set", "pairs", multiple=True, help="Method setting override, key=value.")
@click.pass_obj
def compute(  # noqa: PLR0917 - click passes options positionally
    app: LazyApp,
    cycle: str,
    collaborative: str | None,
    enqueue: bool,
    wait: bool | None,
    workers: int | None,
    pairs: tuple[str, ...],
) -> None:
    """Compute benchmarks for every measure and member of a locked cycle, and store them."""
    from qicollab.benchmarking.services import BenchmarkRunService, RunError  # noqa: PLC0415

    settings = _parse_settings(pairs)
    started = time.perf_counter()
    if enqueue:
        from qicollab.jobs.progress import follow_job  # noqa: PLC0415
        from qicollab.jobs.queue import JobQueue  # noqa: PLC0415
        from qicollab.jobs.services import JobService  # noqa: PLC0415

        service = BenchmarkRunService(app.session_factory)
        try:
            run = service.create(
                collaborative_id=_collaborative_id(app, collaborative),
                cycle_code=cycle,
                settings=settings,
            )
        except RunError as error:
            raise click.ClickException(str(error)) from None
        queue = JobQueue(app.settings, engine=app.engine)
        try:
            assert run.job_id is not None
            queue.enqueue(run.job_id)
        finally:
            queue.close()
        click.echo(f"run {run.id} queued as job {run.job_id}")
        if not wait:
            return
        state = follow_job(JobService(app.session_factory), run.job_id)
        if state.error:
            raise click.ClickException(state.error)
        click.echo(f"run {run.id} {state.status.value}")
        return
    run_id = compute_cycle(
        app, cycle, collaborative=collaborative, workers=workers, settings=settings
    )
    run = BenchmarkRunService(app.session_factory).get(run_id)
    elapsed = time.perf_counter() - started
    click.echo(f"run {run.id} {run.status.value} in {elapsed:.1f} s; snapshot {run.snapshot_hash}")
    click.echo(f"see it with: qicollab runs show {run.id}")


def demo_step(app: LazyApp, _seed: int) -> None:
    """The demo's "Computing benchmarks" step: run the locked history cycle once."""
    import sqlalchemy as sa  # noqa: PLC0415

    from qicollab.benchmarking.models import BenchmarkRun, RunStatus  # noqa: PLC0415
    from qicollab.cycles.models import LearningCycle  # noqa: PLC0415
    from qicollab.demo.loader import DEMO_SLUG, HISTORY_CYCLE  # noqa: PLC0415
    from qicollab.members.models import Collaborative  # noqa: PLC0415

    with app.session_factory() as session:
        existing = session.scalar(
            sa.select(BenchmarkRun.id)
            .join(LearningCycle, LearningCycle.id == BenchmarkRun.cycle_id)
            .join(Collaborative, Collaborative.id == BenchmarkRun.collaborative_id)
            .where(
                Collaborative.slug == DEMO_SLUG,
                LearningCycle.code == HISTORY_CYCLE,
                BenchmarkRun.status == RunStatus.SUCCEEDED,
            )
            .limit(1)
        )
    if existing is not None:
        click.echo(f"      already computed (run {existing}); keeping it")
        return
    run_id = compute_cycle(app, HISTORY_CYCLE, collaborative=DEMO_SLUG, progress=False)
    click.echo(f"      run {run_id} of cycle {HISTORY_CYCLE} stored")
