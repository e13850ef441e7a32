"""The small drawing API shared by qicollab's hand-built SVG charts (control, funnel,
caterpillar): portal pages inline the SVG, PDF reports embed it as an ``<img>`` data URI.

Everything a chart needs, in one import::

    from qicollab.reporting.charts import base

    x = base.LinearScale(0, 10, left, right)            # data -> pixels (y may run backwards)
    ticks = base.nice_ticks(lo, hi)                     # 1, 2, 2.5, 5 x 10^k
    parts = base.y_axis(y, ticks, left=.., right=.., label="Rate (%)")
    parts += base.line(points, style="limit")           # gaps where a point is None
    parts.append(base.marker("square", px, py, kind="concern", label="outside limits"))
    parts += base.legend([("Centre line", "line:centre"), ("Outside limits", "marker:square")],
                         x=.., y=..)
    svg = base.svg_document(width, height, title, description, parts)
    uri = base.data_uri(svg)

Rules every chart follows:

* **Accessible root**: :func:`svg_document` gives ``role="img"`` with ``<title>`` and ``<desc>``
  referenced by ``aria-labelledby`` (ids unique per process, so many inline charts can share a
  page).
* **Escaping**: every text goes through :func:`text` / :func:`escape` (markupsafe); member
  names, measure titles and annotation labels are user input.
* **Greyscale-readable**: meaning is carried by dash patterns (:data:`LINE_STYLES`) and marker
  shapes (:data:`MARKER_SHAPES`), colour only helps; signals of different rules get different
  shapes, improvement and concern differ by fill (solid vs white) as well as colour.
* **Small output**: coordinates rounded to 0.1 px (:func:`fmt`).

The scale, tick and document helpers are those of :mod:`.common` (re-exported here so new
charts depend on this module only).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from markupsafe import escape

from qicollab.reporting.charts.common import (
    FAINT,
    FONT,
    GREY,
    INK,
    LIGHT,
    Chart,
    Labels,
    LinearScale,
    data_uri,
    fmt,
    nice_ticks,
    padded_range,
    svg_document,
    text,
    tick_label,
    x_axis,
    y_axis,
)

__all__ = [
    "FAINT",
    "FONT",
    "GREY",
    "INK",
    "KIND_COLOURS",
    "LIGHT",
    "LINE_STYLES",
    "MARKER_SHAPES",
    "Chart",
    "Labels",
    "LineStyle",
    "LinearScale",
    "category_axis",
    "data_uri",
    "escape",
    "fmt",
    "legend",
    "line",
    "marker",
    "nice_ticks",
    "padded_range",
    "shorten",
    "svg_document",
    "text",
    "tick_label",
    "vertical_marker",
    "x_axis",
    "y_axis",
]


@dataclass(frozen=True, slots=True)
class LineStyle:
    """Stroke colour, width and dash pattern of one kind of line."""

    stroke: str
    width: float
    dash: str = ""

    def attrs(self) -> str:
        """SVG presentation attributes."""
        dash = f' stroke-dasharray="{self.dash}"' if self.dash else ""
        return f'stroke="{self.stroke}" stroke-width="{self.width}"{dash} fill="none"'


#: Line vocabulary: data solid, centre solid, limits dashed, 2-sigma dotted, target dash-dot.
LINE_STYLES: dict[str, LineStyle] = {
    "data": LineStyle(GREY, 1.2),
    "centre": LineStyle(INK, 1.4),
    "centre_signal": LineStyle(INK, 2.2, "8 2"),
    "limit": LineStyle(INK, 1.1, "6 3"),
    "sigma2": LineStyle(GREY, 0.9, "1.5 3"),
    "target": LineStyle("#0b4f8a", 1.3, "10 3 2 3"),
    "annotation": LineStyle(GREY, 0.9, "3 3"),
    "phase": LineStyle(LIGHT, 1.0),
}

#: Marker shapes by meaning; a chart picks one shape per rule so signals differ without colour.
MARKER_SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "diamond",
    "triangle-up",
    "triangle-down",
    "cross",
    "star",
)

#: (fill, stroke) per point kind: improvement solid dark blue, concern white with a dark orange
#: outline, neutral light purple, common cause grey, excluded white with a grey outline.
KIND_COLOURS: dict[str, tuple[str, str]] = {
    "improvement": ("#1f4e9c", "#0d2a5c"),
    "concern": ("#ffffff", "#b34700"),
    "neutral": ("#d9cfe8", "#3d2260"),
    "common": ("#6b6b6b", "#4a4a4a"),
    "excluded": ("#ffffff", "#6b6b6b"),
}


def shorten(label: str, limit: int = 24) -> str:
    """A label cut to ``limit`` characters with an ellipsis (the full text goes in a title)."""
    label = " ".join(str(label).split())
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "…"


def marker(
    shape: str,
    x: float,
    y: float,
    *,
    size: float = 4.0,
    kind: str = "common",
    label: str | None = None,
    cls: str = "",
) -> str:
    """One marker; ``label`` becomes a hover ``<title>`` (escaped), ``cls`` a class attribute
    (for styling and tests)."""
    fill, stroke = KIND_COLOURS.get(kind, KIND_COLOURS["common"])
    klass = f' class="{escape(cls)}"' if cls else ""
    paint = f'fill="{fill}" stroke="{stroke}" stroke-width="1.2"{klass}'
    s = size
    if shape == "square":
        body = (
            f'<rect x="{fmt(x - s)}" y="{fmt(y - s)}" width="{fmt(2 * s)}" '
            f'height="{fmt(2 * s)}" {paint}'
        )
    elif shape in {"diamond", "triangle-up", "triangle-down", "star"}:
        if shape == "diamond":
            pts = [(x, y - 1.3 * s), (x + 1.3 * s, y), (x, y + 1.3 * s), (x - 1.3 * s, y)]
        elif shape == "triangle-up":
            pts = [(x, y - 1.4 * s), (x + 1.3 * s, y + s), (x - 1.3 * s, y + s)]
        elif shape == "triangle-down":
            pts = [(x, y + 1.4 * s), (x + 1.3 * s, y - s), (x - 1.3 * s, y - s)]
        else:
            pts = [
                (
                    x + (1.5 * s if k % 2 == 0 else 0.65 * s) * math.sin(k * math.pi / 5),
                    y - (1.5 * s if k % 2 == 0 else 0.65 * s) * math.cos(k * math.pi / 5),
                )
                for k in range(10)
            ]
        coords = " ".join(f"{fmt(px)},{fmt(py)}" for px, py in pts)
        body = f'<polygon points="{coords}" {paint}'
    elif shape == "cross":
        d = (
            f"M{fmt(x - s)},{fmt(y - s)}L{fmt(x + s)},{fmt(y + s)}"
            f"M{fmt(x - s)},{fmt(y + s)}L{fmt(x + s)},{fmt(y - s)}"
        )
        body = f'<path d="{d}" stroke="{stroke}" stroke-width="1.6" fill="none"{klass}'
    else:
        body = f'<circle cx="{fmt(x)}" cy="{fmt(y)}" r="{fmt(s * 0.85)}" {paint}'
    if label:
        return f"{body}><title>{escape(label)}</title></{body.split()[0][1:]}>"
    return body + "/>"


def line(
    points: Iterable[tuple[float, float] | None], *, style: str = "data", cls: str = ""
) -> list[str]:
    """A polyline that breaks at ``None`` (missing periods are gaps, never zeros)."""
    attrs = LINE_STYLES[style].attrs() + (f' class="{escape(cls)}"' if cls else "")
    parts: list[str] = []
    run: list[tuple[float, float]] = []

    def flush() -> None:
        if len(run) >= 2:
            coords = " ".join(f"{fmt(x)},{fmt(y)}" for x, y in run)
            parts.append(f'<polyline points="{coords}" {attrs}/>')
        run.clear()

    for point in points:
        if point is None or not (math.isfinite(point[0]) and math.isfinite(point[1])):
            flush()
        else:
            run.append(point)
    flush()
    return parts


def vertical_marker(
    x: float,
    top: float,
    bottom: float,
    label: str,
    *,
    style: str = "annotation",
    placed: Labels | None = None,
) -> list[str]:
    """A dated vertical marker with a short label above the plot (full label as a title).

    With ``placed`` (the names already above this plot), the label takes the first row, right
    of the marker or else left of it, where it covers none of them and stays in the chart; where
    no spot is free it is left off and the full label stays the marker's title (the reports
    list every annotation under the chart)."""
    short = shorten(label)
    full = " ".join(str(label).split())
    line = (
        f'<line x1="{fmt(x)}" x2="{fmt(x)}" y1="{fmt(top)}" y2="{fmt(bottom)}" '
        f"{LINE_STYLES[style].attrs()}"
    )
    if placed is None:
        spot: tuple[float, float, str] | None = (x + 2, top - 4, "start")
    else:
        rows = [top - 4 - 10 * row for row in range(max(1, int((top - 11) // 10) + 1))]
        spots = [(x + 2, y, "start") for y in rows] + [(x - 2, y, "end") for y in rows]
        spot = placed.place(short, 8.5, spots)
    if spot is None:
        return [f"{line}><title>{escape(full)}</title></line>"]
    title = f"<title>{escape(label)}</title>" if short != full else ""
    return [
        f"{line}/>",
        f"<g>{title}{text(spot[0], spot[1], short, size=8.5, anchor=spot[2], fill=GREY)}</g>",
    ]


def category_axis(
    labels: Sequence[str], positions: Sequence[float], *, bottom: float, most: int = 12
) -> list[str]:
    """Period labels under the plot, thinned to at most ``most`` evenly spaced ones."""
    if not labels:
        return []
    step = max(1, math.ceil(len(labels) / most))
    parts = []
    for i in range(0, len(labels), step):
        x = positions[i]
        parts.append(
            f'<line x1="{fmt(x)}" x2="{fmt(x)}" y1="{fmt(bottom)}" y2="{fmt(bottom + 3)}" '
            f'stroke="{GREY}" stroke-width="1"/>'
        )
        parts.append(text(x, bottom + 13, labels[i], size=8.5, anchor="middle"))
    return parts


def legend(items: Sequence[tuple[str, str]], *, x: float, y: float, width: float) -> list[str]:
    """A one- or two-row legend. Each item is (label, key) with key ``line:<style>`` or
    ``marker:<shape>[:<kind>]``; items wrap when the row is full."""
    parts: list[str] = []
    cx, cy = x, y
    for label, key in items:
        wanted = 26 + 5.6 * len(label)
        if cx + wanted > x + width and cx > x:
            cx, cy = x, cy + 14
        kind, _, rest = key.partition(":")
        if kind == "line":
            style = LINE_STYLES[rest]
            parts.append(
                f'<line x1="{fmt(cx)}" x2="{fmt(cx + 18)}" y1="{fmt(cy)}" y2="{fmt(cy)}" '
                f"{style.attrs()}/>"
            )
        else:
            shape, _, point_kind = rest.partition(":")
            parts.append(marker(shape, cx + 9, cy, size=3.5, kind=point_kind or "common"))
        parts.append(text(cx + 22, cy + 3.2, label, size=8.5))
        cx += wanted
    return parts
