"""Sending workflow e-mail: recorded in the caller's transaction, delivered after it commits.

:meth:`Notifier.notify` writes a :class:`SentNotification` row (unique per user, kind and
topic, so the same reminder never goes twice, even from two consumers at once) and hands the
message to the mailer only once the session commits: a rolled-back change sends nothing. A
mail server that refuses the message marks the row ``failed`` with the error.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from pyramid_mailer.message import Message
from sqlalchemy.orm import Session

from qicollab.accounts.models import Role, User
from qicollab.db import utcnow
from qicollab.notifications.models import (
    DeliveryStatus,
    NotificationKind,
    NotificationOptOut,
    SentNotification,
)

log = logging.getLogger(__name__)

DEFAULT_SENDER = "qicollab@localhost"
SIGNATURE = "\n\n--\nqicollab. Choose which e-mail you receive: {link}"


@dataclass
class Notifier:
    """Mail about the workflow for one database session."""

    db: Session
    mailer: Any
    sender: str = DEFAULT_SENDER
    #: Where links in the mail point (the portal's address), without a trailing slash.
    base_url: str = ""
    clock: Callable[[], dt.datetime] = field(default=utcnow)
    _pending: list[tuple[int, Message]] = field(default_factory=list, repr=False)

    @classmethod
    def from_settings(cls, db: Session, settings: dict[str, Any], **kwargs: Any) -> Notifier:
        """A notifier with the mailer ``mail.mailer`` configures (periodic tasks, the CLI)."""
        from qicollab.accounts.mail import mailer_from_settings  # noqa: PLC0415

        return cls(
            db,
            mailer_from_settings(settings),
            sender=settings.get("mail.default_sender") or DEFAULT_SENDER,
            base_url=str(settings.get("qicollab.base_url") or "").rstrip("/"),
            **kwargs,
        )

    # --- recipients ---------------------------------------------------------------------------

    def member_users(self, member_id: int | None, roles: Iterable[Role]) -> list[User]:
        """Active users of a member (or of every member, for None) with one of ``roles``."""
        query = sa.select(User).where(User.is_active.is_(True), User.role.in_(list(roles)))
        if member_id is not None:
            query = query.where(User.member_id == member_id)
        else:
            query = query.where(User.member_id.is_not(None))
        return list(self.db.scalars(query.order_by(User.id)))

    def officers(self, member_id: int | None) -> list[User]:
        """The member's quality officers (they submit)."""
        return self.member_users(member_id, [Role.QUALITY_OFFICER])

    def opted_out(self, user_id: int, kind: NotificationKind) -> bool:
        """The user turned this kind off."""
        return self.db.get(NotificationOptOut, (user_id, kind)) is not None

    # --- sending ------------------------------------------------------------------------------

    def notify(
        self, user: User, kind: NotificationKind, topic: str, subject: str, body: str
    ) -> SentNotification | None:
        """Record and (after commit) send one mail; None if opted out or already sent."""
        if not user.is_active or not user.email or self.opted_out(user.id, kind):
            return None
        exists = self.db.scalar(
            sa.select(SentNotification.id).where(
                SentNotification.user_id == user.id,
                SentNotification.kind == kind,
                SentNotification.topic == topic,
            )
        )
        if exists is not None:
            return None
        row = SentNotification(
            user_id=user.id,
            kind=kind,
            topic=topic[:200],
            recipient=user.email,
            subject=subject[:300],
            body=body + SIGNATURE.format(link=self.link("/account/notifications")),
            status=DeliveryStatus.SENT,
            sent_at=self.clock(),
            created_at=self.clock(),
        )
        # Two consumers racing on the same reminder: the unique constraint fails one commit,
        # which rolls back (sending nothing); its next tick finds the row and skips it.
        self.db.add(row)
        self.db.flush()
        message = Message(
            subject=row.subject, sender=self.sender, recipients=[user.email], body=row.body
        )
        if not self._pending:
            sa.event.listen(self.db, "after_commit", self._deliver, once=True)
            sa.event.listen(self.db, "after_rollback", self._forget, once=True)
        self._pending.append((row.id, message))
        return row

    def notify_all(
        self, users: Iterable[User], kind: NotificationKind, topic: str, subject: str, body: str
    ) -> int:
        """Mail each user (once per topic); returns how many mails were recorded."""
        return sum(self.notify(user, kind, topic, subject, body) is not None for user in users)

    def link(self, path: str) -> str:
        """An absolute link to a portal page when the address is known, else the path."""
        return f"{self.base_url}{path}"

    def _forget(self, _session: Session) -> None:
        self._pending.clear()
        if sa.event.contains(self.db, "after_commit", self._deliver):
            sa.event.remove(self.db, "after_commit", self._deliver)

    def _deliver(self, session: Session) -> None:
        pending, self._pending = self._pending, []
        if sa.event.contains(self.db, "after_rollback", self._forget):
            sa.event.remove(self.db, "after_rollback", self._forget)
        failed: dict[int, str] = {}
        for row_id, message in pending:
            try:
                self.mailer.send_immediately(message)
            except Exception as error:  # the change is committed; the mail is what failed
                log.exception("could not send notification %s", row_id)
                failed[row_id] = f"{type(error).__name__}: {error}"[:2000]
        if failed:
            with Session(bind=session.get_bind()) as fresh, fresh.begin():
                for row_id, error in failed.items():
                    fresh.execute(
                        sa.update(SentNotification)
                        .where(SentNotification.id == row_id)
                        .values(status=DeliveryStatus.FAILED, error=error)
                    )


def request_notifier(request: Any, clock: Callable[[], dt.datetime] = utcnow) -> Notifier:
    """The notifier of a portal request: its mailer, sender and the portal's address."""
    from pyramid_mailer import get_mailer  # noqa: PLC0415

    settings = request.registry.settings
    return Notifier(
        request.db,
        get_mailer(request),
        sender=settings.get("mail.default_sender") or DEFAULT_SENDER,
        base_url=str(settings.get("qicollab.base_url") or request.application_url).rstrip("/"),
        clock=clock,
    )
