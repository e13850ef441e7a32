"""Funnel and control charts drawn by the reporting domain itself.

The shared renderers (``charts.funnel`` by the statistics core, ``charts.control`` by the SPC
engine) are preferred; :mod:`qicollab.reporting.charts.shared` falls back to these when a stored
result carries data the shared renderer does not take, so a page never fails for want of a
chart. They follow the same conventions as the other reporting charts (greyscale-safe, titled,
described, with a text alternative).
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
    LinearScale,
    circle_d,
    dot_d,
    fmt,
    marks,
    nice_ticks,
    padded_range,
    svg_document,
    text,
    unique_id,
    x_axis,
    y_axis,
)

WIDTH = 680.0


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
    body.append(
        f'<line x1="{fmt(left)}" x2="{fmt(right)}" y1="{fmt(y(target))}" y2="{fmt(y(target))}" '
        f'stroke="{INK}" stroke-width="1.3"/>'
    )
    body.append(text(right - 2, y(target) - 3, target_label, size=8.5, anchor="end"))
    own_parts: list[str] = []
    peer_marks: list[str] = []
    outside = 0
    for point in points:
        if not (math.isfinite(point.x) and math.isfinite(point.y)):
            continue
        px, py = x(point.x), y(min(max(point.y, y_lo), y_hi))
        if point.own:
            own_parts.append(
                f'<path d="M{fmt(px)} {fmt(py - 7)} L{fmt(px + 7)} {fmt(py)} L{fmt(px)} '
                f'{fmt(py + 7)} L{fmt(px - 7)} {fmt(py)} Z" fill="{HIGHLIGHT}" stroke="{INK}"/>'
            )
            anchor = "end" if px > (left + right) / 2 else "start"
            own_parts.append(
                text(
                    px + (-10 if anchor == "end" else 10),
                    py - 8,
                    point.label,
                    size=10,
                    anchor=anchor,
                    weight="bold",
                    fill=HIGHLIGHT,
                )
            )
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


@dataclass(frozen=True, slots=True)
class ControlPoint:
    """One point of a stored control chart."""

    label: str
    value: float | None
    cl: float | None
    ucl: float | None
    lcl: float | None
    signals: tuple[str, ...]
    excluded: bool = False
    phase: int = 0


@dataclass(frozen=True, slots=True)
class ChartNote:
    """An annotation to draw at a point (by its label)."""

    at: str
    text: str


def control_chart(
    points: Sequence[ControlPoint],
    *,
    title: str,
    y_label: str,
    chart_name: str,
    notes: Sequence[ChartNote] = (),
    digits: int = 2,
) -> Chart:
    """Values over time with centre line and limits per phase, signals as filled triangles,
    excluded points as crosses, gaps where periods are missing, and numbered annotations."""
    height = 215.0
    left, right, top, bottom = 52.0, WIDTH - 16, 28.0, 178.0
    values = [
        v
        for p in points
        for v in (p.value, p.cl, p.ucl, p.lcl)
        if v is not None and math.isfinite(v)
    ]
    lo, hi = padded_range(values)
    y = LinearScale(lo, hi, bottom, top)
    body = y_axis(
        y,
        [t for t in nice_ticks(lo, hi, 5) if lo <= t <= hi],
        left=left,
        right=right,
        label=y_label,
    )
    n = max(len(points), 1)
    slot = (right - left) / n
    xs = [left + slot * (i + 0.5) for i in range(len(points))]
    step = max(1, math.ceil(n / 12))
    for index, (px, point) in enumerate(zip(xs, points, strict=True)):
        if index % step == 0:
            body.append(text(px, bottom + 13, point.label, size=8.5, anchor="middle"))
    for attribute, dash, width in (("cl", "", 1.3), ("ucl", "5 3", 1), ("lcl", "5 3", 1)):
        segment: list[tuple[float, float]] = []
        segments: list[list[tuple[float, float]]] = []
        previous_phase = None
        for px, point in zip(xs, points, strict=True):
            level = getattr(point, attribute)
            if level is None or not math.isfinite(level) or point.phase != previous_phase:
                if segment:
                    segments.append(segment)
                segment = []
            previous_phase = point.phase
            if level is not None and math.isfinite(level):
                segment += [(px - slot / 2, y(level)), (px + slot / 2, y(level))]
        if segment:
            segments.append(segment)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        for part in segments:
            path = "M" + " L".join(f"{fmt(a)} {fmt(b)}" for a, b in part)
            body.append(
                f'<path d="{path}" fill="none" stroke="{GREY if dash else INK}" '
                f'stroke-width="{width}"{dash_attr}/>'
            )
    line: list[tuple[float, float]] = []
    for px, point in zip(xs, points, strict=True):
        if point.value is None or not math.isfinite(point.value):
            if len(line) > 1:
                body.append(_polyline(line))
            line = []
            continue
        line.append((px, y(point.value)))
    if len(line) > 1:
        body.append(_polyline(line))
    signalled = 0
    crosses: list[str] = []
    triangles: list[str] = []
    circles: list[str] = []
    for px, point in zip(xs, points, strict=True):
        if point.value is None or not math.isfinite(point.value):
            continue
        py = y(point.value)
        if point.excluded:
            crosses.append(
                f"M{fmt(px - 3.5)} {fmt(py - 3.5)}l7 7M{fmt(px - 3.5)} {fmt(py + 3.5)}l7 -7"
            )
        elif point.signals:
            signalled += 1
            triangles.append(f"M{fmt(px)} {fmt(py - 5)}l4.5 8.5h-9Z")
        else:
            circles.append(circle_d(px, py, 2.4))
    body += marks(crosses, f'fill="none" stroke="{INK}" stroke-width="1.5"')
    body += marks(triangles, f'fill="{HIGHLIGHT}" stroke="{INK}" stroke-width="0.7"')
    body += marks(circles, f'fill="white" stroke="{INK}" stroke-width="1"')
    labels = [p.label for p in points]
    for number, note in enumerate(notes, start=1):
        if note.at not in labels:
            continue
        px = xs[labels.index(note.at)]
        body.append(
            f'<line x1="{fmt(px)}" x2="{fmt(px)}" y1="{fmt(top - 4)}" y2="{fmt(bottom)}" '
            f'stroke="{GREY}" stroke-width="0.8" stroke-dasharray="2 2"/>'
        )
        body.append(
            f'<rect x="{fmt(px - 6)}" y="{fmt(top - 20)}" width="12" height="12" '
            f'fill="white" stroke="{INK}" stroke-width="0.8"/>'
        )
        body.append(text(px, top - 10.5, str(number), size=8.5, anchor="middle", weight="bold"))
    body.append(
        text(
            left,
            height - 8,
            f"{chart_name}; triangles: signals; crosses: excluded; numbered boxes: annotations",
            size=8.5,
            fill=GREY,
        )
    )
    description = (
        f"{chart_name} of {sum(p.value is not None for p in points)} periods from "
        f"{labels[0] if labels else '–'} to {labels[-1] if labels else '–'}; {signalled} points "
        f"signal special-cause variation."
    )
    last = next((p for p in reversed(points) if p.value is not None), None)
    if last is not None and last.cl is not None:
        description += f" Latest value {last.value:.{digits}f}; centre line {last.cl:.{digits}f}."
    if notes:
        description += (
            " Annotations: "
            + "; ".join(f"{i}. {note.at} {note.text}" for i, note in enumerate(notes, start=1))
            + "."
        )
    rows = tuple(
        (
            p.label,
            f"{p.value:.{digits}f}" if p.value is not None else "–",
            f"{p.cl:.{digits}f}" if p.cl is not None else "–",
            f"{p.lcl:.{digits}f}" if p.lcl is not None else "–",
            f"{p.ucl:.{digits}f}" if p.ucl is not None else "–",
            ", ".join(p.signals) or ("excluded" if p.excluded else ""),
        )
        for p in points
    )
    svg = svg_document(WIDTH, height, title, description, body)
    return Chart(
        svg, title, description, ("Period", "Value", "Centre", "Lower", "Upper", "Signals"), rows
    )


def _polyline(coords: list[tuple[float, float]]) -> str:
    path = "M" + " L".join(f"{fmt(a)} {fmt(b)}" for a, b in coords)
    return f'<path d="{path}" fill="none" stroke="{GREY}" stroke-width="1.2"/>'
