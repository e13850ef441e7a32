"""The portal flow as an officer uses it: template -> upload -> preview -> commit, and the form.

Until the accounts domain provides a login, the app gets a test identity loader (the user id in
the WSGI environ) and Pyramid's cookie CSRF storage; the views only use ``request.identity`` and
``pyramid.csrf``, so the flows are the same once real sessions land.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa
import webtest
from pyramid.csrf import CookieCSRFStoragePolicy

from qicollab import make_config
from qicollab.accounts.models import Role, User
from qicollab.audit.models import AuditEvent
from qicollab.security import IDENTITY_LOADER_KEY
from qicollab.submissions.models import Submission, SubmissionStatus
from qicollab.submissions.services import SubmissionService
from tests.submissions.conftest import NOW, aggregate_csv, build_world, patient_csv, patient_rows

USER_KEY = "qicollab.test_user_id"


def _loader(request):
    raw = request.environ.get(USER_KEY)
    return None if raw is None else request.db.get(User, int(raw))


class Portal:
    """WebTest with a chosen signed-in user."""

    def __init__(self, app, users):
        self.app = app
        self.users = users

    def as_user(self, name):
        return webtest.TestApp(
            self.app,
            extra_environ={"REMOTE_ADDR": "127.0.0.1", USER_KEY: str(self.users[name].id)},
        )


@pytest.fixture
def world_users(db_session):
    world = build_world(db_session)
    users = {"officer": world.officer}
    for name, role, member in (
        ("viewer", Role.MEMBER_VIEWER, world.member),
        ("other_officer", Role.QUALITY_OFFICER, world.other),
        ("coordinator", Role.COORDINATOR, None),
    ):
        user = User(
            collaborative_id=world.collaborative.id,
            email=f"{name}@example.test",
            role=role,
            member_id=member.id if member else None,
        )
        db_session.add(user)
        users[name] = user
    db_session.commit()
    return world, users


@pytest.fixture
def portal(settings, engine, world_users, monkeypatch):
    world, users = world_users
    # The fixed clock: the 2026 cycle is open.
    original = SubmissionService.__init__

    def init(self, db, **kwargs):
        kwargs.setdefault("clock", lambda: NOW)
        original(self, db, **kwargs)

    monkeypatch.setattr(SubmissionService, "__init__", init)
    config = make_config({**settings, "db.engine": engine})
    config.registry[IDENTITY_LOADER_KEY] = _loader
    config.set_csrf_storage_policy(CookieCSRFStoragePolicy())
    return world, Portal(config.make_wsgi_app(), users)


def query(session, method, statement):
    """Read through the test's session, then end its transaction.

    On SQLite the test session's transaction would hold the write lock (``BEGIN IMMEDIATE``)
    and block the app; every read here is therefore its own short transaction.
    """
    result = getattr(session, method)(statement)
    if method == "scalars":
        result = result.all()
    elif method == "execute":
        result = result.scalar()
    session.commit()  # not rollback(): that would expire the world's objects
    return result


def csrf(page):
    return page.html.find("input", attrs={"name": "csrf_token"})["value"]


def upload(browser, world, data, filename, measure="HH"):
    page = browser.get(f"/members/{world.member.id}/submit")
    form = page.forms[0]
    form["measure"] = measure
    form["file"] = webtest.Upload(filename, data)
    return form.submit(expect_errors=True)


def uploads_folder(settings) -> Path:
    return Path(settings["qicollab.storage"]) / "uploads"


def test_template_downloads(portal, db_session):
    world, app = portal
    browser = app.as_user("officer")
    page = browser.get(f"/members/{world.member.id}/submit")
    assert "Upload and preview" in page.text
    response = browser.get(f"/members/{world.member.id}/measures/SURG/template.csv")
    assert response.content_disposition == 'attachment; filename="SURG-template.csv"'
    assert "event_month" in response.body.decode("utf-8-sig")
    response = browser.get(f"/members/{world.member.id}/measures/HH/template.xlsx")
    workbook = openpyxl.load_workbook(io.BytesIO(response.body))
    assert workbook.sheetnames[:1] == ["Data"]
    assert "Guidance" in workbook.sheetnames
    assert (
        query(
            db_session,
            "scalar",
            sa.select(sa.func.count()).where(AuditEvent.action == "template.downloaded"),
        )
        == 2
    )
    other = app.as_user("other_officer")
    body = other.get(f"/members/{world.other.id}/measures/SURG/template.csv").body
    assert "event_month" not in body.decode("utf-8-sig")  # no data use agreement


def test_upload_preview_fix_and_commit(portal, db_session, settings):
    world, app = portal
    browser = app.as_user("officer")
    bad = aggregate_csv("2026-01,45,50,,", "2026-02,60,50,,", "2026-03,x,5,,")
    response = upload(browser, world, bad, "hh.csv")
    assert response.status_int == 303
    page = response.follow()
    assert page.html.find(id="rows-read").text == "3"
    assert page.html.find(id="errors").text == "2"
    rows = [
        [cell.text for cell in tr.find_all("td")]
        for tr in page.html.find("table", class_="problems").find("tbody").find_all("tr")
    ]
    assert rows[0][0] == "error"
    assert rows[0][1].startswith("upload-")
    assert rows[0][1].endswith(".csv")
    assert rows[0][2:4] == ["3", "numerator"]
    assert "numerator_exceeds_denominator" in rows[0][5]
    assert "Commit all" not in page.text
    report = page.click(href=r"errors\.csv")
    assert report.content_disposition.endswith('-errors.csv"')
    assert "larger than denominator" in report.body.decode("utf-8-sig")
    xlsx = page.click(href=r"errors\.xlsx")
    assert openpyxl.load_workbook(io.BytesIO(xlsx.body))["Data"]["F1"].value == "errors"

    good = aggregate_csv("2026-01,45,50,,", "2026-02,40,50,,", "2026-03,4,5,,")
    page = upload(browser, world, good, "hh.csv").follow()
    assert page.html.find(id="added").text == "3"
    assert query(db_session, "scalar", sa.select(sa.func.count()).select_from(Submission)) == 0
    done = page.forms[0].submit().follow()
    assert "Submitted" in done.text
    assert query(db_session, "scalar", sa.select(sa.func.count()).select_from(Submission)) == 3
    token = page.request.path.rsplit("/", 1)[-1]
    assert not (uploads_folder(settings) / f"{token}.bin").exists()
    # The same file again: the existing versions, nothing new.
    again = upload(browser, world, good, "hh.csv").follow()
    assert again.html.find(id="unchanged").text == "3"
    shown = again.forms[0].submit().follow()
    assert "Already submitted" in shown.text
    assert query(db_session, "scalar", sa.select(sa.func.count()).select_from(Submission)) == 3


def test_correction_needs_a_reason_and_keeps_the_old_version(portal, db_session):
    world, app = portal
    browser = app.as_user("officer")
    upload(browser, world, aggregate_csv("2026-01,45,50,,"), "a.csv").follow().forms[0].submit()
    page = upload(browser, world, aggregate_csv("2026-01,44,50,,"), "b.csv").follow()
    assert page.html.find(id="replaced").text == "1"
    form = page.forms[0]
    form["reason"] = ""
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 422
    assert "reason is required" in refused.text
    form = refused.forms[0]
    form["reason"] = "one audit sheet was entered twice"
    form.submit().follow()
    versions = query(db_session, "scalars", sa.select(Submission).order_by(Submission.version))
    assert [(v.version, v.status) for v in versions] == [
        (1, SubmissionStatus.SUPERSEDED),
        (2, SubmissionStatus.SUBMITTED),
    ]
    history = browser.get(f"/members/{world.member.id}/submissions")
    assert "one audit sheet was entered twice" in history.text


def test_phi_upload_is_refused_unstored_and_masked(portal, db_session, settings):
    world, app = portal
    browser = app.as_user("officer")
    data = aggregate_csv("2026-01,45,50,,ssn 123-45-6789")
    response = upload(browser, world, data, "john-smith.csv")
    assert response.status_int == 422
    assert "not stored" in response.text
    assert "123-45-6789" not in response.text
    assert "***-**-****" in response.text
    assert "john-smith" not in response.text
    assert not uploads_folder(settings).exists() or not any(uploads_folder(settings).iterdir())
    event = query(
        db_session, "scalar", sa.select(AuditEvent).where(AuditEvent.action == "submission.refused")
    )
    assert event.details["rules"] == ["phi_ssn"]
    assert "123" not in json.dumps(event.details)


def test_identifiers_and_ordinary_problems_come_back_in_one_preview(portal, db_session, settings):
    world, app = portal
    browser = app.as_user("officer")
    data = aggregate_csv(
        "2026-01,45,50,,,Jane Roe",
        "2026-02,60,50,,ssn 123-45-6789,",  # identifier in one cell, numerator > denominator
        "2026-03,x,5,,,",  # not a number
        "2026-04,,5,,,",  # numerator missing
        header="period,numerator,denominator,exclusions,comment,patient_name",
    )
    response = upload(browser, world, data, "roe.csv")
    assert response.status_int == 422
    tables = response.html.find_all("table", class_="problems")
    assert [t.find("caption").text for t in tables] == [
        "Identifiers (values masked)",
        "Other problems",
    ]

    def rows(table):
        return [[td.text for td in tr.find_all("td")] for tr in table.find("tbody").find_all("tr")]

    identifiers, others = rows(tables[0]), rows(tables[1])
    # The identifying column and the identifying cell, masked, file named by its kind only.
    assert {(r[2], r[5]) for r in identifiers} == {("1", "phi_identifier_column"), ("3", "phi_ssn")}
    assert all(r[1] == "refused file (.csv)" for r in identifiers + others)
    # Every ordinary problem of the same file, each with its row, column and reason.
    found = {(r[2], r[3], r[5]) for r in others}
    assert ("3", "numerator", "numerator_exceeds_denominator") in found
    assert any(row == "4" and column == "numerator" for row, column, _ in found)
    assert any(row == "5" and column == "numerator" for row, column, _ in found)
    assert all(r[6] and r[7] for r in others)  # a reason and a fix for each
    # The emptied identifying cell is not reported again as missing.
    assert not any(r[2] == "3" and r[3] == "comment" for r in others)
    for secret in ("123-45-6789", "Jane", "Roe", "roe.csv"):
        assert secret not in response.text
    # All or nothing: nothing stored, nothing pending, and the audit counts identifiers only.
    assert query(db_session, "scalar", sa.select(sa.func.count()).select_from(Submission)) == 0
    assert not uploads_folder(settings).exists() or not any(uploads_folder(settings).iterdir())
    event = query(
        db_session, "scalar", sa.select(AuditEvent).where(AuditEvent.action == "submission.refused")
    )
    assert event.details["rules"] == ["phi_identifier_column", "phi_ssn"]
    assert event.details["cells"] == 2


def test_patient_upload_and_xlsx(portal, db_session):
    world, app = portal
    browser = app.as_user("officer")
    page = upload(browser, world, patient_csv(*patient_rows(120)), "s.csv", "SURG").follow()
    assert page.html.find(id="rows-read").text == "120"
    page.forms[0].submit().follow()
    count = query(db_session, "execute", sa.text("SELECT count(*) FROM patient_records"))
    assert count == 120


def test_parse_errors_are_shown_not_500(portal):
    world, app = portal
    browser = app.as_user("officer")
    response = upload(browser, world, b"PK\x03\x04not a zip", "x.xlsx")
    assert response.status_int == 422
    assert "not a valid .xlsx" in response.text


def test_viewers_and_other_members_cannot_submit(portal):
    world, app = portal
    viewer = app.as_user("viewer")
    assert viewer.get(f"/members/{world.member.id}/submit").status_int == 200
    assert "Upload and preview" not in viewer.get(f"/members/{world.member.id}/submit").text
    viewer.get(f"/members/{world.member.id}/measures/HH/form", status=403)
    other = app.as_user("other_officer")
    other.get(f"/members/{world.member.id}/submit", status=403)
    other.get(f"/members/{world.member.id}/submissions", status=403)
    anonymous = webtest.TestApp(app.app)
    anonymous.get(f"/members/{world.member.id}/submit", status=403)
    # An id outside the collaborative, existing or not, is 404 for everyone signed in.
    app.as_user("officer").get("/members/99999/submit", status=404)


def test_stored_uploads_belong_to_their_member(portal):
    world, app = portal
    page = upload(app.as_user("officer"), world, aggregate_csv("2026-01,1,2,,"), "a.csv").follow()
    token = page.request.path.rsplit("/", 1)[-1]
    other = app.as_user("other_officer")
    other.get(f"/members/{world.other.id}/uploads/{token}", status=404)
    other.get(f"/members/{world.other.id}/uploads/..%2F..%2Fetc/errors.csv", status=404)


def test_coordinator_submits_on_behalf(portal, db_session):
    world, app = portal
    browser = app.as_user("coordinator")
    page = upload(browser, world, aggregate_csv("2026-05,1,2,,"), "c.csv").follow()
    page.forms[0].submit().follow()
    submission = query(db_session, "scalar", sa.select(Submission))
    assert submission.submitted_by_id == app.users["coordinator"].id


def test_validation_endpoint_checks_without_storing(portal, db_session):
    world, app = portal
    browser = app.as_user("officer")
    page = browser.get(f"/members/{world.member.id}/measures/HH/form")
    token = csrf(page)
    checked = browser.post_json(
        f"/members/{world.member.id}/measures/HH/validate",
        {"period": "2026-04", "numerator": "9", "denominator": "5"},
        headers={"X-CSRF-Token": token},
    )
    assert checked.json["ok"] is False
    assert checked.json["problems"][0]["column"] == "numerator"
    browser.post_json(
        f"/members/{world.member.id}/measures/HH/validate",
        {"period": "2026-04"},
        status=403,
    )
    assert query(db_session, "scalar", sa.select(sa.func.count(Submission.id))) == 0


def test_post_without_csrf_token_is_refused(portal):
    world, app = portal
    browser = app.as_user("officer")
    browser.post(
        f"/members/{world.member.id}/uploads",
        {"measure": "HH"},
        upload_files=[("file", "a.csv", aggregate_csv("2026-01,1,2,,"))],
        status=403,
    )
