"""Control and run charts as hand-built SVG, for portal pages and PDF reports alike.

Draws a :class:`qicollab.stats.spc.ControlChart` (or its stored JSON): the data line with gaps
at missing periods, each phase's centre line and limits as separate segments (limits that vary
with the denominator as steps), optional 2-sigma lines, a labelled separator per phase, a target
line, dated annotation markers with short labels, one marker shape per rule that fired (so
signals read in greyscale; improvement solid, concern open), excluded points crossed out, a
legend of what is shown and a note when limits are trial limits. A phase whose Anhøj runs
analysis signals gets a heavier dashed centre line, as qicharts2 does.

Rendering takes about 1-2 ms per chart (``benchmarks/bench_spc.py``); matplotlib would take
~155 ms (design/PERFORMANCE.md section 5).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from qicollab.reporting.charts import base
from qicollab.stats.spc_results import ControlChart

if TYPE_CHECKING:
    from qicollab.benchmarking.payloads import ControlChartPayload

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
}

#: Marker shape and legend text per rule (first rule in precedence order decides the shape).
RULE_MARKERS: dict[str, tuple[str, str]] = {
    "outside_limits": ("square", "Outside limits"),
    "anhoej_longest_run": ("diamond", "Long run (Anhøj)"),
    "anhoej_crossings": ("circle", "Few crossings (Anhøj)"),
    "shift": ("diamond", "Shift"),
    "trend": ("triangle-up", "Trend"),
    "two_of_three": ("triangle-down", "2 of 3 beyond 2σ"),
}
_OTHER_RULE = ("star", "Western Electric / Nelson rule")

WIDTH, HEIGHT = 720.0, 300.0


def _label(x: object) -> str:
    """Period label: ISO month starts shown as YYYY-MM."""
    raw = str(x)
    if len(raw) == 10 and raw[4] == "-" and raw[7] == "-":
        return raw[:7] if raw.endswith("-01") else raw
    return raw


def _as_date(value: object) -> dt.date | None:
    """A date, or the first day of a period label (``YYYY-MM`` months, ``YYYY`` years)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    raw = str(value).strip()
    try:
        if len(raw) == 7:  # YYYY-MM
            return dt.date.fromisoformat(f"{raw}-01")
        if len(raw) == 4 and raw.isdigit():  # YYYY
            return dt.date(int(raw), 1, 1)
        return dt.date.fromisoformat(raw[:10])
    except ValueError:
        return None


def _annotation_index(x_values: Sequence[object], when: object) -> int | None:
    """The point an annotation belongs to: same x label, else the last period on or before
    its date."""
    labels = [str(v) for v in x_values]
    if str(when) in labels:
        return labels.index(str(when))
    if _label(when) in [_label(v) for v in x_values]:
        return [_label(v) for v in x_values].index(_label(when))
    day = _as_date(when)
    if day is None:
        return None
    dates = [_as_date(v) for v in x_values]
    before = [i for i, d in enumerate(dates) if d is not None and d <= day]
    return before[-1] if before else None


def annotation_pairs(items: Sequence[Any]) -> list[tuple[object, str]]:
    """``(when, label)`` of annotations given as pairs, mappings or annotation objects."""
    out: list[tuple[object, str]] = []
    for item in items:
        if isinstance(item, Mapping):
            when = item.get("x") or item.get("date") or item.get("occurred_on")
            out.append((when, str(item.get("label", ""))))
        elif hasattr(item, "occurred_on"):
            out.append((item.occurred_on, str(getattr(item, "label", ""))))
        else:
            when, label = item
            out.append((when, str(label)))
    return out


def _number(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def _digits(lo: float, hi: float) -> int:
    span = abs(hi - lo) or abs(hi) or 1.0
    return max(0, min(4, 2 - math.floor(math.log10(span))))


def _kind(point_type: str, excluded: bool) -> str:
    if excluded:
        return "excluded"
    if point_type.endswith("improvement"):
        return "improvement"
    if point_type.endswith("concern"):
        return "concern"
    if "neutral" in point_type:
        return "neutral"
    return "common"


def _rule_marker(signals: Sequence[str]) -> tuple[str, str] | None:
    for name in signals:
        if name in RULE_MARKERS:
            if name == "anhoej_crossings":
                continue  # a phase-level signal: drawn on the centre line
            return RULE_MARKERS[name]
        return _OTHER_RULE
    return None


def _step_line(
    xs: Sequence[float], values: Sequence[float], half: float, scale: base.LinearScale
) -> list[tuple[float, float] | None]:
    """A line per phase: one segment if constant, steps where it varies, gaps at NaN."""
    finite = [v for v in values if math.isfinite(v)]
    if finite and max(finite) == min(finite) and len(finite) == len(values):
        y = scale(finite[0])
        return [(xs[0] - half, y), (xs[-1] + half, y)]
    points: list[tuple[float, float] | None] = []
    for x, v in zip(xs, values, strict=True):
        if math.isfinite(v):
            y = scale(v)
            points += [(x - half, y), (x + half, y)]
        else:
            points.append(None)
    return points


#: A target further from the data than this share of the data's span is drawn as an arrow.
FAR = 0.5


def off_scale(target: float | None, shown: Sequence[float]) -> int:
    """+1 (above) or -1 (below) when ``target`` is so far from ``shown`` that putting it on
    the axis would squeeze the data, else 0."""
    if target is None or not math.isfinite(target) or not shown:
        return 0
    lo, hi = min(shown), max(shown)
    span = hi - lo or abs(hi) or 1.0
    if target > hi + FAR * span:
        return 1
    if target < lo - FAR * span:
        return -1
    return 0


def _spread(ys: list[tuple[float, str]], gap: float = 9.0) -> list[tuple[float, str]]:
    """Move line labels apart so they do not overlap."""
    ordered = sorted(ys)
    for i in range(1, len(ordered)):
        if ordered[i][0] - ordered[i - 1][0] < gap:
            ordered[i] = (ordered[i - 1][0] + gap, ordered[i][1])
    return ordered


def render_control_chart(
    chart: ControlChart | Mapping[str, Any],
    *,
    title: str,
    annotations: Sequence[Any] = (),
    y_label: str = "",
    show_2sigma: bool | None = None,
    digits: int | None = None,
    width: float = WIDTH,
    height: float = HEIGHT,
) -> base.Chart:
    """An accessible SVG of a control or run chart.

    Parameters
    ----------
    chart : ControlChart or its ``to_dict()``
    title : str
        The ``<title>`` (and the chart's alternative text).
    annotations : sequence
        ``(x, label)`` pairs (x a period label or a date, placed on the last period on or
        before it), mappings with ``x``/``date`` and ``label``, or objects with
        ``occurred_on`` and ``label``.
    show_2sigma : bool, optional
        Draw the 2-sigma lines (default: in ``mdc`` mode, where a rule uses them).
    digits : int, optional
        Decimals of the line labels (default from the value range).
    """
    if not isinstance(chart, ControlChart):
        chart = ControlChart.from_dict(chart)
    points = chart.points
    count = len(points)
    if show_2sigma is None:
        show_2sigma = chart.mode == "mdc"
    left, right, top = 58.0, width - 70.0, 34.0
    bottom = height - 66.0
    step = (right - left) / max(count, 1)
    xs = [left + (i + 0.5) * step for i in range(count)]

    lines = ["cl", "ucl", "lcl"] + (["ucl_2sigma", "lcl_2sigma"] if show_2sigma else [])
    values = [p.value for p in points]
    extra = [getattr(p, name) for p in points for name in lines]
    finite_values = [v for v in values if math.isfinite(v)]
    finite_extra = [v for v in extra if math.isfinite(v)]
    target_side = off_scale(chart.target, [*finite_values, *finite_extra])
    if chart.target is not None and math.isfinite(chart.target) and not target_side:
        finite_extra.append(chart.target)
    lo, hi = base.padded_range(finite_values, include=finite_extra)
    ticks = base.nice_ticks(lo, hi)
    if ticks:
        lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    y = base.LinearScale(lo, hi, bottom, top)
    ndigits = _digits(lo, hi) if digits is None else digits

    parts: list[str] = [
        f'<rect x="{base.fmt(left)}" y="{base.fmt(top)}" width="{base.fmt(right - left)}" '
        f'height="{base.fmt(bottom - top)}" fill="white" stroke="{base.LIGHT}"/>'
    ]
    parts += base.y_axis(y, ticks, left=left, right=right, label=y_label)
    parts += base.category_axis([_label(p.x) for p in points], xs, bottom=bottom)

    # phases: separators, labels, lines
    phases: list[list[int]] = []
    for i, p in enumerate(points):
        if not phases or points[phases[-1][-1]].phase != p.phase:
            phases.append([])
        phases[-1].append(i)
    runs = {r.phase: r for r in chart.runs}
    legend: dict[str, str] = {}
    # Phase names sit at the top of the plot, below the target line when it runs through there.
    phase_y = top + 11
    if chart.target is not None and math.isfinite(chart.target) and not target_side:
        ty = y(chart.target)
        if phase_y - 9 < ty < phase_y + 4:
            phase_y = ty + 12
    for number, idx in enumerate(phases):
        seg_x = [xs[i] for i in idx]
        if number > 0:
            sep = seg_x[0] - step / 2
            parts.append(
                f'<line x1="{base.fmt(sep)}" x2="{base.fmt(sep)}" y1="{base.fmt(top)}" '
                f'y2="{base.fmt(bottom)}" {base.LINE_STYLES["phase"].attrs()}/>'
            )
        if len(phases) > 1:
            phase_no = points[idx[0]].phase
            parts.append(
                base.text(
                    seg_x[0] - step / 2 + 3, phase_y, f"Phase {phase_no}", size=8.5, fill=base.GREY
                )
            )
        phase_runs = runs.get(points[idx[0]].phase)
        signal = bool(phase_runs is not None and phase_runs.signal)
        for name, style in (
            ("ucl_2sigma", "sigma2"),
            ("lcl_2sigma", "sigma2"),
            ("ucl", "limit"),
            ("lcl", "limit"),
            ("cl", "centre_signal" if signal else "centre"),
        ):
            if name not in lines:
                continue
            series = [getattr(points[i], name) for i in idx]
            if not any(math.isfinite(v) for v in series):
                continue
            parts += base.line(
                _step_line(seg_x, series, step / 2, y), style=style, cls=f"{name} phase-line"
            )
            key = {"sigma2": "2-sigma lines", "limit": "Control limits", "centre": "Centre line"}
            if style in key:
                legend.setdefault(key[style], f"line:{style}")
            if style == "centre_signal":
                legend.setdefault("Runs signal (Anhøj)", "line:centre_signal")

    if chart.target is not None and math.isfinite(chart.target) and not target_side:
        ty = y(chart.target)
        parts.append(
            f'<line x1="{base.fmt(left)}" x2="{base.fmt(right)}" y1="{base.fmt(ty)}" '
            f'y2="{base.fmt(ty)}" {base.LINE_STYLES["target"].attrs()}/>'
        )
        legend["Target"] = "line:target"
    elif target_side:
        # A target far from the data would flatten the data into a line at one edge: an arrow
        # at that edge points to it instead, and the label says it is off the scale.
        edge = top if target_side > 0 else bottom
        tip, tail = (edge, edge + 12) if target_side > 0 else (edge, edge - 12)
        colour = base.LINE_STYLES["target"].stroke
        parts.append(
            f'<path class="target-arrow" d="M{base.fmt(right - 8)} {base.fmt(tail)}'
            f"L{base.fmt(right - 8)} {base.fmt(tip)}M{base.fmt(right - 12)} "
            f"{base.fmt(tip + 5 * target_side)}L{base.fmt(right - 8)} {base.fmt(tip)}"
            f'L{base.fmt(right - 4)} {base.fmt(tip + 5 * target_side)}" stroke="{colour}" '
            f'stroke-width="1.4" fill="none"/>'
        )

    # annotations: each name in the first free row above the plot
    names = base.Labels(width, height)
    for when, label in annotation_pairs(annotations):
        index = _annotation_index([p.x for p in points], when)
        if index is None:
            continue
        parts += base.vertical_marker(xs[index], top, bottom, label, placed=names)
        legend.setdefault("Annotation", "line:annotation")

    # data
    parts += base.line(
        [(xs[i], y(v)) if math.isfinite(v) else None for i, v in enumerate(values)],
        style="data",
        cls="data-line",
    )
    for i, p in enumerate(points):
        if not math.isfinite(p.value):
            continue
        px, py = xs[i], y(p.value)
        kind = _kind(p.point_type, p.excluded)
        chosen = _rule_marker(p.signals)
        tip = None
        if p.signals or p.excluded:
            what = ", ".join(p.signals) or "no signal"
            note = "; excluded" if p.excluded else ""
            tip = f"{_label(p.x)}: {_number(p.value, ndigits)} ({what}{note})"
        classes = " ".join(["point", *(f"signal-{s}" for s in p.signals)])
        if chosen is None:
            parts.append(base.marker("circle", px, py, size=3.2, kind=kind, label=tip, cls=classes))
        else:
            shape, text = chosen
            shown = kind if kind != "common" else "neutral"
            parts.append(base.marker(shape, px, py, size=4.2, kind=shown, label=tip, cls=classes))
            legend.setdefault(text, f"marker:{shape}")
        if p.excluded:
            parts.append(base.marker("cross", px, py, size=4.5, kind="excluded", cls="excluded"))
            legend.setdefault("Excluded from limits", "marker:cross:excluded")

    # line labels at the right of the last phase
    last = points[phases[-1][-1]] if phases else None
    labels: list[tuple[float, str]] = []
    if last is not None:
        for name, tag in (
            ("ucl", "UCL"),
            ("cl", "CL" if chart.chart != "run" else "Median"),
            ("lcl", "LCL"),
        ):
            value = getattr(last, name)
            if math.isfinite(value):
                labels.append((y(value) + 3, f"{tag} {_number(value, ndigits)}"))
    if chart.target is not None and math.isfinite(chart.target):
        if target_side:
            arrow = "↑" if target_side > 0 else "↓"
            edge_y = top + 8 if target_side > 0 else bottom
            labels.append((edge_y, f"Target {_number(chart.target, ndigits)} {arrow}"))
        else:
            labels.append((y(chart.target) + 3, f"Target {_number(chart.target, ndigits)}"))
    for ly, label in _spread(labels):
        parts.append(base.text(right + 4, ly, label, size=8.5, fill=base.INK))

    legend_items = list(legend.items())
    parts += base.legend(legend_items, x=left, y=bottom + 30, width=right - left + 60)
    if chart.trial_limits:
        below = chart.settings.trial_below
        parts.append(
            base.text(
                left,
                height - 6,
                f"Trial limits: a phase has fewer than {below} points; recalculate as data accrue.",
                size=8.5,
                fill=base.GREY,
            )
        )

    description = describe(chart)
    svg = base.svg_document(width, height, title, description, parts)
    rows = tuple(
        (
            _label(p.x),
            _number(p.value, ndigits) if math.isfinite(p.value) else "missing",
            _number(p.cl, ndigits) if math.isfinite(p.cl) else "",
            _number(p.lcl, ndigits) if math.isfinite(p.lcl) else "",
            _number(p.ucl, ndigits) if math.isfinite(p.ucl) else "",
            ", ".join(p.signals) + (" (excluded)" if p.excluded else ""),
        )
        for p in points
    )
    return base.Chart(
        svg,
        title,
        description,
        columns=("Period", "Value", "Centre line", "Lower limit", "Upper limit", "Signals"),
        rows=rows,
    )


def describe(chart: ControlChart) -> str:
    """A sentence or three for ``<desc>`` and the ``alt`` text."""
    points = chart.points
    name = CHART_NAMES.get(chart.chart, chart.chart.upper())
    if not points:
        return f"{name} without data."
    phases = len({p.phase for p in points})
    present = [p for p in points if math.isfinite(p.value)]
    text = (
        f"{name} of {len(present)} values from {_label(points[0].x)} to {_label(points[-1].x)}"
        + (f" in {phases} phases" if phases > 1 else "")
        + "."
    )
    last = points[-1]
    if math.isfinite(last.cl):
        text += f" Latest centre line {last.cl:.4g}"
        if math.isfinite(last.lcl) and math.isfinite(last.ucl):
            text += f", limits {last.lcl:.4g} to {last.ucl:.4g}"
        text += "."
    flagged = [p for p in points if p.signals]
    if flagged:
        rules = sorted({s for p in flagged for s in p.signals})
        text += f" Signals at {', '.join(_label(p.x) for p in flagged[:12])}"
        text += ("…" if len(flagged) > 12 else "") + f" ({', '.join(rules)})."
    else:
        text += " No special-cause signals."
    if chart.variation_icon:
        text += f" Variation: {chart.variation_icon.replace('_', ' ')}."
    if chart.assurance_icon:
        text += f" Assurance: {chart.assurance_icon.replace('_', ' ')}."
    limits = [v for p in points for v in (p.lcl, p.ucl) if math.isfinite(v)]
    side = off_scale(chart.target, [p.value for p in present] + limits)
    if side and chart.target is not None:
        text += (
            f" The target, {chart.target:.4g}, lies far {'above' if side > 0 else 'below'} the"
            " data and is marked by an arrow at the edge of the chart."
        )
    if chart.trial_limits:
        text += " Trial limits."
    return text


def _rescaled(chart: ControlChart, scale: float) -> ControlChart:
    if scale == 1:
        return chart
    fields = ("value", "cl", "ucl", "lcl", "ucl_2sigma", "lcl_2sigma")
    points = tuple(replace(p, **{f: getattr(p, f) * scale for f in fields}) for p in chart.points)
    target = None if chart.target is None else chart.target * scale
    return replace(chart, points=points, target=target, multiply=chart.multiply * scale)


def render_stored(
    payload: ControlChartPayload,
    *,
    title: str,
    annotations: Sequence[Any] = (),
    height: float = HEIGHT,
) -> base.Chart:
    """Draw a stored control chart.

    Values already on the display scale (the engine's ``multiply`` != 1) are drawn as they
    are; otherwise they (and the target, stored on the same data scale) are scaled by the
    payload's ``multiplier``. Without annotations the payload's own notes are used.
    """
    chart = payload.chart
    scale = 1.0 if chart.multiply != 1.0 else payload.multiplier
    notes = list(annotations) or [(note.x, note.label) for note in payload.annotations if note.x]
    return render_control_chart(
        _rescaled(chart, scale), title=title, annotations=notes, y_label=payload.unit, height=height
    )


@dataclass(frozen=True, slots=True)
class StoredInfo:
    """What pages say about a stored control chart besides drawing it."""

    name: str = "No control chart"
    variation: str | None = None
    assurance: str | None = None
    signal_labels: list[str] = field(default_factory=list)


def stored_info(payload: ControlChartPayload | None) -> StoredInfo:
    """Chart name, icon names and the periods that signalled, from a stored chart."""
    if payload is None:
        return StoredInfo()
    chart = payload.chart
    return StoredInfo(
        name=CHART_NAMES.get(chart.chart, chart.chart.upper() or "Control chart"),
        variation=chart.variation_icon,
        assurance=chart.assurance_icon,
        signal_labels=[_label(point.x) for point in chart.points if point.signals],
    )
