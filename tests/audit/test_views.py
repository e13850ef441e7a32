"""The audit log page and its CSV export, as coordinators use them."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
import sqlalchemy as sa

from qicollab.audit.models import AuditEvent
from qicollab.audit.services import record
from qicollab.members.models import Collaborative
from tests.cycles.world import NOW


def add_events(db_session, world):
    """A handful of events over three days, one from another collaborative, one from nowhere."""
    coordinator, officer = world.users["coordinator"], world.users["officer"]
    rows = [
        ("submission.created", officer, world.h01.id, NOW - dt.timedelta(days=2)),
        ("submission.accepted", coordinator, world.h01.id, NOW - dt.timedelta(days=1)),
        ("submission.returned", coordinator, world.h02.id, NOW - dt.timedelta(days=1)),
        ("cycle.locked", coordinator, None, NOW),
        ("template.downloaded", officer, world.h01.id, NOW),
    ]
    for action, actor, member_id, when in rows:
        event = record(
            db_session,
            action,
            actor=actor,
            object_type="submission",
            object_id=7,
            member_id=member_id,
            details={"reason": "checked"},
        )
        event.occurred_at = when
    other = Collaborative(slug="other", name="Other collaborative")
    db_session.add(other)
    db_session.flush()
    record(db_session, "cycle.locked", actor="someone@other.example", collaborative_id=other.id)
    record(db_session, "login.failed", actor="nobody@unknown.example", ip_address="203.0.113.9")
    db_session.commit()


def table_actions(page) -> list[str]:
    """The actions listed, leaving out the sign-ins the test clients themselves made."""
    cells = page.html.find(id="events").find_all("td", class_="action")
    return [td.text for td in cells if not td.text.startswith("login.succeeded")]


def test_coordinator_filters_the_log(as_user, world, db_session):
    add_events(db_session, world)
    browser = as_user("coordinator")
    page = browser.get("/audit")
    # Newest first; events of the same moment by id, newest first.
    assert table_actions(page) == [
        "template.downloaded",
        "cycle.locked",
        "submission.returned",
        "submission.accepted",
        "submission.created",
    ]
    assert "someone@other.example" not in page.text  # another collaborative
    assert "nobody@unknown.example" not in page.text  # no collaborative: admins only
    assert page.html.find(id="total").text.endswith(" events")

    by_prefix = browser.get("/audit", {"action": "submission"})
    assert sorted(table_actions(by_prefix)) == [
        "submission.accepted",
        "submission.created",
        "submission.returned",
    ]
    exact = browser.get("/audit", {"action": "submission.accepted"})
    assert table_actions(exact) == ["submission.accepted"]
    assert table_actions(browser.get("/audit", {"action": "submission.a"})) == []
    by_actor = browser.get("/audit", {"actor": "OFFICER@wf"})
    assert sorted(table_actions(by_actor)) == ["submission.created", "template.downloaded"]
    by_member = browser.get("/audit", {"member": "H02"})
    assert table_actions(by_member) == ["submission.returned"]
    day = (NOW - dt.timedelta(days=1)).date().isoformat()
    by_date = browser.get("/audit", {"from": day, "to": day})
    assert sorted(table_actions(by_date)) == ["submission.accepted", "submission.returned"]
    since = browser.get("/audit", {"from": NOW.date().isoformat()})
    assert sorted(table_actions(since)) == ["cycle.locked", "template.downloaded"]
    bad = browser.get("/audit", {"from": "yesterday"})
    assert "the from date must be written YYYY-MM-DD" in bad.text
    assert len(table_actions(bad)) == 5
    wildcard = browser.get("/audit", {"actor": "%"})
    assert table_actions(wildcard) == []


def test_admin_also_sees_events_of_no_collaborative(as_user, world, db_session):
    add_events(db_session, world)
    page = as_user("admin").get("/audit", {"action": "login.failed"})
    assert table_actions(page) == ["login.failed"]
    assert "nobody@unknown.example" in page.text
    assert "203.0.113.9" in page.text


def test_export_is_formula_escaped_filtered_and_audited(as_user, world, db_session):
    add_events(db_session, world)
    record(
        db_session,
        "submission.corrected",
        actor='=HYPERLINK("http://evil.example","x")',
        collaborative_id=world.collaborative.id,
        object_type="@SUM(A1)",
        object_id="-2+3",
        member_id=world.h01.id,
        details={"reason": "+1"},
    )
    db_session.commit()
    browser = as_user("coordinator")
    page = browser.get("/audit", {"action": "submission"})
    response = page.click(href="audit.csv")
    assert response.content_type == "text/csv"
    assert response.content_disposition.startswith('attachment; filename="audit-log-')
    assert response.headers["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(response.body.decode("utf-8-sig"))))
    assert rows[0][:3] == ["occurred_at_utc", "action", "actor"]
    assert sorted(r[1] for r in rows[1:]) == [
        "submission.accepted",
        "submission.corrected",
        "submission.created",
        "submission.returned",
    ]
    evil = next(r for r in rows if r[1] == "submission.corrected")
    assert evil[2] == '\'=HYPERLINK("http://evil.example","x")'
    assert evil[4] == "'@SUM(A1)"
    assert evil[5] == "'-2+3"
    assert evil[6] == "H01"
    assert evil[8] == '{"reason": "+1"}'
    exported = db_session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "audit.exported"))
    db_session.commit()
    assert exported.actor == "coordinator@wf.example"
    assert exported.details == {"filters": {"action": "submission"}, "rows": 4}


def test_paging(as_user, world, db_session):
    for number in range(130):
        record(
            db_session,
            "demo.step",
            actor="cli",
            collaborative_id=world.collaborative.id,
            object_id=number,
        )
    db_session.commit()
    browser = as_user("coordinator")
    first = browser.get("/audit", {"action": "demo.step"})
    assert len(table_actions(first)) == 100
    second = first.click(href="page=2")
    assert len(table_actions(second)) == 30
    assert "Page 2 of 2" in second.text


@pytest.mark.parametrize("who", ["officer", "viewer", None])
def test_members_cannot_read_the_log(as_user, world, who):
    browser = as_user(who)
    for path in ("/audit", "/audit.csv"):
        response = browser.get(path, expect_errors=True)
        assert response.status_int in {403, 404} or (
            response.status_int in {302, 303} and "/login" in response.location
        )
