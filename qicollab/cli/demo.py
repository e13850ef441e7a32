"""``qicollab demo``: everything a newcomer needs, on the embedded SQLite default."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import click

from qicollab.cli import cli
from qicollab.cli.compute import demo_step
from qicollab.cli.context import LazyApp
from qicollab.cli.reports import demo_step as reports_step
from qicollab.config import storage_path
from qicollab.db import session_scope

Step = tuple[str, Callable[[LazyApp, int], None]]


def _migrate(app: LazyApp, _seed: int) -> None:
    from qicollab.migrations import upgrade  # noqa: PLC0415

    upgrade(app.engine)
    click.echo(f"      {app.engine.url.render_as_string(hide_password=True)}")


def _load(app: LazyApp, seed: int) -> None:
    from qicollab.demo.generator import generate  # noqa: PLC0415
    from qicollab.demo.loader import DemoAlreadyLoadedError, load  # noqa: PLC0415

    demo = generate(seed)
    try:
        with session_scope(app.session_factory) as session:
            load(
                session,
                demo,
                storage=storage_path(app.settings),
                progress=lambda label, n: click.echo(f"      {label}: {n:,}"),
            )
    except DemoAlreadyLoadedError:
        click.echo("      already loaded; keeping the existing data")


def publish_step(app: LazyApp, _seed: int) -> None:
    """Release the history cycle's results to members, through the coordinators' audited
    publish transition: members see only published cycles, and the demo's member logins
    should find results."""
    import sqlalchemy as sa  # noqa: PLC0415

    from qicollab.cycles.models import CycleStatus, LearningCycle  # noqa: PLC0415
    from qicollab.cycles.services import CycleService  # noqa: PLC0415
    from qicollab.demo.loader import DEMO_SLUG, HISTORY_CYCLE  # noqa: PLC0415
    from qicollab.members.models import Collaborative  # noqa: PLC0415

    with session_scope(app.session_factory) as session:
        cycle = session.scalar(
            sa.select(LearningCycle)
            .join(Collaborative, Collaborative.id == LearningCycle.collaborative_id)
            .where(Collaborative.slug == DEMO_SLUG, LearningCycle.code == HISTORY_CYCLE)
        )
        if cycle is None:
            msg = f"the demo has no cycle {HISTORY_CYCLE}"
            raise click.ClickException(msg)
        if cycle.status is CycleStatus.PUBLISHED:
            click.echo("      already published")
            return
        CycleService(session, cycle.collaborative_id).transition(cycle, "publish", actor="cli")
    click.echo(f"      cycle {HISTORY_CYCLE} published: members see its results")


STEPS: list[Step] = [
    ("Creating and migrating the database", _migrate),
    ("Loading the demo collaborative (40 hospitals, 8 measures, 36 months)", _load),
    ("Computing benchmarks (cycle C2023-25: every measure, member and chart)", demo_step),
    ("Rendering reports (each member, the collaborative report, the summary)", reports_step),
    ("Publishing the results of cycle C2023-25 to the members", publish_step),
]


def build_demo(app: LazyApp, *, seed: int) -> None:
    """Run every demo step in order, timing each."""
    for number, (label, run) in enumerate(STEPS, start=1):
        started = time.perf_counter()
        click.echo(f"[{number}/{len(STEPS)}] {label} ...")
        run(app, seed)
        click.echo(f"      done in {time.perf_counter() - started:.1f} s")


@cli.command()
@click.option("--no-serve", is_flag=True, help="Build everything, then exit without serving.")
@click.option("--port", default=6543, show_default=True, type=int, help="Port for the portal.")
@click.option("--seed", default=None, type=int, help="Generator seed (default: the fixed one).")
@click.pass_obj
def demo(app: LazyApp, no_serve: bool, port: int, seed: int | None) -> None:
    """Create, migrate and fill the demo database, compute, render reports, serve the portal.

    The port is taken before the build starts, so a busy port is reported at once.
    """
    from qicollab.cli.serve import DEFAULT_HOST, reserved, serve_app  # noqa: PLC0415
    from qicollab.demo.generator import DEFAULT_SEED  # noqa: PLC0415
    from qicollab.demo.loader import DEMO_PASSWORD, demo_logins  # noqa: PLC0415

    with contextlib.ExitStack() as stack:
        sockets = [] if no_serve else stack.enter_context(reserved([f"{DEFAULT_HOST}:{port}"]))
        build_demo(app, seed=DEFAULT_SEED if seed is None else seed)
        click.echo(f"\nDemo logins (the password for all of them is {DEMO_PASSWORD}):")
        for login in demo_logins():
            click.echo(f"  {login.email:<34} {login.role:<16} {login.member or '-'}")
        if sockets:
            serve_app(app, sockets, {})
