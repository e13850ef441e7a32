"""What every reporting chart shares: an accessible SVG with its text alternative, linear scales,
tick choice, and a greyscale-safe style.

Charts are hand-built SVG strings (about 3 ms each; matplotlib takes ~155 ms, PERFORMANCE.md
section 5). The same :class:`Chart` goes inline into portal pages and, as an ``<img>`` data URI,
into the PDF (0.86x the render time of inline SVG), so both show one drawing. Every text that
reaches the SVG is escaped here: member names and measure titles are user input.
"""

from __future__ import annotations

import base64
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from markupsafe import escape

_ids = itertools.count(1)

#: Greyscale-safe palette: meaning is carried by shape and dash, colour only helps.
INK = "#1a1a1a"
GREY = "#6b6b6b"
LIGHT = "#c8c8c8"
FAINT = "#ececec"
HIGHLIGHT = "#0b4f8a"  # the member's own point: dark blue, prints as near-black
FONT = "DejaVu Sans, Arial, sans-serif"


@dataclass(frozen=True, slots=True)
class Chart:
    """An SVG chart with its title, description and a data table as text alternative."""

    svg: str
    title: str
    description: str
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = field(default=())

    @property
    def alt(self) -> str:
        """Alternative text for ``<img alt>``: the title and the description."""
        return f"{self.title}. {self.description}"

    def data_uri(self) -> str:
        """The SVG as a base64 ``data:`` URI for ``<img src>`` in the PDF."""
        return data_uri(self.svg)

    def __html__(self) -> str:
        """Inline markup for portal pages (the SVG carries its own title and desc)."""
        return self.svg


def data_uri(svg: object) -> str:
    """Any SVG markup as a base64 ``data:`` URI (charts and icons in the PDF)."""
    encoded = base64.b64encode(str(svg).encode("utf-8")).decode("ascii")
    return f"data:image/svg+xml;base64,{encoded}"


@dataclass(frozen=True, slots=True)
class LinearScale:
    """Maps a data interval onto a pixel interval (pixels may run backwards for y)."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        """Pixel position of ``value``."""
        span = self.hi - self.lo or 1.0
        return self.start + (value - self.lo) / span * (self.end - self.start)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 x 10^k) covering ``lo``..``hi``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    tick = first
    while tick <= hi + step * 1e-9:
        ticks.append(round(tick, 10))
        tick += step
    return ticks


def padded_range(values: Iterable[float], *, include: Iterable[float] = ()) -> tuple[float, float]:
    """The data range with 5 % padding, always including the reference values given."""
    finite = [v for v in itertools.chain(values, include) if v is not None and math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def tick_label(value: float, step: float) -> str:
    """A tick label with as few decimals as the step needs."""
    digits = 0 if step >= 1 else min(4, math.ceil(-math.log10(step)) + (step * 10 % 1 > 0))
    return f"{value:,.{digits}f}"


def fmt(value: float) -> str:
    """Compact coordinates keep the SVG small (and the PDF render fast)."""
    text = f"{value:.1f}"
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def unique_id(prefix: str = "qc") -> str:
    """An id unique in this process, so several inline charts on one page never clash."""
    return f"{prefix}{next(_ids)}"


def text(
    x: float,
    y: float,
    content: str,
    *,
    size: float = 11,
    anchor: str = "start",
    weight: str = "normal",
    fill: str = INK,
    extra: str = "",
) -> str:
    """A ``<text>`` element with escaped content."""
    return (
        f'<text x="{fmt(x)}" y="{fmt(y)}" font-size="{size}" text-anchor="{anchor}" '
        f'font-weight="{weight}" fill="{fill}"{extra}>{escape(content)}</text>'
    )


def svg_document(
    width: float, height: float, title: str, description: str, body: Sequence[str]
) -> str:
    """The outer ``<svg>``: role img, labelled by its title and description (WAI-ARIA)."""
    uid = f"qc{next(_ids)}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {fmt(width)} {fmt(height)}" '
        f'width="{fmt(width)}" height="{fmt(height)}" role="img" '
        f'aria-labelledby="{uid}t {uid}d" font-family="{FONT}" class="qc-chart">'
        f'<title id="{uid}t">{escape(title)}</title><desc id="{uid}d">{escape(description)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def y_axis(
    scale: LinearScale, ticks: Sequence[float], *, left: float, right: float, label: str
) -> list[str]:
    """Horizontal grid lines with tick labels, and the axis title."""
    parts: list[str] = []
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    for tick in ticks:
        y = scale(tick)
        parts.append(
            f'<line x1="{fmt(left)}" x2="{fmt(right)}" y1="{fmt(y)}" y2="{fmt(y)}" '
            f'stroke="{FAINT}" stroke-width="1"/>'
        )
        parts.append(text(left - 4, y + 3.5, tick_label(tick, step), size=9, anchor="end"))
    if label:
        mid = (scale.start + scale.end) / 2
        parts.append(
            text(
                12,
                mid,
                label,
                size=9.5,
                anchor="middle",
                fill=GREY,
                extra=f' transform="rotate(-90 12 {fmt(mid)})"',
            )
        )
    return parts


def x_axis(
    scale: LinearScale, ticks: Sequence[float], *, top: float, bottom: float, label: str
) -> list[str]:
    """Vertical grid lines with tick labels under the plot, and the axis title."""
    parts: list[str] = []
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    for tick in ticks:
        x = scale(tick)
        parts.append(
            f'<line x1="{fmt(x)}" x2="{fmt(x)}" y1="{fmt(top)}" y2="{fmt(bottom)}" '
            f'stroke="{FAINT}" stroke-width="1"/>'
        )
        parts.append(text(x, bottom + 12, tick_label(tick, step), size=9, anchor="middle"))
    if label:
        parts.append(
            text(
                (scale.start + scale.end) / 2,
                bottom + 26,
                label,
                size=9.5,
                anchor="middle",
                fill=GREY,
            )
        )
    return parts


def reference_line(
    x1: float,
    x2: float,
    y: float,
    label: str,
    *,
    dash: str = "",
    colour: str = INK,
    width: float = 1.2,
    label_side: str = "end",
) -> list[str]:
    """A labelled horizontal line (benchmark, target, collaborative rate)."""
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    parts = [
        f'<line x1="{fmt(x1)}" x2="{fmt(x2)}" y1="{fmt(y)}" y2="{fmt(y)}" stroke="{colour}" '
        f'stroke-width="{width}"{dash_attr}/>'
    ]
    if label:
        x = x2 - 2 if label_side == "end" else x1 + 2
        anchor = "end" if label_side == "end" else "start"
        parts.append(text(x, y - 3, label, size=8.5, anchor=anchor, fill=colour))
    return parts


def own_point(
    x: float,
    y: float,
    label: str,
    *,
    middle: float,
    size: float = 7.0,
    label_y: float | None = None,
) -> list[str]:
    """The member's own point, the same on every chart: a dark diamond, and its label in bold
    beside it on the side towards ``middle`` (so it stays inside the plot), above ``label_y``
    (default: just above the diamond)."""
    anchor = "end" if x > middle else "start"
    dx = -(size + 2) if anchor == "end" else size + 2
    return [
        f'<path d="M{fmt(x)} {fmt(y - size)} L{fmt(x + size)} {fmt(y)} L{fmt(x)} '
        f'{fmt(y + size)} L{fmt(x - size)} {fmt(y)} Z" fill="{HIGHLIGHT}" stroke="{INK}" '
        f'stroke-width="0.8"/>',
        text(
            x + dx,
            y - size - 2 if label_y is None else label_y,
            label,
            size=10,
            anchor=anchor,
            weight="bold",
            fill=HIGHLIGHT,
        ),
    ]


def circle_d(x: float, y: float, r: float) -> str:
    """Path data for one circle (two arcs), so many circles can share one ``<path>``."""
    arc = f"a{fmt(r)} {fmt(r)} 0 1 0"
    return f"M{fmt(x - r)} {fmt(y)}{arc} {fmt(2 * r)} 0{arc} {fmt(-2 * r)} 0"


#: Above this many marks a chart draws diamonds (straight segments) instead of circles: the PDF
#: renderer turns every arc into Bézier curves in Python, which at 1,000 members cost more
#: than the rest of the chart.
DENSE = 120


def dot_d(x: float, y: float, r: float, *, dense: bool) -> str:
    """Path data for one point mark: a circle, or a diamond when the chart is dense."""
    if not dense:
        return circle_d(x, y, r)
    step = fmt(r)
    return f"M{fmt(x)} {fmt(y - r)}l{step} {step}l-{step} {step}l-{step} -{step}Z"


def marks(d_parts: list[str], attributes: str) -> list[str]:
    """One ``<path>`` for many marks of one style: the PDF renderer draws one node instead of
    hundreds (a 1,000-member caterpillar is 3 nodes, not 2,000)."""
    return [f'<path d="{"".join(d_parts)}" {attributes}/>'] if d_parts else []
