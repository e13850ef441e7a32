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

from collections.abc import Iterator
from pathlib import Path

import pytest
import webtest

from qicollab.accounts.models import User
from tests.browser.site import ROLES, Site, build_site, walk
from tests.cycles.world import make_app

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


def test_a_job_is_a_page_for_people_and_json_for_programs(site: Site, app):
    from qicollab.db import get_session_factory
    from qicollab.jobs.models import Job

    with get_session_factory(site.engine)() as session:
        coordinator = session.get(User, site.user_ids["coordinator"])
        job = Job(
            collaborative_id=coordinator.collaborative_id,
            kind="benchmark_run",
            created_by_id=coordinator.id,
            done=1234,
            total=5000,
            message="fitting risk models",
        )
        session.add(job)
        session.commit()
        job_id = job.id
    browser = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    browser.set_cookie(*site.session_cookie("coordinator"))
    page = browser.get(f"/jobs/{job_id}", headers={"Accept": "text/html,*/*;q=0.8"})
    assert page.content_type == "text/html"
    assert page.html.title.get_text().startswith(f"Job {job_id}: benchmark run")
    assert "1,234 of 5,000 (25%)" in " ".join(page.html.get_text(" ").split())
    assert page.html.find("meta", attrs={"http-equiv": "refresh"}) is not None
    document = browser.get(f"/jobs/{job_id}", headers={"Accept": "application/json"})
    assert document.json["done"] == 1234
    assert document.json["progress"] == 0.2468
