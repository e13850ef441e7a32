"""Caterpillar plot: every member's O/E ratio (or rate) with its interval, sorted, against 1.

NSQIP's semiannual report ranks hospitals this way. Peers are unlabelled points (their blinded
codes are in the text alternative); the member's own point is a larger dark diamond with a
label. Shapes carry the meaning in greyscale: a filled circle is a member whose interval
excludes the reference, an open circle one whose interval includes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from qicollab.reporting.charts.common import (
    DENSE,
    GREY,
    HIGHLIGHT,
    LIGHT,
    Chart,
    Labels,
    LinearScale,
    dot_d,
    fmt,
    marks,
    nice_ticks,
    own_point,
    padded_range,
    reference_line,
    svg_document,
    text,
    y_axis,
)

#: Half a page wide, so it sits beside the funnel plot in the report and on the page.
WIDTH, HEIGHT = 400.0, 240.0
LEFT, RIGHT, TOP, BOTTOM = 48.0, 390.0, 22.0, 212.0


@dataclass(frozen=True, slots=True)
class CaterpillarPoint:
    """One member on the plot."""

    label: str
    estimate: float
    low: float | None = None
    high: float | None = None
    own: bool = False


def _flag(point: CaterpillarPoint, reference: float) -> str:
    if point.low is not None and point.low > reference:
        return "above"
    if point.high is not None and point.high < reference:
        return "below"
    return "within"


def caterpillar_chart(
    points: Sequence[CaterpillarPoint],
    *,
    title: str,
    reference: float = 1.0,
    reference_label: str = "collaborative (O/E = 1)",
    y_label: str = "Observed / expected",
    higher_is_worse: bool = True,
    hidden: int = 0,
    digits: int = 2,
) -> Chart:
    """Draw the caterpillar plot; ``hidden`` counts peers left out by small-cell suppression."""
    shown = sorted(
        (p for p in points if p.estimate is not None and math.isfinite(p.estimate)),
        key=lambda p: (p.estimate, p.label),
    )
    values = [p.estimate for p in shown]
    values += [v for p in shown for v in (p.low, p.high) if v is not None and math.isfinite(v)]
    lo, hi = padded_range(values, include=(reference,))
    lo = max(lo, 0.0) if all(v >= 0 for v in values) else lo
    y = LinearScale(lo, hi, BOTTOM, TOP)
    ticks = [t for t in nice_ticks(lo, hi, 5) if lo <= t <= hi]
    slot = (RIGHT - LEFT) / max(len(shown), 1)
    x_of = [LEFT + slot * (i + 0.5) for i in range(len(shown))]
    radius = max(1.2, min(3.2, slot * 0.35))
    line_width = fmt(max(1, radius * 0.6))

    body = y_axis(y, ticks, left=LEFT, right=RIGHT, label=y_label)
    body += reference_line(LEFT, RIGHT, y(reference), reference_label, dash="5 3")
    worse_word = "higher is worse" if higher_is_worse else "higher is better"
    body.append(text(RIGHT, 12, worse_word, size=8.5, anchor="end", fill=GREY))
    own_parts: list[str] = []
    own: tuple[float, CaterpillarPoint] | None = None
    # What the member's name must not cover: the reference line and the other members' dots.
    obstacles = [
        (LEFT, y(reference) - 1, RIGHT, y(reference) + 1),
        Labels.box(RIGHT - 2, y(reference) - 3, reference_label, 8.5, "end"),
        Labels.box(RIGHT, 12, worse_word, 8.5, "end"),
    ]
    counts = {"above": 0, "below": 0, "within": 0}
    intervals: list[str] = []
    open_points: list[str] = []
    filled_points: list[str] = []
    # Dense, the member's own mark joins the others (its larger diamond and interval cover
    # it), so these paths are the same in every member's report of a run and the PDF renderer
    # draws them once per worker (qicollab.reporting.render_cache).
    dense = len(shown) > DENSE
    for x, point in zip(x_of, shown, strict=True):
        flag = _flag(point, reference)
        counts[flag] += 1
        if point.own:
            own = (x, point)
            if not dense:
                continue
        else:
            obstacles.append(
                (x - radius, y(point.estimate) - radius, x + radius, y(point.estimate) + radius)
            )
        if point.low is not None and point.high is not None:
            intervals.append(f"M{fmt(x)} {fmt(y(point.low))}V{fmt(y(point.high))}")
        target = open_points if flag == "within" else filled_points
        target.append(dot_d(x, y(point.estimate), radius, dense=dense))
    body += marks(intervals, f'fill="none" stroke="{LIGHT}" stroke-width="{line_width}"')
    body += marks(open_points, f'fill="white" stroke="{GREY}" stroke-width="0.8"')
    body += marks(filled_points, f'fill="{GREY}" stroke="{GREY}" stroke-width="0.8"')
    if own is not None:
        own_parts += _own_marker(*own, y, obstacles=obstacles)
    body += own_parts
    body.append(text(LEFT, HEIGHT - 10, f"{len(shown)} members, ranked", size=9, fill=GREY))
    if hidden:
        body.append(
            text(
                RIGHT,
                HEIGHT - 10,
                f"{hidden} not shown (small numbers)",
                size=9,
                anchor="end",
                fill=GREY,
            )
        )

    own = next((p for p in shown if p.own), None)
    description = (
        f"{len(shown)} members sorted from lowest to highest {y_label.lower()}, each with its "
        f"95% interval, against a reference line at {reference:.{digits}f}. "
        f"{counts['above']} intervals lie wholly above the reference and {counts['below']} "
        f"wholly below ({worse_word})."
    )
    if own is not None:
        rank = shown.index(own) + 1
        description += (
            f" Your estimate is {own.estimate:.{digits}f}"
            + (
                f" (95% interval {own.low:.{digits}f} to {own.high:.{digits}f})"
                if own.low is not None and own.high is not None
                else ""
            )
            + f", rank {rank} of {len(shown)} from the lowest."
        )
    if hidden:
        description += f" {hidden} members are not shown because their numbers are small."
    rows = tuple(
        (
            p.label,
            f"{p.estimate:.{digits}f}",
            f"{p.low:.{digits}f}" if p.low is not None else "–",
            f"{p.high:.{digits}f}" if p.high is not None else "–",
        )
        for p in shown
    )
    svg = svg_document(WIDTH, HEIGHT, title, description, body)
    return Chart(svg, title, description, ("Member", "Estimate", "95% low", "95% high"), rows)


def _own_marker(
    x: float,
    point: CaterpillarPoint,
    y: LinearScale,
    *,
    obstacles: list[tuple[float, float, float, float]],
) -> list[str]:
    """The member's diamond and interval, and its name beside them where it covers neither the
    reference line nor another member's dot: above the interval, below it, or higher."""
    parts = []
    if point.low is not None and point.high is not None:
        parts.append(
            f'<line x1="{fmt(x)}" x2="{fmt(x)}" y1="{fmt(y(point.low))}" '
            f'y2="{fmt(y(point.high))}" stroke="{HIGHLIGHT}" stroke-width="2.4"/>'
        )
    cy = y(point.estimate)
    size = 6.0
    top = y(point.high) if point.high is not None else cy - size
    low = y(point.low) if point.low is not None else cy + size
    middle = (LEFT + RIGHT) / 2
    anchor = "end" if x > middle else "start"
    label_x = x - (size + 2) if anchor == "end" else x + size + 2
    spots = [max(top - 6, 20), min(low + 14, BOTTOM - 2), max(top - 18, 20), max(top - 30, 20)]
    free = Labels(WIDTH, HEIGHT, list(obstacles))
    chosen = free.place(point.label, 10, [(label_x, ly, anchor) for ly in spots], bold=True)
    label_y = chosen[1] if chosen is not None else spots[0]
    return parts + own_point(x, cy, point.label, middle=middle, size=size, label_y=label_y)
