"""SPC benchmark (issue 4, item 9): control charts for a whole collaborative, and SVG rendering.

    .venv/bin/python benchmarks/bench_spc.py [--members 1000] [--measures 20] [--periods 36]
        [--reps 5] [--charts 100] [--seed 1]

**Charts**: ``--members`` x ``--measures`` series of ``--periods`` months from synthetic data;
half the measures are proportions (P charts of numerator/denominator), half are means (I
charts). Every series has 3 % missing months, a phase starting at an annotated change for a
third of the members, an exclusion for a tenth, an improvement direction and a target. Every
rule family is evaluated (outside limits, Anhøj runs, MDC trend / two-in-three / shift, Western
Electric, Nelson) and the icons computed, in both modes, one vectorised batch per measure (as a
benchmark run does). Target: < 5 s per mode. Also shown, not targeted: every series' JSON
dictionary (what is stored, ``ControlChartBatch.dict_at``), and the per-series API in a plain
loop over 1,000 series (x 20 for the estimate).

**SVG**: ``--charts`` control charts (36 months, 2 phases, signals, annotations, target)
rendered to SVG strings. Target: < 0.5 s for 100.

Prints the median of ``--reps`` repetitions and its ratio to the target (below 1.0 meets it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qicollab.reporting.charts.control import render_control_chart  # noqa: E402
from qicollab.stats.spc import (  # noqa: E402
    RULE_FAMILIES,
    ControlChart,
    control_chart,
    control_charts,
)

CHART_TARGET = 5.0
SVG_TARGET = 0.5


def _median(function: Callable[[], object], reps: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def _synthetic(members: int, measures: int, periods: int, seed: int) -> list[dict]:
    """One dict of (members x periods) arrays per measure."""
    rng = np.random.default_rng(seed)
    out = []
    for m in range(measures):
        proportion = m % 2 == 0
        missing = rng.random((members, periods)) < 0.03
        phase = np.ones((members, periods), dtype=int)
        starts = rng.integers(12, periods - 6, members)
        phased = rng.random(members) < 1 / 3
        phase[phased] += np.arange(periods)[np.newaxis, :] >= starts[phased, np.newaxis]
        excluded = np.zeros((members, periods), dtype=bool)
        rows = np.flatnonzero(rng.random(members) < 0.1)
        excluded[rows, rng.integers(0, periods, rows.size)] = True
        if proportion:
            n = rng.integers(20, 400, (members, periods)).astype(float)
            base = rng.uniform(0.05, 0.3, (members, 1))
            shift = np.where(phase > 1, rng.normal(0, 0.03, (members, 1)), 0.0)
            y = rng.binomial(n.astype(int), np.clip(base + shift, 0.01, 0.9)).astype(float)
            y[missing] = np.nan
            n[missing] = np.nan
            args = {"y": y, "n": n, "chart": "p", "target": 0.15, "direction": "decrease"}
        else:
            level = rng.normal(50, 10, (members, 1))
            y = level + rng.normal(0, 3, (members, periods)) + np.where(phase > 1, 2.0, 0.0)
            y[missing] = np.nan
            args = {"y": y, "n": None, "chart": "i", "target": 55.0, "direction": "increase"}
        out.append(args | {"phase": phase, "excluded": excluded})
    return out


def _charts(data: list[dict], mode: str) -> list:
    return [
        control_charts(
            d["y"],
            d["n"],
            chart=d["chart"],
            mode=mode,
            phase=d["phase"],
            excluded=d["excluded"],
            direction=d["direction"],
            target=d["target"],
            rules=RULE_FAMILIES,
        )
        for d in data
    ]


def _to_json(batches: list) -> int:
    count = 0
    for batch in batches:
        for i in range(len(batch)):
            batch.dict_at(i)
            count += 1
    return count


def _loop(data: list[dict], members: int) -> None:
    d = data[0]
    for r in range(members):
        part = [int(i) for i in np.flatnonzero(np.diff(d["phase"][r])) + 1]
        control_chart(
            d["y"][r],
            None if d["n"] is None else d["n"][r],
            chart=d["chart"],
            part=part,
            exclude=[int(i) + 1 for i in np.flatnonzero(d["excluded"][r])],
            direction=d["direction"],
            target=d["target"],
            rules=RULE_FAMILIES,
        )


def _svg_inputs(count: int, seed: int) -> list[ControlChart]:
    rng = np.random.default_rng(seed)
    months = [dt.date(2022 + m // 12, m % 12 + 1, 1) for m in range(36)]
    charts = []
    for i in range(count):
        n = rng.integers(50, 300, 36).astype(float)
        y = rng.binomial(n.astype(int), 0.2).astype(float)
        y[rng.integers(0, 36)] = np.nan
        y[30] = n[30] * 0.4
        charts.append(
            control_chart(
                y,
                n,
                chart="p",
                x=months,
                mode="mdc" if i % 2 else "qic",
                part=[18],
                exclude=[5],
                direction="decrease",
                target=18.0,
                multiply=100,
            )
        )
    return charts


def main() -> None:
    """Run both benchmarks and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--measures", type=int, default=20)
    parser.add_argument("--periods", type=int, default=36)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--charts", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    data = _synthetic(args.members, args.measures, args.periods, args.seed)
    series = args.members * args.measures
    print(
        f"Control charts: {args.members} members x {args.measures} measures x {args.periods} "
        f"periods = {series:,} series, {series * args.periods:,} points; every rule family; "
        f"median of {args.reps}"
    )
    for mode in ("qic", "mdc"):
        median, times = _median(lambda mode=mode: _charts(data, mode), args.reps)
        print(
            f"  {mode}: {median:6.3f} s  (target {CHART_TARGET:g} s, ratio "
            f"{median / CHART_TARGET:.3f}; runs {', '.join(f'{t:.2f}' for t in times)})"
        )
    batches = _charts(data, "mdc")
    signalled = sum(int((b.signals != 0).any(axis=1).sum()) for b in batches)
    print(f"  series with any signal (mdc, all rule families): {signalled:,} of {series:,}")
    started = time.perf_counter()
    stored = _to_json(batches)
    print(
        f"  not targeted: stored JSON dictionaries (dict_at) for all {stored:,} series: "
        f"{time.perf_counter() - started:.2f} s"
    )
    loop, _ = _median(lambda: _loop(data, args.members), 1)
    print(
        f"  not targeted: per-series API in a loop, {args.members:,} series: {loop:.2f} s "
        f"(x {args.measures} = {loop * args.measures:.1f} s; use control_charts for bulk runs)"
    )

    charts = _svg_inputs(args.charts, args.seed)
    render_control_chart(charts[0], title="warm-up")

    def svgs() -> None:
        for i, chart in enumerate(charts):
            render_control_chart(
                chart,
                title=f"Falls per 100 admissions, member {i}",
                annotations=[(dt.date(2022, 7, 15), "PDSA 1"), (dt.date(2023, 7, 1), "Audit")],
                y_label="Falls (%)",
            )

    median, times = _median(svgs, args.reps)
    size = len(render_control_chart(charts[0], title="x").svg)
    print(
        f"SVG: {args.charts} control charts: {median:.3f} s  (target {SVG_TARGET:g} s, ratio "
        f"{median / SVG_TARGET:.3f}; {median / args.charts * 1000:.2f} ms and ~{size / 1024:.0f} "
        f"KB per chart; runs {', '.join(f'{t:.3f}' for t in times)})"
    )


if __name__ == "__main__":
    main()
