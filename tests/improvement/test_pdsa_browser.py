"""An officer in a real browser (Debian's Chromium through Playwright) records a PDSA cycle
linked to a measure, sees it marked on that measure's control chart, and finds it in the team's
benchmark report (rendered as the render job does, downloaded through the portal)."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
import waitress
from pypdf import PdfReader

from qicollab.accounts.models import User
from qicollab.accounts.passwords import hash_password
from qicollab.db import create_engine_from_settings, get_session_factory
from qicollab.improvement.models import PdsaCycle
from qicollab.migrations import upgrade
from qicollab.reporting.models import ReportKind
from qicollab.reporting.rendering import ReportRenderer
from tests.browser.live import CHROMIUM, CHROMIUM_ARGS, CookieIdentity
from tests.cycles.world import PASSWORD, make_app
from tests.reporting.world import build_world

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


def test_officer_records_a_pdsa_and_sees_it_on_the_chart_and_in_the_report(tmp_path):
    from playwright.sync_api import sync_playwright

    settings = {
        "sqlalchemy.url": f"sqlite:///{tmp_path / 'portal.sqlite'}",
        "qicollab.storage": str(tmp_path / "storage"),
        "qicollab.secret": "browser-test-secret",
        "mail.mailer": "console",
    }
    engine = create_engine_from_settings(settings)
    upgrade(engine)
    factory = get_session_factory(engine)
    with factory() as session:
        world = build_world(session)
        officer = session.get(User, world.users["officer"])
        officer.password_hash = hash_password(PASSWORD)
        email = officer.email
        session.commit()
    member, clabsi = world.member, world.measure_ids["CLABSI"]
    app = make_app(settings, engine)
    test_login = bool(app.registry.get("qicollab.test_loader"))
    server = waitress.create_server(
        CookieIdentity(app) if test_login else app, host="127.0.0.1", port=0, threads=4
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.effective_port}"
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=120_000
            )
            context = chromium.new_context(accept_downloads=True)
            page = context.new_page()
            page.set_default_timeout(60_000)
            if test_login:
                context.add_cookies(
                    [
                        {
                            "name": "qicollab_test_user",
                            "value": str(world.users["officer"]),
                            "url": url,
                        }
                    ]
                )
            else:
                page.goto(f"{url}/login")
                page.fill("input[name=email]", email)
                page.fill("input[name=password]", PASSWORD)
                page.locator("form").filter(has=page.locator("input[name=password]")).locator(
                    "button[type=submit]"
                ).first.click()
                page.wait_for_load_state()

            # Record the cycle through the navigation an officer would use.
            page.goto(url)
            page.get_by_role("link", name="Improvement").first.click()
            page.get_by_role("link", name="Record a PDSA cycle").click()
            page.fill("#title", "Line checklist on the ICU")
            page.fill("#own_change", "Insertion checklist read aloud")
            page.check(f"input[name=measures][value='{clabsi}']")
            page.fill("#starts_on", "2024-03-12")
            page.fill("#prediction", "Checklist used for 9 of 10 insertions")
            page.get_by_role("button", name="Save PDSA cycle").click()
            page.wait_for_load_state()
            assert page.locator("#stage").inner_text() == "Plan"

            # The chart of the linked measure carries the dated marker.
            page.get_by_role("link", name="CLABSI").click()
            page.wait_for_load_state()
            chart_titles = page.locator("#m-CLABSI svg title").evaluate_all(
                "titles => titles.map(t => t.textContent)"
            )
            assert "PDSA: Line checklist on the ICU" in chart_titles

            # The team's benchmark report lists it.
            ReportRenderer(factory, settings).render_run(
                world.run_id, kinds=[ReportKind.MEMBER], member_ids=[member]
            )
            page.goto(f"{url}/runs/{world.run_id}/reports")
            with page.expect_download() as download:
                page.get_by_role("link", name="PDF").first.click()
            pdf = Path(download.value.path()).read_bytes()
            text = " ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf)).pages)
            assert "Line checklist on the ICU" in " ".join(text.split())
            context.close()
            chromium.close()
    finally:
        for channel in list(server._map.values()):
            channel.close()
        server.task_dispatcher.shutdown()
        thread.join(timeout=10)
        engine.dispose()
    with factory() as session:
        assert session.scalars(sa.select(PdsaCycle.title)).all() == ["Line checklist on the ICU"]
