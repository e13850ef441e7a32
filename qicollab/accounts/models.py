"""Users, their roles, server-side sessions, API tokens and login throttling."""

from __future__ import annotations

import datetime as dt
import enum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qicollab.db import Base, CreatedAtMixin, enum_column

if TYPE_CHECKING:
    from qicollab.members.models import Collaborative, Member


class Role(enum.StrEnum):
    """What a user may do; officers and viewers belong to one member."""

    QUALITY_OFFICER = "quality_officer"
    MEMBER_VIEWER = "member_viewer"
    COORDINATOR = "coordinator"
    ADMIN = "admin"

    @property
    def is_member_scoped(self) -> bool:
        """Officers and viewers act for their own member only."""
        return self in {Role.QUALITY_OFFICER, Role.MEMBER_VIEWER}


class User(CreatedAtMixin, Base):
    """A person who signs in to the portal or whose API token submits data."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    collaborative_id: Mapped[int] = mapped_column(
        sa.ForeignKey("collaboratives.id", ondelete="RESTRICT"), index=True
    )
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    role: Mapped[Role] = mapped_column(enum_column(Role, name="role"))
    member_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("members.id", ondelete="RESTRICT"), index=True
    )
    is_active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[dt.datetime | None]
    password_changed_at: Mapped[dt.datetime | None]

    collaborative: Mapped[Collaborative] = relationship()
    member: Mapped[Member | None] = relationship()

    __table_args__ = (
        sa.CheckConstraint(
            "(role IN ('quality_officer', 'member_viewer')) = (member_id IS NOT NULL)",
            name="member_scoped_roles_have_member",
        ),
    )


class WebSession(Base):
    """A server-side session; the browser holds only a random id whose hash is stored here."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    ip_address: Mapped[str | None] = mapped_column(sa.String(64))
    user_agent: Mapped[str | None] = mapped_column(sa.String(256))


class ApiToken(CreatedAtMixin, Base):
    """A bearer token for a member's systems; only its hash is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    #: The first characters, so a user can tell tokens apart without the secret.
    prefix: Mapped[str] = mapped_column(sa.String(16))
    description: Mapped[str] = mapped_column(sa.String(200), default="")
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship()


class PasswordResetToken(CreatedAtMixin, Base):
    """A one-time link sent by email; stored hashed, valid once and briefly."""

    __tablename__ = "password_reset_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


class LoginAttempt(Base):
    """One sign-in attempt, kept to rate-limit by account and by address."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), index=True)
    ip_address: Mapped[str] = mapped_column(sa.String(64), index=True)
    succeeded: Mapped[bool]
    attempted_at: Mapped[dt.datetime] = mapped_column(index=True)
