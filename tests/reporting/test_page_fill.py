"""No printed page is left nearly empty: each is at least a third full, except the cover and a
page on which a section both starts and ends (a short section such as Methods).

pdfplumber reads every page of the four reports of one run: the filled height is from the top
of the page's content box (the @page margins of reports/report.css) to the lowest word, image,
line or box inside it; the running header and footer live in the margins and do not count. A
section starts on a page that a bookmark (an h1, or a measure's h2) points to.
"""

from __future__ import annotations

import io

import pdfplumber
import pytest
from pypdf import PdfReader

MM = 72 / 25.4
TOP, BOTTOM = 20 * MM, 18 * MM  # @page margins in reports/report.css
LEAST = 1 / 3


def section_starts(reader: PdfReader) -> set[int]:
    """Page indexes that a bookmark (at any level) points to."""
    starts: set[int] = set()

    def visit(items: list) -> None:
        for item in items:
            if isinstance(item, list):
                visit(item)
            else:
                starts.add(reader.get_destination_page_number(item))

    visit(reader.outline)
    return starts


def fill(page: pdfplumber.page.Page) -> float:
    """The share of the content box's height taken, from its top to the lowest content."""
    low = page.height - BOTTOM
    objects = [
        *page.chars,
        *page.images,
        *page.rects,
        *page.lines,
        *page.curves,
    ]
    bottoms = [o["bottom"] for o in objects if o["top"] >= TOP - 2 and o["bottom"] <= low + 2]
    if not bottoms:
        return 0.0
    return (max(bottoms) - TOP) / (low - TOP)


def fills(pdf: bytes) -> list[float]:
    with pdfplumber.open(io.BytesIO(pdf)) as document:
        return [fill(page) for page in document.pages]


@pytest.mark.parametrize("report", ["member", "other_member", "collaborative", "summary"])
def test_no_page_is_less_than_a_third_full(rendered, report):
    document = getattr(rendered, report)
    shares = fills(document.pdf)
    starts = section_starts(document.reader)
    assert len(shares) == len(document.reader.pages)
    assert starts, "the report has no bookmarks"
    short = [
        f"page {index + 1}: {share:.0%} full"
        for index, share in enumerate(shares)
        if index > 0 and share < LEAST and index not in starts
    ]
    assert not short, "\n".join(short)


def test_the_measure_counts_an_empty_page_and_a_full_one(rendered):
    """The measure itself: the cover (title low on the page, little else) and a measure page."""
    shares = fills(rendered.member.pdf)
    assert 0.0 < min(shares) < 0.6
    assert max(shares) > 0.8
