"""A measure's funnel plot from stored results: members' values against their volume (denominator,
or expected events for risk-adjusted measures) with the limits at 95% and 99.8%.

The limits are the run's stored curves (overdispersion-adjusted where the run adjusted them),
else computed here around the collaborative value and said to be unadjusted. Peers are small
dots under their blinded codes (or names, for coordinators), the member's own point a labelled
diamond; half a page wide, to sit beside the caterpillar plot. The statistics core's own
funnel renderer (:mod:`.funnel`) draws a :class:`~qicollab.stats.funnel.FunnelResult` for the
command line; this one draws what a run stored, as every results page and report shows it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qicollab.reporting.charts.common import (
    DENSE,
    GREY,
    INK,
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
    unique_id,
    x_axis,
    y_axis,
)
from qicollab.reporting.formatting import scaled

if TYPE_CHECKING:
    from qicollab.benchmarking.payloads import FunnelPayload
    from qicollab.reporting.results import MeasureView, Result, Summary


@dataclass(frozen=True, slots=True)
class FunnelPoint:
    """A member on a funnel plot: its precision (x) and value (y), display scale."""

    label: str
    x: float
    y: float
    own: bool = False


@dataclass(frozen=True, slots=True)
class FunnelCurve:
    """Limits along x: lists of (x, lower, upper) at one level."""

    level: str
    points: tuple[tuple[float, float | None, float | None], ...]
    dash: str
    #: Drawn lighter: the limits that did not decide the statuses (unadjusted, when adjusted).
    lighter: bool = False


@dataclass(frozen=True, slots=True)
class _PeerLayer:
    """Every member's mark, and a box around each point (so labels can avoid them)."""

    parts: tuple[str, ...]
    boxes: tuple[tuple[float, float, float, float], ...]


@functools.lru_cache(maxsize=PEER_LAYERS)
def _peer_layer(
    values: tuple[tuple[float, float], ...],
    x_scale: tuple[float, float, float, float],
    y_scale: tuple[float, float, float, float],
    dense: bool,
    skipped: int | None,
) -> _PeerLayer:
    """The marks of the ``(x, y)`` values (clamped into the plot), leaving out the one at
    index ``skipped`` (the member's own, when it is drawn only by itself).

    A pure function of its arguments, kept per process: a run's member reports all draw the
    same 1,000 peers, and formatting their marks was most of building each chart."""
    x, y = LinearScale(*x_scale), LinearScale(*y_scale)
    y_lo, y_hi = y_scale[:2]
    peer_marks = []
    boxes = []
    for index, (vx, vy) in enumerate(values):
        px, py = x(vx), y(min(max(vy, y_lo), y_hi))
        boxes.append((px - 4, py - 4, px + 4, py + 4))
        if index != skipped:
            peer_marks.append(dot_d(px, py, 2.7, dense=dense))
    parts = marks(peer_marks, f'fill="{LIGHT}" stroke="{GREY}" stroke-width="0.8"')
    return _PeerLayer(tuple(parts), tuple(boxes))


def funnel_chart(
    points: Sequence[FunnelPoint],
    curves: Sequence[FunnelCurve],
    *,
    title: str,
    target: float,
    x_label: str,
    y_label: str,
    target_label: str = "collaborative",
    higher_is_better: bool = True,
    hidden: int = 0,
    digits: int = 2,
    note: str = "",
    max_rows: int | None = None,
) -> Chart:
    """Members' values against their volume with limits at 95% and 99.8% (half a page wide,
    to sit beside the caterpillar plot); the text alternative lists the first ``max_rows``
    members (all by default)."""
    width, height = 400.0, 240.0
    left, right, top, bottom = 52.0, width - 10, 18.0, 186.0
    xs = [p.x for p in points if math.isfinite(p.x)]
    ys = [p.y for p in points if math.isfinite(p.y)]
    x_lo, x_hi = padded_range(xs, include=(0.0,))
    x_lo = 0.0
    limit_ys = [
        v
        for curve in curves
        for (cx, lo, hi) in curve.points
        if x_lo <= cx <= x_hi
        for v in (lo, hi)
        if v is not None and math.isfinite(v)
    ]
    # The limits explode at tiny volumes: scale y on the points, not on the funnel's mouth.
    y_lo, y_hi = padded_range(ys, include=(target,))
    if limit_ys:
        inner = sorted(limit_ys)
        y_lo = min(y_lo, inner[int(len(inner) * 0.15)])
        y_hi = max(y_hi, inner[int(len(inner) * 0.85) - 1])
    if all(v >= 0 for v in ys):
        y_lo = max(y_lo, 0.0)
    x = LinearScale(x_lo, x_hi, left, right)
    y = LinearScale(y_lo, y_hi, bottom, top)
    body = y_axis(
        y,
        [t for t in nice_ticks(y_lo, y_hi, 5) if y_lo <= t <= y_hi],
        left=left,
        right=right,
        label=y_label,
    )
    body += x_axis(
        x,
        [t for t in nice_ticks(x_lo, x_hi, 6) if x_lo <= t <= x_hi],
        top=top,
        bottom=bottom,
        label=x_label,
    )
    clip = unique_id("clip")
    body.append(
        f'<clipPath id="{clip}"><rect x="{fmt(left)}" y="{fmt(top)}" '
        f'width="{fmt(right - left)}" height="{fmt(bottom - top)}"/></clipPath>'
    )
    # One clipped group: the curves carry no clip of their own, so each is the same node in
    # every member's chart of a run and the PDF renderer draws it once per worker.
    body.append(f'<g clip-path="url(#{clip})">')
    for curve in curves:
        for side in (1, 2):
            coords = [
                (x(cx), y(bound[side - 1]))
                for cx, *bound in curve.points
                if bound[side - 1] is not None and x_lo < cx <= x_hi
            ]
            if len(coords) < 2:
                continue
            path = "M" + " L".join(f"{fmt(a)} {fmt(b)}" for a, b in coords)
            stroke = LIGHT if curve.lighter else INK
            body.append(
                f'<path d="{path}" fill="none" stroke="{stroke}" stroke-width="1" '
                f'stroke-dasharray="{curve.dash}"/>'
            )
    body.append("</g>")
    body += reference_line(left, right, y(target), "", width=1.3)
    # Dense, the member's own mark joins the others (its larger diamond covers it), so the
    # layer is the same in every member's chart of a run: built once per process here, and
    # drawn once per worker by the PDF renderer (qicollab.reporting.render_cache).
    finite = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
    own_index = next((i for i, p in enumerate(finite) if p.own), None)
    dense = len(points) > DENSE
    layer = _peer_layer(
        tuple((p.x, p.y) for p in finite),
        (x_lo, x_hi, left, right),
        (y_lo, y_hi, bottom, top),
        dense,
        None if dense else own_index,
    )
    body += layer.parts
    free = Labels(width, height, list(layer.boxes))
    if own_index is not None:
        mine = finite[own_index]
        px, py = x(mine.x), y(min(max(mine.y, y_lo), y_hi))
        body += own_point(px, py, mine.label, middle=(left + right) / 2)
        side = "end" if px > (left + right) / 2 else "start"
        free.boxes.append(
            Labels.box(px + (-9 if side == "end" else 9), py - 9, mine.label, 10, side)
        )
    # The target line's name goes where no member's point is: above or below the line, at
    # either end or in the middle (the first free spot; else the right end, as before).
    ty = y(target)
    spots = [
        (sx, sy, anchor)
        for sy in (ty - 3, ty + 10)
        for sx, anchor in ((right - 2, "end"), (left + 2, "start"), ((left + right) / 2, "middle"))
    ]
    spot = free.place(target_label, 8.5, spots) or spots[0]
    body.append(text(spot[0], spot[1], target_label, size=8.5, anchor=spot[2]))
    body.append(
        text(
            left,
            height - 18,
            "dashed: 95% limits; dotted: 99.8% limits"
            + ("; grey: unadjusted" if any(c.lighter for c in curves) else ""),
            size=8.5,
            fill=GREY,
        )
    )
    if hidden:
        body.append(
            text(left, height - 6, f"{hidden} not shown (small numbers)", size=8.5, fill=GREY)
        )
    own = next((p for p in points if p.own), None)
    description = (
        f"Funnel plot of {len(points)} members: {y_label.lower()} against {x_label.lower()}, "
        f"with the {target_label} value {target:.{digits}f} and control limits at 95% and "
        f"99.8% that narrow as volume grows ("
        + ("higher is better" if higher_is_better else "lower is better")
        + ")."
    )
    if own is not None:
        description += f" Your value is {own.y:.{digits}f} at {own.x:,.0f}."
    if note:
        description += f" {note}"
    if hidden:
        description += f" {hidden} members are not shown because their numbers are small."
    rows = tuple(
        (p.label, f"{p.x:,.0f}" if float(p.x).is_integer() else f"{p.x:,.1f}", f"{p.y:.{digits}f}")
        for p in points[:max_rows]
    )
    svg = svg_document(width, height, title, description, body)
    return Chart(svg, title, description, ("Member", x_label, y_label), rows)


def funnel_point(
    measure: MeasureView, stored: FunnelPayload, label: str, result: Result, own: bool
) -> FunnelPoint | None:
    """A member's point on its measure's stored funnel: none without volume or value."""
    x = result.expected if stored.x == "expected" else result.denominator
    y = measure.scaled(result.value)
    if x is None or y is None or x <= 0:
        return None
    return FunnelPoint(label, x, y, own)


def funnel(
    measure: MeasureView,
    summary: Summary,
    labelled: Sequence[tuple[str, Result, bool]],
    *,
    hidden: int = 0,
) -> Chart | None:
    """A funnel of the visible members (label, result, own) on the value scale: see
    :func:`funnel_of_points`."""
    stored = summary.payload.funnel
    if stored is None:
        return None
    points = [funnel_point(measure, stored, label, result, own) for label, result, own in labelled]
    return funnel_of_points(measure, summary, [p for p in points if p is not None], hidden=hidden)


def funnel_of_points(
    measure: MeasureView,
    summary: Summary,
    points: Sequence[FunnelPoint],
    *,
    hidden: int = 0,
    max_rows: int | None = None,
) -> Chart | None:
    """A funnel of the visible members' points (:func:`funnel_point`) with the limits that
    decided their statuses (adjusted for overdispersion where the run adjusted them; then the
    unadjusted ones lighter) and the run's note on overdispersion. No stored funnel (too few
    contributors), no chart: nothing here computes limits of its own."""
    stored = summary.payload.funnel
    if stored is None:
        return None
    # O/E limits (patient-level measures) are drawn on the value scale: value = O/E x overall.
    to_value = (summary.payload.overall or 0.0) if stored.scale == "oe" else 1.0
    target = stored.target * to_value if stored.target is not None else None
    if target is None or not to_value:
        return None
    by_expected = stored.x == "expected"
    scale = to_value * measure.multiplier
    curves = _stored_curves(stored.limits, scale) + _stored_curves(
        stored.other_limits, scale, lighter=True
    )
    if not points:
        return None
    return funnel_chart(
        points,
        curves,
        title=f"{measure.code}: funnel plot",
        target=target * measure.multiplier,
        x_label="Expected events" if by_expected else "Denominator",
        y_label=measure.axis_label,
        target_label="collaborative",
        higher_is_better=measure.higher_is_better,
        hidden=hidden,
        digits=measure.digits,
        note=stored.overdispersion_note(),
        max_rows=max_rows,
    )


def _stored_curves(
    limits: dict[str, list[tuple[float | None, float | None, float | None]]],
    scale: float,
    *,
    lighter: bool = False,
) -> list[FunnelCurve]:
    curves = []
    for key, dash in (("95", "5 3"), ("99.8", "1.5 2.5")):
        rows = tuple(
            (x, scaled(low, scale), scaled(high, scale))
            for x, low, high in limits.get(key, ())
            if x is not None
        )
        if rows:
            curves.append(FunnelCurve(key, rows, dash, lighter=lighter))
    return curves
