"""Every link on every page opens for the role that sees it.

Each role starts at the home page and follows every same-site link of every HTML page it reaches
(menus, breadcrumbs, tables, downloads), breadth first. Every link must answer 2xx or 3xx: a
link a role is shown but may not follow (403), a dead link (404) or a crash (500) fails. The
access walk (tests/accounts/test_authorization.py) asks the opposite question: what a role must
NOT reach.

Pages that differ only in an id or a query value are walked a few times each, not all of them, so
the walk stays small; links are still checked on every page that is opened.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import webtest

from tests.browser.site import ROLES, Site, build_site
from tests.cycles.world import make_app

#: How many pages of one shape (the path with its numbers and query values blanked) are opened.
PER_SHAPE = 3
#: The menu items each role must have reached (the walk is not allowed to go quiet).
MENUS = {
    "quality_officer": ["Results", "Submit data", "Completeness", "Measures"],
    "member_viewer": ["Results", "Completeness", "Measures"],
    "coordinator": ["Results", "Cycles", "Completeness", "Members", "Users", "Audit log"],
    "admin": ["Results", "Cycles", "Completeness", "Members", "Users", "Audit log"],
    "results_officer": ["Results", "Submit data", "Completeness"],
    "results_coordinator": ["Results", "Members", "Audit log"],
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Site]:
    built = build_site(tmp_path_factory.mktemp("site"), sqlite_template)
    yield built
    built.engine.dispose()


@pytest.fixture(scope="module")
def app(site: Site):
    return make_app(site.settings, site.engine)


def shape(path: str) -> str:
    """A path with ids and query values blanked: pages of one kind share a shape."""
    parts = urlsplit(path)
    query = "&".join(sorted(p.split("=")[0] for p in parts.query.split("&") if p))
    return re.sub(r"/\d+(?=/|$)", "/N", parts.path) + ("?" + query if query else "")


def links(page: webtest.TestResponse) -> list[tuple[str, str]]:
    """(text, same-site path) of every link on an HTML page."""
    found = []
    for anchor in page.html.find_all("a", href=True):
        href = urljoin(page.request.url, anchor["href"])
        parts = urlsplit(href)
        if parts.scheme not in {"http", "https"} or parts.netloc != "localhost":
            continue
        path = parts.path + ("?" + parts.query if parts.query else "")
        found.append((" ".join(anchor.get_text().split()), path))
    return found


def walk(browser: webtest.TestApp) -> tuple[list[str], list[str], set[str]]:
    """Breadth-first over the site: (failures, opened paths, texts of the menu links)."""
    failures: list[str] = []
    opened: list[str] = []
    checked: dict[str, int] = {}
    shapes: Counter[str] = Counter()
    queue: deque[tuple[str, str]] = deque([("/", "start")])
    menu: set[str] = set()
    while queue:
        path, found_on = queue.popleft()
        if path in checked:
            continue
        if shapes[shape(path)] >= PER_SHAPE:
            continue
        shapes[shape(path)] += 1
        response = browser.get(path, expect_errors=True)
        checked[path] = response.status_int
        if response.status_int >= 400:
            failures.append(f"{path} -> {response.status_int} (linked from {found_on})")
            continue
        if 300 <= response.status_int < 400:
            target = urlsplit(urljoin(f"http://localhost{path}", response.headers["Location"]))
            queue.append((target.path + ("?" + target.query if target.query else ""), path))
            continue
        opened.append(path)
        if response.content_type != "text/html":
            continue
        nav = response.html.find("nav", attrs={"aria-label": "Main"})
        if nav is not None:
            menu.update(" ".join(a.get_text().split()) for a in nav.find_all("a"))
        for _text, target in links(response):
            if target.split("#")[0] and target.split("#")[0] not in checked:
                queue.append((target.split("#")[0], path))
    return failures, opened, menu


@pytest.mark.parametrize("role", list(ROLES))
def test_every_link_answers_for_the_role_that_sees_it(role: str, site: Site, app):
    browser = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    cookie = site.session_cookie(role)
    if cookie is not None:
        browser.set_cookie(*cookie)
    failures, opened, menu = walk(browser)
    assert failures == []
    assert set(MENUS.get(role, [])) <= menu
    # The walk really went somewhere: signed-in roles open many pages, anonymous a few.
    assert len(opened) >= (2 if role == "anonymous" else 8), opened
