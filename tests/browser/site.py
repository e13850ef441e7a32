"""A whole portal for the navigation walk and the accessibility check: every role, with data.

One SQLite file holds two collaboratives: the workflow collaborative (three cycles, two members,
an admin; tests/cycles/world.py) and the reporting collaborative (twelve members with a finished
run, stored reports and annotations; tests/reporting/world.py). Between them every kind of page
has something to show: cycles, completeness, review queue, submissions, results, reports, audit.

A role is signed in by a server-side session row whose secret becomes the session cookie (the
real loader reads it), so WebTest and Chromium see exactly what a person would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from qicollab.accounts.models import User
from qicollab.accounts.sessions import SESSION_COOKIE, create_session
from qicollab.db import create_engine_from_settings, get_session_factory, utcnow
from qicollab.members.models import PeerGroup
from qicollab.migrations import upgrade
from qicollab.reporting.models import Report, ReportKind
from qicollab.reporting.pdf import write_atomically
from qicollab.reporting.reports import ReportSpec
from tests.cycles.world import build_world as build_workflow
from tests.reporting.world import build_world as build_reporting

#: The roles walked, as (label, world, user name in that world); None is the anonymous visitor.
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
        written = write_atomically(storage / relative, b"%PDF-1.7 " + spec.filename.encode())
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
