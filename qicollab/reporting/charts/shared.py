"""The funnel and control charts of a measure, from stored results, through the shared renderers.

The SPC engine's ``charts.control`` and the statistics core's ``charts.funnel`` draw these charts
for every part of the platform; this module adapts stored payloads (``StoredChart.payload``,
``MeasureSummary.payload``) to them and falls back to :mod:`.fallback` when a renderer is not
installed or does not take the stored data, so a page never fails for want of a chart.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qicollab.reporting.charts.common import Chart
from qicollab.reporting.charts.fallback import (
    ChartNote,
    ControlPoint,
    FunnelCurve,
    FunnelPoint,
    control_chart,
    funnel_chart,
)

if TYPE_CHECKING:
    from qicollab.reporting.results import (
        AnnotationView,
        MeasureView,
        PeriodPoint,
        Result,
        Summary,
    )

log = logging.getLogger(__name__)

CHART_NAMES = {
    "run": "Run chart",
    "i": "I chart (XmR)",
    "mr": "Moving-range chart",
    "xbar": "Xbar chart",
    "s": "S chart",
    "p": "P chart",
    "pp": "P′ chart (Laney)",
    "u": "U chart",
    "up": "U′ chart (Laney)",
    "c": "C chart",
    "g": "G chart",
    "t": "T chart",
    "racusum": "Risk-adjusted CUSUM",
    "vlad": "VLAD (observed minus expected)",
}


def _f(value: object) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True, slots=True)
class ControlInfo:
    """What pages say about a stored control chart besides drawing it."""

    name: str = "No control chart"
    variation: str | None = None
    assurance: str | None = None
    signal_labels: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)


def _points(payload: dict[str, Any]) -> list[dict[str, Any]]:
    points = payload.get("points")
    return [p for p in points if isinstance(p, dict)] if isinstance(points, list) else []


def _point_label(point: dict[str, Any]) -> str:
    raw = point.get("x", point.get("label", point.get("period", "")))
    if isinstance(raw, str) and len(raw) >= 10 and raw[4] == "-" and raw[7] == "-":
        return raw[:7] if raw[8:10] == "01" else raw[:10]
    return str(raw)


def control_info(payload: dict[str, Any] | None) -> ControlInfo:
    """Chart type, icons and the periods that signalled, from a stored chart payload."""
    if not payload:
        return ControlInfo()
    chart = str(payload.get("chart", payload.get("kind", ""))).lower()
    signal_labels: list[str] = []
    rules: set[str] = set()
    for point in _points(payload):
        signals = point.get("signals") or []
        if signals:
            signal_labels.append(_point_label(point))
            rules.update(str(s) for s in signals)
    return ControlInfo(
        name=CHART_NAMES.get(chart, chart.upper() or "Control chart"),
        variation=payload.get("variation_icon"),
        assurance=payload.get("assurance_icon"),
        signal_labels=signal_labels,
        rules=sorted(rules),
    )


def _note_label(
    occurred_on: dt.date, periods: Sequence[PeriodPoint], labels: list[str]
) -> str | None:
    """The label of the period an annotation falls in."""
    candidates = [p for p in periods if p.start <= occurred_on]
    if candidates:
        label = candidates[-1].label
        if label in labels:
            return label
    month = occurred_on.strftime("%Y-%m")
    if month in labels:
        return month
    year = str(occurred_on.year)
    return year if year in labels else None


def control(
    payload: dict[str, Any] | None,
    measure: MeasureView,
    *,
    title: str,
    annotations: Sequence[AnnotationView] = (),
    periods: Sequence[PeriodPoint] = (),
) -> Chart | None:
    """The member's stored control chart with its annotations, or None if none was stored."""
    if not payload:
        return None
    shared = _shared_control(payload, measure, title, annotations)
    if shared is not None:
        return shared
    raw_points = _points(payload)
    if not raw_points:
        return None
    # Stored values are on the natural scale; show them on the measure's display scale.
    scale = measure.multiplier
    points = []
    for point in raw_points:

        def scaled(key: str, source: dict[str, Any] = point) -> float | None:
            value = _f(source.get(key))
            return None if value is None else value * scale

        points.append(
            ControlPoint(
                label=_point_label(point),
                value=scaled("value") if "value" in point else scaled("y"),
                cl=scaled("cl"),
                ucl=scaled("ucl"),
                lcl=scaled("lcl"),
                signals=tuple(str(s) for s in (point.get("signals") or ())),
                excluded=bool(point.get("excluded")),
                phase=int(point.get("phase") or 0),
            )
        )
    labels = [p.label for p in points]
    notes = []
    for note in annotations:
        at = _note_label(note.occurred_on, periods, labels)
        if at is not None:
            notes.append(ChartNote(at, note.label))
    info = control_info(payload)
    return control_chart(
        points,
        title=title,
        y_label=measure.axis_label,
        chart_name=info.name,
        notes=notes,
        digits=measure.digits,
    )


def _shared_control(
    payload: dict[str, Any],
    measure: MeasureView,
    title: str,
    annotations: Sequence[AnnotationView],
) -> Chart | None:
    """The SPC engine's renderer, when installed and able to draw this payload."""
    try:
        from qicollab.reporting.charts import control as shared_control  # noqa: PLC0415
    except ImportError:
        return None
    render = getattr(shared_control, "render_stored", None)
    if render is None:
        return None
    try:
        svg = render(payload, title=title, annotations=annotations, multiplier=measure.multiplier)
    except (TypeError, ValueError, KeyError):
        log.warning("shared control-chart renderer refused a stored chart", exc_info=True)
        return None
    if isinstance(svg, Chart):
        return svg
    info = control_info(payload)
    return Chart(str(svg), title, f"{info.name} of {measure.code}.")


def _z(level: float) -> float:
    from statistics import NormalDist  # noqa: PLC0415

    return NormalDist().inv_cdf(0.5 + level / 2)


def funnel(
    measure: MeasureView,
    summary: Summary,
    labelled: Sequence[tuple[str, Result, bool]],
    *,
    hidden: int = 0,
) -> Chart | None:
    """A funnel of the visible members: stored limits when the run stored them, else limits
    computed here around the collaborative value (unadjusted for overdispersion, and said so)."""
    funnel_payload = summary.payload.get("funnel") if isinstance(summary.payload, dict) else None
    ratio = measure.risk_adjusted or measure.measure_type == "ratio"
    points: list[FunnelPoint] = []
    for label, result, own in labelled:
        if ratio:
            x = result.expected
            y = result.oe(summary.rate)
        else:
            x = result.denominator
            y = measure.scaled(result.value)
        if x is None or y is None or x <= 0:
            continue
        points.append(FunnelPoint(label, x, y, own))
    if not points:
        return None
    x_max = max(p.x for p in points) * 1.05
    curves, note = _stored_curves(funnel_payload, measure, ratio)
    if ratio:
        target = 1.0
    else:
        rate = summary.rate
        if rate is None:
            return None
        target = rate * measure.multiplier
    if not curves:
        if measure.measure_type in {"mean", "time-between-events"} and not ratio:
            return None
        curves = _computed_curves(measure, summary, ratio, x_max)
        note = "Limits are not adjusted for overdispersion."
    x_label = (
        "Expected events"
        if ratio
        else f"Denominator ({measure.denominator_definition[:40] or 'cases'})"
    )
    return funnel_chart(
        points,
        curves,
        title=f"{measure.code}: funnel plot",
        target=target,
        x_label=x_label,
        y_label="Observed / expected" if ratio else measure.axis_label,
        target_label="collaborative = 1" if ratio else "collaborative",
        higher_is_better=measure.higher_is_better,
        hidden=hidden,
        digits=2 if ratio else measure.digits,
        note=note,
    )


def _computed_curves(
    measure: MeasureView, summary: Summary, ratio: bool, x_max: float
) -> list[FunnelCurve]:
    steps = [x_max * (i / 80) ** 2 for i in range(1, 81)]
    curves = []
    for level, dash in ((0.95, "5 3"), (0.998, "1.5 2.5")):
        z = _z(level)
        rows: list[tuple[float, float | None, float | None]] = []
        for x in steps:
            if ratio:
                half = z / math.sqrt(x)
                low, high = max(0.0, 1 - half), 1 + half
            else:
                p = summary.rate or 0.0
                variance = p * (1 - p) if measure.measure_type == "proportion" else p
                half = z * math.sqrt(max(variance, 0.0) / x)
                low, high = p - half, p + half
                if measure.measure_type == "proportion":
                    low, high = max(0.0, low), min(1.0, high)
                else:
                    low = max(0.0, low)
                low, high = low * measure.multiplier, high * measure.multiplier
            rows.append((x, low, high))
        curves.append(FunnelCurve(f"{level:g}", tuple(rows), dash))
    return curves


def _stored_curves(
    payload: object, measure: MeasureView, ratio: bool
) -> tuple[list[FunnelCurve], str]:
    """Limit curves stored by the run: ``{"curve": [{"x", "lower95", "upper95", ...}]}`` or
    ``{"limits": {"95": [[x, lo, hi], ...], "99.8": [...]}}``."""
    if not isinstance(payload, dict):
        return [], ""
    scale = 1.0 if ratio else measure.multiplier
    curves: list[FunnelCurve] = []
    note = ""
    phi = _f(payload.get("phi"))
    if phi is not None:
        method = payload.get("method", "")
        note = f"Limits adjusted for overdispersion ({method}, phi = {phi:.2f})."
    limits = payload.get("limits") or payload.get("adjusted_limits")
    if isinstance(limits, dict):
        for key, dash in (("95", "5 3"), ("99.8", "1.5 2.5")):
            rows = limits.get(key) or limits.get(str(float(key) / 100))
            if isinstance(rows, list):
                parsed = []
                for row in rows:
                    if isinstance(row, list | tuple) and len(row) == 3:
                        x, lo, hi = (_f(v) for v in row)
                        if x is not None:
                            parsed.append((x, _mul(lo, scale), _mul(hi, scale)))
                if parsed:
                    curves.append(FunnelCurve(key, tuple(parsed), dash))
    curve = payload.get("curve")
    if not curves and isinstance(curve, list):
        for key, dash in (("95", "5 3"), ("998", "1.5 2.5")):
            parsed = []
            for row in curve:
                if isinstance(row, dict) and _f(row.get("x")) is not None:
                    parsed.append(
                        (
                            float(row["x"]),
                            _mul(_f(row.get(f"lower{key}")), scale),
                            _mul(_f(row.get(f"upper{key}")), scale),
                        )
                    )
            if parsed:
                curves.append(FunnelCurve(key, tuple(parsed), dash))
    return curves, note


def _mul(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale
