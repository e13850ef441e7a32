"""Server-side sessions and API tokens: the browser or client holds a random secret, the
database holds only its SHA-256, so a stolen database copy cannot be replayed."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import TYPE_CHECKING

import sqlalchemy as sa

from qicollab.accounts.models import ApiToken, User, WebSession
from qicollab.db import utcnow

if TYPE_CHECKING:
    from pyramid.request import Request
    from pyramid.response import Response
    from sqlalchemy.orm import Session

SESSION_COOKIE = "qicollab_session"
#: Touch ``last_seen_at`` at most this often, in its own short write transaction.
TOUCH_EVERY = dt.timedelta(seconds=60)
TOKEN_PREFIX = "qic_"  # noqa: S105 - a public prefix that marks qicollab tokens


def digest(secret: str) -> str:
    """The stored form of a session id or token."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _minutes(request: Request, key: str) -> dt.timedelta:
    return dt.timedelta(minutes=float(request.registry.settings[key]))


def _expired(request: Request, row: WebSession, now: dt.datetime) -> bool:
    idle = _minutes(request, "qicollab.session_idle_minutes")
    absolute = dt.timedelta(
        hours=float(request.registry.settings["qicollab.session_absolute_hours"])
    )
    return row.last_seen_at + idle < now or row.created_at + absolute < now


def start_session(request: Request, db: Session, user: User) -> str:
    """A fresh session for ``user`` (a new id at every login) and the cookie to set."""
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        revoke_session(db, old)
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    db.add(
        WebSession(
            id=digest(secret),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            ip_address=request.client_addr,
            user_agent=(request.user_agent or "")[:256],
        )
    )
    _set_cookie_on_response(request, secret)
    return secret


def _set_cookie_on_response(request: Request, value: str | None) -> None:
    def callback(_request: Request, response: Response) -> None:
        if value is None:
            response.delete_cookie(SESSION_COOKIE, path="/")
            return
        response.set_cookie(
            SESSION_COOKIE,
            value,
            path="/",
            httponly=True,
            secure=request.scheme == "https",
            samesite="Lax",
        )

    request.add_response_callback(callback)


def revoke_session(db: Session, secret: str) -> None:
    """End one session (logout)."""
    db.execute(
        sa.update(WebSession)
        .where(WebSession.id == digest(secret), WebSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def revoke_user_sessions(db: Session, user_id: int, *, keep: str | None = None) -> None:
    """End every session of a user except ``keep`` (after a password change or reset)."""
    query = sa.update(WebSession).where(
        WebSession.user_id == user_id, WebSession.revoked_at.is_(None)
    )
    if keep:
        query = query.where(WebSession.id != digest(keep))
    db.execute(query.values(revoked_at=utcnow()))


def end_session(request: Request, db: Session) -> None:
    """Logout: revoke the row and clear the cookie."""
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        revoke_session(db, secret)
    _set_cookie_on_response(request, None)


def _touch(request: Request, statement: sa.Update, **values: dt.datetime) -> None:
    """Record activity without turning a read-only request into a writer.

    Writing requests already hold the write transaction, so they update through it; reading
    requests use a short transaction of their own (on SQLite a second writer inside a writing
    request would wait on itself).
    """
    if request.method in {"GET", "HEAD", "OPTIONS"}:
        with request.registry["db.engine"].begin() as connection:
            connection.execute(statement.values(**values))
    else:
        request.db.execute(statement.values(**values))


def _session_user(request: Request) -> User | None:
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    row = request.db.get(WebSession, digest(secret))
    now = utcnow()
    if row is None or row.revoked_at is not None or row.user_id is None:
        return None
    if _expired(request, row, now):
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        _touch(request, sa.update(WebSession).where(WebSession.id == row.id), last_seen_at=now)
    return request.db.get(User, row.user_id)


def new_api_token(db: Session, user: User, description: str = "") -> tuple[ApiToken, str]:
    """A new bearer token for ``user``; the secret is returned once and never stored."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id, token_hash=digest(secret), prefix=secret[:12], description=description
    )
    db.add(token)
    db.flush()
    return token, secret


def _token_user(request: Request, secret: str) -> User | None:
    token = request.db.scalar(sa.select(ApiToken).where(ApiToken.token_hash == digest(secret)))
    if token is None or token.revoked_at is not None:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        _touch(request, sa.update(ApiToken).where(ApiToken.id == token.id), last_used_at=now)
    return request.db.get(User, token.user_id)


def load_identity(request: Request) -> User | None:
    """The identity loader: a bearer token (API clients) or the session cookie (browsers)."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and secret:
        return _token_user(request, secret.strip())
    return _session_user(request)
