"""The data entry grid in a real browser (Debian's Chromium through Playwright).

A quality officer types a month's counts, moves with the keyboard, sees the row turn "saved"
when the cursor leaves it, sees a contradiction marked invalid (and not saved), finds the draft
loaded again after a reload, and submits every changed period with one button.
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

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=120_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


def cell(page: Any, period: str, field: str) -> Any:
    return page.locator(f'input[name="cell.{period}.{field}"]')


def state(page: Any, period: str, field: str) -> str:
    return cell(page, period, field).evaluate("input => input.parentNode.dataset.state")


def focused(page: Any) -> str:
    return page.evaluate("() => document.activeElement.name")


def test_officer_enters_values_in_the_grid(portal: LivePortal, browser: Any):
    world = portal.world
    context = browser.new_context()
    context.set_default_timeout(60_000)
    page = context.new_page()
    portal.sign_in(context, page, "officer")
    grid_url = f"{portal.url}/members/{world.h01.id}/measures/HH/form"
    page.goto(grid_url)
    open_rows = page.locator("tr[data-period]:not(.locked)")
    assert open_rows.count() >= 2
    first = open_rows.nth(0).get_attribute("data-period")
    second = open_rows.nth(1).get_attribute("data-period")
    assert first > second  # newest first

    # Type a row with the keyboard: Tab across, Enter down to the next period.
    cell(page, first, "numerator").click()
    page.keyboard.type("45")
    page.keyboard.press("Tab")
    page.keyboard.type("50")
    page.keyboard.press("Enter")
    assert focused(page) == f"cell.{second}.denominator"
    # Leaving the row saved it as a draft: the cells turn "saved" and the status says so.
    page.wait_for_function(
        "name => document.getElementsByName(name)[0].parentNode.dataset.state === 'saved'",
        arg=f"cell.{first}.numerator",
    )
    assert state(page, first, "denominator") == "saved"
    assert "draft saved" in page.inner_text(f"#status-{first}")
    assert page.inner_text(f"#shown-{first}") == "0.90"  # 45 of 50; this HH has no % unit

    # Arrow keys: left at the start of the text, up and down between periods.
    page.keyboard.press("Home")
    page.keyboard.press("ArrowLeft")
    assert focused(page) == f"cell.{second}.numerator"
    page.keyboard.press("ArrowUp")
    assert focused(page) == f"cell.{first}.numerator"
    page.keyboard.press("ArrowDown")

    # A numerator above the denominator is marked invalid and not saved.
    page.keyboard.type("60")
    page.keyboard.press("ArrowRight")
    assert focused(page) == f"cell.{second}.denominator"
    page.keyboard.type("50")
    page.keyboard.press("ArrowUp")  # leave the row
    page.wait_for_function(
        "name => document.getElementsByName(name)[0].parentNode.dataset.state === 'invalid'",
        arg=f"cell.{second}.numerator",
    )
    assert cell(page, second, "numerator").get_attribute("aria-invalid") == "true"
    status = page.inner_text(f"#status-{second}")
    assert "not saved" in status
    assert "larger than denominator" in status

    # After a reload the saved draft is loaded; the invalid row was never stored.
    page.reload()
    assert cell(page, first, "numerator").input_value() == "45"
    assert cell(page, first, "denominator").input_value() == "50"
    assert state(page, first, "numerator") == "saved"
    assert cell(page, second, "numerator").input_value() == ""

    # Fix the second row and submit both periods with one button.
    cell(page, second, "numerator").fill("40")
    cell(page, second, "denominator").fill("50")
    page.get_by_role("button", name="Submit", exact=True).click()
    page.wait_for_load_state()
    assert "Submitted (2 periods)" in page.inner_text("main")
    for period in (first, second):
        assert state(page, period, "numerator") == "saved"
        assert "v1 submitted" in page.inner_text(f"#status-{period}")
    context.close()
