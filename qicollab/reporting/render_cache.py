"""Draw each large, identical chart layer once per worker instead of once per report.

Profiling one 15-page member report of a 1,000-member collaborative (benchmarks/bench_reports*)
showed WeasyPrint spending about a fifth of the report drawing the peers' marks of the funnel
and caterpillar plots: one ``<path>`` of ~1,000 diamonds or intervals per chart, which
WeasyPrint parses and turns into PDF operators point by point in Python. Those paths are the
same in every member's report of a run (the charts put every member's mark in them when they
are dense, and draw the member's own larger diamond on top), so the operators they produce are
the same too.

:class:`DrawingCache` keeps, per worker process, the PDF operators a large path node produced
the first time, keyed by everything that decides them (the node's attributes after the SVG
cascade, font size and viewport), and appends them again instead of drawing the node anew.
Only nodes whose operators depend on nothing outside themselves are kept: paths with no
markers, clip paths, masks, filters or opacity groups, whose operators are all path
construction, painting and graphics-state ones (the allow-list below); anything else is drawn
as usual. Colour and alpha shortcuts that WeasyPrint's stream takes from the state before the
node are reset first, so the kept operators set everything they rely on; the alpha states
they name are registered on the page they are appended to.

WeasyPrint has no public hook for this: the cache sits in the image cache WeasyPrint accepts
(``cache=``) and wraps ``draw_node`` of each SVG image it stores there. If WeasyPrint's
internals move (no such stream attributes), nodes are drawn as before.

:class:`TextRuns` draws each chart label as one line of text instead of letter by letter.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pydyf
from weasyprint import svg as weasyprint_svg
from weasyprint.css.properties import INITIAL_VALUES
from weasyprint.draw.text import draw_emojis, draw_first_line
from weasyprint.images import SVGImage
from weasyprint.matrix import Matrix
from weasyprint.svg.bounding_box import extend_bounding_box
from weasyprint.svg.text import Style as SVGTextStyle
from weasyprint.svg.text import TextBox as SVGTextBox
from weasyprint.svg.utils import normalize
from weasyprint.svg.utils import size as svg_size
from weasyprint.text import line_break

#: Only paths at least this long are worth a lookup: a 1,000-member peer layer is ~15-40 KB and
#: a funnel's limit curve ~0.6-0.8 KB (both the same in every member's chart of a run); a
#: member's own mark, drawn anew in every report, is under 100 characters.
MIN_PATH_CHARS = 500
#: Nodes kept per process: a run has ten per measure and scope (the funnel's eight limit
#: curves and two peer layers), so a 20-measure run with a few peer groupings needs ~1,000.
MAX_ENTRIES = 2048
#: And at most this many bytes of operators (a peer layer's are ~100-250 KB).
MAX_BYTES = 96 << 20
#: Attributes that make a node's operators depend on other nodes or on resources.
_DEPENDENT = frozenset(
    {"marker", "marker-start", "marker-mid", "marker-end", "clip-path", "mask", "filter"}
)
#: PDF operators a kept node may contain: path construction and painting, clipping and
#: graphics state (no text, images, shadings, patterns or marked content).
_ALLOWED_OPERATORS = frozenset(
    b"q Q cm w J j M d m l c v y h re S s f F f* B B* b b* n W W* RG rg G g gs".split()
)
#: Attributes that name or describe a node without changing how it is drawn (a chart's unique
#: ``aria-labelledby`` reaches its paths through the SVG cascade).
_NOT_DRAWN = re.compile(r"^(id|class|role|aria-.*|data-.*)$")
_ALPHA_STATE = re.compile(rb"/([Aa][0-9.]+) gs")
#: The stream attributes holding WeasyPrint's colour and alpha shortcuts.
_SHORTCUTS = ("_current_color", "_current_color_stroke", "_current_alpha", "_current_alpha_stroke")


@dataclass(frozen=True, slots=True)
class _Drawn:
    """A node's operators, and the alpha states they name (key -> PDF dictionary)."""

    operators: bytes
    alpha_states: tuple[tuple[str, Any], ...]


@dataclass
class DrawingCache:
    """Operators of large SVG path nodes, kept across the reports a worker renders."""

    max_entries: int = MAX_ENTRIES
    max_bytes: int = MAX_BYTES
    hits: int = 0
    misses: int = 0
    _entries: OrderedDict[tuple[Any, ...], _Drawn | None] = field(default_factory=OrderedDict)
    _bytes: int = 0

    def image_cache(self) -> dict[str, Any]:
        """A fresh image cache for one document (``weasyprint.HTML.write_pdf(cache=...)``)."""
        return _ImageCache(self)

    def __len__(self) -> int:
        return sum(1 for drawn in self._entries.values() if drawn is not None)

    @property
    def kept_bytes(self) -> int:
        """Bytes of operators kept."""
        return self._bytes

    def _get(self, key: tuple[Any, ...]) -> _Drawn | bool | None:
        if key not in self._entries:
            return False
        self._entries.move_to_end(key)
        return self._entries[key]

    def _put(self, key: tuple[Any, ...], drawn: _Drawn | None) -> None:
        self._entries[key] = drawn
        self._bytes += _size(drawn)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _key, dropped = self._entries.popitem(last=False)
            self._bytes -= _size(dropped)

    def wrap(self, image: SVGImage) -> None:
        """Route the image's node drawing through this cache."""
        svg = image._svg
        original = svg.draw_node

        def draw_node(
            node: Any, font_size: float, fill_stroke: bool = True, context: Any = None
        ) -> None:
            key = _key(svg, node, font_size) if fill_stroke and context is None else None
            if key is None:
                return original(node, font_size, fill_stroke, context)
            return self._draw(svg, node, font_size, key, original)

        svg.draw_node = draw_node

    def _draw(
        self,
        svg: Any,
        node: Any,
        font_size: float,
        key: tuple[Any, ...],
        original: Callable[..., None],
    ) -> None:
        stream = svg.stream
        kept = self._get(key)
        if kept is None or not _has_internals(stream):  # not cacheable
            original(node, font_size)
            return
        _reset_shortcuts(stream)
        if kept is not False:
            self.hits += 1
            extgstate = stream._resources["ExtGState"]
            for name, state in kept.alpha_states:
                extgstate.setdefault(name, state)
            stream.stream.append(kept.operators)
            _reset_shortcuts(stream)
            return
        self.misses += 1
        before = {name: set(values) for name, values in stream._resources.items()}
        start = len(stream.stream)
        original(node, font_size)
        self._put(key, _recorded(svg, stream, start, before))


def _size(drawn: _Drawn | None) -> int:
    return len(drawn.operators) if drawn is not None else 0


class _ImageCache(dict):
    """WeasyPrint's per-document image cache, wrapping each SVG image it is given."""

    def __init__(self, drawings: DrawingCache) -> None:
        super().__init__()
        self._drawings = drawings

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, SVGImage):
            self._drawings.wrap(value)
        super().__setitem__(key, value)


def _key(svg: Any, node: Any, font_size: float) -> tuple[Any, ...] | None:
    if node.tag != "path" or len(node.get("d", "")) < MIN_PATH_CHARS:
        return None
    attributes = node.attrib
    if _DEPENDENT.intersection(attributes) or attributes.get("opacity", "1") not in ("1", "1.0"):
        return None
    drawn = ((k, v) for k, v in attributes.items() if not _NOT_DRAWN.match(k))
    return (
        tuple(sorted(drawn)),
        font_size,
        svg.inner_width,
        svg.inner_height,
    )


def _has_internals(stream: Any) -> bool:
    return hasattr(stream, "_resources") and all(hasattr(stream, name) for name in _SHORTCUTS)


def _reset_shortcuts(stream: Any) -> None:
    for name in _SHORTCUTS:
        setattr(stream, name, None)


def _recorded(svg: Any, stream: Any, start: int, before: dict[str, set[Any]]) -> _Drawn | None:
    """The node's operators if they can be appended elsewhere as they are, else None."""
    if svg.stream is not stream or len(stream.stream) <= start:
        return None
    items = stream.stream[start:]
    if not all(isinstance(item, bytes) for item in items):
        return None
    if any(item.rsplit(None, 1)[-1] not in _ALLOWED_OPERATORS for item in items if item):
        return None
    operators = b"\n".join(items)
    resources = stream._resources
    alpha_names = {name.decode() for name in _ALPHA_STATE.findall(operators)}
    gs_count = sum(1 for item in items if item.endswith(b" gs"))
    if gs_count != sum(len(_ALPHA_STATE.findall(item)) for item in items):
        return None  # a graphics state other than an alpha one
    for name, values in resources.items():
        added = set(values) - before.get(name, set())
        if added and (name != "ExtGState" or not added <= alpha_names):
            return None
    extgstate = resources["ExtGState"]
    if not alpha_names <= set(extgstate):
        return None
    states = tuple((name, pydyf.Dictionary(dict(extgstate[name]))) for name in sorted(alpha_names))
    return _Drawn(operators, states)


class TextRuns:
    """Each chart label drawn as one line of text, not letter by letter.

    WeasyPrint draws SVG ``<text>`` one character at a time, so that per-letter ``x``, ``dx``
    or ``rotate`` lists work: for every character it lays out a Pango layout to measure it,
    lays it out again to draw it and writes one text operator. Our charts place every label
    with a single ``x`` and ``y``; a 20-measure member report holds ~800 labels of ~10
    letters, and drawing them letter by letter took about a tenth of the report's CPU.

    Such a label is measured once and drawn once, as one line (Pango applies the font's
    kerning, which the per-letter path cannot). Its bounding box and the cursor that
    ``text-anchor`` and following text rely on are set as WeasyPrint sets them. Labels with
    per-letter positions, ``rotate``, ``letter-spacing``, ``textLength``, baseline alignment or
    right-to-left direction, and ``tspan``/``textPath`` nodes, go to WeasyPrint's own function.
    """

    #: Attributes that only WeasyPrint's letter-by-letter drawing handles.
    PER_LETTER = frozenset(
        {
            "dx",
            "dy",
            "rotate",
            "textLength",
            "lengthAdjust",
            "dominant-baseline",
            "alignment-baseline",
            "display-anchor",
        }
    )

    def __init__(self, original: Callable[..., Any]) -> None:
        self.original = original
        self.enabled = True
        self.drawn = 0

    def __call__(self, svg: Any, node: Any, font_size: float) -> None:
        position = self._position(svg, node, font_size) if self.enabled else None
        if position is None:
            self.original(svg, node, font_size)
            return
        style = _text_style(svg, node, font_size)
        layout, _, _, width, height, baseline = line_break.split_first_line(
            node.text, style, svg.context, math.inf, 0
        )
        x, y = position
        if "x" in node.attrib:
            svg.cursor_d_position[0] = 0
        if "y" in node.attrib:
            svg.cursor_d_position[1] = 0
        left = x + svg.cursor_d_position[0]
        base = y + svg.cursor_d_position[1]
        top = base - baseline
        svg.cursor_position = (x + width, y)
        node.text_bounding_box = extend_bounding_box(
            node.text_bounding_box, ((left, top), (left + width, top + height))
        )
        svg.stream.push_state()
        fill, stroke = svg.set_graphical_state(node, font_size)
        svg.stream.begin_text()
        layout.reactivate(style)
        svg.fill_stroke(fill, stroke, text=True)
        line = SVGTextBox(layout, style)
        line.baseline = baseline
        emojis = draw_first_line(svg.stream, line, "none", "none", Matrix(d=-1, e=left, f=base))
        svg.stream.end_text()
        svg.stream.pop_state()
        draw_emojis(svg.stream, style, x, y, emojis)
        self.drawn += 1

    def _position(self, svg: Any, node: Any, font_size: float) -> tuple[float, float] | None:
        """The label's ``(x, y)`` when it can be drawn as one line; None otherwise."""
        attributes = node.attrib
        if node.tag != "text" or not node.text or self.PER_LETTER & attributes.keys():
            return None
        if node.get("direction", "ltr") != "ltr" or svg.length(
            node.get("letter-spacing"), font_size
        ):
            return None
        coordinates = []
        for name, extent, cursor in (
            ("x", svg.inner_width, svg.cursor_position[0]),
            ("y", svg.inner_height, svg.cursor_position[1]),
        ):
            if name not in attributes:
                coordinates.append(cursor)
                continue
            values = normalize(attributes[name]).split()
            if len(values) != 1:
                return None
            coordinates.append(svg_size(values[0], font_size, extent))
        return coordinates[0], coordinates[1]


def _text_style(svg: Any, node: Any, font_size: float) -> SVGTextStyle:
    """The font of a ``<text>`` node, read as WeasyPrint's SVG text reads it."""
    style = SVGTextStyle()
    style.update(INITIAL_VALUES)
    style.font_config = svg.font_config
    style["font_family"] = [
        family.strip("\"'") for family in node.get("font-family", "sans-serif").split(",")
    ]
    style["font_style"] = node.get("font-style", "normal")
    weight = node.get("font-weight", 400)
    if weight in ("normal", "bold"):
        style["font_weight"] = 400 if weight == "normal" else 700
    else:
        try:
            style["font_weight"] = int(weight)
        except ValueError:
            style["font_weight"] = 400
    style["font_size"] = font_size
    if node.get("direction") in ("ltr", "rtl"):
        style["direction"] = node.get("direction")
    return style


def draw_text_in_runs() -> TextRuns | None:
    """Install :class:`TextRuns` for SVG text in WeasyPrint (once per process); None if
    WeasyPrint's SVG drawing no longer dispatches text through ``TAGS``."""
    tags = getattr(weasyprint_svg, "TAGS", None)
    current = getattr(weasyprint_svg, "text", None)
    if isinstance(current, TextRuns):
        return current
    if not isinstance(tags, dict) or tags.get("text") is not current or current is None:
        return None
    runs = TextRuns(current)
    # draw_node recognises text nodes (for text-anchor) by comparing TAGS' entry with the
    # module's ``text``: every tag drawn by it gets the wrapper, and the module name too.
    for tag, function in list(tags.items()):
        if function is current:
            tags[tag] = runs
    weasyprint_svg.text = runs
    return runs
