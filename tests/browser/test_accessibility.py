"""Every page of every role passes axe-core with no serious or critical violation, and none
scrolls sideways at 1366 px.

The pages are those the navigation walk reaches (one of each shape per role); each is opened in
Debian's Chromium through Playwright, axe-core (from npm, ``npm ci`` in tests/browser) is
injected, and its WCAG 2.x A/AA rules run on the rendered page, charts and all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest

from tests.browser.live import CHROMIUM, CHROMIUM_ARGS
from tests.browser.site import ROLES, Site, build_site, serve, walk
from tests.cycles.world import make_app

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
#: Every role the navigation walk knows (each with its own menu, pages and data).
CHECKED = list(ROLES)
#: The impacts that fail the test (axe's scale: minor, moderate, serious, critical).
FAILING = {"serious", "critical"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does)",
    ),
    pytest.mark.skipif(
        not AXE.exists(), reason="axe-core is not installed (npm ci --prefix tests/browser)"
    ),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Site]:
    built = build_site(tmp_path_factory.mktemp("a11y"), sqlite_template)
    yield built
    built.engine.dispose()


@pytest.fixture(scope="module")
def app(site: Site) -> Any:
    return make_app(site.settings, site.engine)


@pytest.fixture(scope="module")
def url(app: Any) -> Iterator[str]:
    with serve(app) as address:
        yield address


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=120_000
        )
        try:
            yield browser
        finally:
            browser.close()


def violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations on the loaded page (WCAG 2.0-2.2 A and AA rules)."""
    page.add_script_tag(path=str(AXE))
    return page.evaluate(
        """async () => (await axe.run(document, {
            runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                            "wcag22aa", "best-practice"]},
            resultTypes: ["violations"],
        })).violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                  nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}))"""
    )


@pytest.mark.parametrize("role", CHECKED)
def test_no_serious_accessibility_violation(role: str, site: Site, app: Any, url: str, chromium):
    client = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    cookie = site.session_cookie(role)
    if cookie is not None:
        client.set_cookie(*cookie)
    failures, pages, _ = walk(client, per_shape=1)
    assert failures == []
    assert pages
    # bypass_csp lets the test inject axe; the pages themselves keep their CSP.
    context = chromium.new_context(viewport={"width": 1366, "height": 900}, bypass_csp=True)
    context.set_default_timeout(60_000)
    if cookie is not None:
        context.add_cookies([{"name": cookie[0], "value": cookie[1], "url": url}])
    page = context.new_page()
    found = []
    try:
        for path in pages:
            response = page.goto(url + path)
            assert response is not None
            assert response.status < 400, path
            found += [
                f"{path}: {v['impact']} {v['id']} ({v['help']}) at {v['nodes']}"
                for v in violations(page)
                if v["impact"] in FAILING
            ]
            # At 1366 px wide tables scroll inside their own box; the page never sideways.
            scroll, client = page.evaluate(
                "[document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]"
            )
            if scroll > client + 1:
                found.append(f"{path}: the page scrolls sideways ({scroll} px in {client} px)")
    finally:
        context.close()
    assert not found, "\n".join(found)
