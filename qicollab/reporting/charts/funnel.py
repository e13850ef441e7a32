"""A self-contained SVG funnel plot for a :class:`~qicollab.stats.funnel.FunnelResult`.

Readable in greyscale and without colour: the 95% limits are dashed, the 99.8% limits dotted,
the overdispersion-adjusted limits drawn heavier; units above the adjusted 99.8% limit are
upward triangles, those below it downward triangles, the rest hollow circles. The chart carries
an accessible ``<title>`` and ``<desc>`` (a text summary of method, target, phi and outliers),
and every point has its own ``<title>`` (unit, value, precision) for screen readers and
tooltips. Standard library plus markupsafe escaping only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from markupsafe import escape

from qicollab.stats.funnel import FunnelResult

_STYLE = {
    ("95", False): 'stroke="#555" stroke-width="1.2" stroke-dasharray="6 4"',
    ("99.8", False): 'stroke="#555" stroke-width="1.2" stroke-dasharray="1.5 3"',
    ("95", True): 'stroke="#000" stroke-width="2.2" stroke-dasharray="9 4"',
    ("99.8", True): 'stroke="#000" stroke-width="2.2" stroke-dasharray="2 3"',
}


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    start = math.ceil(low / step) * step
    ticks = []
    value = start
    while value <= high + 1e-9 * step:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _path(xs: Sequence[float], ys: Sequence[float]) -> str:
    points = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
    if len(points) < 2:
        return ""
    head, *tail = points
    return f"M{head[0]:.1f},{head[1]:.1f}" + "".join(f"L{x:.1f},{y:.1f}" for x, y in tail)


def render_funnel_svg(
    result: FunnelResult,
    *,
    title: str = "Funnel plot",
    x_label: str | None = None,
    y_label: str | None = None,
    width: int = 720,
    height: int = 440,
    show_adjusted: bool = True,
    id_prefix: str = "funnel",
) -> str:
    """The funnel plot as an SVG document (a string).

    Parameters
    ----------
    result : FunnelResult
        From :func:`qicollab.stats.funnel.funnel_analysis`.
    title : str
        Chart title (also the accessible name).
    x_label, y_label : str, optional
        Axis labels (default: "Expected (E)" / "Observed / expected" for ratios,
        "Denominator (n)" / "Proportion" for proportions).
    width, height : int
        Size in pixels.
    show_adjusted : bool
        Draw the overdispersion-adjusted limits (skipped after a phi <= 1 fallback, since they
        equal the unadjusted ones).
    id_prefix : str
        Prefix for element ids, so several charts can share a page.
    """
    ratio = result.data_type == "ratio"
    x_label = x_label or ("Expected (E)" if ratio else "Denominator (n)")
    y_label = y_label or ("Observed / expected" if ratio else "Proportion")
    rows = [r for r in result.rows if r.precision > 0 and math.isfinite(r.value)]
    left, right, top, bottom = 70, 190, 46, 56
    plot_w, plot_h = width - left - right, height - top - bottom

    x_max = max((r.precision for r in rows), default=1.0) * 1.05
    x_min_curve = max(x_max / 400, 1e-3 if ratio else 1.0)
    curves = result.curves(np.linspace(x_min_curve, x_max, 160))
    lowest_precision = min((r.precision for r in rows), default=x_min_curve)
    anchors = [result.target, *(r.value for r in rows)]
    for adjusted in (False, True):
        lower, upper = result.limits_at([lowest_precision], level=0.998, adjusted=adjusted)
        anchors.extend(float(v) for v in (lower[0], upper[0]) if math.isfinite(v))
    y_low, y_high = min(anchors), max(anchors)
    pad = 0.06 * (y_high - y_low or 1.0)
    y_low, y_high = max(y_low - pad, 0.0), y_high + pad
    if not ratio:
        y_high = min(y_high, 1.0)

    def sx(x: float) -> float:
        return left + plot_w * x / x_max

    def sy(y: float) -> float:
        return top + plot_h * (1 - (y - y_low) / (y_high - y_low))

    uid = escape(id_prefix)
    high = [r for r in rows if r.adjusted_outlier998 == "high"]
    low = [r for r in rows if r.adjusted_outlier998 == "low"]
    desc = (
        f"{len(rows)} units plotted against {x_label.lower()}; target {result.target:.4g}. "
        f"{result.note} Above the adjusted 99.8% limit: "
        f"{', '.join(str(r.unit) for r in high) or 'none'}. Below it: "
        f"{', '.join(str(r.unit) for r in low) or 'none'}."
    )
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{uid}-title {uid}-desc" font-family="sans-serif" font-size="12">',
        f'<title id="{uid}-title">{escape(title)}</title>',
        f'<desc id="{uid}-desc">{escape(desc)}</desc>',
        f'<defs><clipPath id="{uid}-clip"><rect x="{left}" y="{top}" width="{plot_w}" '
        f'height="{plot_h}"/></clipPath></defs>',
        '<rect width="100%" height="100%" fill="#fff"/>',
        f'<text x="{left}" y="24" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    # axes and ticks
    out.append(
        f'<g stroke="#000" stroke-width="1"><line x1="{left}" y1="{top + plot_h}" '
        f'x2="{left + plot_w}" y2="{top + plot_h}"/><line x1="{left}" y1="{top}" x2="{left}" '
        f'y2="{top + plot_h}"/></g>'
    )
    for tick in _nice_ticks(0.0, x_max):
        x = sx(tick)
        out.append(
            f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 5}" '
            f'stroke="#000"/><text x="{x:.1f}" y="{top + plot_h + 18}" '
            f'text-anchor="middle">{escape(_fmt(tick))}</text>'
        )
    for tick in _nice_ticks(y_low, y_high, 6):
        y = sy(tick)
        out.append(
            f'<line x1="{left - 5}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="#000"/>'
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{escape(_fmt(tick))}</text>'
        )
    out.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 14}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text transform="translate(18 {top + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    # target and limits
    xs = [sx(float(x)) for x in curves.precision]
    out.append(f'<g clip-path="url(#{uid}-clip)" fill="none">')
    out.append(
        f'<line x1="{left}" y1="{sy(result.target):.1f}" x2="{left + plot_w}" '
        f'y2="{sy(result.target):.1f}" stroke="#000" stroke-width="1.5"/>'
    )
    drawn = [False, True] if show_adjusted and not result.fallback else [False]
    for adjusted in drawn:
        for key in ("95", "99.8"):
            low_curve = curves.adjusted_lower[key] if adjusted else curves.lower[key]
            high_curve = curves.adjusted_upper[key] if adjusted else curves.upper[key]
            for curve in (low_curve, high_curve):
                d = _path(xs, [sy(float(v)) for v in curve])
                if d:
                    out.append(f'<path d="{d}" {_STYLE[key, adjusted]}/>')
    out.append("</g>")
    # points
    out.append(f'<g clip-path="url(#{uid}-clip)">')
    for r in rows:
        x, y = sx(r.precision), sy(r.value)
        label = escape(
            f"{r.unit}: {r.value:.4g} at {'E' if ratio else 'n'} = {r.precision:.4g}"
            + (
                f" ({r.adjusted_outlier998} outlier at adjusted 99.8%)"
                if r.adjusted_outlier998
                else ""
            )
        )
        if r.adjusted_outlier998 == "high":
            shape = (
                f'<polygon points="{x:.1f},{y - 6:.1f} {x - 5.5:.1f},{y + 4:.1f} '
                f'{x + 5.5:.1f},{y + 4:.1f}" fill="#000"/>'
            )
        elif r.adjusted_outlier998 == "low":
            shape = (
                f'<polygon points="{x:.1f},{y + 6:.1f} {x - 5.5:.1f},{y - 4:.1f} '
                f'{x + 5.5:.1f},{y - 4:.1f}" fill="#000"/>'
            )
        else:
            shape = (
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="#fff" stroke="#000" '
                'stroke-width="1.2"/>'
            )
        out.append(f"<g><title>{label}</title>{shape}</g>")
    out.append("</g>")
    # legend
    lx, ly = left + plot_w + 16, top + 6
    legend = [("target", 'stroke="#000" stroke-width="1.5"')]
    legend += [("95% limits", _STYLE["95", False]), ("99.8% limits", _STYLE["99.8", False])]
    if len(drawn) == 2:
        legend += [
            ("95% adjusted", _STYLE["95", True]),
            ("99.8% adjusted", _STYLE["99.8", True]),
        ]
    out.append('<g font-size="11">')
    for i, (text, style) in enumerate(legend):
        y = ly + 18 * i
        out.append(
            f'<line x1="{lx}" y1="{y}" x2="{lx + 28}" y2="{y}" {style}/>'
            f'<text x="{lx + 34}" y="{y + 4}">{escape(text)}</text>'
        )
    y = ly + 18 * len(legend) + 8
    out.append(
        f'<polygon points="{lx + 14},{y - 6} {lx + 8.5},{y + 4} {lx + 19.5},{y + 4}" '
        f'fill="#000"/><text x="{lx + 34}" y="{y + 4}">high outlier</text>'
        f'<polygon points="{lx + 14},{y + 24} {lx + 8.5},{y + 14} {lx + 19.5},{y + 14}" '
        f'fill="#000"/><text x="{lx + 34}" y="{y + 22}">low outlier</text>'
        f'<circle cx="{lx + 14}" cy="{y + 37}" r="3.5" fill="#fff" stroke="#000"/>'
        f'<text x="{lx + 34}" y="{y + 41}">within limits</text>'
    )
    if result.fallback:
        out.append(
            f'<text x="{lx}" y="{y + 64}">phi &lt;= 1: no</text>'
            f'<text x="{lx}" y="{y + 78}">overdispersion</text>'
        )
    out.append("</g></svg>")
    return "\n".join(out)
