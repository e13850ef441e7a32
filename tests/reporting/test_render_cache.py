"""Chart layers drawn once per worker (qicollab.reporting.render_cache) look exactly as drawn anew.

Each test renders real PDFs with WeasyPrint and compares the pages as pdftoppm draws them,
pixel for pixel, between a renderer that replays the kept operators and a fresh one.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

from qicollab.reporting.charts.caterpillar import CaterpillarPoint, caterpillar_chart
from qicollab.reporting.charts.common import DENSE, data_uri
from qicollab.reporting.charts.peer_funnel import FunnelCurve, FunnelPoint, funnel_chart
from qicollab.reporting.pdf import TEXT_RUNS, PdfRenderer, compress_streams

PDFTOPPM = shutil.which("pdftoppm")
needs_pdftoppm = pytest.mark.skipif(PDFTOPPM is None, reason="pdftoppm not installed")


def _diamonds(count: int, shift: float = 0.0) -> str:
    return "".join(
        f"M{20 + (i * 7.3) % 360:.1f} {30 + (i * 13.1 + shift) % 180:.1f}l2 2l-2 2l-2 -2Z"
        for i in range(count)
    )


def _document(path_attributes: str, *, label: str = "A chart") -> str:
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 240" width="400" '
        f'height="240" aria-labelledby="{label.replace(" ", "")}">'
        f'<rect x="0" y="0" width="400" height="240" fill="#ffffff"/>'
        f'<path d="{_diamonds(400)}" {path_attributes}/>'
        f'<text x="200" y="230" font-size="10" text-anchor="middle">{label}</text></svg>'
    )
    return (
        '<!doctype html><html lang="en"><head><title>t</title></head><body>'
        f'<p>{label}</p><img src="{data_uri(svg)}" alt="{label}" style="width: 160mm">'
        "</body></html>"
    )


def _pages(pdf: bytes, folder: Path, name: str) -> list[bytes]:
    source = folder / f"{name}.pdf"
    source.write_bytes(pdf)
    subprocess.run([PDFTOPPM, "-r", "150", "-png", str(source), str(folder / name)], check=True)
    return [p.read_bytes() for p in sorted(folder.glob(f"{name}-*.png"))]


def _same_pixels(first: list[bytes], second: list[bytes]) -> bool:
    from PIL import Image, ImageChops

    if len(first) != len(second):
        return False
    for a, b in zip(first, second, strict=True):
        with Image.open(io.BytesIO(a)) as left, Image.open(io.BytesIO(b)) as right:
            if ImageChops.difference(left.convert("RGB"), right.convert("RGB")).getbbox():
                return False
    return True


@needs_pdftoppm
def test_a_replayed_layer_draws_the_same_pixels_as_a_fresh_draw(tmp_path):
    attributes = 'fill="#c8c8c8" stroke="#6b6b6b" stroke-width="0.8"'
    warm = PdfRenderer()
    warm.pdf_from_html(_document(attributes, label="First report"))
    assert (warm.drawings.hits, warm.drawings.misses, len(warm.drawings)) == (0, 1, 1)
    # Another report, another chart id (inherited aria-labelledby), the same layer: replayed.
    replayed = warm.pdf_from_html(_document(attributes, label="Second report"))
    assert warm.drawings.hits == 1
    fresh = PdfRenderer().pdf_from_html(_document(attributes, label="Second report"))
    assert _same_pixels(_pages(replayed, tmp_path, "replayed"), _pages(fresh, tmp_path, "fresh"))


@needs_pdftoppm
def test_a_replayed_layer_registers_the_alpha_states_it_names(tmp_path):
    attributes = 'fill="#0b4f8a" fill-opacity="0.4" stroke="#1a1a1a" stroke-width="0.8"'
    warm = PdfRenderer()
    warm.pdf_from_html(_document(attributes))
    replayed = warm.pdf_from_html(_document(attributes))
    assert warm.drawings.hits == 1
    states = PdfReader(io.BytesIO(replayed)).pages[0]["/Resources"]["/ExtGState"]
    assert states["/a0.4"]["/ca"] == pytest.approx(0.4), "the alpha state is not defined"
    fresh = PdfRenderer().pdf_from_html(_document(attributes))
    assert _same_pixels(_pages(replayed, tmp_path, "replayed"), _pages(fresh, tmp_path, "fresh"))


@pytest.mark.parametrize(
    "attributes",
    [
        'fill="#c8c8c8" opacity="0.5"',  # an opacity group: an XObject on the page
        'fill="#c8c8c8" clip-path="url(#none)"',  # depends on another node
        'fill="#c8c8c8" marker-mid="url(#m)"',
    ],
)
def test_layers_that_depend_on_more_than_themselves_are_drawn_anew(attributes):
    renderer = PdfRenderer()
    for _ in range(2):
        renderer.pdf_from_html(_document(attributes))
    assert renderer.drawings.hits == 0
    assert len(renderer.drawings) == 0


def test_small_paths_are_not_looked_up():
    renderer = PdfRenderer()
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10" width="10" height="10">'
        '<path d="M1 1L9 9" stroke="#000"/></svg>'
    )
    html = (
        '<html lang="en"><head><title>t</title></head><body>'
        f'<img src="{data_uri(svg)}" alt="x"></body></html>'
    )
    renderer.pdf_from_html(html)
    renderer.pdf_from_html(html)
    assert (renderer.drawings.hits, renderer.drawings.misses) == (0, 0)


def test_the_cache_keeps_a_bounded_number_of_layers():
    renderer = PdfRenderer()
    renderer.drawings.max_entries = 2
    for shade in ("#111111", "#222222", "#333333"):
        renderer.pdf_from_html(_document(f'fill="{shade}"'))
    assert len(renderer.drawings) == 2


def test_the_cache_keeps_a_bounded_number_of_bytes():
    renderer = PdfRenderer()
    renderer.pdf_from_html(_document('fill="#111111"'))
    one = renderer.drawings.kept_bytes
    assert one > 0
    renderer.drawings.max_bytes = int(one * 1.5)
    for shade in ("#222222", "#333333"):
        renderer.pdf_from_html(_document(f'fill="{shade}"'))
    assert len(renderer.drawings) == 1
    assert renderer.drawings.kept_bytes <= renderer.drawings.max_bytes


def _member_funnel(own: int) -> str:
    count = DENSE + 80
    points = [
        FunnelPoint(f"M{i:04d}", 50.0 + 9 * i, 0.3 + 0.4 * ((i * 37) % count) / count, i == own)
        for i in range(count)
    ]
    limits = tuple((x, 0.5 - 2 / x**0.5, 0.5 + 2 / x**0.5) for x in range(20, 2000, 9))
    curves = [FunnelCurve("95", limits, "5 3"), FunnelCurve("99.8", limits[::2], "1.5 2.5")]
    chart = funnel_chart(points, curves, title="F", target=0.5, x_label="n", y_label="r")
    return (
        '<!doctype html><html lang="en"><head><title>t</title></head><body>'
        f'<img src="{data_uri(chart.svg)}" alt="funnel" style="width: 160mm"></body></html>'
    )


@needs_pdftoppm
def test_a_funnels_limit_curves_are_drawn_once_for_every_members_chart(tmp_path):
    """The limit curves sit in one clipped group, so they are the same nodes in every
    member's funnel: a second member's chart replays them and the peers' layer, and still
    draws exactly what a fresh renderer draws (the clip included)."""
    warm = PdfRenderer()
    warm.pdf_from_html(_member_funnel(3))
    recorded = warm.drawings.misses
    replayed = warm.pdf_from_html(_member_funnel(150))
    assert recorded >= 5  # four limit curves and the peers' layer
    assert (warm.drawings.hits, warm.drawings.misses) == (recorded, recorded)
    fresh = PdfRenderer().pdf_from_html(_member_funnel(150))
    assert _same_pixels(_pages(replayed, tmp_path, "replayed"), _pages(fresh, tmp_path, "fresh"))


def _marks_paths(svg: str) -> list[str]:
    return [d for d in re.findall(r'<path d="([^"]*)"', svg) if len(d) > 2000]


def test_dense_peer_layers_are_the_same_in_every_members_chart():
    """Dense charts put every member's mark in the shared paths; the own diamond comes after
    them (drawn on top) and differs; the small charts keep the member's mark out."""
    count = DENSE + 80

    def caterpillar(own: int) -> str:
        points = [
            CaterpillarPoint(
                f"M{i:04d}", 0.6 + i / count, 0.4 + i / count, 0.8 + i / count, i == own
            )
            for i in range(count)
        ]
        return caterpillar_chart(points, title="O/E").svg

    def funnel(own: int) -> str:
        points = [
            FunnelPoint(f"M{i:04d}", 50.0 + 9 * i, 0.3 + 0.4 * ((i * 37) % count) / count, i == own)
            for i in range(count)
        ]
        return funnel_chart(points, [], title="F", target=0.5, x_label="n", y_label="r").svg

    for draw in (caterpillar, funnel):
        first, second = draw(3), draw(150)
        assert _marks_paths(first) == _marks_paths(second)
        assert _marks_paths(first)
        for svg in (first, second):
            last_mark = max(svg.rindex(d) for d in _marks_paths(svg))
            assert svg.index('fill="#0b4f8a"') > last_mark  # the own diamond on top
        assert first != second


def test_a_replayed_page_holds_the_operators_of_the_recording_one():
    """The kept operators are the node's own: the page content of a replayed render equals
    that of the render that recorded them."""
    attributes = 'fill="#c8c8c8" stroke="#6b6b6b" stroke-width="0.8"'
    renderer = PdfRenderer()
    recorded = renderer.pdf_from_html(_document(attributes))
    replayed = renderer.pdf_from_html(_document(attributes))
    assert renderer.drawings.hits == 1

    def content(pdf: bytes) -> bytes:
        return PdfReader(io.BytesIO(pdf)).pages[0].get_contents().get_data()

    assert content(recorded) == content(replayed)
    assert content(recorded).count(b" l\n") >= 3 * 400


def test_streams_deflated_at_our_level_hold_what_pydyf_would_write():
    """compress_streams changes the zlib level only: every page's operators and every
    other stream (fonts, structure) decode to the same bytes as WeasyPrint's own output."""
    import weasyprint

    from qicollab.reporting.pdf import PDF_VARIANT, BundledAssetFetcher

    renderer = PdfRenderer()
    html = _document('fill="#c8c8c8"', label="Deflated")

    def write(**options) -> PdfReader:
        document = weasyprint.HTML(
            string=html,
            base_url=renderer.root.as_uri() + "/",
            url_fetcher=BundledAssetFetcher(renderer.root),
        )
        return PdfReader(io.BytesIO(document.write_pdf(pdf_variant=PDF_VARIANT, **options)))

    ours = write(finisher=compress_streams)
    theirs = write()
    assert len(ours.pages) == len(theirs.pages) == 1
    assert ours.pages[0].get_contents().get_data() == theirs.pages[0].get_contents().get_data()
    assert ours.pages[0].extract_text() == theirs.pages[0].extract_text()
    fonts = [
        (font["/BaseFont"], font["/FontDescriptor"]["/FontFile2"].get_data())
        for reader in (ours, theirs)
        for font in (
            f.get_object()["/DescendantFonts"][0].get_object()
            for f in reader.pages[0]["/Resources"]["/Font"].values()
        )
    ]
    half = len(fonts) // 2
    assert half
    assert fonts[:half] == fonts[half:]


#: Chart labels as our charts write them (one x and one y each), one per 40-unit row.
LABELS = [
    ("Observed / expected (O/E) by member", 'x="20" font-weight="bold"'),
    ("0.50 0.75 1.00 1.25 1.50 2.00", 'x="20"'),
    ("Members ordered by O/E, lowest first", 'x="20" font-style="italic"'),
    ("C↑ I↓ ~ P F", 'x="200" text-anchor="middle"'),
    ("Upper limit 99.8% (AV Tw)", 'x="380" text-anchor="end"'),
    ("1,000 members", 'x="200" text-anchor="middle" transform="rotate(-8 200 220)"'),
]


def _chart_text_document(labels: list[tuple[str, str]] = LABELS) -> str:
    texts = "".join(
        f'<text y="{30 + 40 * i}" font-size="11" font-family="DejaVu Sans, sans-serif" '
        f"{extra}>{text}</text>"
        for i, (text, extra) in enumerate(labels)
    )
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 240" width="400" '
        f'height="240">{texts}</svg>'
    )
    return (
        '<!doctype html><html lang="en"><head><title>t</title></head><body>'
        f'<img src="{data_uri(svg)}" alt="Chart text" style="width: 160mm"></body></html>'
    )


def _ink_by_row(png: bytes, rows: int) -> list[tuple[int, int, int, int] | None]:
    """The ink's bounding box in each of the chart's label rows (page pixels)."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(png)) as page:
        ink = ImageOps.invert(page.convert("L"))
    chart = ink.getbbox()
    assert chart is not None, "nothing was drawn"
    # 400 units across 160 mm; the first label's ink starts ~21 units down (baseline 30 less
    # the ascent), so bands of 40 units from there less 18 each hold one label with margin.
    scale = (160 / 25.4 * 150) / 400
    top = chart[1] - 18 * scale
    boxes = []
    for row in range(rows):
        band = (0, int(top + 40 * row * scale), ink.width, int(top + 40 * (row + 1) * scale))
        box = ink.crop(band).getbbox()
        boxes.append(None if box is None else (box[0], box[1] + band[1], box[2], box[3] + band[1]))
    return boxes


@needs_pdftoppm
def test_chart_labels_drawn_as_lines_sit_where_drawing_letter_by_letter_puts_them(tmp_path):
    """Same text, same anchors and transforms: at 150 dpi each label's anchored point (left
    edge, centre or right edge) and its top and bottom land within 2 pixels of WeasyPrint's
    letter-by-letter drawing, and its width within 3% (kerning: "AV" and "Tw" close up)."""
    assert TEXT_RUNS is not None, "WeasyPrint's SVG drawing no longer dispatches text via TAGS"
    html = _chart_text_document()
    TEXT_RUNS.enabled = False
    try:
        by_letter = PdfRenderer().pdf_from_html(html)
    finally:
        TEXT_RUNS.enabled = True
    before = TEXT_RUNS.drawn
    as_lines = PdfRenderer().pdf_from_html(html)
    assert TEXT_RUNS.drawn - before == len(LABELS)
    flat = _text(as_lines).replace("\n", "")
    for label, _ in LABELS:
        assert label in flat
    [letters_png] = _pages(by_letter, tmp_path, "letters")
    [lines_png] = _pages(as_lines, tmp_path, "lines")
    letters_ink = _ink_by_row(letters_png, len(LABELS))
    lines_ink = _ink_by_row(lines_png, len(LABELS))
    for (label, extra), expected, drawn in zip(LABELS, letters_ink, lines_ink, strict=True):
        assert expected is not None, label
        assert drawn is not None, label
        anchor = {"middle": lambda box: (box[0] + box[2]) / 2, "end": lambda box: box[2]}.get(
            extra.split('text-anchor="')[-1].split('"')[0], lambda box: box[0]
        )
        assert abs(anchor(drawn) - anchor(expected)) <= 2, (label, expected, drawn)
        assert abs(drawn[1] - expected[1]) <= 2, (label, expected, drawn)
        assert abs(drawn[3] - expected[3]) <= 2, (label, expected, drawn)
        width, expected_width = drawn[2] - drawn[0], expected[2] - expected[0]
        assert abs(width - expected_width) <= 0.03 * expected_width, (label, expected, drawn)


@pytest.mark.parametrize(
    "extra",
    [
        'x="20 30 40"',
        'x="20" dx="0 2 2"',
        'x="20" rotate="10"',
        'x="20" letter-spacing="2"',
        'x="20" textLength="200"',
        'x="20" dominant-baseline="middle"',
        'x="200" direction="rtl"',
    ],
)
def test_labels_placed_letter_by_letter_are_left_to_weasyprint(extra):
    before = TEXT_RUNS.drawn
    pdf = PdfRenderer().pdf_from_html(_chart_text_document([("Placed by letter", extra)]))
    assert TEXT_RUNS.drawn == before
    assert "Placedbyletter" in _text(pdf).replace(" ", "")


def test_text_outside_charts_is_laid_out_as_before():
    before = TEXT_RUNS.drawn
    html = (
        '<html lang="en"><head><title>t</title></head><body>'
        + "<p>aaaa bbbb aaaa bbbb</p>" * 20
        + "</body></html>"
    )
    PdfRenderer().pdf_from_html(html)
    assert TEXT_RUNS.drawn == before


def _text(pdf: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
