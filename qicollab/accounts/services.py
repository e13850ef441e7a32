"""Account use cases: signing in (throttled), passwords and resets, users, API tokens.

Plain classes over one database session, used alike by the portal views and the CLI. Each
writes its audit events through :func:`qicollab.audit.services.record` in the caller's
transaction, so an action and its record commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from qicollab.accounts.models import ApiToken, LoginAttempt, PasswordResetToken, Role, User
from qicollab.accounts.passwords import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    needs_rehash,
    verify_password,
)
from qicollab.accounts.sessions import TOKEN_PREFIX_LENGTH, digest, new_api_token
from qicollab.audit.services import record
from qicollab.db import utcnow
from qicollab.members.models import Member

if TYPE_CHECKING:
    from pyramid.request import Request
    from sqlalchemy.orm import Session

#: How long an emailed reset link works.
RESET_VALID_FOR = dt.timedelta(hours=1)
#: How long the set-your-password link of a newly created user works.
INVITATION_VALID_FOR = dt.timedelta(days=3)
#: Unused, unexpired reset links per user beyond which no more are mailed (no mail bombing).
MAX_LIVE_RESET_LINKS = 3
#: Longest password accepted: long enough for any passphrase, short enough to hash cheaply.
MAX_PASSWORD_LENGTH = 1024
#: Login attempts older than this are deleted; they no longer count for anything.
KEEP_LOGIN_ATTEMPTS = dt.timedelta(days=1)


class AccountError(ValueError):
    """A refused account action; the message is safe to show, ``field`` names the input."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ThrottledError(AccountError):
    """Too many failed sign-ins from this address (for this account, or for any)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many failed sign-ins from your address. Wait {_wait_words(retry_after)} "
            "and try again."
        )
        self.retry_after = retry_after


def _wait_words(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"


@dataclass(frozen=True, slots=True)
class Throttle:
    """Progressive delays on failed sign-ins, charged to the address that failed.

    Nothing one address does can stop another address from signing in, so nobody can lock a
    user out by guessing at their account. Within the window, an address gets
    ``max_failures`` free failures on one account and ``address_max_failures`` over all
    accounts; after that every further failure doubles its wait (``first_delay``, 2x, 4x, ...,
    at most ``max_delay``). When one account collects ``account_max_failures`` failures from
    all addresses together (guessing spread over many addresses), each address gets only one
    free failure on that account; an address that has not failed on it is never slowed.

    ``clock`` is where the throttle reads the time, both to stamp attempts and to measure
    waits, so tests can move time instead of depending on how fast requests run.
    """

    max_failures: int = 10
    window: dt.timedelta = dt.timedelta(minutes=15)
    address_max_failures: int = 30
    account_max_failures: int = 50
    first_delay: dt.timedelta = dt.timedelta(seconds=1)
    max_delay: dt.timedelta = dt.timedelta(minutes=15)
    clock: Callable[[], dt.datetime] = utcnow

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> Throttle:
        """``qicollab.login_*`` settings (see :data:`qicollab.config.DEFAULTS`).

        ``qicollab.login_clock`` (a callable, not an ini value) replaces the wall clock.
        """
        window = dt.timedelta(minutes=float(settings["qicollab.login_window_minutes"]))
        return cls(
            max_failures=int(settings["qicollab.login_max_failures"]),
            window=window,
            address_max_failures=int(settings["qicollab.login_address_max_failures"]),
            account_max_failures=int(settings["qicollab.login_account_max_failures"]),
            first_delay=dt.timedelta(seconds=float(settings["qicollab.login_first_delay_seconds"])),
            max_delay=dt.timedelta(minutes=float(settings["qicollab.login_max_delay_minutes"])),
            clock=settings.get("qicollab.login_clock") or utcnow,
        )

    def wait(self, failures: int, allowed: int, last: dt.datetime, now: dt.datetime) -> float:
        """Seconds still to wait after ``failures`` failures (the last at ``last``), or 0."""
        if failures < allowed:
            return 0.0
        doublings = min(failures - allowed, 30)
        delay = min(self.first_delay * 2**doublings, self.max_delay)
        return max(0.0, (last + delay - now).total_seconds())


def normalise_email(email: str) -> str:
    """Addresses are compared case-insensitively, without surrounding spaces."""
    return email.strip().lower()


def check_email(email: str) -> str:
    """The normalised address, or an AccountError when it cannot be an address."""
    address = normalise_email(email)
    local, at, domain = address.partition("@")
    if (
        not (local and at and "." in domain)
        or len(address) > 254
        or any(c.isspace() for c in address)
    ):
        msg = "Enter an e-mail address such as name@example.org."
        raise AccountError(msg, "email")
    return address


def check_password_strength(password: str, email: str = "", *, field: str = "new_password") -> None:
    """Length is what counts (NIST SP 800-63B); the e-mail address itself is refused."""
    if len(password) < MIN_PASSWORD_LENGTH:
        msg = f"Use at least {MIN_PASSWORD_LENGTH} characters."
        raise AccountError(msg, field)
    if len(password) > MAX_PASSWORD_LENGTH:
        msg = f"Use at most {MAX_PASSWORD_LENGTH} characters."
        raise AccountError(msg, field)
    if email and password.strip().lower() == normalise_email(email):
        msg = "The password cannot be your e-mail address."
        raise AccountError(msg, field)


@functools.cache
def _decoy_hash() -> str:
    """Checked against when there is no such user, so unknown addresses take as long."""
    return hash_password(secrets.token_hex(16))


def find_user(db: Session, email: str) -> User | None:
    """The user with this address (case-insensitive), or None."""
    return db.scalar(sa.select(User).where(sa.func.lower(User.email) == normalise_email(email)))


class AccountService:
    """Signing in, password changes and password resets."""

    def __init__(self, db: Session, throttle: Throttle | None = None) -> None:
        self.db = db
        self.throttle = throttle or Throttle()

    # --- signing in ---------------------------------------------------------------------------

    def _failures(self, since: dt.datetime, *conditions: Any) -> tuple[int, dt.datetime | None]:
        """How many failed attempts match, and when the last one was."""
        count, last = self.db.execute(
            sa.select(sa.func.count(LoginAttempt.id), sa.func.max(LoginAttempt.attempted_at))
            .where(LoginAttempt.succeeded.is_(False), LoginAttempt.attempted_at >= since)
            .where(*conditions)
        ).one()
        return int(count or 0), last

    def check_throttle(self, email: str, ip_address: str) -> None:
        """Raise :class:`ThrottledError` when this address must wait before trying again."""
        now = self.throttle.clock()
        since = now - self.throttle.window
        email, ip_address = normalise_email(email)[:254], ip_address[:64]
        same_pair = (LoginAttempt.email == email, LoginAttempt.ip_address == ip_address)
        # Signing in wipes the slate of this account at this address (typos made before a
        # successful sign-in do not count against the next one).
        last_success = self.db.scalar(
            sa.select(sa.func.max(LoginAttempt.attempted_at)).where(
                *same_pair, LoginAttempt.succeeded.is_(True), LoginAttempt.attempted_at >= since
            )
        )
        pair, pair_last = self._failures(
            since,
            *same_pair,
            *(() if last_success is None else (LoginAttempt.attempted_at > last_success,)),
        )
        waits = [0.0]
        if pair:
            account, _ = self._failures(since, LoginAttempt.email == email)
            allowed = (
                1 if account >= self.throttle.account_max_failures else self.throttle.max_failures
            )
            assert pair_last is not None
            waits.append(self.throttle.wait(pair, allowed, pair_last, now))
        anywhere, anywhere_last = self._failures(since, LoginAttempt.ip_address == ip_address)
        if anywhere_last is not None:
            waits.append(
                self.throttle.wait(anywhere, self.throttle.address_max_failures, anywhere_last, now)
            )
        longest = max(waits)
        if longest > 0:
            raise ThrottledError(max(1, math.ceil(longest)))

    def authenticate(self, email: str, password: str, ip_address: str) -> User:
        """The user these credentials belong to; every attempt is recorded and audited.

        Raises :class:`ThrottledError` (nothing recorded, so waiting is enough) or
        :class:`AccountError` with one message for every failure, so nothing tells an unknown
        address from a wrong password or a deactivated account.
        """
        address = normalise_email(email)[:254]
        ip_address = (ip_address or "unknown")[:64]
        self.check_throttle(address, ip_address)
        now = self.throttle.clock()
        user = find_user(self.db, address)
        if user is None or not user.password_hash:
            verify_password(_decoy_hash(), password)
            ok = False
        else:
            ok = verify_password(user.password_hash, password) and user.is_active
        self.db.add(
            LoginAttempt(email=address, ip_address=ip_address, succeeded=ok, attempted_at=now)
        )
        self.db.execute(
            sa.delete(LoginAttempt).where(LoginAttempt.attempted_at < now - KEEP_LOGIN_ATTEMPTS)
        )
        if not ok or user is None:
            record(
                self.db,
                "login.failed",
                actor=address or "anonymous",
                object_type="user" if user else None,
                object_id=user.id if user else None,
                collaborative_id=user.collaborative_id if user else None,
                member_id=user.member_id if user else None,
                ip_address=ip_address,
                details={"email": address},
            )
            msg = "The e-mail address or password is not right."
            raise AccountError(msg)
        if needs_rehash(str(user.password_hash)):
            user.password_hash = hash_password(password)
        user.last_login_at = now
        record(
            self.db,
            "login.succeeded",
            actor=user,
            object_type="user",
            object_id=user.id,
            member_id=user.member_id,
            ip_address=ip_address,
        )
        return user

    # --- passwords ----------------------------------------------------------------------------

    def change_password(
        self, user: User, current: str, new: str, confirm: str, *, ip_address: str | None = None
    ) -> None:
        """Change one's password: the current one is required, the new one must be typed twice."""
        if not user.password_hash or not verify_password(user.password_hash, current):
            msg = "The current password is not right."
            raise AccountError(msg, "current_password")
        if new != confirm:
            msg = "The two new passwords differ."
            raise AccountError(msg, "confirm_password")
        self._set_password(user, new)
        record(
            self.db,
            "password.changed",
            actor=user,
            object_type="user",
            object_id=user.id,
            member_id=user.member_id,
            ip_address=ip_address,
        )

    def _set_password(self, user: User, new: str) -> None:
        check_password_strength(new, user.email)
        user.password_hash = hash_password(new)
        user.password_changed_at = utcnow()

    def issue_reset(self, user: User, valid_for: dt.timedelta = RESET_VALID_FOR) -> str | None:
        """A one-time secret for a reset link, or None when enough links are out already."""
        now = utcnow()
        live = self.db.scalar(
            sa.select(sa.func.count(PasswordResetToken.id)).where(
                PasswordResetToken.user_id == user.id,
                PasswordResetToken.used_at.is_(None),
                PasswordResetToken.expires_at > now,
            )
        )
        if (live or 0) >= MAX_LIVE_RESET_LINKS:
            return None
        secret = secrets.token_urlsafe(32)
        self.db.add(
            PasswordResetToken(
                user_id=user.id, token_hash=digest(secret), expires_at=now + valid_for
            )
        )
        return secret

    def request_reset(
        self, email: str, *, ip_address: str | None = None
    ) -> tuple[User, str] | None:
        """The user and a reset secret to mail, or None (no such active user, or throttled).

        The caller answers the same either way, so the form reveals nothing about accounts.
        """
        address = normalise_email(email)[:254]
        user = find_user(self.db, address) if address else None
        secret = self.issue_reset(user) if user is not None and user.is_active else None
        record(
            self.db,
            "password.reset_requested",
            actor=user if user is not None else (address or "anonymous"),
            object_type="user" if user else None,
            object_id=user.id if user else None,
            member_id=user.member_id if user else None,
            ip_address=ip_address,
            details={"email": address, "link_sent": secret is not None},
        )
        return None if user is None or secret is None else (user, secret)

    def _live_reset(self, secret: str) -> PasswordResetToken | None:
        token = self.db.scalar(
            sa.select(PasswordResetToken).where(PasswordResetToken.token_hash == digest(secret))
        )
        if token is None or token.used_at is not None or token.expires_at < utcnow():
            return None
        return token

    def reset_link_works(self, secret: str) -> bool:
        """Whether a reset link can still be used (to say so before the form is filled in)."""
        return self._live_reset(secret) is not None

    def reset_password(
        self, secret: str, new: str, confirm: str, *, ip_address: str | None = None
    ) -> User:
        """Use a reset link once to set a new password; every other live link of the user dies."""
        token = self._live_reset(secret)
        user = None if token is None else self.db.get(User, token.user_id)
        if token is None or user is None or not user.is_active:
            msg = "This reset link has expired or was used already. Ask for a new one."
            raise AccountError(msg)
        if new != confirm:
            msg = "The two new passwords differ."
            raise AccountError(msg, "confirm_password")
        self._set_password(user, new)
        now = utcnow()
        self.db.execute(
            sa.update(PasswordResetToken)
            .where(PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))
            .values(used_at=now)
        )
        record(
            self.db,
            "password.reset",
            actor=user,
            object_type="user",
            object_id=user.id,
            member_id=user.member_id,
            ip_address=ip_address,
        )
        return user


@dataclass(slots=True)
class UserChanges:
    """What a user edit changed, field -> [before, after] (for the audit record)."""

    changes: dict[str, list[Any]] = field(default_factory=dict)

    def set(self, user: User, name: str, value: Any) -> None:
        """Assign ``value`` and remember the change if it is one."""
        before = getattr(user, name)
        if before != value:
            self.changes[name] = [_plain(before), _plain(value)]
            setattr(user, name, value)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Role) else value


class UserAdminService:
    """Creating and changing users. ``actor`` None means the command line (full rights)."""

    def __init__(self, db: Session) -> None:
        self.db = db

    def users(self, collaborative_id: int) -> list[User]:
        """Every user of a collaborative, by address."""
        return list(
            self.db.scalars(
                sa.select(User)
                .where(User.collaborative_id == collaborative_id)
                .order_by(User.email)
            )
        )

    def members(self, collaborative_id: int) -> list[Member]:
        """The members a user may be attached to."""
        return list(
            self.db.scalars(
                sa.select(Member)
                .where(Member.collaborative_id == collaborative_id)
                .order_by(Member.code)
            )
        )

    @staticmethod
    def grantable_roles(actor: User | None) -> list[Role]:
        """Roles ``actor`` may give: only administrators (and the CLI) make administrators."""
        return [r for r in Role if r is not Role.ADMIN or actor is None or actor.role is Role.ADMIN]

    def _role(self, actor: User | None, role: str) -> Role:
        try:
            chosen = Role(role)
        except ValueError as error:
            msg = "Choose one of the roles listed."
            raise AccountError(msg, "role") from error
        if chosen not in self.grantable_roles(actor):
            msg = "Only an administrator can make administrators."
            raise AccountError(msg, "role")
        return chosen

    def _member(self, collaborative_id: int, role: Role, member_code: str | None) -> Member | None:
        code = (member_code or "").strip()
        if not role.is_member_scoped:
            if code:
                msg = f"A {role.value.replace('_', ' ')} belongs to no member; leave it empty."
                raise AccountError(msg, "member")
            return None
        if not code:
            msg = "Quality officers and member viewers need the member they work for."
            raise AccountError(msg, "member")
        member = self.db.scalar(
            sa.select(Member).where(
                Member.collaborative_id == collaborative_id, Member.code == code
            )
        )
        if member is None:
            msg = f"There is no member {code!r} in this collaborative."
            raise AccountError(msg, "member")
        return member

    def _unique_email(self, email: str, user: User | None) -> str:
        address = check_email(email)
        clash = find_user(self.db, address)
        if clash is not None and clash is not user:
            msg = "A user with this e-mail address exists already."
            raise AccountError(msg, "email")
        return address

    def create_user(
        self,
        actor: User | None,
        *,
        collaborative_id: int,
        email: str,
        role: str,
        member_code: str | None = None,
        display_name: str = "",
        password: str | None = None,
        ip_address: str | None = None,
    ) -> User:
        """A new user; without a password they set one through an emailed link."""
        chosen = self._role(actor, role)
        member = self._member(collaborative_id, chosen, member_code)
        address = self._unique_email(email, None)
        if password is not None:
            check_password_strength(password, address, field="password")
        user = User(
            collaborative_id=collaborative_id,
            email=address,
            display_name=display_name.strip()[:200],
            role=chosen,
            member_id=member.id if member else None,
            password_hash=hash_password(password) if password is not None else None,
            password_changed_at=utcnow() if password is not None else None,
            is_active=True,
        )
        self.db.add(user)
        self.db.flush()
        record(
            self.db,
            "user.created",
            actor=actor if actor is not None else "cli",
            object_type="user",
            object_id=user.id,
            collaborative_id=collaborative_id,
            member_id=user.member_id,
            ip_address=ip_address,
            details={
                "email": address,
                "role": chosen.value,
                "member": member.code if member else None,
            },
        )
        return user

    def update_user(
        self,
        actor: User,
        user: User,
        *,
        email: str,
        role: str,
        member_code: str | None,
        display_name: str,
        is_active: bool,
        ip_address: str | None = None,
    ) -> dict[str, list[Any]]:
        """Change a user's address, name, role, member or status; returns what changed."""
        if user.role is Role.ADMIN and actor.role is not Role.ADMIN:
            msg = "Only an administrator can change an administrator."
            raise AccountError(msg, "role")
        chosen = self._role(actor, role)
        if user.id == actor.id and (chosen is not user.role or not is_active):
            msg = "You cannot change your own role or deactivate yourself; ask another coordinator."
            raise AccountError(msg, "role")
        member = self._member(user.collaborative_id, chosen, member_code)
        changes = UserChanges()
        changes.set(user, "email", self._unique_email(email, user))
        changes.set(user, "display_name", display_name.strip()[:200])
        changes.set(user, "role", chosen)
        changes.set(user, "member_id", member.id if member else None)
        changes.set(user, "is_active", is_active)
        if changes.changes:
            self.db.flush()
            record(
                self.db,
                "user.changed",
                actor=actor,
                object_type="user",
                object_id=user.id,
                member_id=user.member_id,
                ip_address=ip_address,
                details={"changes": changes.changes},
            )
        return changes.changes


class TokenService:
    """API tokens: issued to a user, listed for their owner (and coordinators), revoked."""

    def __init__(self, db: Session) -> None:
        self.db = db

    def create(
        self,
        user: User,
        description: str = "",
        *,
        actor: User | str | None = None,
        ip_address: str | None = None,
    ) -> tuple[ApiToken, str]:
        """A new token for ``user`` (``actor``: who asked, default the user; "cli" from the shell).

        The secret is returned once; only its hash is kept.
        """
        token, secret = new_api_token(self.db, user, description)
        record(
            self.db,
            "token.created",
            actor=actor if actor is not None else user,
            object_type="api_token",
            object_id=token.prefix,
            collaborative_id=user.collaborative_id,
            member_id=user.member_id,
            ip_address=ip_address,
            details={"owner": user.email, "description": token.description},
        )
        return token, secret

    def visible_to(self, actor: User, *, everyone: bool) -> list[ApiToken]:
        """The actor's own tokens, or (``everyone``) all tokens of the actor's collaborative."""
        query = sa.select(ApiToken).join(User, User.id == ApiToken.user_id)
        if everyone:
            query = query.where(User.collaborative_id == actor.collaborative_id)
        else:
            query = query.where(ApiToken.user_id == actor.id)
        return list(self.db.scalars(query.order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))

    def revoke(
        self,
        token: ApiToken,
        *,
        actor: User | str,
        ip_address: str | None = None,
    ) -> None:
        """Revoke ``token`` (once; revoking again changes nothing)."""
        if token.revoked_at is not None:
            return
        token.revoked_at = utcnow()
        owner = self.db.get(User, token.user_id)
        record(
            self.db,
            "token.revoked",
            actor=actor,
            object_type="api_token",
            object_id=token.prefix,
            collaborative_id=owner.collaborative_id if owner else None,
            member_id=owner.member_id if owner else None,
            ip_address=ip_address,
        )

    def find_by_prefix(self, prefix: str) -> list[ApiToken]:
        """Live tokens whose clear prefix starts with ``prefix`` (or the token itself)."""
        prefix = prefix.strip()
        if len(prefix) > TOKEN_PREFIX_LENGTH:
            exact = self.db.scalar(sa.select(ApiToken).where(ApiToken.token_hash == digest(prefix)))
            if exact is not None:
                return [exact] if exact.revoked_at is None else []
            prefix = prefix[:TOKEN_PREFIX_LENGTH]
        return list(
            self.db.scalars(
                sa.select(ApiToken).where(
                    ApiToken.prefix.startswith(prefix, autoescape=True),
                    ApiToken.revoked_at.is_(None),
                )
            )
        )


def account_service_factory(_context: object, request: Request) -> AccountService:
    """The sign-in service of a request, with the throttle its settings configure."""
    return AccountService(request.db, Throttle.from_settings(request.registry.settings))
