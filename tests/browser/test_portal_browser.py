"""A quality officer in a real browser (Debian's Chromium through Playwright), end to end.

Download a template, upload a file with errors, read the error table, fix the file, commit, and
see the submission on the completeness page; and a member viewer cannot reach another member's
pages. The portal runs under waitress on loopback against a fresh migrated SQLite file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.live import CHROMIUM, CHROMIUM_ARGS, LivePortal, live_portal

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does)",
    ),
    # Playwright's sync API runs its own event loop in a greenlet; the loop and the driver's
    # pipes may be collected after the test, which Python reports as ResourceWarnings.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[LivePortal]:
    with live_portal(tmp_path) as live:
        yield live


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # The driver must not try to download browsers; Debian's Chromium is used instead.
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as playwright:
        # Generous timeouts: on two shared cores a busy CI machine starts Chromium slowly.
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=120_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


def problem_rows(page: Any) -> list[list[str]]:
    rows = page.locator("table.problems tbody tr")
    return [
        [cell.strip() for cell in rows.nth(i).locator("td").all_inner_texts()]
        for i in range(rows.count())
    ]


def upload(page: Any, submit_url: str, path: Path) -> None:
    page.goto(submit_url)
    page.select_option("#measure", "HH")
    page.set_input_files("#file", str(path))
    page.get_by_role("button", name="Upload and preview").click()
    page.wait_for_load_state()


def test_officer_submits_through_the_browser(portal: LivePortal, browser: Any, tmp_path: Path):
    world = portal.world
    year = world.this_year
    context = browser.new_context(accept_downloads=True)
    context.set_default_timeout(60_000)
    page = context.new_page()
    portal.sign_in(context, page, "officer")
    member = world.h01.id
    submit_url = f"{portal.url}/members/{member}/submit"
    page.goto(submit_url)
    assert "Submit data for Hospital H01" in page.inner_text("h1")

    # 1. The template, as a download.
    with page.expect_download() as download_info:
        page.click(f"a[href$='/members/{member}/measures/HH/template.csv']")
    download = download_info.value
    assert download.suggested_filename == "HH-template.csv"
    header = Path(download.path()).read_text(encoding="utf-8-sig").splitlines()[0]
    assert header.split(",")[:3] == ["period", "numerator", "denominator"]
    width = len(header.split(","))

    def csv_file(name: str, *rows: tuple[str, str, str]) -> Path:
        lines = [header] + [",".join([*row, *[""] * (width - 3)]) for row in rows]
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    # 2. A file with an error: the preview lists it by row and column, and offers no commit.
    bad = csv_file("hh.csv", (f"{year}-01", "45", "50"), (f"{year}-02", "60", "50"))
    upload(page, submit_url, bad)
    assert page.inner_text("#errors") == "1"
    rows = problem_rows(page)
    # A person's file name can identify, so the preview names the upload by its digest.
    assert [rows[0][0], *rows[0][2:4]] == ["error", "3", "numerator"]
    assert rows[0][1].startswith("upload-")
    assert rows[0][1].endswith(".csv")
    assert "numerator_exceeds_denominator" in rows[0][5]
    assert page.get_by_role("button", name="Commit all").count() == 0

    # 3. Fixed, previewed and committed.
    good = csv_file("hh.csv", (f"{year}-01", "45", "50"), (f"{year}-02", "40", "50"))
    upload(page, submit_url, good)
    assert page.inner_text("#errors") == "0"
    assert page.inner_text("#added") == "2"
    page.get_by_role("button", name="Commit all 2 rows").click()
    page.wait_for_load_state()
    assert "Submitted" in page.inner_text("main")

    # 4. On the completeness page.
    page.goto(f"{portal.url}/members/{member}/completeness")
    assert page.get_attribute(f"#cell-HH-{year}-01", "data-status") == "submitted"
    assert page.get_attribute(f"#cell-HH-{year}-02", "data-status") == "submitted"
    assert page.get_attribute(f"#cell-HH-{year}-03", "data-status") == "missing"
    assert page.inner_text("#count-submitted") == "2"
    assert page.inner_text("#due") == "due in 10 days"
    context.close()


def test_viewer_cannot_reach_another_members_pages(portal: LivePortal, browser: Any):
    world = portal.world
    context = browser.new_context()
    context.set_default_timeout(60_000)
    page = context.new_page()
    portal.sign_in(context, page, "viewer")
    own = page.goto(f"{portal.url}/members/{world.h01.id}/completeness")
    assert own.status == 200
    for path in ("completeness", "submit", "submissions"):
        response = page.goto(f"{portal.url}/members/{world.h02.id}/{path}")
        assert response.status in {403, 404}, path
        assert "Hospital H02" not in page.content()
    # A viewer reads but never submits, even for its own member.
    page.goto(f"{portal.url}/members/{world.h01.id}/submit")
    assert page.locator("#file").count() == 0
    context.close()
