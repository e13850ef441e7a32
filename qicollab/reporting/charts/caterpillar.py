"""Caterpillar plot: every member's O/E ratio (or rate) with its interval, sorted, against 1.

NSQIP's semiannual report ranks hospitals this way. Peers are unlabelled points (their blinded
codes are in the text alternative); the member's own point is a larger dark diamond with a
label. Shapes carry the meaning in greyscale: a filled circle is a member whose interval
excludes the reference, an open circle one whose interval includes it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from qicollab.reporting.charts.common import (
    DENSE,
    GREY,
    HIGHLIGHT,
    LIGHT,
    PEER_LAYERS,
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


def _flag(low: float | None, high: float | None, reference: float) -> str:
    if low is not None and low > reference:
        return "above"
    if high is not None and high < reference:
        return "below"
    return "within"


@dataclass(frozen=True, slots=True)
class _PeerLayer:
    """Every member's interval and dot, how many intervals lie wholly above and below the
    reference, and each dot's box (so the member's name can avoid them)."""

    parts: tuple[str, ...]
    above: int
    below: int
    dots: tuple[tuple[float, float, float, float], ...]


@functools.lru_cache(maxsize=PEER_LAYERS)
def _peer_layer(
    values: tuple[tuple[float, float | None, float | None], ...],
    reference: float,
    lo: float,
    hi: float,
    skipped: int | None,
) -> _PeerLayer:
    """The marks of the sorted ``(estimate, low, high)`` values on the plot's scale, leaving
    out the one at index ``skipped`` (the member's own, when it is drawn only by itself).

    A pure function of its arguments, kept per process: a run's member reports all draw the
    same 1,000 peers, and formatting their marks was most of building each chart."""
    y = LinearScale(lo, hi, BOTTOM, TOP)
    slot = (RIGHT - LEFT) / max(len(values), 1)
    radius = max(1.2, min(3.2, slot * 0.35))
    dense = len(values) > DENSE
    counts = {"above": 0, "below": 0, "within": 0}
    intervals: list[str] = []
    open_points: list[str] = []
    filled_points: list[str] = []
    dots = []
    for index, (estimate, low, high) in enumerate(values):
        x = LEFT + slot * (index + 0.5)
        flag = _flag(low, high, reference)
        counts[flag] += 1
        dots.append((x - radius, y(estimate) - radius, x + radius, y(estimate) + radius))
        if index == skipped:
            continue
        if low is not None and high is not None:
            intervals.append(f"M{fmt(x)} {fmt(y(low))}V{fmt(y(high))}")
        target = open_points if flag == "within" else filled_points
        target.append(dot_d(x, y(estimate), radius, dense=dense))
    line_width = fmt(max(1, radius * 0.6))
    parts = marks(intervals, f'fill="none" stroke="{LIGHT}" stroke-width="{line_width}"')
    parts += marks(open_points, f'fill="white" stroke="{GREY}" stroke-width="0.8"')
    parts += marks(filled_points, f'fill="{GREY}" stroke="{GREY}" stroke-width="0.8"')
    return _PeerLayer(tuple(parts), counts["above"], counts["below"], tuple(dots))


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
    max_rows: int | None = None,
) -> Chart:
    """Draw the caterpillar plot; ``hidden`` counts peers left out by small-cell suppression.
    The text alternative lists the first ``max_rows`` members (all by default)."""
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

    body = y_axis(y, ticks, left=LEFT, right=RIGHT, label=y_label)
    body += reference_line(LEFT, RIGHT, y(reference), reference_label, dash="5 3")
    worse_word = "higher is worse" if higher_is_worse else "higher is better"
    body.append(text(RIGHT, 12, worse_word, size=8.5, anchor="end", fill=GREY))
    own_index = next((i for i, p in enumerate(shown) if p.own), None)
    # Dense, the member's own mark joins the others (its larger diamond and interval cover
    # it), so the layer is the same in every member's chart of a run: built once per process
    # here, and drawn once per worker by the PDF renderer (qicollab.reporting.render_cache).
    dense = len(shown) > DENSE
    layer = _peer_layer(
        tuple((p.estimate, p.low, p.high) for p in shown),
        reference,
        lo,
        hi,
        None if dense else own_index,
    )
    body += layer.parts
    if own_index is not None:
        # What the member's name must not cover: the reference line and the other members' dots.
        obstacles = [
            (LEFT, y(reference) - 1, RIGHT, y(reference) + 1),
            Labels.box(RIGHT - 2, y(reference) - 3, reference_label, 8.5, "end"),
            Labels.box(RIGHT, 12, worse_word, 8.5, "end"),
            *layer.dots[:own_index],
            *layer.dots[own_index + 1 :],
        ]
        x = LEFT + slot * (own_index + 0.5)
        body += _own_marker(x, shown[own_index], y, obstacles=obstacles)
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

    description = (
        f"{len(shown)} members sorted from lowest to highest {y_label.lower()}, each with its "
        f"95% interval, against a reference line at {reference:.{digits}f}. "
        f"{layer.above} intervals lie wholly above the reference and {layer.below} "
        f"wholly below ({worse_word})."
    )
    if own_index is not None:
        own = shown[own_index]
        description += (
            f" Your estimate is {own.estimate:.{digits}f}"
            + (
                f" (95% interval {own.low:.{digits}f} to {own.high:.{digits}f})"
                if own.low is not None and own.high is not None
                else ""
            )
            + f", rank {own_index + 1} of {len(shown)} from the lowest."
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
        for p in shown[:max_rows]
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
