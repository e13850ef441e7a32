"""A whole portal for the navigation walk and the accessibility check: every role, with data.

One SQLite file holds two collaboratives: the workflow collaborative (three cycles, two members,
an admin; tests/cycles/world.py) and the reporting collaborative (twelve members with a finished
run, stored reports and annotations; tests/reporting/world.py). Between them every kind of page
has something to show: cycles, completeness, review queue, submissions, results, reports, audit.

A role is signed in by a server-side session row whose secret becomes the session cookie (the
real loader reads it), so WebTest and Chromium see exactly what a person would.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import sqlalchemy as sa
import waitress
import webtest

from qicollab.accounts.models import User
from qicollab.accounts.sessions import SESSION_COOKIE, create_session
from qicollab.db import create_engine_from_settings, get_session_factory, utcnow
from qicollab.members.models import PeerGroup
from qicollab.migrations import upgrade
from qicollab.reporting.models import Report, ReportKind
from qicollab.reporting.reports import ReportSpec
from qicollab.storage import LocalFileStore
from tests.cycles.world import build_world as build_workflow
from tests.reporting.world import build_world as build_reporting

#: The roles walked, as (label, world, user name in that world); None is the anonymous visitor.
#: How many pages of one shape (the path with its numbers and query values blanked) are opened.
PER_SHAPE = 3

#: Wording no page may print: big counts with a decimal zero (11,129.0; rates and scores keep
#: theirs), and a plural after the number one.
WORDING = [
    (
        re.compile(r"(?<![\d.,])(?:\d{1,3}(?:,\d{3})+|\d{4,})\.0(?![\d%])"),
        "a count (a thousand or more) printed with a decimal zero",
    ),
    (
        re.compile(
            r"(?<![\d.,])1 (?:members|measures|periods|submissions|events|rows|cases|users"
            r"|errors|warnings|days|records|patients|hospitals|pages|charts|reports)\b"
        ),
        "a plural after 1",
    ),
]

ROLES: dict[str, tuple[str, str] | None] = {
    "anonymous": None,
    "quality_officer": ("workflow", "officer"),
    "member_viewer": ("workflow", "viewer"),
    "coordinator": ("workflow", "coordinator"),
    "admin": ("workflow", "admin"),
    "results_officer": ("reporting", "officer"),
    "results_viewer": ("reporting", "viewer"),
    "results_coordinator": ("reporting", "coordinator"),
}


@dataclass
class Site:
    """The settings of the filled database and each role's user id."""

    settings: dict[str, Any]
    engine: sa.Engine
    user_ids: dict[str, int]

    def session_cookie(self, role: str) -> tuple[str, str] | None:
        """(cookie name, secret) of a fresh session for ``role``; None when anonymous."""
        if self.user_ids.get(role) is None:
            return None
        with get_session_factory(self.engine)() as session:
            user = session.get(User, self.user_ids[role])
            secret = create_session(session, user, ip_address="127.0.0.1", user_agent="tests")
            session.commit()
        return SESSION_COOKIE, secret


def _store_reports(session: Any, storage: Path, run_id: int, member_ids: list[int]) -> None:
    """Report rows (with small stand-in files) so the report links have something to serve."""
    specs = [
        ReportSpec(ReportKind.MEMBER, member_ids[0]),
        ReportSpec(ReportKind.MEMBER, member_ids[1]),
        ReportSpec(ReportKind.COLLABORATIVE),
        ReportSpec(ReportKind.BLINDED_SUMMARY),
    ]
    for spec in specs:
        relative = f"reports/run-{run_id}/{spec.filename}"
        written = LocalFileStore(storage).put(relative, b"%PDF-1.7 " + spec.filename.encode())
        session.add(
            Report(
                run_id=run_id,
                kind=spec.kind,
                member_id=spec.member_id,
                path=relative,
                sha256=written.sha256,
                size_bytes=written.size_bytes,
            )
        )


def build_site(folder: Path, sqlite_template: Path | None = None) -> Site:
    """Migrate (or copy ``sqlite_template``) and fill a portal database in ``folder``."""
    database = folder / "site.sqlite"
    if sqlite_template is not None:
        database.write_bytes(sqlite_template.read_bytes())
    settings = {
        "sqlalchemy.url": f"sqlite:///{database}",
        "qicollab.storage": str(folder / "storage"),
        "qicollab.secret": "site-test-secret",
        "mail.mailer": "console",
    }
    engine = create_engine_from_settings(settings)
    if sqlite_template is None:
        upgrade(engine)
    with get_session_factory(engine)() as session:
        workflow = build_workflow(session, utcnow())
        session.commit()
        reporting = build_reporting(session)
        _store_reports(session, folder / "storage", reporting.run_id, reporting.member_ids)
        # A peer group built from criteria of each kind the form offers (a yes/no, a list).
        session.add(
            PeerGroup(
                collaborative_id=workflow.collaborative.id,
                code="TEACHURB",
                name="Urban teaching hospitals",
                criteria={"teaching": True, "rurality": ["urban", "suburban"]},
            )
        )
        session.commit()
        ids: dict[str, int] = {}
        for role, source in ROLES.items():
            if source is None:
                continue
            world, name = source
            ids[role] = workflow.users[name].id if world == "workflow" else reporting.users[name]
    return Site(settings, engine, ids)


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


def walk(
    browser: webtest.TestApp, per_shape: int = PER_SHAPE
) -> tuple[list[str], list[str], set[str]]:
    """Breadth-first over the site: (failures, HTML pages opened, texts of the menu links)."""
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
        if shapes[shape(path)] >= per_shape:
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
        if response.content_type != "text/html":
            continue
        opened.append(path)
        words = " ".join(response.html.get_text(" ").split())
        for pattern, what in WORDING:
            for match in pattern.finditer(words):
                context = words[max(match.start() - 60, 0) : match.end() + 20]
                failures.append(f"{path}: {what}: {match.group(0)!r} in {context!r}")
        nav = response.html.find("nav", attrs={"aria-label": "Main"})
        if nav is not None:
            menu.update(" ".join(a.get_text().split()) for a in nav.find_all("a"))
        for _text, target in links(response):
            if target.split("#")[0] and target.split("#")[0] not in checked:
                queue.append((target.split("#")[0], path))
    return failures, opened, menu


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` under waitress on a free loopback port until the block ends; yields its URL."""
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        # Closing every channel empties waitress's socket map, which ends its loop.
        for channel in list(server._map.values()):
            channel.close()
        server.task_dispatcher.shutdown()
        thread.join(timeout=10)
