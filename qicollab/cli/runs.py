"""``qicollab runs``: benchmark runs and a summary of what each stored."""

from __future__ import annotations

import json
from typing import Any

import click

from qicollab.cli import cli
from qicollab.cli.context import LazyApp


@cli.group()
def runs() -> None:
    """Benchmark runs: list them, show one."""


@runs.command("list")
@click.option("--limit", default=20, show_default=True, type=int)
@click.pass_obj
def list_command(app: LazyApp, limit: int) -> None:
    """The newest runs with their cycle, status and snapshot hash."""
    from qicollab.benchmarking.services import BenchmarkRunService  # noqa: PLC0415
    from qicollab.cycles.models import LearningCycle  # noqa: PLC0415

    found = BenchmarkRunService(app.session_factory).runs(limit=limit)
    if not found:
        click.echo("no runs")
        return
    with app.session_factory() as session:
        codes = {
            cycle.id: cycle.code
            for cycle in session.query(LearningCycle).filter(
                LearningCycle.id.in_({run.cycle_id for run in found if run.cycle_id})
            )
        }
    click.echo(f"{'id':>5}  {'cycle':<10} {'status':<10} {'created':<19}  snapshot")
    for run in found:
        created = run.created_at.strftime("%Y-%m-%d %H:%M:%S")
        cycle = codes.get(run.cycle_id, "-") if run.cycle_id else "explicit"
        detail = run.snapshot_hash[:16] if run.snapshot_hash else (run.error or "")[:60]
        click.echo(f"{run.id:>5}  {cycle:<10} {run.status.value:<10} {created:<19}  {detail}")


@runs.command("show")
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def show_command(app: LazyApp, run_id: int, as_json: bool) -> None:
    """One run: snapshot, settings, and per measure the headline numbers and outliers."""
    from qicollab.benchmarking.results import run_overview  # noqa: PLC0415
    from qicollab.benchmarking.services import RunError  # noqa: PLC0415

    with app.session_factory() as session:
        try:
            overview = run_overview(session, run_id)
        except RunError as error:
            raise click.ClickException(str(error)) from None
    if as_json:
        click.echo(json.dumps(overview, indent=2, sort_keys=True, default=str))
        return
    _print_overview(overview)


def _print_overview(overview: dict[str, Any]) -> None:
    click.echo(f"run {overview['id']}: {overview['status']}  cycle {overview['cycle'] or '-'}")
    click.echo(f"  snapshot {overview['snapshot_hash']} ({overview['submissions']} versions)")
    if overview["error"]:
        click.echo(f"  error: {overview['error']}")
    click.echo(f"  settings: {json.dumps(overview['settings'], sort_keys=True)}")
    if not overview["measures"]:
        return
    click.echo(
        f"  {'measure':<10} {'members':>7} {'rate':>10} {'ABC':>10} {'phi':>6} "
        f"{'worse':>5} {'better':>6}  model"
    )
    for row in overview["measures"]:

        def number(value: float | None) -> str:
            return "-" if value is None else f"{value:.4g}"

        model = f"c={row['c_statistic']:.3f}" if row.get("c_statistic") is not None else "-"
        click.echo(
            f"  {row['code']:<10} {row['members']:>7} {number(row['rate']):>10} "
            f"{number(row['abc']):>10} {number(row['phi']):>6} {row['worse']:>5} "
            f"{row['better']:>6}  {model}"
        )
