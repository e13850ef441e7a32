"""Periodic reminders (a huey periodic task on every consumer): deadlines and monthly reports.

Safe to run as often as wanted and from several consumers at once: each reminder has a topic
(cycle, deadline, threshold; member and month) that is mailed at most once per user.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from qicollab.cycles.completeness import CellStatus
from qicollab.cycles.deadlines import days_until
from qicollab.cycles.services import CycleService
from qicollab.db import session_scope, utcnow
from qicollab.members.models import Member
from qicollab.notifications import events
from qicollab.notifications.services import Notifier
from qicollab.schedule.calendar import CycleStatus, LearningCycle

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from qicollab.cycles.completeness import Completeness

#: Reminders go this many days before a deadline.
REMINDER_DAYS = (14, 7, 2)
#: The monthly team report for last month is asked for during the first days of a month.
MONTHLY_REPORT_DAYS = 10
STILL_TO_SEND = (CellStatus.MISSING, CellStatus.DRAFT, CellStatus.RETURNED)


@dataclass(frozen=True, slots=True)
class ReminderSummary:
    """How many mails one reminder run recorded."""

    deadline: int
    monthly_report: int


def reminder_threshold(days_left: int) -> int | None:
    """The reminder due with ``days_left`` days to go (the nearest threshold not yet passed).

    A consumer that was down on day 14 still sends the 14-day reminder on day 13; each
    threshold goes once (its topic), and none once the deadline has passed.
    """
    if days_left < 0:
        return None
    due = [days for days in REMINDER_DAYS if days_left <= days]
    return min(due) if due else None


def missing_by_member(grid: Completeness) -> dict[int, list[str]]:
    """Per member, one line per measure saying which periods are still to send."""
    found: dict[int, list[str]] = {}
    for member in grid.members:
        for measure in grid.measures:
            cells = [
                c
                for c in grid.row(member.id, measure.id)
                if c.status in STILL_TO_SEND and c.window.is_open
            ]
            if not cells:
                continue
            parts = []
            for status in STILL_TO_SEND:
                labels = [c.period_label for c in cells if c.status is status]
                if labels:
                    parts.append(f"{', '.join(labels)} {status.value}")
            found.setdefault(member.id, []).append(
                f"{measure.code} ({measure.title}): {'; '.join(parts)}"
            )
    return found


def deadline_reminders(notifier: Notifier, now: dt.datetime) -> int:
    """Mail every member with data still to send in an open cycle whose deadline is near."""
    sent = 0
    cycles = notifier.db.scalars(
        sa.select(LearningCycle).where(LearningCycle.status == CycleStatus.OPEN)
    ).all()
    for cycle in cycles:
        threshold = reminder_threshold(days_until(cycle.deadline, now))
        if threshold is None or not (cycle.window_opens_at <= now <= cycle.deadline):
            continue
        service = CycleService(notifier.db, cycle.collaborative_id, clock=lambda: now)
        grid = service.completeness(cycle)
        members = {m.id: m for m in grid.members}
        for member_id, missing in missing_by_member(grid).items():
            sent += events.deadline_reminder(
                notifier,
                cycle=cycle,
                member=members[member_id],
                threshold=threshold,
                missing=missing,
                days_left=days_until(cycle.deadline, now),
            )
    return sent


def monthly_report_reminders(notifier: Notifier, now: dt.datetime) -> int:
    """Early each month, members of collaboratives that keep a change package and have not
    reported on last month get a reminder."""
    from qicollab.improvement.models import ChangePackage, MonthlyReport  # noqa: PLC0415

    if now.day > MONTHLY_REPORT_DAYS:
        return 0
    month = (now.date().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    reported = sa.select(MonthlyReport.member_id).where(MonthlyReport.month == month)
    members = notifier.db.scalars(
        sa.select(Member)
        .where(
            Member.active.is_(True),
            Member.collaborative_id.in_(sa.select(ChangePackage.collaborative_id)),
            Member.id.not_in(reported),
        )
        .order_by(Member.id)
    ).all()
    return sum(events.monthly_report_due(notifier, member, month) for member in members)


def send_due_reminders(
    settings: dict[str, Any],
    session_factory: sessionmaker[Session],
    *,
    now: dt.datetime | None = None,
    mailer: Any = None,
) -> ReminderSummary:
    """One reminder run in its own transaction; mail goes out once it commits."""
    now = now or utcnow()
    with session_scope(session_factory) as db:
        notifier = Notifier.from_settings(db, settings, clock=lambda: now)
        if mailer is not None:
            notifier.mailer = mailer
        return ReminderSummary(
            deadline=deadline_reminders(notifier, now),
            monthly_report=monthly_report_reminders(notifier, now),
        )
