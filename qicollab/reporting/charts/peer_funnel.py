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

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from qicollab.reporting.charts.common import (
    DENSE,
    GREY,
    INK,
    LIGHT,
    Chart,
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
from qicollab.reporting.formatting import finite, scaled

if TYPE_CHECKING:
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
) -> Chart:
    """Members' values against their volume with limits at 95% and 99.8% (half a page wide,
    to sit beside the caterpillar plot)."""
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
            body.append(
                f'<path d="{path}" fill="none" stroke="{INK}" stroke-width="1" '
                f'stroke-dasharray="{curve.dash}" clip-path="url(#{clip})"/>'
            )
    body += reference_line(left, right, y(target), target_label, width=1.3)
    own_parts: list[str] = []
    peer_marks: list[str] = []
    outside = 0
    for point in points:
        if not (math.isfinite(point.x) and math.isfinite(point.y)):
            continue
        px, py = x(point.x), y(min(max(point.y, y_lo), y_hi))
        if point.own:
            own_parts += own_point(px, py, point.label, middle=(left + right) / 2)
            continue
        if not y_lo <= point.y <= y_hi:
            outside += 1
        peer_marks.append(dot_d(px, py, 2.7, dense=len(points) > DENSE))
    body += marks(peer_marks, f'fill="{LIGHT}" stroke="{GREY}" stroke-width="0.8"')
    body += own_parts
    body.append(
        text(left, height - 18, "dashed: 95% limits; dotted: 99.8% limits", size=8.5, fill=GREY)
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
    rows = tuple((p.label, f"{p.x:,.1f}", f"{p.y:.{digits}f}") for p in points)
    svg = svg_document(width, height, title, description, body)
    return Chart(svg, title, description, ("Member", x_label, y_label), rows)


def funnel(
    measure: MeasureView,
    summary: Summary,
    labelled: Sequence[tuple[str, Result, bool]],
    *,
    hidden: int = 0,
) -> Chart | None:
    """A funnel of the visible members on the value scale: the run's stored limit curves when
    it stored them (``payload["funnel"]["curve"]``: ``x``, ``x_label`` and ``[low, high]`` lists
    per level, adjusted for overdispersion under ``adjusted_<level>``), else limits computed
    here around the collaborative value (unadjusted, and said so)."""
    stored = summary.payload.get("funnel") if isinstance(summary.payload, dict) else None
    curve = stored.get("curve") if isinstance(stored, dict) else None
    by_expected = measure.risk_adjusted or measure.measure_type == "ratio"
    note = ""
    curves: list[FunnelCurve] = []
    target = summary.rate
    if isinstance(curve, dict) and curve.get("x"):
        by_expected = curve.get("x_label") == "expected"
        curves = _stored_curves(curve, bool(stored.get("adjusted")), measure.multiplier)
        target = finite(stored.get("target_value")) or summary.rate
        note = str(stored.get("note") or "")
        phi = finite(stored.get("phi"))
        if phi is not None and stored.get("adjusted"):
            note = f"Limits adjusted for overdispersion ({stored.get('method')}, phi = {phi:.2f})."
    if target is None:
        return None
    points: list[FunnelPoint] = []
    for label, result, own in labelled:
        x = result.expected if by_expected else result.denominator
        y = measure.scaled(result.value)
        if x is None or y is None or x <= 0:
            continue
        points.append(FunnelPoint(label, x, y, own))
    if not points:
        return None
    if not curves:
        if measure.measure_type in {"mean", "time-between-events"}:
            return None
        curves = _computed_curves(measure, target, by_expected, max(p.x for p in points) * 1.05)
        note = "Limits are not adjusted for overdispersion."
    x_label = "Expected events" if by_expected else "Denominator"
    return funnel_chart(
        points,
        curves,
        title=f"{measure.code}: funnel plot",
        target=target * measure.multiplier,
        x_label=x_label,
        y_label=measure.axis_label,
        target_label="collaborative",
        higher_is_better=measure.higher_is_better,
        hidden=hidden,
        digits=measure.digits,
        note=note,
    )


def _stored_curves(curve: dict[str, Any], adjusted: bool, multiplier: float) -> list[FunnelCurve]:
    grid = [finite(x) for x in curve.get("x") or []]
    curves = []
    for key, dash in (("95", "5 3"), ("99.8", "1.5 2.5")):
        pair = curve.get(f"adjusted_{key}" if adjusted else key) or curve.get(key)
        if not (isinstance(pair, list) and len(pair) == 2):
            continue
        lows, highs = pair
        rows = [
            (x, scaled(low, multiplier), scaled(high, multiplier))
            for x, low, high in zip(grid, lows, highs, strict=False)
            if x is not None
        ]
        if rows:
            curves.append(FunnelCurve(key, tuple(rows), dash))
    return curves


def _computed_curves(
    measure: MeasureView, rate: float, by_expected: bool, x_max: float
) -> list[FunnelCurve]:
    """Normal-approximation limits: binomial for proportions, Poisson for rates and O/E."""
    steps = [x_max * (i / 80) ** 2 for i in range(1, 81)]
    curves = []
    for level, dash in ((0.95, "5 3"), (0.998, "1.5 2.5")):
        z = NormalDist().inv_cdf(0.5 + level / 2)
        rows: list[tuple[float, float | None, float | None]] = []
        for x in steps:
            if by_expected:
                half = rate * z / math.sqrt(x)
            elif measure.measure_type == "proportion":
                half = z * math.sqrt(max(rate * (1 - rate), 0.0) / x)
            else:
                half = z * math.sqrt(max(rate, 0.0) / x)
            low, high = max(0.0, rate - half), rate + half
            if measure.measure_type == "proportion" and not by_expected:
                high = min(1.0, high)
            rows.append((x, low * measure.multiplier, high * measure.multiplier))
        curves.append(FunnelCurve(f"{level:g}", tuple(rows), dash))
    return curves
