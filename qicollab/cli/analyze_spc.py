"""``qicollab analyze spc``: a control or run chart of one series from a CSV file, as JSON.

Rows are periods (or observations: rows sharing an x are aggregated into a subgroup: numerators
and denominators summed for p/pp/u/up/c, mean and SD for xbar/s, the mean otherwise). Points
are put in x order: numerically when every x is a number, chronologically when every x is a
date (labels shown as first written, e.g. ``2024-01``), otherwise in the order of first
appearance. Positions given to ``--freeze``,
``--phase-after`` and ``--exclude`` are 1-based in that order. An empty y cell is a missing
period (a gap), never a zero.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from qicollab.cli._csv import CsvError, CsvTable, read_csv
from qicollab.cli.analyze import analyze

CHART_CHOICES = ("run", "i", "mr", "xbar", "s", "p", "pp", "u", "up", "c", "g", "t")
COUNT_CHARTS = {"p", "pp", "u", "up", "c"}


def _positions(option: str | None, name: str) -> list[int]:
    out = []
    for raw in (option or "").split(","):
        part = raw.strip()
        if not part:
            continue
        try:
            out.append(int(part))
        except ValueError:
            msg = f"{part!r} is not a whole number"
            raise click.BadParameter(msg, param_hint=name) from None
    return out


def _ordered_keys(labels: pd.Series) -> tuple[list[Any], np.ndarray]:
    """Distinct x values in x order and each row's 0-based position among them."""
    numbers = pd.to_numeric(labels, errors="coerce")
    if numbers.notna().all():
        keys = numbers.to_numpy(dtype=float)
        order = sorted(set(keys.tolist()))
        shown = [int(k) if float(k).is_integer() else k for k in order]
        index = {k: i for i, k in enumerate(order)}
        return shown, np.array([index[k] for k in keys])
    dates = pd.to_datetime(labels, errors="coerce", format="ISO8601")
    if dates.notna().all():
        order = sorted(set(dates.tolist()))
        index = {k: i for i, k in enumerate(order)}
        first = dict(zip(dates.tolist()[::-1], labels.tolist()[::-1], strict=True))
        return [first[k] for k in order], np.array([index[k] for k in dates.tolist()])
    order = list(dict.fromkeys(labels.tolist()))
    index = {k: i for i, k in enumerate(order)}
    return order, np.array([index[k] for k in labels.tolist()])


def _check_rows(
    table: CsvTable,
    chart: str,
    *,
    y_col: str,
    n_col: str | None,
    y: np.ndarray,
    n: np.ndarray | None,
) -> None:
    if chart in {"p", "pp"} and n is not None:
        ok = np.isfinite(y) & np.isfinite(n)
        table.check_not_above(y_col, n_col or "", np.where(ok, y, 0), np.where(ok, n, 0))
    if chart == "t":
        bad = np.flatnonzero(np.isfinite(y) & (y <= 0))
        if bad.size:
            msg = f"{table.where(int(bad[0]), y_col)}: time between events must be > 0"
            raise CsvError(msg)
    if n is not None:
        lonely = np.flatnonzero(np.isfinite(n) & ~np.isfinite(y))
        if lonely.size and chart in COUNT_CHARTS:
            row = int(lonely[0])
            msg = f"{table.where(row, y_col)}: missing numerator for denominator {n[row]:g}"
            raise CsvError(msg)


def _aggregate(
    chart: str, index: np.ndarray, count: int, y: np.ndarray, n: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    frame = pd.DataFrame({"k": index, "y": y, "n": np.nan if n is None else n})
    grouped = frame.groupby("k")
    present = grouped["y"].count().reindex(range(count), fill_value=0).to_numpy()
    if chart in {"xbar", "s"}:
        mean = grouped["y"].mean().reindex(range(count)).to_numpy(dtype=float)
        sd = grouped["y"].std(ddof=1).reindex(range(count)).to_numpy(dtype=float)
        return mean, present.astype(float), sd
    if n is not None or chart in COUNT_CHARTS:
        total = grouped["y"].sum(min_count=1).reindex(range(count)).to_numpy(dtype=float)
        total = np.where(present > 0, total, np.nan)
        den = None
        if n is not None:
            den = grouped["n"].sum(min_count=1).reindex(range(count)).to_numpy(dtype=float)
        return total, den, None
    return grouped["y"].mean().reindex(range(count)).to_numpy(dtype=float), None, None


@analyze.command("spc")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--x", "x_col", required=True, help="Period column (numbers, dates or labels).")
@click.option("--y", "y_col", required=True, help="Value, count or numerator column.")
@click.option("--n", "n_col", default=None, help="Denominator (p, pp, u, up) column.")
@click.option("--chart", type=click.Choice(CHART_CHOICES), required=True, help="Chart type.")
@click.option(
    "--mode",
    type=click.Choice(["qic", "mdc"]),
    default="qic",
    show_default=True,
    help="qic: qicharts2 (3 sigma, Anhøj rules); mdc: NHS Making Data Count (2.66, icons).",
)
@click.option("--freeze", type=click.IntRange(min=1), default=None, help="Last baseline point.")
@click.option("--phase-after", "phase_after", default=None, help="New phase after K1,K2,...")
@click.option("--exclude", default=None, help="Points K1,K2,... left out of the limits.")
@click.option(
    "--direction",
    type=click.Choice(["increase", "decrease", "neutral"]),
    default=None,
    help="Which way is improvement.",
)
@click.option("--target", type=float, default=None, help="Target (for the assurance icon).")
@click.option(
    "--svg",
    "svg_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the chart as an SVG file.",
)
def spc_command(  # noqa: PLR0917 - click passes options as arguments
    file: Path,
    x_col: str,
    y_col: str,
    n_col: str | None,
    chart: str,
    mode: str,
    freeze: int | None,
    phase_after: str | None,
    exclude: str | None,
    direction: str | None,
    target: float | None,
    svg_path: Path | None,
) -> None:
    """Control-chart limits, rules per point and runs analysis per phase, as JSON."""
    from qicollab.stats.spc import control_chart  # noqa: PLC0415 - keeps --help fast

    if chart in {"p", "pp", "u", "up"} and n_col is None:
        msg = f"--n is required with --chart {chart}"
        raise click.UsageError(msg)
    table = read_csv(file)
    table.require(*(c for c in (x_col, y_col, n_col) if c))
    labels = table.text(x_col)
    counts = chart in COUNT_CHARTS
    y = table.numeric(y_col, allow_missing=True, non_negative=counts or chart == "g")
    n = None if n_col is None else table.numeric(n_col, allow_missing=True, non_negative=True)
    _check_rows(table, chart, y_col=y_col, n_col=n_col, y=y, n=n)
    keys, index = _ordered_keys(labels)
    values, den, sd = _aggregate(chart, index, len(keys), y, n)
    part = _positions(phase_after, "--phase-after")
    excluded = _positions(exclude, "--exclude")
    for name, positions in (("--phase-after", part), ("--exclude", excluded)):
        for k in positions:
            if not 1 <= k <= len(keys):
                msg = f"position {k} is outside 1..{len(keys)}"
                raise click.BadParameter(msg, param_hint=name)
    if freeze is not None and freeze > len(keys):
        msg = f"position {freeze} is outside 1..{len(keys)}"
        raise click.BadParameter(msg, param_hint="--freeze")
    try:
        result = control_chart(
            values,
            den,
            chart=chart,
            sd=sd,
            x=keys,
            mode=mode,
            part=part,
            exclude=excluded,
            freeze=freeze,
            direction=direction,
            target=target,
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    click.echo(json.dumps(result.to_dict(), indent=2, allow_nan=False))
    if svg_path is not None:
        from qicollab.reporting.charts.control import render_control_chart  # noqa: PLC0415

        drawing = render_control_chart(
            result, title=f"{chart.upper()} chart of {y_col}", y_label=y_col
        )
        svg_path.write_text(drawing.svg, encoding="utf-8")
