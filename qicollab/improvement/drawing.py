"""SVG drawings of the improvement work: the driver diagram, a team's progress-score trend and
the distribution of teams over the assessment scale.

They use the chart vocabulary of :mod:`qicollab.reporting.charts.base` (escaped text, an
accessible ``<svg role="img">`` with title and description, greyscale-readable lines and
markers), so they look like the other charts in the portal and the printed reports.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from qicollab.improvement.package import Diagram
from qicollab.improvement.progress import SCALE, Distribution, TrendPoint
from qicollab.reporting.charts import base

_COLUMNS = ("Aim", "Primary drivers", "Secondary drivers", "Change ideas")
_BOX_WIDTH = 190.0
_GAP = 34.0
_LINE = 12.0
_PAD = 6.0
_CHARS = 30


def _wrapped(label: str, *, lines: int = 4) -> list[str]:
    wrapped = textwrap.wrap(" ".join(label.split()), _CHARS) or [""]
    if len(wrapped) > lines:
        wrapped = [*wrapped[: lines - 1], base.shorten(" ".join(wrapped[lines - 1 :]), _CHARS)]
    return wrapped


def _box(x: float, y: float, label: str, *, strong: bool = False) -> tuple[list[str], float]:
    """A box with wrapped text at (x, y); returns its parts and its height."""
    rows = _wrapped(label, lines=8 if strong else 4)
    height = len(rows) * _LINE + 2 * _PAD
    stroke = base.INK if strong else base.GREY
    parts = [
        f'<rect x="{base.fmt(x)}" y="{base.fmt(y)}" width="{base.fmt(_BOX_WIDTH)}" '
        f'height="{base.fmt(height)}" rx="4" fill="white" stroke="{stroke}" stroke-width="1"/>'
    ]
    parts += [
        base.text(
            x + _PAD,
            y + _PAD + _LINE * (i + 1) - 3,
            row,
            size=9.5,
            weight="bold" if strong else "normal",
        )
        for i, row in enumerate(rows)
    ]
    return parts, height


def _connector(x1: float, y1: float, x2: float, y2: float) -> str:
    mid = (x1 + x2) / 2
    return (
        f'<path d="M{base.fmt(x1)},{base.fmt(y1)} C{base.fmt(mid)},{base.fmt(y1)} '
        f'{base.fmt(mid)},{base.fmt(y2)} {base.fmt(x2)},{base.fmt(y2)}" fill="none" '
        f'stroke="{base.LIGHT}" stroke-width="1"/>'
    )


def driver_diagram_svg(diagram: Diagram) -> str:
    """The aim on the left, drivers in the middle, change ideas on the right, joined by lines."""
    x = [10 + i * (_BOX_WIDTH + _GAP) for i in range(4)]
    top = 28.0
    parts = [base.text(x[i], 16, title, size=10, weight="bold") for i, title in enumerate(_COLUMNS)]
    y = top
    primary_anchors: list[tuple[float, float]] = []
    for primary in diagram.primaries:
        primary_top = y
        secondary_anchors = []
        for secondary in primary.children or ():
            secondary_top = y
            idea_anchors = []
            for idea in secondary.ideas or ():
                box, height = _box(x[3], y, f"{idea.code} {idea.title}")
                parts += box
                idea_anchors.append(y + height / 2)
                y += height + 6
            box, height = _box(x[2], secondary_top, secondary.title)
            parts += box
            middle = secondary_top + height / 2
            parts += [_connector(x[2] + _BOX_WIDTH, middle, x[3], a) for a in idea_anchors]
            secondary_anchors.append(middle)
            y = max(y, secondary_top + height + 6) + 6
        box, height = _box(x[1], primary_top, primary.title)
        parts += box
        middle = primary_top + height / 2
        parts += [_connector(x[1] + _BOX_WIDTH, middle, x[2], a) for a in secondary_anchors]
        primary_anchors.append((primary_top, middle))
        y = max(y, primary_top + height + 6) + 10
    aim_box, aim_height = _box(x[0], top, diagram.aim or "No aim written yet", strong=True)
    parts += aim_box
    aim_middle = top + aim_height / 2
    parts += [_connector(x[0] + _BOX_WIDTH, aim_middle, x[1], m) for _, m in primary_anchors]
    height = max(y, top + aim_height) + 10
    width = x[3] + _BOX_WIDTH + 10
    n_ideas = len(diagram.ideas)
    return base.svg_document(
        width,
        height,
        "Driver diagram",
        f"Aim: {diagram.aim}. {len(diagram.primaries)} primary drivers, "
        f"{len(diagram.secondaries)} secondary drivers, {n_ideas} change ideas.",
        parts,
    )


def progress_trend_svg(trend: Sequence[TrendPoint], *, title: str) -> str:
    """The team's and the faculty's monthly scores on the 1-5 scale."""
    width, height = 560.0, 220.0
    left, right, top, bottom = 44.0, width - 12, 28.0, height - 36
    y = base.LinearScale(1.0, 5.0, bottom, top)
    n = max(len(trend), 1)
    step = (right - left) / n
    xs = [left + step * (i + 0.5) for i in range(len(trend))]
    parts = base.y_axis(y, [1, 2, 3, 4, 5], left=left, right=right, label="Assessment scale")
    labels = [p.month.strftime("%Y-%m") for p in trend]
    parts += base.category_axis(labels, xs, bottom=bottom)
    for attribute, style, shape, name in (
        ("team", "data", "circle", "Team self-score"),
        ("faculty", "centre", "square", "Faculty score"),
    ):
        values = [getattr(p, attribute) for p in trend]
        parts += base.line(
            [(xs[i], y(v)) if v is not None else None for i, v in enumerate(values)],
            style=style,
            cls=f"trend-{attribute}",
        )
        parts += [
            base.marker(shape, xs[i], y(v), label=f"{labels[i]}: {name} {v:.1f}")
            for i, v in enumerate(values)
            if v is not None
        ]
    parts += base.legend(
        [("Team self-score", "line:data"), ("Faculty score", "line:centre")],
        x=left,
        y=12,
        width=right - left,
    )
    described = "; ".join(
        f"{p.month:%Y-%m} team {p.team if p.team is not None else '-'}, "
        f"faculty {p.faculty if p.faculty is not None else '-'}"
        for p in trend
    )
    return base.svg_document(width, height, title, described or "No scores yet.", parts)


def distribution_svg(distribution: Distribution) -> str:
    """Teams per step of the scale in a month: the teams' own scores beside the faculty's."""
    width, height = 560.0, 220.0
    left, right, top, bottom = 44.0, width - 12, 28.0, height - 40
    most = max([*distribution.team.values(), *distribution.faculty.values(), 1])
    ticks = base.nice_ticks(0, most, 4)
    y = base.LinearScale(0, max(ticks[-1], most), bottom, top)
    parts = base.y_axis(y, ticks, left=left, right=right, label="Teams")
    step = (right - left) / len(SCALE)
    bar = step * 0.36
    for i, level in enumerate(SCALE):
        centre = left + step * (i + 0.5)
        for offset, counts, fill in (
            (-bar, distribution.team, base.GREY),
            (0.0, distribution.faculty, base.INK),
        ):
            count = counts[level.score]
            if count:
                parts.append(
                    f'<rect x="{base.fmt(centre + offset)}" y="{base.fmt(y(count))}" '
                    f'width="{base.fmt(bar)}" height="{base.fmt(bottom - y(count))}" '
                    f'fill="{fill}"><title>{level.score:.1f}: {count}</title></rect>'
                )
        parts.append(base.text(centre, bottom + 12, f"{level.score:.1f}", size=9, anchor="middle"))
    parts.append(base.text(left, 14, "Grey: team self-scores · black: faculty scores", size=9.5))
    described = "; ".join(
        f"{level.score:.1f}: {distribution.team[level.score]} by the teams, "
        f"{distribution.faculty[level.score]} by the faculty"
        for level in SCALE
    )
    return base.svg_document(
        width, height, f"Progress scores, {distribution.month:%Y-%m}", described, parts
    )
