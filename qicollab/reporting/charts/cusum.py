"""Risk-adjusted CUSUM and VLAD of one member's cases, side by side in one SVG.

Draws the payloads :mod:`qicollab.benchmarking.charts` stores with a run (``racusum`` and
``vlad``): on the left Steiner's two-sided RA-CUSUM (the upper chart above zero, the lower one
mirrored below it, each with its simulated limit ``h``, a marker where it crossed and restarted),
on the right the VLAD (cumulative expected minus observed events). The x axis is the case
order; month labels and dated annotations are placed at the first case of their month.

A member can have thousands of cases, so each line is thinned to its first, lowest, highest
and last value per two-pixel column before drawing: the drawing looks the same (every peak and
trough survives) and the SVG stays a few kilobytes. The text alternative summarises by month.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from qicollab.reporting.charts import base
from qicollab.reporting.charts.common import reference_line
from qicollab.reporting.charts.control import annotation_pairs

if TYPE_CHECKING:
    from qicollab.benchmarking.payloads import RaCusumPayload, VladPayload

WIDTH, HEIGHT = 720.0, 230.0
_LEFT, _RIGHT = 48.0, 16.0  # margins: y tick labels on the left
_GAP = 60.0  # between the panels, room for the second panel's tick labels


def thinned(values: np.ndarray, columns: int) -> np.ndarray:
    """Indices of the points to draw: per bucket of cases the first, min, max and last,
    in case order, so the thinned line keeps every extreme of the full one."""
    count = len(values)
    if count <= 4 * max(columns, 1) or not np.isfinite(values).all():
        return np.arange(count)
    edges = np.unique(np.linspace(0, count, columns + 1).astype(int))
    starts, stops = edges[:-1], edges[1:]
    bucket = np.repeat(np.arange(len(starts)), stops - starts)
    picks = [starts, stops - 1]
    for extreme in (np.minimum, np.maximum):
        at = np.flatnonzero(values == extreme.reduceat(values, starts)[bucket])
        _, first = np.unique(bucket[at], return_index=True)
        picks.append(at[first])
    return np.unique(np.concatenate(picks))


@dataclass(frozen=True, slots=True)
class _Cases:
    """The stored payloads as arrays, read once per drawing."""

    labels: list[str]
    upper: np.ndarray
    lower: np.ndarray
    track: np.ndarray  # the VLAD; empty without its payload
    #: (first case index, month label) for every month present, in order.
    starts: list[tuple[int, str]]
    signals_up: list[int]
    signals_down: list[int]

    @classmethod
    def read(cls, racusum: RaCusumPayload, vlad: VladPayload | None) -> _Cases:
        labels = [str(x) for x in racusum.x]
        months = np.asarray(labels)
        first = np.flatnonzero(np.r_[True, months[1:] != months[:-1]]) if labels else []
        cases = len(labels)
        return cls(
            labels=labels,
            # JSON nulls become NaN (numpy's float conversion of None).
            upper=np.array(racusum.upper, dtype=float),
            lower=np.array(racusum.lower, dtype=float),
            track=np.array(vlad.vlad if vlad is not None else (), dtype=float),
            starts=[(int(i), labels[i]) for i in first],
            signals_up=[i for i in racusum.signals_upper if 0 <= i < cases],
            signals_down=[i for i in racusum.signals_lower if 0 <= i < cases],
        )


def _annotation_case(starts: Sequence[tuple[int, str]], when: object) -> int | None:
    """The first case in the annotation's month or later (None if after every case)."""
    if isinstance(when, dt.datetime):
        when = when.date()
    month = when.strftime("%Y-%m") if isinstance(when, dt.date) else str(when)[:7]
    return next((index for index, label in starts if label >= month), None)


class _Panel:
    """One plot area: a case-order x scale and a value y scale with axes and grid."""

    def __init__(
        self,
        across: tuple[float, float],
        down: tuple[float, float],
        *,
        cases: int,
        values: np.ndarray,
    ) -> None:
        (self.left, self.right), (self.top, self.bottom) = across, down
        self.x = base.LinearScale(0, max(cases - 1, 1), self.left, self.right)
        finite = values[np.isfinite(values)]
        lo, hi = base.padded_range(
            (finite.min(), finite.max()) if len(finite) else (), include=[0.0]
        )
        ticks = base.nice_ticks(lo, hi, count=4)
        if ticks:
            lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
        self.y = base.LinearScale(lo, hi, self.bottom, self.top)
        self.ticks = ticks

    def frame(self, y_label: str, starts: Sequence[tuple[int, str]]) -> list[str]:
        parts = [
            f'<rect x="{base.fmt(self.left)}" y="{base.fmt(self.top)}" '
            f'width="{base.fmt(self.right - self.left)}" '
            f'height="{base.fmt(self.bottom - self.top)}" fill="white" stroke="{base.LIGHT}"/>'
        ]
        parts += base.y_axis(self.y, self.ticks, left=self.left, right=self.right, label="")
        parts.append(
            base.text(self.left, self.top - 18, y_label, size=9.5, weight="bold", fill=base.INK)
        )
        parts += base.category_axis(
            [label for _, label in starts],
            [self.x(i) for i, _ in starts],
            bottom=self.bottom,
            most=4,
        )
        return parts

    def path(self, values: np.ndarray, style: str, cls: str) -> list[str]:
        # Buckets two pixels wide: at 720 px across a printed page, finer detail is invisible.
        keep = thinned(values, max(int((self.right - self.left) / 2), 1))
        xs, ys = self.x(keep), self.y(values[keep])  # the scales map whole arrays too
        return base.line(zip(xs.tolist(), ys.tolist(), strict=True), style=style, cls=cls)

    def level(self, value: float, label: str, style: str) -> list[str]:
        line = base.LINE_STYLES[style]
        return reference_line(
            self.left,
            self.right,
            self.y(value),
            label,
            dash=line.dash,
            colour=line.stroke,
            width=line.width,
            label_side="start",
        )


UP_WORDS, DOWN_WORDS = "more events than expected", "fewer events than expected"


def _kinds(upper_means: str) -> tuple[str, str]:
    """Marker kinds of (upper, lower) signals: more events is a concern when fewer is better."""
    return (
        ("concern", "improvement") if upper_means == "deterioration" else ("improvement", "concern")
    )


def sequential_chart(
    racusum: RaCusumPayload,
    vlad: VladPayload | None = None,
    *,
    title: str,
    annotations: Sequence[Any] = (),
    width: float = WIDTH,
    height: float = HEIGHT,
) -> base.Chart:
    """The RA-CUSUM (and, given its payload, the VLAD) of one member's cases."""
    data = _Cases.read(racusum, vlad)
    labels, upper, lower, track = data.labels, data.upper, data.lower, data.track
    cases = len(upper)
    h_up = racusum.h_upper
    h_down = racusum.h_lower
    up_kind, down_kind = _kinds(racusum.upper_means)

    top, bottom = 34.0, height - 58.0
    with_vlad = len(track) > 0
    split = _LEFT + (width - _LEFT - _RIGHT - _GAP) * 0.55 if with_vlad else width - _RIGHT
    cusum_panel = _Panel(
        (_LEFT, split),
        (top, bottom),
        cases=cases,
        values=np.concatenate([upper, lower, [h_up, -h_down]]),
    )
    parts = cusum_panel.frame("Risk-adjusted CUSUM (log-likelihood ratio)", data.starts)
    legend: dict[str, str] = {}
    if math.isfinite(h_up):
        parts += cusum_panel.level(h_up, f"h {h_up:.2f}", "limit")
    if math.isfinite(h_down):
        parts += cusum_panel.level(-h_down, f"−h {h_down:.2f}", "limit")
    legend["Limit h (simulated)"] = "line:limit"
    parts += cusum_panel.level(0.0, "", "phase")
    parts += cusum_panel.path(upper, "centre", "cusum-upper")
    parts += cusum_panel.path(lower, "data", "cusum-lower")
    legend[f"Upper: odds x {racusum.odds_ratio_upper:g}"] = "line:centre"
    legend[f"Lower: odds x {racusum.odds_ratio_lower:g}"] = "line:data"
    for side, fired, values, shape, kind, words in (
        ("upper", data.signals_up, upper, "square", up_kind, UP_WORDS),
        ("lower", data.signals_down, lower, "triangle-down", down_kind, DOWN_WORDS),
    ):
        for index in fired:
            parts.append(
                base.marker(
                    shape,
                    cusum_panel.x(index),
                    cusum_panel.y(values[index]),
                    kind=kind,
                    label=f"case {index + 1} ({labels[index]}): {words}",
                    cls=f"signal-{side}",
                )
            )
            legend[f"Signal: {words}"] = f"marker:{shape}:{kind}"

    panels = [cusum_panel]
    if with_vlad:
        vlad_panel = _Panel(
            (split + _GAP, width - _RIGHT), (top, bottom), cases=len(track), values=track
        )
        parts += vlad_panel.frame("VLAD: expected minus observed events", data.starts)
        parts += vlad_panel.level(0.0, "", "limit")
        parts += vlad_panel.path(track, "centre", "vlad")
        panels.append(vlad_panel)

    for when, label in annotation_pairs(annotations):
        index = _annotation_case(data.starts, when)
        if index is None:
            continue
        for panel in panels:
            parts += base.vertical_marker(panel.x(index), panel.top, panel.bottom, label)
        legend.setdefault("Annotation", "line:annotation")

    for panel in panels:
        middle = (panel.left + panel.right) / 2
        parts.append(
            base.text(
                middle,
                bottom + 26,
                f"{cases:,} cases in order",
                size=9,
                anchor="middle",
                fill=base.GREY,
            )
        )
    parts += base.legend(list(legend.items()), x=48.0, y=bottom + 40, width=width - 64.0)
    description = _describe(racusum, vlad, data)
    svg = base.svg_document(width, height, title, description, parts)
    return base.Chart(
        svg,
        title,
        description,
        columns=(
            "Month",
            "Cases",
            "Expected minus observed in month",
            "Upper CUSUM at month end",
            "Lower CUSUM at month end",
            "VLAD at month end",
            "Signals",
        ),
        rows=_monthly_rows(data),
    )


def monthly_rows(racusum: RaCusumPayload, vlad: VladPayload | None) -> tuple[tuple[str, ...], ...]:
    """The chart as a table, one row per month (thousands of case rows help nobody)."""
    return _monthly_rows(_Cases.read(racusum, vlad))


def _monthly_rows(data: _Cases) -> tuple[tuple[str, ...], ...]:
    labels, upper, lower, starts = data.labels, data.upper, data.lower, data.starts
    track = data.track if len(data.track) else np.full(len(labels), math.nan)
    up, down = set(data.signals_up), set(data.signals_down)
    rows = []
    previous = 0.0
    for number, (start, month) in enumerate(starts):
        stop = starts[number + 1][0] if number + 1 < len(starts) else len(labels)
        last = stop - 1
        net = float(track[last]) - previous if math.isfinite(track[last]) else math.nan
        previous = float(track[last]) if math.isfinite(track[last]) else previous
        fired = [
            *(f"upper at case {i + 1}" for i in range(start, stop) if i in up),
            *(f"lower at case {i + 1}" for i in range(start, stop) if i in down),
        ]
        rows.append(
            (
                month,
                f"{stop - start:,}",
                f"{net:+.2f}" if math.isfinite(net) else "",
                f"{upper[last]:.2f}",
                f"{lower[last]:.2f}",
                f"{track[last]:+.2f}" if math.isfinite(track[last]) else "",
                "; ".join(fired),
            )
        )
    return tuple(rows)


def describe(racusum: RaCusumPayload, vlad: VladPayload | None) -> str:
    """A few sentences for ``<desc>`` and the ``alt`` text."""
    return _describe(racusum, vlad, _Cases.read(racusum, vlad))


def _describe(racusum: RaCusumPayload, vlad: VladPayload | None, data: _Cases) -> str:
    labels = data.labels
    cases = len(labels)
    if not cases:
        return "Risk-adjusted CUSUM without cases."
    text = (
        f"Risk-adjusted CUSUM (Steiner) of {cases:,} cases from {labels[0]} to {labels[-1]}, "
        f"limits h {racusum.h_upper:.2f} (upper) and "
        f"{racusum.h_lower:.2f} (lower) for an in-control average run "
        f"length of {racusum.arl:,.0f} cases."
    )
    for name, fired, words in (
        ("Upper", data.signals_up, UP_WORDS),
        ("Lower", data.signals_down, DOWN_WORDS),
    ):
        if fired:
            months = sorted({labels[i] for i in fired})
            text += f" {name} chart signalled {len(fired)} time(s) ({words}): {', '.join(months)}."
        else:
            text += f" {name} chart: no signal."
    if vlad:
        observed, expected = vlad.observed, vlad.expected
        if math.isfinite(observed) and math.isfinite(expected):
            text += (
                f" VLAD ends at {expected - observed:+.1f}: {observed:,.0f} events observed, "
                f"{expected:,.1f} expected."
            )
    return text
