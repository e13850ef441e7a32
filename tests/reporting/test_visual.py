"""The visual check: report pages as PNG images in tests/_artifacts/reports/ for a reviewer.

pdftoppm (poppler-utils) draws the pages; CI installs it. The test checks that every page was
drawn and is not blank; the images are for people to look at (layout, greyscale legibility).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "_artifacts" / "reports"
PDFTOPPM = shutil.which("pdftoppm")

pytestmark = pytest.mark.skipif(PDFTOPPM is None, reason="pdftoppm (poppler-utils) not installed")


def _draw(name: str, pdf: bytes, *, grey: bool = False) -> list[Path]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    source = ARTIFACTS / f"{name}.pdf"
    source.write_bytes(pdf)
    for old in ARTIFACTS.glob(f"{name}-*.png"):
        old.unlink()
    command = [PDFTOPPM, "-r", "60", "-png"]
    if grey:
        command.append("-gray")
    subprocess.run([*command, str(source), str(ARTIFACTS / name)], check=True, timeout=120)
    return sorted(ARTIFACTS.glob(f"{name}-*.png"))


def _not_blank(path: Path) -> bool:
    from PIL import Image

    with Image.open(path) as image:
        low, high = image.convert("L").getextrema()
    return high - low > 100


@pytest.mark.parametrize(
    ("name", "attribute", "grey"),
    [
        ("member", "member", False),
        ("member-greyscale", "member", True),
        ("collaborative", "collaborative", False),
        ("blinded-summary", "summary", False),
    ],
)
def test_report_pages_are_drawn_for_review(rendered, name, attribute, grey):
    document = getattr(rendered, attribute)
    pages = _draw(name, document.pdf, grey=grey)
    assert len(pages) == len(document.reader.pages)
    assert all(_not_blank(page) for page in pages)
