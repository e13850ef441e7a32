"""Signing in (with throttling), password changes and resets, and user administration."""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from qicollab.accounts.models import LoginAttempt, PasswordResetToken, Role, User
from qicollab.accounts.passwords import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    needs_rehash,
    verify_password,
)
from qicollab.accounts.sessions import digest
from qicollab.db import utcnow
from qicollab.members.models import Member

RESET_VALID_FOR = dt.timedelta(hours=1)


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this keeps unknown e-mails as slow as wrong passwords."""
    return hash_password(secrets.token_hex(16))


class AccountError(ValueError):
    """A refused account action, with a message safe to show."""


class ThrottledError(AccountError):
    """Too many failed sign-ins for this account or address."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many failed sign-ins. Wait a few minutes and try again.")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Throttle:
    """Failures allowed within the window, per account and per address."""

    max_failures: int = 10
    window: dt.timedelta = dt.timedelta(minutes=5)


def normalise_email(email: str) -> str:
    """E-mail addresses are compared case-insensitively, without surrounding spaces."""
    return email.strip().lower()


def check_password_strength(password: str, email: str = "") -> None:
    """Length is what matters (NIST SP 800-63B); refuse the e-mail itself as a password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        msg = f"Use at least {MIN_PASSWORD_LENGTH} characters."
        raise AccountError(msg)
    if email and password.strip().lower() == email.strip().lower():
        msg = "The password cannot be your e-mail address."
        raise AccountError(msg)


class AccountService:
    """Account use cases over one database session."""

    def __init__(self, db: Session, throttle: Throttle | None = None) -> None:
        self.db = db
        self.throttle = throttle or Throttle()

    def by_email(self, email: str) -> User | None:
        """A user by e-mail, or None."""
        return self.db.scalar(sa.select(User).where(User.email == normalise_email(email)))

    def _failures_since(self, column: sa.ColumnElement[str], value: str, since: dt.datetime) -> int:
        return (
            self.db.scalar(
                sa.select(sa.func.count(LoginAttempt.id)).where(
                    column == value,
                    LoginAttempt.succeeded.is_(False),
                    LoginAttempt.attempted_at >= since,
                )
            )
            or 0
        )

    def authenticate(self, email: str, password: str, ip_address: str) -> User:
        """The user for these credentials, or an AccountError; every attempt is recorded."""
        email = normalise_email(email)
        now = utcnow()
        since = now - self.throttle.window
        if (
            self._failures_since(LoginAttempt.email, email, since) >= self.throttle.max_failures
            or self._failures_since(LoginAttempt.ip_address, ip_address, since)
            >= self.throttle.max_failures
        ):
            raise ThrottledError(int(self.throttle.window.total_seconds()))
        user = self.by_email(email)
        if user is None or not user.password_hash:
            verify_password(_dummy_hash(), password)  # same cost: no probing for accounts
            ok = False
        else:
            ok = verify_password(user.password_hash, password) and user.is_active
        self.db.add(
            LoginAttempt(email=email, ip_address=ip_address, succeeded=ok, attempted_at=now)
        )
        if not ok or user is None:
            msg = "The e-mail address or password is not right."
            raise AccountError(msg)
        if user.password_hash and needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        user.last_login_at = now
        return user

    def change_password(self, user: User, current: str, new: str) -> None:
        """Change a password after checking the current one."""
        if not user.password_hash or not verify_password(user.password_hash, current):
            msg = "The current password is not right."
            raise AccountError(msg)
        self.set_password(user, new)

    def set_password(self, user: User, new: str) -> None:
        """Store a new password hash."""
        check_password_strength(new, user.email)
        user.password_hash = hash_password(new)
        user.password_changed_at = utcnow()

    def start_reset(self, email: str) -> tuple[User, str] | None:
        """A one-time reset secret for the user, or None if there is no such active user."""
        user = self.by_email(email)
        if user is None or not user.is_active:
            return None
        secret = secrets.token_urlsafe(32)
        self.db.add(
            PasswordResetToken(
                user_id=user.id, token_hash=digest(secret), expires_at=utcnow() + RESET_VALID_FOR
            )
        )
        return user, secret

    def finish_reset(self, secret: str, new: str) -> User:
        """Use a reset secret once to set a new password."""
        token = self.db.scalar(
            sa.select(PasswordResetToken).where(PasswordResetToken.token_hash == digest(secret))
        )
        if token is None or token.used_at is not None or token.expires_at < utcnow():
            msg = "This reset link has expired or was used already. Ask for a new one."
            raise AccountError(msg)
        user = self.db.get(User, token.user_id)
        assert user is not None
        self.set_password(user, new)
        token.used_at = utcnow()
        return user

    def save_user(
        self,
        actor: User,
        *,
        email: str,
        role: str,
        member_code: str | None,
        display_name: str = "",
        is_active: bool = True,
        user: User | None = None,
    ) -> User:
        """Create or change a user; coordinators cannot grant the admin role."""
        try:
            chosen = Role(role)
        except ValueError as error:
            msg = f"Unknown role {role!r}."
            raise AccountError(msg) from error
        if chosen is Role.ADMIN and actor.role is not Role.ADMIN:
            msg = "Only an administrator can make administrators."
            raise AccountError(msg)
        if user is not None and user.role is Role.ADMIN and actor.role is not Role.ADMIN:
            msg = "Only an administrator can change an administrator."
            raise AccountError(msg)
        email = normalise_email(email)
        if "@" not in email or len(email) > 254:
            msg = "Enter a valid e-mail address."
            raise AccountError(msg)
        clash = self.by_email(email)
        if clash is not None and clash is not user:
            msg = "A user with this e-mail address exists already."
            raise AccountError(msg)
        member = None
        if chosen.is_member_scoped:
            member = self.db.scalar(
                sa.select(Member).where(
                    Member.collaborative_id == actor.collaborative_id,
                    Member.code == (member_code or "").strip().upper(),
                )
            )
            if member is None:
                msg = "Quality officers and member viewers need the code of their member."
                raise AccountError(msg)
        if user is None:
            user = User(collaborative_id=actor.collaborative_id)
            self.db.add(user)
        user.email = email
        user.display_name = display_name.strip()
        user.role = chosen
        user.member_id = member.id if member else None
        user.is_active = is_active
        self.db.flush()
        return user
