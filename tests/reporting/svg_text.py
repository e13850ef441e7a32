"""Where the words of an SVG chart land: one box per ``<text>``, from the font's own metrics.

The charts ask for "DejaVu Sans" (qicollab.reporting.charts.common.FONT); fontconfig says which
file that is on this machine (the one WeasyPrint and Chromium draw with), and fontTools reads its
advance widths, cap height and descender. A box runs from the cap height above the baseline to the
descender below it, as wide as the glyph advances, placed by ``text-anchor`` and carried through
every ``translate``/``rotate`` of the element and its ancestors. Inherited presentation
attributes (``font-size``, ``font-weight``, ``text-anchor`` on a ``<g>``) count.
"""

from __future__ import annotations

import functools
import math
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from fontTools.ttLib import TTFont

SVG = "{http://www.w3.org/2000/svg}"
_NUMBER = r"-?\d+(?:\.\d+)?(?:e-?\d+)?"


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in viewBox units, and the words it holds."""

    left: float
    top: float
    right: float
    bottom: float
    content: str

    def overlap(self, other: Box) -> float:
        """The area both boxes cover (0 when they only touch)."""
        width = min(self.right, other.right) - max(self.left, other.left)
        height = min(self.bottom, other.bottom) - max(self.top, other.top)
        return max(width, 0.0) * max(height, 0.0)


@functools.cache
def font_file(bold: bool) -> str:
    """The file fontconfig picks for DejaVu Sans (bold or regular)."""
    fc_match = shutil.which("fc-match")
    assert fc_match, "fc-match (fontconfig) is needed to find the font the charts are drawn with"
    pattern = "DejaVu Sans:bold" if bold else "DejaVu Sans"
    path = subprocess.run(
        [fc_match, "-f", "%{file}", pattern], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert "DejaVuSans" in path, f"fontconfig has no DejaVu Sans (got {path})"
    return path


@dataclass(frozen=True)
class Metrics:
    """Advance widths and vertical extents of one font, in em."""

    widths: dict[int, float]
    default: float
    cap_height: float
    descender: float

    def width(self, content: str, size: float) -> float:
        return sum(self.widths.get(ord(ch), self.default) for ch in content) * size


@functools.cache
def metrics(bold: bool) -> Metrics:
    with TTFont(font_file(bold)) as font:
        em = font["head"].unitsPerEm
        advances = font["hmtx"].metrics
        cmap = font.getBestCmap()
        return Metrics(
            widths={code: advances[glyph][0] / em for code, glyph in cmap.items()},
            default=advances[".notdef"][0] / em,
            # DejaVu's OS/2 table predates sCapHeight: the top of "H" is the cap height.
            cap_height=font["glyf"][cmap[ord("H")]].yMax / em,
            descender=abs(font["hhea"].descent) / em,
        )


Matrix = tuple[float, float, float, float, float, float]
IDENTITY: Matrix = (1, 0, 0, 1, 0, 0)


def _multiply(m: Matrix, n: Matrix) -> Matrix:
    a, b, c, d, e, f = m
    a2, b2, c2, d2, e2, f2 = n
    return (
        a * a2 + c * b2,
        b * a2 + d * b2,
        a * c2 + c * d2,
        b * c2 + d * d2,
        a * e2 + c * f2 + e,
        b * e2 + d * f2 + f,
    )


def parse_transform(value: str | None) -> Matrix:
    """The matrix of an SVG ``transform`` list (translate, rotate, scale, matrix)."""
    result = IDENTITY
    for name, args in re.findall(r"(\w+)\s*\(([^)]*)\)", value or ""):
        numbers = [float(v) for v in re.findall(_NUMBER, args)]
        if name == "translate":
            step: Matrix = (1, 0, 0, 1, numbers[0], numbers[1] if len(numbers) > 1 else 0)
        elif name == "scale":
            sy = numbers[1] if len(numbers) > 1 else numbers[0]
            step = (numbers[0], 0, 0, sy, 0, 0)
        elif name == "rotate":
            angle = math.radians(numbers[0])
            cos, sin = math.cos(angle), math.sin(angle)
            step = (cos, sin, -sin, cos, 0, 0)
            if len(numbers) == 3:
                cx, cy = numbers[1], numbers[2]
                step = _multiply(_multiply((1, 0, 0, 1, cx, cy), step), (1, 0, 0, 1, -cx, -cy))
        elif name == "matrix":
            step = tuple(numbers)  # type: ignore[assignment]
        else:
            raise ValueError(f"transform {name} is not understood")
        result = _multiply(result, step)
    return result


def _apply(m: Matrix, x: float, y: float) -> tuple[float, float]:
    a, b, c, d, e, f = m
    return a * x + c * y + e, b * x + d * y + f


def _size(value: str) -> float:
    return float(value.removesuffix("px"))


INHERITED = ("font-size", "font-weight", "text-anchor")


def text_boxes(svg: str) -> tuple[tuple[float, float, float, float], list[Box]]:
    """The viewBox (x, y, width, height) and the box of every ``<text>`` of ``svg``."""
    root = ET.fromstring(svg)
    view = [float(v) for v in root.attrib["viewBox"].split()]
    boxes: list[Box] = []

    def visit(element: ET.Element, matrix: Matrix, style: dict[str, str]) -> None:
        style = {**style, **{k: element.attrib[k] for k in INHERITED if k in element.attrib}}
        matrix = _multiply(matrix, parse_transform(element.attrib.get("transform")))
        tag = element.tag.removeprefix(SVG)
        if tag in {"title", "desc", "defs", "clipPath"}:
            return
        if tag == "text":
            content = "".join(element.itertext())
            if content.strip():
                boxes.append(_box(element, matrix, style, content))
            return
        for child in element:
            visit(child, matrix, style)

    visit(root, IDENTITY, {"font-size": "16", "font-weight": "normal", "text-anchor": "start"})
    return (view[0], view[1], view[2], view[3]), boxes


def _box(element: ET.Element, matrix: Matrix, style: dict[str, str], content: str) -> Box:
    size = _size(style["font-size"])
    font = metrics(style["font-weight"] in {"bold", "bolder", "600", "700", "800", "900"})
    width = font.width(content, size)
    x = float(element.attrib.get("x", 0))
    y = float(element.attrib.get("y", 0))
    anchor = style["text-anchor"]
    left = x - (width if anchor == "end" else width / 2 if anchor == "middle" else 0)
    corners = [
        _apply(matrix, px, py)
        for px in (left, left + width)
        for py in (y - font.cap_height * size, y + font.descender * size)
    ]
    xs = [c[0] for c in corners]
    ys = [c[1] for c in corners]
    return Box(min(xs), min(ys), max(xs), max(ys), " ".join(content.split()))


#: Grid lines are drawn this pale; text may sit on them.
PALE = {"#ececec", "#c8c8c8", "#f0f0f0", "#f4f4f4"}


def _strong_lines(svg: str) -> list[tuple[float, float, float, float]]:
    """Horizontal and vertical ``<line>`` elements that are not pale grid lines (untransformed;
    the charts draw their lines at the top level)."""
    lines = []
    for line in ET.fromstring(svg).iter(f"{SVG}line"):
        if line.get("stroke", "").lower() in PALE:
            continue
        x1, y1, x2, y2 = (float(line.get(k, 0)) for k in ("x1", "y1", "x2", "y2"))
        if x1 == x2 or y1 == y2:
            lines.append((x1, y1, x2, y2))
    return lines


def problems(svg: str, *, tolerance: float = 0.5) -> list[str]:
    """Words that leave the viewBox, cover other words or are crossed by a line (not a pale
    grid line), described for a failure message."""
    (vx, vy, vw, vh), boxes = text_boxes(svg)
    found = []
    for box in boxes:
        if (
            box.left < vx - tolerance
            or box.top < vy - tolerance
            or box.right > vx + vw + tolerance
            or box.bottom > vy + vh + tolerance
        ):
            found.append(
                f"{box.content!r} leaves the {vw:g}x{vh:g} viewBox: "
                f"({box.left:.1f}, {box.top:.1f})-({box.right:.1f}, {box.bottom:.1f})"
            )
    for line in _strong_lines(svg):
        x1, y1, x2, y2 = line
        for box in boxes:
            across = y1 == y2 and box.top + 1 < y1 < box.bottom - 1
            across = across and min(x1, x2) < box.right - 1 and max(x1, x2) > box.left + 1
            down = x1 == x2 and box.left + 1 < x1 < box.right - 1
            down = down and min(y1, y2) < box.bottom - 1 and max(y1, y2) > box.top + 1
            if across or down:
                found.append(f"a line at ({x1:g}, {y1:g})-({x2:g}, {y2:g}) crosses {box.content!r}")
    for i, first in enumerate(boxes):
        for second in boxes[i + 1 :]:
            if first.overlap(second) > tolerance * tolerance * 4:
                found.append(f"{first.content!r} covers {second.content!r}")
    return found
