"""The same permissions through the real sign-in (sessions, CSRF, security headers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
import webtest

from qicollab import main
from qicollab.accounts.models import User
from qicollab.accounts.passwords import hash_password
from qicollab.audit.models import AuditEvent
from qicollab.reporting.models import Report, ReportKind
from qicollab.reporting.reports import ReportSpec
from qicollab.storage import LocalFileStore
from tests.helpers import login

PASSWORD = "correct horse battery staple"
_HASH = hash_password(PASSWORD)


@pytest.fixture
def signed(settings, engine, world, db_session):
    """The real app, the officers' passwords set, and two member reports on disk."""
    db_session.execute(sa.update(User).values(password_hash=_HASH))
    storage = Path(settings["qicollab.storage"])
    ids = {}
    for member_id in (world.member, world.other):
        spec = ReportSpec(ReportKind.MEMBER, member_id)
        relative = f"reports/run-{world.run_id}/{spec.filename}"
        written = LocalFileStore(storage).put(relative, b"%PDF-1.7 test")
        row = Report(
            run_id=world.run_id,
            kind=spec.kind,
            member_id=member_id,
            path=relative,
            sha256=written.sha256,
            size_bytes=written.size_bytes,
        )
        db_session.add(row)
        db_session.flush()
        ids[member_id] = row.id
    db_session.commit()
    return ids


def _browser(settings, engine, email):
    app = main({}, **settings, **{"db.engine": engine})
    browser = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    login(browser, email, PASSWORD)
    return browser


def _email(db_session, user_id):
    email = db_session.get(User, user_id).email
    db_session.commit()
    return email


def test_signed_in_member_downloads_its_report(signed, settings, engine, world, db_session):
    browser = _browser(settings, engine, _email(db_session, world.users["officer"]))
    response = browser.get(f"/reports/{signed[world.member]}/download")
    assert response.body == b"%PDF-1.7 test"


def test_signed_in_member_cannot_download_anothers(signed, settings, engine, world, db_session):
    browser = _browser(settings, engine, _email(db_session, world.users["officer"]))
    browser.get(f"/reports/{signed[world.other]}/download", status=403)


def test_signed_in_download_is_audited_with_the_user(signed, settings, engine, world, db_session):
    browser = _browser(settings, engine, _email(db_session, world.users["other_officer"]))
    browser.get(f"/reports/{signed[world.other]}/download")
    actors = db_session.scalars(
        sa.select(AuditEvent.actor_id).where(AuditEvent.action == "report.downloaded")
    ).all()
    assert actors == [world.users["other_officer"]]


def test_signed_in_results_page_passes_the_content_security_policy(
    signed, settings, engine, world, db_session
):
    browser = _browser(settings, engine, _email(db_session, world.users["officer"]))
    page = browser.get(f"/members/{world.member}/results")
    assert "style-src 'self'" in page.headers["Content-Security-Policy"]
    assert "<style" not in page.text
