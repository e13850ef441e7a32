"""The workflow as coordinators and members use it, through WebTest, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from qicollab.audit.models import AuditEvent
from qicollab.cycles.models import CycleReopening, CycleStatus, LearningCycle, LearningSession
from qicollab.submissions.models import Submission, SubmissionSource, SubmissionStatus
from qicollab.submissions.services import SubmissionService
from tests.cycles.world import NOW, client, csrf, make_app


def read(db_session, statement, method="scalar"):
    """Read through the test's session, then end its transaction (SQLite's write lock)."""
    result = getattr(db_session, method)(statement)
    if method == "scalars":
        result = result.all()
    db_session.commit()
    return result


def submit(db_session, world, member, rows, code="HH", now=NOW):
    """Versions stored through the real pipeline, committed for the app to see."""
    result = SubmissionService(db_session, clock=lambda: now).submit_rows(
        member=member,
        measure=world.measures[code],
        rows=rows,
        source=SubmissionSource.FORM,
        actor=world.users["officer"],
    )
    db_session.commit()
    return result


def denied(response) -> bool:
    """403/404, or (anonymous, once real sign-in exists) a redirect to the login page."""
    if response.status_int in {403, 404}:
        return True
    return response.status_int in {302, 303} and "/login" in response.location


# --- cycles -------------------------------------------------------------------------------------


def test_cycle_list_for_everyone_new_button_for_coordinators(as_user, world):
    page = as_user("viewer").get("/cycles")
    rows = [tr.find_all("td") for tr in page.html.find(id="cycles").find("tbody").find_all("tr")]
    assert [r[0].a.text for r in rows] == ["C2027", "C2026", "C2025"]
    assert [r[-1].text for r in rows] == ["planned", "open", "locked"]
    assert "due in 10 days" in rows[1][3].text
    assert "New learning cycle" not in page.text
    assert "New learning cycle" in as_user("coordinator").get("/cycles").text


def test_coordinator_creates_opens_closes_and_locks_a_cycle(as_user, world, db_session):
    browser = as_user("coordinator")
    form = browser.get("/cycles/new").forms["cycle-form"]
    form["code"] = "C2028"
    form["title"] = "Cycle 2028"
    form["first_period"] = "2028-01"
    form["last_period"] = "2028-12"
    form["window_opens_at"] = "2028-01-01T00:00"
    form["deadline"] = "2027-12-31T23:59"
    form["measures"] = ["HH", "SURG"]
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 422
    assert "the deadline must come after the window opens" in refused.html.find(id="error").text
    form = refused.forms["cycle-form"]
    form["deadline"] = "2029-01-31T23:59"
    form["lock_date"] = "2029-02-15T00:00"
    detail = form.submit().follow()
    assert detail.request.path == "/cycles/C2028"
    assert detail.html.find(id="status").text == "planned"
    assert "2029-01-31 23:59 UTC" in detail.html.find(id="deadline").text

    def action_form(page, action):
        return next(
            f
            for f in page.forms.values()
            if f.get("action", default=None) and f["action"].value == action
        )

    for action, status in (("open", "open"), ("close", "closed")):
        detail = action_form(detail, action).submit().follow()
        assert detail.html.find(id="status").text == status
    # Locking 13 months early with every cell missing states it in numbers and needs a reason.
    lock = detail.html.find(id="action-lock")
    said = " ".join(li.text for li in lock.find_all("li"))
    assert "days left" in said
    cells = 2 * 12 + 2 * 1  # two members: HH monthly, SURG yearly (2028)
    assert f"{cells} of {cells} member x measure x period cells are missing" in said
    refused = action_form(detail, "lock").submit(expect_errors=True)
    assert refused.status_int == 422
    assert "a lock reason is required" in refused.html.find(id="error").text
    form = action_form(refused, "lock")
    form["reason"] = "test cycle: nothing will be submitted"
    detail = form.submit().follow()
    assert detail.html.find(id="status").text == "locked"
    assert "nothing will be submitted" in detail.html.find(id="lock-reason").text
    assert "Edit" not in [a.text for a in detail.html.find_all("a", class_="button")]
    cycle = read(db_session, sa.select(LearningCycle).where(LearningCycle.code == "C2028"))
    assert cycle.status is CycleStatus.LOCKED
    assert cycle.locked_at == NOW
    assert cycle.lock_reason == "test cycle: nothing will be submitted"
    actions = read(
        db_session,
        sa.select(AuditEvent.action)
        .where(AuditEvent.action.like("cycle.%"))
        .order_by(AuditEvent.id),
        "scalars",
    )
    assert actions == ["cycle.created", "cycle.opened", "cycle.closed", "cycle.locked"]


def test_refused_transition_and_edit(as_user, world):
    browser = as_user("coordinator")
    page = browser.get("/cycles/C2026")
    token = csrf(page)
    refused = browser.post(
        "/cycles/C2026/status", {"action": "publish", "csrf_token": token}, expect_errors=True
    )
    assert refused.status_int == 422
    assert "C2026 is open and cannot be published" in refused.text
    form = browser.get("/cycles/C2026/edit").forms["cycle-form"]
    form["deadline"] = "2026-12-31T23:59"
    form["lock_date"] = ""
    form.submit().follow()
    assert "2026-12-31 23:59 UTC" in browser.get("/cycles").text
    assert (
        browser.get("/cycles/C2025/edit").forms["cycle-form"].submit(expect_errors=True).status_int
        == 422
    )
    assert browser.get("/cycles/NOPE", expect_errors=True).status_int == 404


@pytest.mark.parametrize("who", ["officer", "viewer", None])
def test_members_cannot_manage_cycles(as_user, world, who):
    browser = as_user(who)
    assert denied(browser.get("/cycles/new", expect_errors=True))
    assert denied(browser.get("/review", expect_errors=True))
    assert denied(browser.get("/completeness", expect_errors=True))
    # Without a valid form token the POST fails before any permission is looked at (400), or
    # with a token it is denied; either way nothing changes.
    for path in ("/cycles/C2026/status", "/cycles/C2025/reopenings", "/cycles/C2026/sessions"):
        response = browser.post(path, {"action": "close"}, expect_errors=True)
        assert response.status_int in {400, 403, 404} or denied(response)


def test_member_sees_sessions_but_not_other_members_reopenings(as_user, world, db_session):
    coordinator = as_user("coordinator")
    page = coordinator.get("/cycles/C2026")
    form = page.forms["session-form"]
    form["held_on"] = "2026-09-10"
    form["title"] = "Autumn learning session"
    form["notes"] = "What the top performers changed"
    page = form.submit().follow()
    assert "Autumn learning session" in page.html.find(id="session-list").text
    page = coordinator.get("/cycles/C2025")
    form = page.forms["reopen-form"]
    form["member"] = "H02"
    form["measure"] = "HH"
    form["period"] = "2025-03"
    form["reason"] = "H02 found late audit sheets"
    form.submit().follow()
    viewer_page = as_user("viewer").get("/cycles/C2026")
    assert "Autumn learning session" in viewer_page.text
    assert "session-form" not in viewer_page.text
    assert "H02 found late audit sheets" not in as_user("viewer").get("/cycles/C2025").text
    assert "H02 found late audit sheets" in as_user("other_viewer").get("/cycles/C2025").text
    assert read(db_session, sa.select(sa.func.count()).select_from(LearningSession)) == 1


# --- reopening ---------------------------------------------------------------------------------


def test_reopen_a_locked_period_with_a_reason_on_record(as_user, world, db_session):
    coordinator = as_user("coordinator")
    page = coordinator.get("/cycles/C2025")
    form = page.forms["reopen-form"]
    form["member"] = "H01"
    form["measure"] = "HH"
    form["period"] = "2025-03"
    form["reason"] = ""
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 422
    assert "a reason is required" in refused.html.find(id="error").text
    form = refused.forms["reopen-form"]
    form["member"] = "H01"
    form["measure"] = "HH"
    form["period"] = "2025-03"
    form["closes_at"] = "2026-06-22T12:00"
    form["reason"] = "ward 3 audit sheets were found after the lock"
    page = form.submit().follow()
    row = page.html.find(id="reopening-list").find("tbody").find("tr")
    cells = [td.text for td in row.find_all("td")]
    assert cells[:5] == [
        "H01",
        "HH",
        "2025-03",
        "2026-06-22 12:00 UTC",
        "ward 3 audit sheets were found after the lock",
    ]
    reopening = read(db_session, sa.select(CycleReopening))
    assert reopening.reason == "ward 3 audit sheets were found after the lock"
    member_page = as_user("officer").get(f"/members/{world.h01.id}/completeness?cycle=C2025")
    window = member_page.html.find(id="cell-HH-2025-03").find(class_="window")
    assert window["data-window"] == "reopened-until"
    assert "2026-06-22 12:00 UTC" in window.text
    still_locked = member_page.html.find(id="cell-HH-2025-04").find(class_="window")
    assert still_locked["data-window"] == "locked"
    # The member can now submit that period, and only that one.
    result = submit(
        db_session, world, world.h01, [{"period": "2025-03", "numerator": "3", "denominator": "9"}]
    )
    assert [v.period for v in result.versions] == ["2025-03"]
    event = read(db_session, sa.select(AuditEvent).where(AuditEvent.action == "cycle.reopened"))
    assert event.details["reason"] == "ward 3 audit sheets were found after the lock"


# --- completeness and windows ------------------------------------------------------------------


def test_member_completeness_counts_and_due_date(as_user, world, db_session):
    submit(
        db_session,
        world,
        world.h01,
        [
            {"period": "2026-01", "numerator": "4", "denominator": "5"},
            {"period": "2026-02", "numerator": "4", "denominator": "5"},
        ],
    )
    page = as_user("viewer").get(f"/members/{world.h01.id}/completeness")
    assert page.html.find(id="due").text == "due in 10 days"
    counts = {
        s: int(page.html.find(id=f"count-{s}").text)
        for s in ("missing", "draft", "returned", "submitted", "accepted")
    }
    assert counts == {"missing": 23, "draft": 0, "returned": 0, "submitted": 2, "accepted": 0}
    assert page.html.find(id="cell-HH-2026-01")["data-status"] == "submitted"
    assert page.html.find(id="cell-HH-2026-03")["data-status"] == "missing"
    assert page.html.find(id="cell-SURG-2026")["data-status"] == "missing"
    assert page.html.find(id="closed") is None  # everything still open
    assert "Submit data" not in [a.text for a in page.html.find_all("a", class_="button")]
    officer_page = as_user("officer").get(f"/members/{world.h01.id}/completeness")
    assert "Submit data" in [a.text for a in officer_page.html.find_all("a", class_="button")]


def test_after_the_deadline_the_member_sees_why(settings, engine, world, db_session):
    later = NOW + dt.timedelta(days=20)
    app = make_app(settings, engine, clock=lambda: later)
    page = client(app, world.users["officer"]).get(f"/members/{world.h01.id}/completeness")
    assert page.html.find(id="due").text == "10 days past the deadline"
    reasons = page.html.find(id="closed").text
    assert "the submission deadline for 2026-01 passed on 2026-06-25 23:59 UTC" in reasons
    assert "ask a coordinator to reopen the period" in reasons
    assert page.html.find(id="cell-HH-2026-01").find(class_="window")["data-window"] == (
        "closed-after-deadline"
    )
    locked = client(app, world.users["officer"]).get(
        f"/members/{world.h01.id}/completeness?cycle=C2025"
    )
    assert "locked in learning cycle C2025" in locked.html.find(id="closed").text


def test_completeness_is_member_scoped(as_user, world):
    h01 = f"/members/{world.h01.id}/completeness"
    assert denied(as_user("other_viewer").get(h01, expect_errors=True))
    assert denied(as_user("other_officer").get(h01, expect_errors=True))
    assert denied(as_user(None).get(h01, expect_errors=True))
    assert as_user("coordinator").get(h01).status_int == 200
    assert (
        as_user("coordinator").get("/members/999999/completeness", expect_errors=True).status_int
        == 404
    )
    assert as_user("viewer").get(h01 + "?cycle=NOPE", expect_errors=True).status_int == 404


def test_coordinator_completeness_for_all_members(as_user, world, db_session):
    submit(
        db_session, world, world.h02, [{"period": "2026-01", "numerator": "1", "denominator": "5"}]
    )
    page = as_user("coordinator").get("/completeness")
    assert page.html.find(id="due").text == "due in 10 days"
    assert int(page.html.find(id="count-submitted").text) == 1
    assert int(page.html.find(id="count-missing").text) == 49
    cell = page.html.find(id="member-H02").find("td", attrs={"data-measure": "HH"})
    assert cell["data-status"] == "missing"  # coloured by the most urgent state present
    assert "st-missing" in cell["class"]
    assert cell.text.strip() == "11 missing · 1 awaiting review"
    page = as_user("coordinator").get("/completeness?cycle=C2025")
    assert int(page.html.find(id="count-missing").text) == 2 * (12 * 3 + 1)
    export = as_user("coordinator").get("/completeness.csv?cycle=C2026")
    assert export.content_type == "text/csv"
    lines = export.text.splitlines()
    assert lines[0] == "cycle,member,measure,period,status,version,window,review_reason"
    assert len(lines) == 1 + 50
    assert "C2026,H02,HH,2026-01,submitted,1,open," in lines
    # Members export their own cells only; another member's export is refused.
    own = as_user("other_viewer").get(f"/members/{world.h02.id}/completeness.csv")
    assert len(own.text.splitlines()) == 1 + 25
    assert {line.split(",")[1] for line in own.text.splitlines()[1:]} == {"H02"}
    refused = as_user("viewer").get(f"/members/{world.h02.id}/completeness.csv", expect_errors=True)
    assert refused.status_int in {403, 404}


# --- review ------------------------------------------------------------------------------------


def test_accept_and_return_from_the_review_queue(as_user, world, db_session):
    submit(
        db_session,
        world,
        world.h01,
        [
            {"period": "2026-01", "numerator": "4", "denominator": "5"},
            {"period": "2026-02", "numerator": "3", "denominator": "5"},
        ],
    )
    ids = read(db_session, sa.select(Submission.id).order_by(Submission.id), "scalars")
    coordinator = as_user("coordinator")
    queue = coordinator.get("/review?cycle=C2026")
    assert [tr["id"] for tr in queue.html.find(id="queue").find("tbody").find_all("tr")] == [
        f"submission-{i}" for i in ids
    ]

    def review_form(page, sid):
        return next(
            f for f in page.forms.values() if f.action.endswith(f"/submissions/{sid}/review")
        )

    refused = review_form(queue, ids[1]).submit("decision", value="return", expect_errors=True)
    assert refused.status_int == 422
    assert "a reason is required" in refused.html.find(id="error").text
    form = review_form(refused, ids[1])
    form["reason"] = "the denominator repeats January's"
    queue = form.submit("decision", value="return").follow()
    assert queue.request.path_qs == "/review?cycle=C2026&done=returned&n=1"
    assert queue.html.find(id="done").text == "1 submission returned."
    queue = review_form(queue, ids[0]).submit("decision", value="accept").follow()
    assert "Nothing awaits review" in queue.text
    statuses = read(db_session, sa.select(Submission.status).order_by(Submission.id), "scalars")
    assert statuses == [SubmissionStatus.ACCEPTED, SubmissionStatus.RETURNED]
    page = as_user("officer").get(f"/members/{world.h01.id}/completeness")
    returned = page.html.find(id="cell-HH-2026-02")
    assert returned["data-status"] == "returned"
    assert "the denominator repeats January's" in returned.find(class_="reason").text
    assert page.html.find(id="cell-HH-2026-01")["data-status"] == "accepted"
    events = read(
        db_session,
        sa.select(AuditEvent)
        .where(AuditEvent.action.in_(["submission.accepted", "submission.returned"]))
        .order_by(AuditEvent.id),
        "scalars",
    )
    assert [(e.action, e.details["reason"], e.actor) for e in events] == [
        ("submission.returned", "the denominator repeats January's", "coordinator@wf.example"),
        ("submission.accepted", None, "coordinator@wf.example"),
    ]


def test_review_of_unknown_or_foreign_versions_is_404(as_user, world):
    browser = as_user("coordinator")
    token = csrf(browser.get("/cycles/C2026"))
    for path in ("/submissions/999999/review", "/submissions/abc/review"):
        response = browser.post(
            path, {"decision": "accept", "csrf_token": token}, expect_errors=True
        )
        assert response.status_int == 404


def test_officer_cannot_review(as_user, world, db_session):
    submit(
        db_session, world, world.h01, [{"period": "2026-01", "numerator": "4", "denominator": "5"}]
    )
    sid = read(db_session, sa.select(Submission.id))
    officer = as_user("officer")
    token = csrf(officer.get(f"/members/{world.h01.id}/submit"))
    response = officer.post(
        f"/submissions/{sid}/review",
        {"decision": "accept", "csrf_token": token},
        expect_errors=True,
    )
    assert denied(response)
    assert read(db_session, sa.select(Submission.status)) is SubmissionStatus.SUBMITTED
