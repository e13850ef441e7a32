"""Safe PDF rendering: autoescaped report templates, a fetcher that serves only bundled assets,
tagged PDF/UA output (the bytes are stored by :mod:`qicollab.storage`).

A report mixes our templates with text that members and coordinators typed (member names,
measure titles, annotation notes). Autoescaping keeps that text inert; the URL fetcher is the
second wall: WeasyPrint asks it for every stylesheet, image and font a document names, and it
answers only for files inside ``reports/`` and for the ``data:`` images our own chart code
embeds (held in memory while the document renders). Anything else (``file:`` outside the
folder, ``http:``, ``ftp:``) is recorded and refused with a fatal error, so the render stops
instead of quietly leaking a file or calling out.

Importing this module imports WeasyPrint (most of a second); the portal imports it only to
render, and report workers import it once in their initializer.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gc
import hashlib
import logging
import mimetypes
import re
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes, urlsplit
from urllib.request import url2pathname

import jinja2
import pydyf
import weasyprint
import weasyprint.pdf.fonts
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

from qicollab import REPORTS_DIR
from qicollab.reporting import formatting
from qicollab.reporting.charts.common import data_uri
from qicollab.reporting.render_cache import DrawingCache, draw_text_in_runs

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)

#: Asset types the fetcher serves from ``reports/``; anything else is refused.
ASSET_TYPES: dict[str, str] = {
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}
#: ``data:`` images our chart code embeds; other data URLs are refused.
DATA_TYPES = frozenset({"image/svg+xml", "image/png"})
#: An image the templates embed, as ``<img src>`` (charts, icons): type and base64 payload.
EMBEDDED_IMAGE = re.compile(r'src="data:(image/svg\+xml|image/png);base64,([A-Za-z0-9+/=]+)"')
#: The scheme of an embedded image held by the fetcher (``embedded:<digest>``).
HELD_SCHEME = "embedded"
#: zlib level for the PDF's streams (the operators are the same at any level). pydyf uses 9.
#: On the 33-page cycle report (3.75 MB of streams) 6 took 0.20 s of CPU for 1.03 MB and 4
#: takes 0.05 s for 1.08 MB: paired, the whole PDF costs 6% less CPU for a 4% larger file.
STREAM_COMPRESSION = 4
#: PDF/UA-1: tagged structure, document title and language in the metadata (WeasyPrint 70).
PDF_VARIANT = "pdf/ua-1"
#: The system library WeasyPrint subsets fonts with (Debian's name; libharfbuzz-subset.so.0).
HARFBUZZ_SUBSET_PACKAGE = "libharfbuzz-subset0"
#: Chart labels drawn as one line each, not letter by letter (render_cache.TextRuns).
TEXT_RUNS = draw_text_in_runs()


class _CollectorPause:
    """Python's cyclic garbage collector held off while reports are laid out.

    A warm worker holds ~400,000 tracked objects (WeasyPrint, SQLAlchemy, the run's data) and
    laying out a report allocates millions more: the collector's passes over them took 0.25-0.4 s
    of a 1.5 s member report. Reference counting still frees almost everything a report drops;
    what is left in cycles is collected once, when the last render in the process finishes.
    Nested and concurrent renders (the portal's threads) share one pause.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._was_enabled = False

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._was_enabled:
                    gc.enable()


#: Used around every report render (:meth:`PdfRenderer.render`, :meth:`~PdfRenderer.pdf_from_html`).
collector_paused = _CollectorPause()


class ForbiddenResourceError(FatalURLFetchingError):
    """A document asked for something other than a bundled asset; rendering stops."""


class BundledAssetFetcher(URLFetcher):
    """Serves files under ``root`` and our own ``data:`` images (held under a digest by
    :meth:`hold_images`); refuses everything else.

    ``served`` and ``refused`` keep every URL asked for, so tests (and the logs) can show that a
    hostile document fetched nothing.
    """

    def __init__(self, root: Path = REPORTS_DIR) -> None:
        super().__init__(allowed_protocols=("file", "data", HELD_SCHEME), allow_redirects=False)
        self.root = root.resolve()
        self.served: list[str] = []
        self.refused: list[str] = []
        self._held: dict[str, tuple[str, bytes]] = {}

    def hold_images(self, html: str) -> str:
        """The HTML with each embedded ``<img>`` named by its digest, its bytes held here.

        A 20-measure member report carries ~3 MB of base64 charts, and WeasyPrint's HTML
        parser reads every character of them (~0.1 s of the report's CPU); a short name parses
        at once. Equal images get equal names, so WeasyPrint's image cache (keyed by URL)
        still loads a repeated icon once per document. A payload that is not valid base64
        stays in place and is refused when fetched, as before.
        """

        def hold(match: re.Match[str]) -> str:
            mime, payload = match.groups()
            digest = hashlib.blake2b(payload.encode("ascii"), digest_size=16).hexdigest()
            name = f"{HELD_SCHEME}:{mime.replace('/', '-')}-{digest}"
            if name not in self._held:
                try:
                    self._held[name] = (mime, base64.b64decode(payload, validate=True))
                except binascii.Error:
                    return match.group(0)
            return f'src="{name}"'

        return EMBEDDED_IMAGE.sub(hold, html)

    def _refuse(self, url: str, reason: str) -> ForbiddenResourceError:
        self.refused.append(url)
        return ForbiddenResourceError(f"refused to fetch {url[:200]!r}: {reason}")

    def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> Any:
        """The response for a bundled asset or an embedded image; raises for anything else."""
        del headers  # never forwarded anywhere
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == HELD_SCHEME:
            held = self._held.get(url)
            if held is None:
                raise self._refuse(url, "no such embedded image in this document")
            self.served.append(url[:40])
            return URLFetcherResponse(url, held[1], {"Content-Type": held[0]})
        if scheme == "data":
            mime, body = self._decode_data_url(url)
            self.served.append(url[:40])
            return URLFetcherResponse(url, body, {"Content-Type": mime})
        if scheme != "file":
            raise self._refuse(url, "only bundled report assets are served")
        parts = urlsplit(url)
        if parts.netloc not in {"", "localhost"}:
            raise self._refuse(url, "remote file URL")
        path = Path(url2pathname(parts.path)).resolve()
        if not path.is_relative_to(self.root):
            raise self._refuse(url, "outside the bundled report assets")
        mime = ASSET_TYPES.get(path.suffix.lower())
        if mime is None or not path.is_file():
            raise self._refuse(url, "not a bundled asset")
        self.served.append(url)
        return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": mime})

    def _decode_data_url(self, url: str) -> tuple[str, bytes]:
        header, sep, payload = url[5:].partition(",")
        if not sep:
            raise self._refuse(url, "malformed data URL")
        params = header.split(";")
        mime = params[0].strip().lower()
        if mime not in DATA_TYPES:
            raise self._refuse(url, f"data URL of type {mime or 'text/plain'}")
        try:
            if "base64" in params[1:]:
                body = base64.b64decode(payload, validate=True)
            else:
                body = unquote_to_bytes(payload)
        except binascii.Error:
            raise self._refuse(url, "malformed base64") from None
        return mime, body


def report_environment(root: Path = REPORTS_DIR) -> jinja2.Environment:
    """Jinja2 for printed reports: every value autoescaped, undefined names are errors."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    formatting.install(environment)
    environment.filters["data_uri"] = data_uri
    return environment


#: The print stylesheet every report is laid out with, in the templates' folder.
STYLESHEET = "report.css"


@functools.cache
def report_stylesheet(root: Path) -> weasyprint.CSS:
    """The folder's print stylesheet, parsed once per process.

    The templates do not link it: WeasyPrint would fetch and parse a linked sheet again for
    every document (~6% of a 33-page member report's CPU). It is given to each render as a
    user stylesheet instead. Nothing else styles a report but the templates' ``style``
    attributes, which outrank a user sheet as they outrank any selector, so the cascade is
    the same.
    """
    return weasyprint.CSS(filename=str(root / STYLESHEET), url_fetcher=BundledAssetFetcher(root))


@dataclass
class PdfRenderer:
    """Templates to tagged PDF bytes; one per process, reused across reports (warm worker),
    so the chart layers every report of a run shares are drawn once (:mod:`.render_cache`)."""

    root: Path = REPORTS_DIR
    environment: jinja2.Environment = field(init=False)
    drawings: DrawingCache = field(default_factory=DrawingCache)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.environment = report_environment(self.root)

    def html(self, template: str, context: Mapping[str, Any]) -> str:
        """The report as HTML (also what tests and the visual check read)."""
        return self.environment.get_template(template).render(**context)

    def pdf_from_html(self, html: str, *, fetcher: BundledAssetFetcher | None = None) -> bytes:
        """Render HTML to PDF/UA-1 with only bundled assets reachable."""
        fetcher = fetcher or BundledAssetFetcher(self.root)
        with collector_paused():
            document = weasyprint.HTML(
                string=fetcher.hold_images(html),
                base_url=self.root.as_uri() + "/",
                url_fetcher=fetcher,
            )
            return document.write_pdf(
                stylesheets=[report_stylesheet(self.root)],
                pdf_variant=PDF_VARIANT,
                uncompressed_pdf=False,
                cache=self.drawings.image_cache(),
                finisher=compress_streams,
            )

    def render(self, template: str, context: Mapping[str, Any]) -> bytes:
        """Template and context to PDF bytes."""
        with collector_paused():
            return self.pdf_from_html(self.html(template, context))


def compress_streams(_document: Any, pdf: pydyf.PDF) -> None:
    """Deflate the PDF's streams at :data:`STREAM_COMPRESSION` before pydyf writes them (a
    WeasyPrint finisher): each becomes its deflated bytes with ``/Filter /FlateDecode``, as
    pydyf would write it at its own level."""
    for stream in pdf.objects:
        if isinstance(stream, pydyf.Stream) and stream.compress and "Filter" not in stream.extra:
            raw = b"\n".join(pydyf._to_bytes(item) for item in stream.stream)
            stream.stream = [zlib.compress(raw, STREAM_COMPRESSION)]
            stream.extra["Filter"] = "/FlateDecode"
            stream.compress = False


def font_subsetter() -> str:
    """Which library cuts each report's fonts down to the letters it uses: ``"harfbuzz"``
    (WeasyPrint's choice, in C) or ``"fonttools"`` (its fallback in Python, which took ~0.17 s
    more of a 6-measure member report's 1.2 s, same letters and pixels). The fallback is used,
    with a warning naming the package to install, when the system lacks HarfBuzz's subsetter."""
    harfbuzz = weasyprint.pdf.fonts.harfbuzz_subset
    if harfbuzz is not None and weasyprint.pdf.fonts.harfbuzz.hb_version_atleast(4, 1, 0):
        return "harfbuzz"
    log.warning(
        "fonts are subset with fontTools, which costs ~15%% more CPU per report: install %s "
        "(HarfBuzz >= 4.1) on this machine",
        HARFBUZZ_SUBSET_PACKAGE,
    )
    return "fonttools"


def warm_up() -> None:
    """Import WeasyPrint and lay out a tiny page so the first real report is not the slow one;
    say once if fonts will be subset the slow way."""
    font_subsetter()
    PdfRenderer().pdf_from_html(
        '<html lang="en"><head><title>warm-up</title></head><body><p>.</p></body></html>'
    )


def guess_type(path: Path) -> str:
    """Content type for a stored file (PDF reports, exports)."""
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"
