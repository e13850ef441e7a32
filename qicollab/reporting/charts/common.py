"""What every reporting chart shares: an accessible SVG with its text alternative, linear scales,
tick choice, and a greyscale-safe style.

Charts are hand-built SVG strings (about 3 ms each; matplotlib takes ~155 ms, PERFORMANCE.md
section 5). The same :class:`Chart` goes inline into portal pages and, as an ``<img>`` data URI,
into the PDF (0.86x the render time of inline SVG), so both show one drawing. Every text that
reaches the SVG is escaped here: member names and measure titles are user input.
"""

from __future__ import annotations

import base64
import functools
import itertools
import math
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fontTools.ttLib import TTFont  # a dependency of WeasyPrint, so always installed
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


#: Average advance of DejaVu Sans in em, used only where the font file cannot be read.
_FALLBACK_ADVANCE = 0.62


@functools.cache
def _advances(bold: bool) -> tuple[dict[int, float], float]:
    """Advance widths (em) of the DejaVu Sans that fontconfig resolves: the font WeasyPrint and
    the browser draw the charts with, so labels are placed by their real width."""
    fc_match = shutil.which("fc-match")
    path = ""
    if fc_match:
        pattern = "DejaVu Sans:bold" if bold else "DejaVu Sans"
        path = subprocess.run(  # noqa: S603 - fixed arguments, no user input
            [fc_match, "-f", "%{file}", pattern], capture_output=True, text=True, check=False
        ).stdout.strip()
    if "DejaVuSans" not in path:
        return {}, _FALLBACK_ADVANCE
    with TTFont(path) as font:
        em = font["head"].unitsPerEm
        metrics = font["hmtx"].metrics
        widths = {code: metrics[glyph][0] / em for code, glyph in font.getBestCmap().items()}
        return widths, metrics[".notdef"][0] / em


def text_width(content: str, size: float, *, bold: bool = False) -> float:
    """Width in pixels of ``content`` set in DejaVu Sans at ``size``."""
    widths, default = _advances(bold)
    return sum(widths.get(ord(ch), default) for ch in content) * size


def fit_text(content: str, size: float, room: float, *, bold: bool = False) -> str:
    """``content`` cut with an ellipsis until it is at most ``room`` pixels wide."""
    content = " ".join(str(content).split())
    if text_width(content, size, bold=bold) <= room:
        return content
    while content and text_width(content + "…", size, bold=bold) > room:
        content = content[:-1]
    return content.rstrip() + "…"


def dodge(wanted: Sequence[float], gap: float, lo: float, hi: float) -> list[float]:
    """Positions as close to ``wanted`` as possible, at least ``gap`` apart, within lo..hi
    (labels at the end of lines that run close together are pushed apart, order kept)."""
    order = sorted(range(len(wanted)), key=lambda i: wanted[i])
    placed = [min(max(wanted[i], lo), hi) for i in order]
    for k in range(1, len(placed)):
        placed[k] = max(placed[k], placed[k - 1] + gap)
    overflow = placed[-1] - hi if placed else 0.0
    if overflow > 0:
        placed[-1] -= overflow
        for k in range(len(placed) - 2, -1, -1):
            placed[k] = min(placed[k], placed[k + 1] - gap)
    result = [0.0] * len(wanted)
    for k, i in enumerate(order):
        result[i] = placed[k]
    return result


@dataclass
class Labels:
    """Boxes of the words already on a chart; :meth:`place` puts a new label at the first of
    its candidate spots where it covers none of them and stays inside the chart."""

    width: float
    height: float
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)

    @staticmethod
    def box(
        x: float, y: float, content: str, size: float, anchor: str, *, bold: bool = False
    ) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) of a label: cap height above the baseline, descender
        below, as DejaVu Sans sets it."""
        w = text_width(content, size, bold=bold)
        left = x - (w if anchor == "end" else w / 2 if anchor == "middle" else 0)
        return left, y - 0.73 * size, left + w, y + 0.24 * size

    def add(self, x: float, y: float, content: str, size: float, anchor: str = "start") -> None:
        """Record words drawn elsewhere, so later labels avoid them."""
        self.boxes.append(self.box(x, y, content, size, anchor))

    def free(self, candidate: tuple[float, float, float, float], pad: float = 1.0) -> bool:
        left, top, right, bottom = candidate
        if left < 0 or top < 0 or right > self.width or bottom > self.height:
            return False
        return all(
            right + pad <= b[0] or b[2] + pad <= left or bottom + pad <= b[1] or b[3] + pad <= top
            for b in self.boxes
        )

    def place(
        self,
        content: str,
        size: float,
        spots: Sequence[tuple[float, float, str]],
        *,
        bold: bool = False,
    ) -> tuple[float, float, str] | None:
        """The first free spot (x, y, anchor) for ``content``, recorded; None if none is free."""
        for x, y, anchor in spots:
            candidate = self.box(x, y, content, size, anchor, bold=bold)
            if self.free(candidate):
                self.boxes.append(candidate)
                return x, y, anchor
        return None


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
#: Peer layers (every member's marks on a funnel or caterpillar plot, the same in each member's
#: chart of a run) kept per process. A run needs two per measure for each peer group its
#: members are compared within, and reports ask for them in the same order every time, so a
#: cache smaller than that misses on every lookup: room for 20 measures x 2 x 6 scopes. A layer
#: is ~200 KB at 1,000 members (a group's is smaller): ~16 MB for such a run compared within
#: the collaborative and one grouping, at most ~50 MB.
PEER_LAYERS = 256


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
