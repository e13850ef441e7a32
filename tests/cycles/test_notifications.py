"""Workflow e-mail through a real SMTP server on loopback (aiosmtpd): sent after commit, once."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import socket

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from qicollab.db import get_session_factory
from qicollab.notifications.models import (
    NotificationKind,
    NotificationOptOut,
    SentNotification,
)
from qicollab.notifications.reminders import reminder_threshold, send_due_reminders
from qicollab.submissions.models import Submission
from tests.cycles.test_views import read, submit
from tests.cycles.world import NOW, client, make_app

JANUARY = {"period": "2026-01", "numerator": "4", "denominator": "5"}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"

    def to(self, address):
        return [m for m in self.messages if address in m["X-Envelope-To"]]


@pytest.fixture
def inbox():
    handler = Inbox()
    handler.port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture
def smtp_settings(settings, inbox):
    return {
        **settings,
        "mail.mailer": "smtp",
        "mail.host": "127.0.0.1",
        "mail.port": str(inbox.port),
        "mail.default_sender": "qicollab@wf.example",
    }


def body(message):
    return message.get_content()


def test_reminder_thresholds():
    assert [reminder_threshold(d) for d in (30, 15, 14, 13, 8, 7, 3, 2, 1, 0, -1)] == [
        None, None, 14, 14, 14, 7, 7, 2, 2, 2, None,
    ]  # fmt: skip


def test_a_returned_submission_mails_the_officers_with_the_reason(
    smtp_settings, engine, world, db_session, inbox
):
    submit(
        db_session, world, world.h01, [{"period": "2026-01", "numerator": "4", "denominator": "5"}]
    )
    sid = read(db_session, sa.select(Submission.id))
    coordinator = client(
        make_app(smtp_settings, engine, clock=lambda: NOW), world.users["coordinator"]
    )
    queue = coordinator.get("/review?cycle=C2026")
    form = next(f for f in queue.forms.values() if f.action.endswith(f"/submissions/{sid}/review"))
    # A refused return (no reason) rolls back: nothing recorded, nothing sent.
    form.submit("decision", value="return", expect_errors=True)
    assert inbox.messages == []
    form["reason"] = "the denominator looks like last year's"
    form.submit("decision", value="return").follow()
    (mail,) = inbox.messages
    assert mail["X-Envelope-To"] == "officer@wf.example"  # h01's officer only, not h02's
    assert mail["Subject"] == "Returned: HH 2026-01 (version 1)"
    assert "Reason: the denominator looks like last year's" in body(mail)
    assert f"/members/{world.h01.id}/submit" in body(mail)
    row = read(db_session, sa.select(SentNotification))
    assert (row.kind, row.recipient, row.status.value) == (
        NotificationKind.SUBMISSION_RETURNED,
        "officer@wf.example",
        "sent",
    )


def test_deadline_reminders_say_what_is_missing_once_and_respect_opt_outs(
    smtp_settings, engine, world, db_session, inbox
):
    submit(
        db_session, world, world.h01, [{"period": "2026-01", "numerator": "4", "denominator": "5"}]
    )
    db_session.add(
        NotificationOptOut(
            user_id=world.users["other_officer"].id, kind=NotificationKind.DEADLINE_REMINDER
        )
    )
    db_session.commit()
    factory = get_session_factory(engine)
    summary = send_due_reminders(smtp_settings, factory, now=NOW)  # 10 days before: the 14-day one
    assert summary.deadline == 1
    (mail,) = inbox.messages
    assert mail["X-Envelope-To"] == "officer@wf.example"
    assert mail["Subject"] == "10 days left: learning cycle C2026 is missing data from you"
    text = body(mail)
    # Open periods of the cycle so far: HH and CLABSI monthly (2026-01..06 are past or current).
    assert "HH (Measure HH): 2026-02" in text
    assert "2026-01 " not in text.split("HH (Measure HH):")[1].split("\n")[0]
    assert "CLABSI" in text
    # Running again (two consumers, or the next tick) sends nothing new.
    assert send_due_reminders(smtp_settings, factory, now=NOW + dt.timedelta(hours=1)).deadline == 0
    assert len(inbox.messages) == 1
    # The 7-day threshold is a new reminder.
    assert send_due_reminders(smtp_settings, factory, now=NOW + dt.timedelta(days=3)).deadline == 1
    assert [m["Subject"][:11] for m in inbox.messages] == ["10 days lef", "7 days left"]
    kinds = read(
        db_session, sa.select(SentNotification.topic).order_by(SentNotification.id), "scalars"
    )
    assert [t.rsplit(":", 1)[1] for t in kinds] == ["14", "7"]


def test_an_unreachable_mail_server_marks_the_mail_failed(settings, engine, world, db_session):
    broken = {**settings, "mail.mailer": "smtp", "mail.host": "127.0.0.1", "mail.port": "1"}
    summary = send_due_reminders(broken, get_session_factory(engine), now=NOW)
    assert summary.deadline == 2  # both members miss data; both officers are recorded
    rows = read(db_session, sa.select(SentNotification), "scalars")
    assert {r.status.value for r in rows} == {"failed"}
    assert all("ConnectionRefusedError" in r.error for r in rows)


def test_each_user_chooses_the_kinds_of_mail(as_user, world, db_session):
    browser = as_user("officer")
    form = browser.get("/account/notifications").forms["preferences-form"]
    assert all(box.checked for box in form.fields["kinds"])
    for box in form.fields["kinds"]:
        if box._value in {"deadline-reminder", "results-published"}:
            box.checked = False
    page = form.submit().follow()
    assert page.html.find(id="saved")
    off = read(
        db_session,
        sa.select(NotificationOptOut.kind).where(
            NotificationOptOut.user_id == world.users["officer"].id
        ),
        "scalars",
    )
    assert sorted(k.value for k in off) == ["deadline-reminder", "results-published"]


def test_opening_and_reopening_mail_the_officers(smtp_settings, engine, world, db_session, inbox):
    from qicollab.cycles.services import CycleService
    from qicollab.notifications.services import Notifier

    notifier = Notifier.from_settings(db_session, smtp_settings, clock=lambda: NOW)
    service = CycleService(db_session, world.collaborative.id, clock=lambda: NOW, notifier=notifier)
    coordinator = world.users["coordinator"]
    service.transition(world.cycles["next"], "open", actor=coordinator)
    service.reopen(
        world.cycles["last"],
        reason="ward 3 sheets were found after the lock",
        closes_at=NOW + dt.timedelta(days=7),
        actor=coordinator,
        member=world.h02,
        measure=world.measures["HH"],
    )
    assert inbox.messages == []  # nothing leaves before the commit
    db_session.commit()
    opened = [m for m in inbox.messages if m["Subject"].startswith("Submissions open")]
    assert {m["X-Envelope-To"] for m in opened} == {
        "officer@wf.example",
        "other.officer@wf.example",
    }
    (reopened,) = [m for m in inbox.messages if m["Subject"].startswith("Reopened for you")]
    assert reopened["X-Envelope-To"] == "other.officer@wf.example"
    assert "Reason: ward 3 sheets were found after the lock" in body(reopened)
    assert "(HH, every period)" in body(reopened)


def test_monthly_team_report_reminder_goes_once_to_teams_that_have_not_reported(
    smtp_settings, engine, world, db_session, inbox
):
    from qicollab.improvement.models import ChangePackage, MonthlyReport

    factory = get_session_factory(engine)
    early_july = dt.datetime(2026, 7, 3, 9, tzinfo=dt.UTC)
    # Without a change package the collaborative does not keep monthly team reports.
    assert send_due_reminders(smtp_settings, factory, now=early_july).monthly_report == 0
    db_session.add(ChangePackage(collaborative_id=world.collaborative.id, aim="Fewer infections"))
    db_session.add(
        MonthlyReport(member_id=world.h01.id, month=dt.date(2026, 6, 1), tested="hand rub")
    )
    db_session.commit()
    assert send_due_reminders(smtp_settings, factory, now=early_july).monthly_report == 1
    due = [m for m in inbox.messages if "monthly team report" in m["Subject"]]
    assert [(m["X-Envelope-To"], m["Subject"]) for m in due] == [
        ("other.officer@wf.example", "Your monthly team report for June 2026 is due")
    ]
    later = early_july + dt.timedelta(days=2)
    assert send_due_reminders(smtp_settings, factory, now=later).monthly_report == 0
    mid_month = dt.datetime(2026, 7, 20, tzinfo=dt.UTC)
    assert send_due_reminders(smtp_settings, factory, now=mid_month).monthly_report == 0
