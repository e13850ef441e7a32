"""Safe rendering: only bundled assets are fetched, hostile text stays text, output is tagged.

Two walls are tested separately. Autoescaping: hostile names and notes from the database reach
the PDF as visible text and the fetcher is never asked for anything but the stylesheet and our
own chart images. The fetcher: even markup that bypassed the templates (raw HTML here) cannot
read a file or call out: the URL is recorded and rendering stops.
"""

from __future__ import annotations

import io
import re
import socket

import pytest
from pypdf import PdfReader

from qicollab import REPORTS_DIR
from qicollab.db import create_engine_from_settings, get_session_factory
from qicollab.reporting.charts.common import data_uri
from qicollab.reporting.models import ReportKind
from qicollab.reporting.pdf import (
    BundledAssetFetcher,
    ForbiddenResourceError,
    PdfRenderer,
    report_environment,
)
from qicollab.reporting.reports import TEMPLATES, ReportSpec, report_context
from qicollab.reporting.results import load_run
from tests.reporting.world import HOSTILE_MEASURE, HOSTILE_MEMBER, HOSTILE_NOTE

HOSTILE_HTML = """<!doctype html><html lang="en"><head><title>x</title>
<link rel="stylesheet" href="http://example.com/x.css">
<style>@import url(file:///etc/passwd); body { background: url(file:///etc/hostname); }</style>
</head><body><p>text</p><img src="file:///etc/passwd" alt="p"></body></html>"""


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection fails the test: rendering must never reach the network."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _fetch(url: str) -> tuple[BundledAssetFetcher, Exception | None]:
    fetcher = BundledAssetFetcher()
    try:
        fetcher.fetch(url)
    except ForbiddenResourceError as error:
        return fetcher, error
    return fetcher, None


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        (REPORTS_DIR / ".." / "pyproject.toml").as_uri(),
        "http://example.com/x.css",
        "https://example.com/x.png",
        "ftp://example.com/x",
        "file://remote-host/share/x.css",
        "data:text/html,<script>alert(1)</script>",
        (REPORTS_DIR / "member.jinja2").as_uri(),
    ],
)
def test_the_fetcher_refuses_anything_but_bundled_assets(url):
    fetcher, error = _fetch(url)
    assert error is not None
    assert fetcher.refused == [url]


def test_the_fetcher_serves_the_bundled_stylesheet():
    fetcher = BundledAssetFetcher()
    response = fetcher.fetch((REPORTS_DIR / "report.css").as_uri())
    assert b"@page" in response.read()


def test_the_fetcher_serves_embedded_svg_images():
    fetcher = BundledAssetFetcher()
    response = fetcher.fetch("data:image/svg+xml;base64,PHN2Zy8+")
    assert response.read() == b"<svg/>"


def test_embedded_images_are_held_by_digest_and_served_from_memory():
    chart = data_uri("<svg xmlns='http://www.w3.org/2000/svg'/>")
    icon = data_uri("<svg xmlns='http://www.w3.org/2000/svg'><rect/></svg>")
    html = f'<img src="{chart}"><img src="{icon}"><img src="{chart}">'
    fetcher = BundledAssetFetcher()
    held = fetcher.hold_images(html)
    names = re.findall(r'src="([^"]+)"', held)
    assert len(names) == 3
    assert names[0] == names[2] != names[1]  # equal images, equal names (the image cache)
    assert all(name.startswith("embedded:image-svg+xml-") for name in names)
    assert "base64" not in held
    assert (
        fetcher.fetch(names[1]).read() == b"<svg xmlns='http://www.w3.org/2000/svg'><rect/></svg>"
    )
    assert fetcher.served == [names[1][:40]]


def test_only_images_held_for_this_document_are_served():
    html = f'<img src="{data_uri("<svg/>")}">'
    [name] = re.findall(r'src="([^"]+)"', BundledAssetFetcher().hold_images(html))
    with pytest.raises(ForbiddenResourceError):
        BundledAssetFetcher().fetch(name)  # another document's fetcher does not hold it
    with pytest.raises(ForbiddenResourceError):
        BundledAssetFetcher().fetch("embedded:image-svg+xml-00000000000000000000000000000000")


def test_a_malformed_embedded_image_is_left_in_place_and_refused():
    html = '<img src="data:image/svg+xml;base64,PHN2Zy8=+">'
    fetcher = BundledAssetFetcher()
    assert fetcher.hold_images(html) == html
    with pytest.raises(ForbiddenResourceError):
        fetcher.fetch("data:image/svg+xml;base64,PHN2Zy8=+")


def test_raw_hostile_markup_stops_the_render_and_fetches_nothing(no_network):
    fetcher = BundledAssetFetcher()
    with pytest.raises(ForbiddenResourceError):
        PdfRenderer().pdf_from_html(HOSTILE_HTML, fetcher=fetcher)
    assert fetcher.refused
    assert fetcher.served == []


def test_the_report_templates_are_autoescaped():
    html = report_environment().from_string("<p>{{ name }}</p>").render(name=HOSTILE_MEMBER)
    assert "<img" not in html
    assert "&lt;img" in html


@pytest.fixture(scope="module")
def hostile_reports(hostile):
    settings, world = hostile
    engine = create_engine_from_settings(settings)
    out = {}
    with get_session_factory(engine)() as session:
        run = load_run(session, world.run_id)
        renderer = PdfRenderer()
        for spec in (
            ReportSpec(ReportKind.MEMBER, world.member),
            ReportSpec(ReportKind.COLLABORATIVE),
        ):
            html = renderer.html(TEMPLATES[spec.kind], report_context(session, run, spec))
            fetcher = BundledAssetFetcher()
            pdf = renderer.pdf_from_html(html, fetcher=fetcher)
            out[spec.kind] = (html, pdf, fetcher)
    engine.dispose()
    return world, out


@pytest.mark.parametrize("kind", [ReportKind.MEMBER, ReportKind.COLLABORATIVE])
def test_hostile_names_fetch_nothing(hostile_reports, kind, no_network):
    _world, out = hostile_reports
    _html, _pdf, fetcher = out[kind]
    assert fetcher.refused == []


@pytest.mark.parametrize("kind", [ReportKind.MEMBER, ReportKind.COLLABORATIVE])
def test_hostile_names_only_chart_images_are_served(hostile_reports, kind):
    """The stylesheet comes parsed with the renderer, so a report fetches nothing but the
    images its own chart code embedded."""
    _world, out = hostile_reports
    _html, _pdf, fetcher = out[kind]
    assert fetcher.served
    assert {url.split(":")[0] for url in fetcher.served} == {"embedded"}


@pytest.mark.parametrize("kind", [ReportKind.MEMBER, ReportKind.COLLABORATIVE])
def test_hostile_markup_is_escaped_in_the_html(hostile_reports, kind):
    _world, out = hostile_reports
    html, _pdf, _fetcher = out[kind]
    for needle in ('<img src="file:', '<link href="http://example.com', '<img src="http'):
        assert needle not in html


def test_hostile_text_is_printed_as_text(hostile_reports):
    _world, out = hostile_reports
    _html, pdf, _fetcher = out[ReportKind.COLLABORATIVE]
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "St Evil" in text
    assert "file:///etc/passwd" in text


@pytest.mark.parametrize("kind", [ReportKind.MEMBER, ReportKind.COLLABORATIVE])
def test_no_file_content_or_remote_link_is_embedded(hostile_reports, kind):
    _world, out = hostile_reports
    _html, pdf, _fetcher = out[kind]
    reader = PdfReader(io.BytesIO(pdf))
    text = " ".join(page.extract_text() for page in reader.pages)
    uris = [
        annotation.get_object().get("/A", {}).get("/URI")
        for page in reader.pages
        for annotation in page.get("/Annots") or []
    ]
    assert "root:x:0:0" not in text
    assert not any(uri and "example.com" in uri for uri in uris)


def test_the_member_report_shows_the_hostile_measure_and_note_as_text(hostile_reports):
    _world, out = hostile_reports
    html, _pdf, _fetcher = out[ReportKind.MEMBER]
    assert HOSTILE_MEASURE.split("<")[0] in html
    assert "url(file:///etc/shadow)" in html
    assert HOSTILE_NOTE not in html  # only in escaped form


def test_reports_are_tagged_pdf_ua(rendered):
    reader = rendered.member.reader
    root = reader.trailer["/Root"]
    assert root["/MarkInfo"]["/Marked"]
    assert "/StructTreeRoot" in root


def test_reports_declare_language_and_title(rendered):
    reader = rendered.member.reader
    root = reader.trailer["/Root"]
    assert root["/Lang"] == "en"
    assert "Benchmark report" in reader.metadata.title
