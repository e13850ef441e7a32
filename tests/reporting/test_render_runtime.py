"""How reports are rendered, not what they say: the garbage collector is held off while a
report is laid out (qicollab.reporting.pdf.collector_paused) and comes back afterwards; the
print stylesheet is parsed once per process and styles every report; a worker says which
library subsets its fonts."""

from __future__ import annotations

import gc
import io
import logging

import pytest
import weasyprint.pdf.fonts
from pypdf import PdfReader

from qicollab.reporting.pdf import (
    HARFBUZZ_SUBSET_PACKAGE,
    BundledAssetFetcher,
    ForbiddenResourceError,
    PdfRenderer,
    collector_paused,
    font_subsetter,
    report_stylesheet,
    warm_up,
)

HTML = (
    '<html lang="en"><head><title>t</title><link rel="stylesheet" href="report.css"></head>'
    "<body><p>text</p></body></html>"
)


class _Watching(BundledAssetFetcher):
    """Notes whether the collector was on each time WeasyPrint fetched something."""

    def __init__(self) -> None:
        super().__init__()
        self.collector_on: list[bool] = []

    def fetch(self, url, headers=None):
        self.collector_on.append(gc.isenabled())
        return super().fetch(url, headers)


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_collector_is_off_while_a_report_is_laid_out_and_on_afterwards(collector_on):
    fetcher = _Watching()
    pdf = PdfRenderer().pdf_from_html(HTML, fetcher=fetcher)
    assert pdf.startswith(b"%PDF")
    assert fetcher.collector_on == [False]  # report.css, fetched mid-render
    assert gc.isenabled()


def test_a_failed_render_turns_the_collector_back_on(collector_on):
    hostile = HTML.replace("report.css", "file:///etc/passwd")
    with pytest.raises(ForbiddenResourceError):
        PdfRenderer().pdf_from_html(hostile)
    assert gc.isenabled()


def test_a_caller_that_turned_the_collector_off_keeps_it_off(collector_on):
    gc.disable()
    try:
        PdfRenderer().pdf_from_html(HTML)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_renders_keep_it_off_until_the_last_one_ends(collector_on):
    outer = collector_paused()
    inner = collector_paused()
    outer.__enter__()
    inner.__enter__()
    outer.__exit__(None, None, None)  # the first render ends while another one runs
    assert not gc.isenabled()
    inner.__exit__(None, None, None)
    assert gc.isenabled()


UNLINKED = (
    '<html lang="en"><head><title>t</title></head>'
    '<body><div class="running running-title">Styled report</div><p>text</p></body></html>'
)


def test_the_stylesheet_is_parsed_once_and_styles_a_document_that_does_not_link_it():
    first, second = PdfRenderer(), PdfRenderer()
    assert report_stylesheet(first.root) is report_stylesheet(second.root)
    fetcher = BundledAssetFetcher()
    page = PdfReader(io.BytesIO(second.pdf_from_html(UNLINKED, fetcher=fetcher))).pages[0]
    assert fetcher.served == []  # nothing fetched: the parsed sheet came with the renderer
    # report.css's @page rule: A4, "Page X of Y" in the footer, the running title on top
    # (the first page has no header, so this one-page document shows only the footer).
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)
    assert "Page 1 of 1" in page.extract_text()
    unstyled = weasyprint.HTML(string=UNLINKED).write_pdf()
    assert "Page 1 of 1" not in PdfReader(io.BytesIO(unstyled)).pages[0].extract_text()


class _HarfBuzz:
    """Stands in for WeasyPrint's handle on libharfbuzz, at a chosen version."""

    def __init__(self, at_least_4_1: bool) -> None:
        self.at_least_4_1 = at_least_4_1

    def hb_version_atleast(self, major: int, minor: int, micro: int) -> bool:
        assert (major, minor, micro) == (4, 1, 0)  # what WeasyPrint's subsetter needs
        return self.at_least_4_1


@pytest.mark.parametrize(
    ("subset_library", "at_least_4_1", "expected"),
    [(object(), True, "harfbuzz"), (None, True, "fonttools"), (object(), False, "fonttools")],
)
def test_the_font_subsetter_is_named_and_the_slow_one_is_warned_about(
    monkeypatch, caplog, subset_library, at_least_4_1, expected
):
    monkeypatch.setattr(weasyprint.pdf.fonts, "harfbuzz_subset", subset_library)
    monkeypatch.setattr(weasyprint.pdf.fonts, "harfbuzz", _HarfBuzz(at_least_4_1))
    with caplog.at_level(logging.WARNING, logger="qicollab.reporting.pdf"):
        assert font_subsetter() == expected
    warned = [r.getMessage() for r in caplog.records if r.name == "qicollab.reporting.pdf"]
    if expected == "harfbuzz":
        assert warned == []
    else:
        assert len(warned) == 1
        assert HARFBUZZ_SUBSET_PACKAGE in warned[0]


def test_warming_up_a_worker_says_which_font_subsetter_it_has(monkeypatch, caplog):
    monkeypatch.setattr(weasyprint.pdf.fonts, "harfbuzz_subset", None)
    with caplog.at_level(logging.WARNING, logger="qicollab.reporting.pdf"):
        warm_up()  # the fallback still renders
    assert any(HARFBUZZ_SUBSET_PACKAGE in r.getMessage() for r in caplog.records)
