"""The audit log: who did what to which object, when (UTC). Append-only."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from qicollab.db import Base, utcnow


class AuditEvent(Base):
    """One recorded action; never updated or deleted by the application."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    collaborative_id: Mapped[int | None] = mapped_column(sa.ForeignKey("collaboratives.id"))
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    #: The actor as text (email, "system", "cli"), kept even if the user is removed.
    actor: Mapped[str] = mapped_column(sa.String(254))
    #: Dotted verb, e.g. ``submission.created``, ``login.failed``, ``report.downloaded``.
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    object_type: Mapped[str | None] = mapped_column(sa.String(64))
    object_id: Mapped[str | None] = mapped_column(sa.String(64))
    member_id: Mapped[int | None] = mapped_column(sa.ForeignKey("members.id"), index=True)
    ip_address: Mapped[str | None] = mapped_column(sa.String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
