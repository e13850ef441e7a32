"""No chart prints words over other words or outside its own frame.

Every SVG the renderers emit for one run (the charts and icons of a member's report, the
collaborative report, the blinded summary, and the member's results page) is read back; each
``<text>`` gets its box from DejaVu Sans's metrics (tests/reporting/svg_text.py). No two boxes
may cover each other and none may leave the viewBox.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from qicollab.reporting.charts.caterpillar import CaterpillarPoint, caterpillar_chart
from qicollab.reporting.charts.control import render_control_chart
from qicollab.reporting.charts.icons import ASSURANCE, VARIATION
from qicollab.reporting.charts.peer_funnel import FunnelPoint, funnel_chart
from qicollab.stats.spc import control_chart
from tests.reporting.svg_text import SVG, problems, text_boxes

_DATA_URI = re.compile(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"')
_INLINE = re.compile(r"<svg\b.*?</svg>", re.S)


def svgs_of_report(html: str) -> list[str]:
    """The SVG documents embedded as data URIs in a report's HTML."""
    return [base64.b64decode(m).decode("utf-8") for m in _DATA_URI.findall(html)]


def _title(svg: str) -> str:
    match = re.search(r"<title[^>]*>(.*?)</title>", svg, re.S)
    return match.group(1)[:70] if match else svg[:70]


def _check(svgs: list[str]) -> list[str]:
    found = []
    for svg in svgs:
        found += [f"[{_title(svg)}] {p}" for p in problems(svg)]
    return found


@pytest.mark.parametrize("report", ["member", "other_member", "collaborative", "summary"])
def test_report_charts_keep_their_words_apart_and_inside(rendered, report):
    svgs = svgs_of_report(getattr(rendered, report).html)
    assert len(svgs) >= 4
    assert sum(len(text_boxes(svg)[1]) for svg in svgs) > 20 * len(svgs) // 4
    found = _check(svgs)
    assert not found, "\n".join(found)


def test_results_page_charts_keep_their_words_apart_and_inside(portal, world):
    page = portal.as_user("officer").get(f"/members/{world.member}/results")
    svgs = _INLINE.findall(page.text)
    assert len(svgs) >= 4
    found = _check(svgs)
    assert not found, "\n".join(found)


def test_the_check_sees_an_overlap_and_a_clipped_label():
    """The checker itself: two labels at one spot, and one running off the right edge."""
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 100">'
        '<text x="150" y="50" font-size="10">target</text>'
        '<text x="150" y="52" font-size="10">benchmark (ABC)</text>'
        '<g font-size="12" transform="translate(100 90)"><text x="0" y="0" '
        'text-anchor="middle">centred</text></g>'
        "</svg>"
    )
    found = problems(svg)
    assert "'target' covers 'benchmark (ABC)'" in found
    crossed = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 100">'
        '<text x="20" y="50" font-size="10">Phase 2</text>'
        '<line x1="0" x2="200" y1="47" y2="47" stroke="#0b4f8a"/>'
        '<line x1="0" x2="200" y1="46" y2="46" stroke="#ececec"/></svg>'
    )
    assert problems(crossed) == ["a line at (0, 47)-(200, 47) crosses 'Phase 2'"]
    assert any(p.startswith("'benchmark (ABC)' leaves") for p in found)
    assert not any("centred" in p for p in found)
    # A rotated axis title: its box is tall and narrow.
    rotated = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 200">'
        '<text x="12" y="100" font-size="10" text-anchor="middle" '
        'transform="rotate(-90 12 100)">Rate per 1,000 line-days</text></svg>'
    )
    (_, boxes) = text_boxes(rotated)
    assert boxes[0].bottom - boxes[0].top > 5 * (boxes[0].right - boxes[0].left)
    assert problems(rotated) == []


def test_a_far_target_is_an_arrow_not_an_axis_stretch():
    """36 door-to-provider minutes between 37.8 and 38.6 with a target of 20 (the case of
    issue 13): the axis spans the data and its limits, and the target is an arrow and a note."""
    rng = np.random.default_rng(13)
    values = rng.uniform(37.8, 38.6, 36)
    months = [dt.date(2023 + m // 12, m % 12 + 1, 1) for m in range(36)]
    spc = control_chart(values, chart="i", x=months, target=20.0)
    chart = render_control_chart(spc, title="D2P: door-to-provider time", y_label="Minutes")
    _, boxes = text_boxes(chart.svg)
    ticks = [float(b.content) for b in boxes if re.fullmatch(r"\d+(\.\d+)?", b.content)]
    assert ticks, "no tick labels"
    # The axis covers the data and its limits, nowhere near the target.
    assert min(ticks) > 30
    assert max(ticks) - min(ticks) < 10
    assert 'class="target-arrow"' in chart.svg
    assert any(b.content.startswith("Target 20") and b.content.endswith("↓") for b in boxes)
    assert "The target, 20, lies far below the data" in chart.description
    assert problems(chart.svg) == []
    # A near target stays a line on the axis.
    near = render_control_chart(
        control_chart(values, chart="i", x=months, target=38.0), title="D2P", y_label="Minutes"
    )
    assert 'class="target-arrow"' not in near.svg
    assert "Target 38" in near.svg


def _rgb(colour: str) -> tuple[float, float, float]:
    named = {"white": "#ffffff"}
    colour = named.get(colour, colour).lstrip("#")
    return tuple(int(colour[i : i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def _contrast(first: str, second: str) -> float:
    """WCAG 2 contrast ratio of two colours."""

    def luminance(colour: str) -> float:
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in _rgb(colour)]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize(
    ("icon", "hue"),
    [
        (VARIATION["improvement_high"], "blue"),
        (VARIATION["improvement_low"], "blue"),
        (VARIATION["concern_high"], "orange"),
        (VARIATION["concern_low"], "orange"),
        (VARIATION["common_cause"], "grey"),
        (ASSURANCE["consistent_pass"], "blue"),
        (ASSURANCE["consistent_fail"], "orange"),
        (ASSURANCE["inconsistent"], "grey"),
    ],
)
def test_making_data_count_icons_wear_their_colours_at_a_readable_size(icon, hue):
    root = ET.fromstring(str(icon.svg()))
    assert float(root.attrib["width"]) >= 28
    fill = root.find(f"{SVG}circle").attrib["fill"]
    r, g, b = _rgb(fill)
    if hue == "blue":
        assert b > r + 0.3
        assert b > g
    elif hue == "orange":
        assert r > g > b + 0.3
    else:
        assert max(r, g, b) - min(r, g, b) < 0.02
        assert 0.3 < r < 0.8
    letter = root.find(f"{SVG}text")
    assert _contrast(fill, letter.attrib["fill"]) >= 4.5


@pytest.mark.parametrize("target", [55.0, 60.0, 62.0, 64.0, 66.0])
def test_the_target_line_never_runs_through_the_phase_names(target):
    """Two phases (a shift from about 50 to 56) and targets from mid-range to the top edge,
    where the line passes the height at which the phases are named."""
    rng = np.random.default_rng(2)
    values = np.r_[rng.normal(50, 2, 18), rng.normal(56, 2, 18)]
    months = [dt.date(2023 + m // 12, m % 12 + 1, 1) for m in range(36)]
    spc = control_chart(values, chart="i", x=months, target=target, part=[18])
    chart = render_control_chart(spc, title="Door to provider", y_label="Minutes")
    _, boxes = text_boxes(chart.svg)
    assert {"Phase 1", "Phase 2"} <= {b.content for b in boxes}
    assert problems(chart.svg) == []


def test_the_funnels_target_name_stays_off_the_members_points():
    """Members crowd the right end of the collaborative line, where its name used to go."""
    points = [FunnelPoint(f"Z{i:03d}", 800 + 20 * i, 0.5 + 0.002 * (i % 3)) for i in range(10)]
    points += [FunnelPoint(f"Y{i:03d}", 50 + 30 * i, 0.3 + 0.04 * i) for i in range(8)]
    chart = funnel_chart(points, [], title="Funnel", target=0.5, x_label="Cases", y_label="Rate")
    _, boxes = text_boxes(chart.svg)
    name = next(b for b in boxes if b.content == "collaborative")
    centres = [
        (float(m.group(1)) + 2.7, float(m.group(2)))
        for m in re.finditer(r"M(-?[\d.]+) (-?[\d.]+)a2\.7", chart.svg)
    ]
    assert len(centres) == len(points)
    for cx, cy in centres:
        assert not (name.left - 3 < cx < name.right + 3 and name.top - 3 < cy < name.bottom + 3)
    assert problems(chart.svg) == []


def test_you_on_the_caterpillar_stays_off_the_neighbours_dots():
    """Twenty members with nearly equal estimates and narrow intervals: the dots to the right of
    the member's own sit exactly where its name would go above its interval."""
    points = [
        CaterpillarPoint(f"Z{i:03d}", 1.0 + 0.01 * i, 0.98 + 0.01 * i, 1.02 + 0.01 * i)
        for i in range(20)
    ]
    points[5] = CaterpillarPoint("You", points[5].estimate, points[5].low, points[5].high, True)
    chart = caterpillar_chart(points, title="O/E", reference=0.8)
    _, boxes = text_boxes(chart.svg)
    you = next(b for b in boxes if b.content == "You")
    centres = [
        (float(m.group(1)) + float(m.group(3)), float(m.group(2)))
        for m in re.finditer(r"M(-?[\d.]+) (-?[\d.]+)a([\d.]+) ", chart.svg)
    ]
    assert len(centres) == 19
    for cx, cy in centres:
        assert not (you.left - 2 < cx < you.right + 2 and you.top - 2 < cy < you.bottom + 2)
    assert problems(chart.svg) == []


@pytest.mark.parametrize(
    "days",
    [
        (0, 45, 85, 115),  # a ramp of PDSA cycles a few weeks apart (the demo's hand hygiene)
        (0, 10, 20, 30, 40, 50),  # more changes than rows: some are left unnamed
        (900, 1000, 1060),  # at the right edge
    ],
)
def test_annotation_names_on_a_control_chart_stay_apart(days):
    """Each dated marker's name takes the first free row above the plot; one that finds no
    free spot is left off (its full text stays the marker's title and is listed under the
    chart in the reports)."""
    rng = np.random.default_rng(4)
    months = [dt.date(2023 + m // 12, m % 12 + 1, 1) for m in range(36)]
    spc = control_chart(rng.normal(80, 5, 36), chart="i", x=months)
    notes = [
        (months[0] + dt.timedelta(days=d), f"PDSA {i + 1}: hand-rub at the point of care")
        for i, d in enumerate(days)
    ]
    chart = render_control_chart(spc, title="Hand hygiene", y_label="%", annotations=notes)
    assert problems(chart.svg) == []
    _, boxes = text_boxes(chart.svg)
    named = [b for b in boxes if b.content.startswith("PDSA")]
    assert len(named) >= min(len(days), 3)
    titles = re.findall(r"<title>(PDSA [^<]*)</title>", chart.svg)
    assert len(titles) == len(days)  # every marker keeps its full text
