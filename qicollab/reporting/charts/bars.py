"""Distribution and bar charts: where members sit on a measure, and how the collaborative moved.

* :func:`distribution_chart` shows every member's value as a dot over a box of the quartiles
  with 10th-90th percentile whiskers (Vermont Oxford's quartile reports), the Achievable
  Benchmark as a dashed line and the target as a dotted one; the member's own value is the dark
  diamond. Dots are stacked by rank so that ties stay visible.
* :func:`bar_chart` draws one bar per period (improvement over the cycle).
* :func:`change_chart` draws horizontal bars of change per member (who improved most), signed
  so that improvement always points right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from qicollab.reporting.charts.common import (
    DENSE,
    GREY,
    HIGHLIGHT,
    INK,
    LIGHT,
    Chart,
    Labels,
    LinearScale,
    dodge,
    dot_d,
    fit_text,
    fmt,
    marks,
    nice_ticks,
    own_point,
    padded_range,
    svg_document,
    text,
    text_width,
    x_axis,
    y_axis,
)

WIDTH = 680.0


@dataclass(frozen=True, slots=True)
class DistributionPoint:
    """One member's value (display scale)."""

    label: str
    value: float
    own: bool = False


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    position = (len(sorted_values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def distribution_chart(
    points: Sequence[DistributionPoint],
    *,
    title: str,
    x_label: str,
    benchmark: float | None = None,
    target: float | None = None,
    quantiles: dict[str, float] | None = None,
    higher_is_better: bool = True,
    hidden: int = 0,
    digits: int = 1,
) -> Chart:
    """Strip-and-box plot of one measure across members (values on the display scale)."""
    finite = sorted(
        (p for p in points if p.value is not None and math.isfinite(p.value)),
        key=lambda p: (p.value, p.label),
    )
    values = [p.value for p in finite]
    q = dict(quantiles or {})
    if values:
        for key, level in (("p10", 0.1), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p90", 0.9)):
            q.setdefault(key, _quantile(values, level))
    extras = [v for v in (benchmark, target) if v is not None]
    lo, hi = padded_range(values, include=extras)
    left, right, top, bottom = 40.0, WIDTH - 16, 36.0, 134.0
    height = 176.0
    x = LinearScale(lo, hi, left, right)
    ticks = [t for t in nice_ticks(lo, hi, 6) if lo <= t <= hi]
    body = x_axis(x, ticks, top=top, bottom=bottom, label=x_label)
    direction = "higher is better" if higher_is_better else "lower is better"
    body.append(text(right, 10, direction, size=8.5, anchor="end", fill=GREY))
    labels = Labels(WIDTH, height)
    labels.add(right, 10, direction, 8.5, "end")
    mid = (top + bottom) / 2
    if values and all(k in q for k in ("p10", "p25", "p50", "p75", "p90")):
        body.append(
            f'<line x1="{fmt(x(q["p10"]))}" x2="{fmt(x(q["p90"]))}" y1="{fmt(mid)}" '
            f'y2="{fmt(mid)}" stroke="{GREY}" stroke-width="1.2"/>'
        )
        body.append(
            f'<rect x="{fmt(x(q["p25"]))}" y="{fmt(mid - 14)}" '
            f'width="{fmt(max(x(q["p75"]) - x(q["p25"]), 1))}" height="28" fill="#f4f4f4" '
            f'stroke="{GREY}" stroke-width="1"/>'
        )
        body.append(
            f'<line x1="{fmt(x(q["p50"]))}" x2="{fmt(x(q["p50"]))}" y1="{fmt(mid - 14)}" '
            f'y2="{fmt(mid + 14)}" stroke="{INK}" stroke-width="2"/>'
        )
    lanes = 7
    own_parts: list[str] = []
    dots: list[str] = []
    for index, point in enumerate(finite):
        cx = x(point.value)
        if point.own:
            own_parts += own_point(cx, mid, point.label, middle=(left + right) / 2)
            continue
        cy = top + 8 + (index % lanes) * ((bottom - top - 16) / (lanes - 1))
        dots.append(dot_d(cx, cy, 2.6, dense=len(finite) > DENSE))
    body += marks(dots, f'fill="white" stroke="{GREY}" stroke-width="0.9"')
    for value, label, dash in (
        (benchmark, "benchmark (ABC)", "6 3"),
        (target, "target", "1.5 2.5"),
    ):
        if value is None:
            continue
        body.append(
            f'<line x1="{fmt(x(value))}" x2="{fmt(x(value))}" y1="{fmt(top - 6)}" '
            f'y2="{fmt(bottom)}" stroke="{INK}" stroke-width="1.4" stroke-dasharray="{dash}"/>'
        )
        # Beside the top of its line, on a second row if the first is taken.
        xv = x(value)
        spot = labels.place(
            label,
            8.5,
            [(xv + 3, row, "start") for row in (top - 8, top - 19)]
            + [(xv - 3, row, "end") for row in (top - 8, top - 19)],
        )
        if spot is not None:
            body.append(text(spot[0], spot[1], label, size=8.5, anchor=spot[2]))
    body += own_parts
    footer = f"{len(finite)} members"
    if hidden:
        footer += f"; {hidden} not shown (small numbers)"
    body.append(text(left, height - 4, footer, size=9, fill=GREY))

    description = f"Values of {len(finite)} members ({direction})."
    if values:
        description += (
            f" Median {q['p50']:.{digits}f}, quartiles {q['p25']:.{digits}f} to "
            f"{q['p75']:.{digits}f}, 10th to 90th percentile {q['p10']:.{digits}f} to "
            f"{q['p90']:.{digits}f}."
        )
    if benchmark is not None:
        description += f" Achievable benchmark {benchmark:.{digits}f}."
    if target is not None:
        description += f" Target {target:.{digits}f}."
    own = next((p for p in finite if p.own), None)
    if own is not None:
        description += f" Your value {own.value:.{digits}f}."
    if hidden:
        description += f" {hidden} members not shown because their numbers are small."
    rows = tuple((p.label, f"{p.value:.{digits}f}") for p in finite)
    svg = svg_document(WIDTH, height, title, description, body)
    return Chart(svg, title, description, ("Member", x_label), rows)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str,
    y_label: str,
    benchmark: float | None = None,
    target: float | None = None,
    digits: int = 1,
    width: float = WIDTH,
) -> Chart:
    """One bar per category (periods), with optional benchmark and target lines."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    extras = [v for v in (benchmark, target) if v is not None]
    lo, hi = padded_range([*finite, 0.0], include=extras)
    lo = min(lo, 0.0)
    height = 200.0
    references = [
        (value, label, dash)
        for value, label, dash in (
            (benchmark, "benchmark (ABC)", "6 3"),
            (target, "target", "1.5 2.5"),
        )
        if value is not None
    ]
    # Reference lines are named in the right margin, pushed apart when they run close.
    margin = max((text_width(label, 8.5) for _, label, _ in references), default=0.0)
    left, right, top, bottom = 52.0, width - 16 - (margin + 6 if margin else 0), 18.0, 168.0
    y = LinearScale(lo, hi, bottom, top)
    ticks = [t for t in nice_ticks(lo, hi, 5) if lo <= t <= hi]
    body = y_axis(y, ticks, left=left, right=right, label=y_label)
    slot = (right - left) / max(len(labels), 1)
    bar = min(slot * 0.6, 60)
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        cx = left + slot * (index + 0.5)
        body.append(text(cx, bottom + 13, label, size=9, anchor="middle"))
        if value is None or not math.isfinite(value):
            body.append(text(cx, bottom - 4, "no data", size=8, anchor="middle", fill=GREY))
            continue
        y0, y1 = y(0.0), y(value)
        body.append(
            f'<rect x="{fmt(cx - bar / 2)}" y="{fmt(min(y0, y1))}" width="{fmt(bar)}" '
            f'height="{fmt(max(abs(y0 - y1), 0.5))}" fill="{LIGHT}" stroke="{INK}" '
            f'stroke-width="0.8"/>'
        )
        # Above the bar, unless a reference line runs through that spot: then inside its top.
        label_y = min(y0, y1) - 3
        crossed = any(label_y - 7 < y(ref) < label_y + 3 for ref, _, _ in references)
        if crossed and abs(y0 - y1) > 24:
            label_y = min(y0, y1) + 11
        body.append(text(cx, label_y, f"{value:.{digits}f}", size=8.5, anchor="middle"))
    label_ys = dodge([y(value) + 3 for value, _, _ in references], 10.0, top, bottom + 3)
    for (value, label, dash), label_y in zip(references, label_ys, strict=True):
        body.append(
            f'<line x1="{fmt(left)}" x2="{fmt(right)}" y1="{fmt(y(value))}" '
            f'y2="{fmt(y(value))}" stroke="{INK}" stroke-width="1.3" stroke-dasharray="{dash}"/>'
        )
        body.append(text(right + 4, label_y, label, size=8.5))
    pairs = [
        f"{label} {value:.{digits}f}" if value is not None else f"{label} no data"
        for label, value in zip(labels, values, strict=True)
    ]
    description = f"{y_label} by period: " + "; ".join(pairs) + "."
    rows = tuple(
        (label, f"{value:.{digits}f}" if value is not None else "–")
        for label, value in zip(labels, values, strict=True)
    )
    svg = svg_document(width, height, title, description, body)
    return Chart(svg, title, description, ("Period", y_label), rows)


def change_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    x_label: str,
    digits: int = 1,
    own_label: str | None = None,
    width: float = WIDTH,
) -> Chart:
    """Horizontal bars of improvement per member; positive means better, whatever the measure."""
    rows_shown = list(items)
    bar_height, gap = 14.0, 5.0
    # Names get the room the longest needs (up to 40 % of the width, then an ellipsis).
    room = min(
        max((text_width(label, 9.5, bold=True) for label, _ in rows_shown), default=60.0),
        width * 0.4,
    )
    left, right, top = room + 10, width - 50, 14.0
    height = top + len(rows_shown) * (bar_height + gap) + 34
    values = [v for _, v in rows_shown]
    lo, hi = padded_range([*values, 0.0])
    x = LinearScale(lo, hi, left, right)
    bottom = top + len(rows_shown) * (bar_height + gap)
    ticks = [t for t in nice_ticks(lo, hi, 5) if lo <= t <= hi]
    body = x_axis(x, ticks, top=top, bottom=bottom, label=x_label)
    body.append(
        f'<line x1="{fmt(x(0))}" x2="{fmt(x(0))}" y1="{fmt(top)}" y2="{fmt(bottom)}" '
        f'stroke="{INK}" stroke-width="1"/>'
    )
    for index, (label, value) in enumerate(rows_shown):
        y = top + index * (bar_height + gap)
        own = own_label is not None and label == own_label
        x0, x1 = x(0), x(value)
        shown = fit_text(label, 9.5, room, bold=own)
        body.append(
            text(
                left - 6,
                y + bar_height - 3,
                shown,
                size=9.5,
                anchor="end",
                weight="bold" if own else "normal",
            )
        )
        body.append(
            f'<rect x="{fmt(min(x0, x1))}" y="{fmt(y)}" width="{fmt(max(abs(x1 - x0), 0.5))}" '
            f'height="{fmt(bar_height)}" fill="{HIGHLIGHT if own else LIGHT}" stroke="{INK}" '
            f'stroke-width="0.7"/>'
        )
        # A loss is labelled right of the zero line, so it never runs into the names.
        body.append(
            text(
                (x1 if value >= 0 else x0) + 4,
                y + bar_height - 3,
                f"{value:+.{digits}f}",
                size=9,
                anchor="start",
            )
        )
    description = (
        "Change from the first to the last year, improvement to the right: "
        + "; ".join(f"{label} {value:+.{digits}f}" for label, value in rows_shown)
        + "."
    )
    rows = tuple((label, f"{value:+.{digits}f}") for label, value in rows_shown)
    svg = svg_document(width, height, title, description, body)
    return Chart(svg, title, description, ("Member", x_label), rows)
