"""What was mailed to whom (so no reminder goes twice), and which kinds each user turned off."""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from qicollab.db import Base, CreatedAtMixin, enum_column


class NotificationKind(enum.StrEnum):
    """The kinds of e-mail qicollab sends; each user can turn any of them off."""

    WINDOW_OPENED = "window-opened"
    DEADLINE_REMINDER = "deadline-reminder"
    SUBMISSION_RETURNED = "submission-returned"
    REOPENING_GRANTED = "reopening-granted"
    RESULTS_PUBLISHED = "results-published"
    MONTHLY_REPORT_DUE = "monthly-report-due"

    @property
    def title(self) -> str:
        """How the preferences page names the kind."""
        return _TITLES[self]


_TITLES = {
    NotificationKind.WINDOW_OPENED: "A submission window opened",
    NotificationKind.DEADLINE_REMINDER: "Deadline reminders (14, 7 and 2 days before)",
    NotificationKind.SUBMISSION_RETURNED: "A coordinator returned a submission",
    NotificationKind.REOPENING_GRANTED: "A period was reopened for us",
    NotificationKind.RESULTS_PUBLISHED: "Results were published",
    NotificationKind.MONTHLY_REPORT_DUE: "The monthly team report is due",
}


class DeliveryStatus(enum.StrEnum):
    """Whether the mail server took the message."""

    SENT = "sent"
    FAILED = "failed"


class NotificationOptOut(Base):
    """A user does not want e-mail of this kind."""

    __tablename__ = "notification_opt_outs"

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[NotificationKind] = mapped_column(
        enum_column(NotificationKind, name="notification_kind"), primary_key=True
    )


class SentNotification(CreatedAtMixin, Base):
    """One e-mail to one user; ``topic`` names what it is about, so it goes once.

    The topic is, e.g., ``cycle:7:days:14`` for the 14-day reminder of cycle 7, or
    ``submission:42`` for the return of version 42: the unique constraint refuses a second
    mail about the same thing, even from two reminder runs at once.
    """

    __tablename__ = "sent_notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[NotificationKind] = mapped_column(
        enum_column(NotificationKind, name="notification_kind")
    )
    topic: Mapped[str] = mapped_column(sa.String(200))
    recipient: Mapped[str] = mapped_column(sa.String(320))
    subject: Mapped[str] = mapped_column(sa.String(300))
    body: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[DeliveryStatus] = mapped_column(
        enum_column(DeliveryStatus, name="delivery_status"), default=DeliveryStatus.SENT
    )
    error: Mapped[str | None] = mapped_column(sa.Text)
    sent_at: Mapped[dt.datetime | None]

    __table_args__ = (sa.UniqueConstraint("user_id", "kind", "topic"),)
