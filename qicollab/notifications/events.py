"""The mail each workflow event sends, and to whom. Texts say what happened and what to do."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from qicollab.accounts.models import Role
from qicollab.notifications.models import NotificationKind

if TYPE_CHECKING:
    from qicollab.measures.models import Measure
    from qicollab.members.models import Member
    from qicollab.notifications.services import Notifier
    from qicollab.schedule.calendar import CycleReopening, LearningCycle
    from qicollab.schedule.periods import ReportingPeriod
    from qicollab.submissions.models import Submission

WHEN = "%Y-%m-%d %H:%M UTC"


def window_opened(notifier: Notifier, cycle: LearningCycle, measures: list[Measure]) -> int:
    """Every member's officers: the window is open, what to submit and by when."""
    codes = ", ".join(m.code for m in measures) or "every active measure"
    subject = f"Submissions open: learning cycle {cycle.code}"
    body = (
        f"The submission window of learning cycle {cycle.code} ({cycle.title}) is open.\n\n"
        f"Periods: {cycle.first_period_start:%Y-%m} to {cycle.last_period_end:%Y-%m}\n"
        f"Measures: {codes}\n"
        f"Deadline: {cycle.deadline:{WHEN}}\n\n"
        f"Submit on the portal: {notifier.link('/')}"
    )
    return notifier.notify_all(
        notifier.officers(None),
        NotificationKind.WINDOW_OPENED,
        f"cycle:{cycle.id}:opened:{cycle.window_opens_at:%Y%m%d%H%M}",
        subject,
        body,
    )


def submission_returned(
    notifier: Notifier,
    *,
    submission: Submission,
    member: Member,
    measure: Measure,
    period: ReportingPeriod,
    reason: str,
) -> int:
    """The member's officers: which version came back, why, and where to resubmit."""
    subject = f"Returned: {measure.code} {period.label} (version {submission.version})"
    body = (
        f"A coordinator returned version {submission.version} of {measure.code} "
        f"({measure.title}) for {period.label}, submitted by {member.name}.\n\n"
        f"Reason: {reason}\n\n"
        "Correct the data and submit a new version on the portal: "
        f"{notifier.link(f'/members/{member.id}/submit')}"
    )
    return notifier.notify_all(
        notifier.officers(member.id),
        NotificationKind.SUBMISSION_RETURNED,
        f"submission:{submission.id}:returned",
        subject,
        body,
    )


def reopening_granted(
    notifier: Notifier,
    *,
    reopening: CycleReopening,
    cycle: LearningCycle,
    member: Member | None,
    measure: Measure | None,
    period: ReportingPeriod | None,
) -> int:
    """The officers of the reopened member (every member's, when blank)."""
    what = (
        f"{measure.code if measure else 'every measure'}, "
        f"{period.label if period else 'every period'}"
    )
    until = f" until {reopening.closes_at:{WHEN}}" if reopening.closes_at else ""
    subject = f"Reopened for you: learning cycle {cycle.code}"
    body = (
        f"A coordinator reopened learning cycle {cycle.code} ({what}) for submissions{until}.\n\n"
        f"Reason: {reopening.reason}\n\n"
        f"Submit on the portal: {notifier.link('/')}"
    )
    return notifier.notify_all(
        notifier.officers(member.id if member else None),
        NotificationKind.REOPENING_GRANTED,
        f"reopening:{reopening.id}",
        subject,
        body,
    )


def results_published(notifier: Notifier, cycle: LearningCycle) -> int:
    """Every member's officers and viewers: results are out, where to read them."""
    subject = f"Results published: learning cycle {cycle.code}"
    body = (
        f"The benchmark results of learning cycle {cycle.code} ({cycle.title}) are "
        "published. Your results page and your report show where you stand against the "
        "collaborative and what changed since the last cycle.\n\n"
        f"Read them on the portal: {notifier.link('/results')}"
    )
    users = notifier.member_users(None, [Role.QUALITY_OFFICER, Role.MEMBER_VIEWER])
    return notifier.notify_all(
        users, NotificationKind.RESULTS_PUBLISHED, f"cycle:{cycle.id}:published", subject, body
    )


def deadline_reminder(
    notifier: Notifier,
    *,
    cycle: LearningCycle,
    member: Member,
    threshold: int,
    missing: list[str],
    days_left: int,
) -> int:
    """A member's officers, near the deadline: what is still missing (once per threshold)."""
    left = f"{days_left} day{'s' if days_left != 1 else ''}"
    subject = f"{left} left: learning cycle {cycle.code} is missing data from you"
    lines = "\n".join(f"  - {item}" for item in missing)
    body = (
        f"The deadline of learning cycle {cycle.code} is {cycle.deadline:{WHEN}}, "
        f"{left} from now. {member.name} has not yet submitted:\n\n{lines}\n\n"
        f"Submit on the portal: {notifier.link(f'/members/{member.id}/submit')}"
    )
    return notifier.notify_all(
        notifier.officers(member.id),
        NotificationKind.DEADLINE_REMINDER,
        f"cycle:{cycle.id}:deadline:{cycle.deadline:%Y%m%d}:days:{threshold}",
        subject,
        body,
    )


def monthly_report_due(notifier: Notifier, member: Member, month: dt.date) -> int:
    """A member's officers: the team's report for ``month`` is due (once per month)."""
    subject = f"Your monthly team report for {month:%B %Y} is due"
    body = (
        f"{member.name} has not yet sent its monthly team report for {month:%B %Y}: what you "
        "tested, what you learned, your barriers, and the month's progress score.\n\n"
        f"Write it on the portal: {notifier.link('/')}"
    )
    return notifier.notify_all(
        notifier.officers(member.id),
        NotificationKind.MONTHLY_REPORT_DUE,
        f"monthly-report:{member.id}:{month:%Y-%m}",
        subject,
        body,
    )
