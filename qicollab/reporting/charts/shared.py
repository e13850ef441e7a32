"""The funnel and control charts of a measure, from stored results, through the shared renderers.

The SPC engine's ``charts.control`` and the statistics core's ``charts.funnel`` draw these charts
for every part of the platform; this module adapts stored payloads (``StoredChart.payload``,
``MeasureSummary.payload``) to them and falls back to :mod:`.fallback` when a renderer is not
installed or does not take the stored data, so a page never fails for want of a chart.
"""

from __future__ import annotations

import datetime as dt
import inspect
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

#: Height of the control chart in pixels of a 720-wide drawing: short enough that a measure's
#: section (figures, funnel and caterpillar, control chart, period table) fits one A4 page.
CONTROL_HEIGHT = 240.0

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
    # Stored values are on the natural scale (or O/E for patient-level series); the payload
    # says how to show them, else the measure does.
    scale = _f(payload.get("multiplier")) or measure.multiplier
    unit = str(payload.get("unit") or measure.unit or "")
    ratio = unit == "O/E"
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
        y_label=f"{measure.code} ({unit})" if unit else measure.code,
        chart_name=info.name + (" of observed / expected" if ratio else ""),
        notes=notes,
        digits=2 if ratio else measure.digits,
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
    options: dict[str, Any] = {}
    if "height" in inspect.signature(render).parameters:
        options["height"] = CONTROL_HEIGHT  # one measure per printed page
    try:
        svg = render(
            payload,
            title=title,
            annotations=annotations,
            multiplier=measure.multiplier,
            **options,
        )
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
        target = _f(stored.get("target_value")) or summary.rate
        note = str(stored.get("note") or "")
        phi = _f(stored.get("phi"))
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
    grid = [_f(x) for x in curve.get("x") or []]
    curves = []
    for key, dash in (("95", "5 3"), ("99.8", "1.5 2.5")):
        pair = curve.get(f"adjusted_{key}" if adjusted else key) or curve.get(key)
        if not (isinstance(pair, list) and len(pair) == 2):
            continue
        lows, highs = pair
        rows = [
            (x, _mul(_f(low), multiplier), _mul(_f(high), multiplier))
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
        z = _z(level)
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


def _mul(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale
