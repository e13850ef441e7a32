"""A coordinator runs a whole learning cycle in a real browser (Debian's Chromium, Playwright).

The portal runs under waitress on loopback with the embedded job consumer beside it and mail
going to a real SMTP server on loopback (aiosmtpd): return a submission (the officer receives
the e-mail), close the window, see completeness, lock with a reason, compute the benchmark
run, render the reports, publish. An officer then reads the coloured completeness matrix and
downloads it.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from qicollab.db import get_session_factory
from qicollab.jobs.embedded import start_embedded
from qicollab.submissions.models import SubmissionSource
from qicollab.submissions.services import SubmissionService
from tests.browser.live import CHROMIUM, CHROMIUM_ARGS, LivePortal, live_portal
from tests.cycles.test_notifications import Inbox, free_port

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    handler = Inbox()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture
def portal(tmp_path: Path, inbox: Inbox) -> Iterator[LivePortal]:
    mail = {"mail.mailer": "smtp", "mail.host": "127.0.0.1", "mail.port": str(inbox.port)}
    with live_portal(tmp_path, **mail) as live:
        consumer = start_embedded(live.settings, engine=live.engine)
        try:
            yield live
        finally:
            if consumer is not None:
                consumer.stop()


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


def seed(portal: LivePortal) -> None:
    """Both hospitals send this year's first six months of HH through the real pipeline."""
    world, year = portal.world, portal.world.this_year
    session = get_session_factory(portal.engine)()
    try:
        service = SubmissionService(session)
        for member, base in ((world.h01, 40), (world.h02, 35)):
            rows = [
                {"period": f"{year}-{m:02d}", "numerator": str(base + m % 3), "denominator": "50"}
                for m in range(1, 7)
            ]
            service.submit_rows(
                member=session.merge(member),
                measure=session.merge(world.measures["HH"]),
                rows=rows,
                source=SubmissionSource.FORM,
                actor=session.merge(world.users["officer"]),
            )
        session.commit()
    finally:
        session.close()


def act(page: Any, action: str, reason: str | None = None) -> str:
    """Open an action's confirmation, read its consequences, fill the reason, confirm."""
    box = page.locator(f"#action-{action}")
    box.locator("summary").click()
    said = box.locator("ul.consequences").inner_text()
    if reason is not None:
        box.locator("textarea[name=reason]").fill(reason)
    box.get_by_role("button", name="Confirm").click()
    page.wait_for_load_state()
    return said


def wait_for_stage(page: Any, url: str, stage: str, timeout: float = 300) -> None:
    """Reload the cycle page until ``stage`` is done (the consumer runs the job meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.goto(url)
        if "stage-done" in (page.locator(f'li[data-stage="{stage}"]').get_attribute("class") or ""):
            return
        failed = page.locator(".job.error")
        assert failed.count() == 0, failed.first.inner_text()
        time.sleep(2)
    raise AssertionError(f"{stage} not done after {timeout} s")


def test_coordinator_runs_a_whole_cycle_in_the_browser(portal, browser, inbox):
    seed(portal)
    world, year = portal.world, portal.world.this_year
    context = browser.new_context(accept_downloads=True)
    context.set_default_timeout(60_000)
    page = context.new_page()
    portal.sign_in(context, page, "coordinator")

    # Return one submission from the review queue; its officer gets the reason by e-mail.
    page.goto(f"{portal.url}/review?cycle=C{year}")
    first = page.locator("#queue tbody tr").first
    first.locator("input[name=reason]").fill("March repeats February exactly")
    first.get_by_role("button", name="Return").click()
    page.wait_for_load_state()
    assert page.locator("#done").inner_text() == "1 submission returned."
    deadline = time.monotonic() + 30
    while not inbox.messages and time.monotonic() < deadline:
        time.sleep(0.2)
    (mail,) = inbox.messages
    assert mail["X-Envelope-To"] == "officer@wf.example"
    assert "Reason: March repeats February exactly" in mail.get_content()

    # The coordinator's completeness matrix, coloured by what is outstanding.
    page.goto(f"{portal.url}/completeness?cycle=C{year}")
    cell = page.locator('#member-H01 td[data-measure="HH"]')
    assert cell.get_attribute("data-status") == "returned"
    colours = {
        status: page.locator(f"ul.legend li.st-{status}").evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        for status in ("missing", "draft", "submitted", "returned", "accepted")
    }
    assert len(set(colours.values())) == 5
    assert cell.evaluate("e => getComputedStyle(e).backgroundColor") == colours["returned"]

    cycle_url = f"{portal.url}/cycles/C{year}"
    page.goto(cycle_url)
    said = act(page, "close")
    assert "cells are missing" in said
    assert page.locator("#status").inner_text() == "closed"
    said = act(page, "lock", reason="benchmark HH now; CLABSI joins next cycle")
    assert "1 submission returned and not resubmitted." in said
    assert "Locking freezes the data" in said
    assert page.locator("#status").inner_text() == "locked"
    assert "CLABSI joins next cycle" in page.locator("#lock-reason").inner_text()

    act(page, "compute")
    assert page.locator(".job").count() == 1
    wait_for_stage(page, cycle_url, "computed")
    act(page, "render")
    wait_for_stage(page, cycle_url, "reports rendered")
    said = act(page, "publish")
    assert page.locator("#status").inner_text() == "published"
    stages = page.locator("ol.pipeline li")
    assert [stages.nth(i).get_attribute("class") for i in range(stages.count())] == [
        "stage stage-done"
    ] * 6
    deadline = time.monotonic() + 30
    while len(inbox.messages) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    published = [m for m in inbox.messages if m["Subject"].startswith("Results published")]
    assert {m["X-Envelope-To"] for m in published} == {
        "officer@wf.example",
        "viewer@wf.example",
        "other.officer@wf.example",
        "other.viewer@wf.example",
    }

    # The officer's matrix: measures x periods in colour, and its CSV.
    officer = browser.new_context(accept_downloads=True)
    officer.set_default_timeout(60_000)
    officer_page = officer.new_page()
    portal.sign_in(officer, officer_page, "officer")
    officer_page.goto(f"{portal.url}/members/{world.h01.id}/completeness?cycle=C{year}")
    accepted = officer_page.locator(f"#cell-HH-{year}-02")
    missing = officer_page.locator(f"#cell-CLABSI-{year}-01")
    assert accepted.get_attribute("data-status") in {"submitted", "accepted"}
    assert missing.get_attribute("data-status") == "missing"
    background = "e => getComputedStyle(e).backgroundColor"
    assert accepted.evaluate(background) != missing.evaluate(background)
    with officer_page.expect_download() as download:
        officer_page.locator("#export").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {row["member"] for row in rows} == {"H01"}
    assert {row["period"] for row in rows if row["measure"] == "HH"} >= {f"{year}-01"}
    officer.close()
    context.close()
