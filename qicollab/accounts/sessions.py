"""Server-side sessions, API tokens and the identity loader.

The browser (or API client) holds a random secret; the database holds only its SHA-256, so a
copy of the database cannot be replayed as a cookie or token. Sessions end on logout, on an idle
timeout, on an absolute timeout, or when revoked (password change or reset, deactivation).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from typing import TYPE_CHECKING

import sqlalchemy as sa
from pyramid.request import RequestLocalCache

from qicollab.accounts.models import ApiToken, User, WebSession
from qicollab.db import utcnow
from qicollab.security import cookies_secure

if TYPE_CHECKING:
    from pyramid.request import Request
    from pyramid.response import Response
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

#: The cookie that carries the session secret.
SESSION_COOKIE = "qicollab_session"
#: Activity is written at most this often per session or token (a write on every page view would
#: turn every read into a writer); idle timeouts are therefore exact to within this interval.
TOUCH_EVERY = dt.timedelta(seconds=60)
#: Public prefix of every API token, so leaked tokens are easy to recognise (secret scanners).
TOKEN_PREFIX = "qic_"  # noqa: S105 - a marker, not a secret
#: How many leading characters of a token are kept in clear, to tell tokens apart.
TOKEN_PREFIX_LENGTH = 12


def digest(secret: str) -> str:
    """The stored form of a session id, token or reset secret (SHA-256, hex).

    A plain hash suffices: the secrets are 256 random bits, so there is nothing to brute-force.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def session_timeouts(settings: dict[str, object]) -> tuple[dt.timedelta, dt.timedelta]:
    """(idle, absolute) session lifetimes from the settings."""
    idle = dt.timedelta(minutes=float(str(settings["qicollab.session_idle_minutes"])))
    absolute = dt.timedelta(hours=float(str(settings["qicollab.session_absolute_hours"])))
    return idle, absolute


def session_is_live(row: WebSession, now: dt.datetime, settings: dict[str, object]) -> bool:
    """Not revoked, not idle too long, not older than the absolute limit."""
    idle, absolute = session_timeouts(settings)
    return (
        row.revoked_at is None
        and row.last_seen_at + idle >= now
        and row.created_at + absolute >= now
    )


# --- sessions -------------------------------------------------------------------------------


def create_session(
    db: Session,
    user: User,
    *,
    ip_address: str | None = None,
    user_agent: str | None = None,
) -> str:
    """Store a new session for ``user`` and return its secret (the cookie value)."""
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    db.add(
        WebSession(
            id=digest(secret),
            user_id=user.id,
            data={},
            created_at=now,
            last_seen_at=now,
            ip_address=ip_address,
            user_agent=(user_agent or "")[:256] or None,
        )
    )
    return secret


def start_session(request: Request, user: User) -> str:
    """Sign ``user`` in: revoke any session the browser had, issue a new id, set the cookie.

    A new id at every login stops session fixation: an id planted before login is worthless.
    """
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        revoke_session(request.db, old)
    purge_sessions(request.db, request.registry.settings, utcnow())
    secret = create_session(
        request.db, user, ip_address=request.client_addr, user_agent=request.user_agent
    )
    _set_cookie(request, secret)
    _identity_cache.clear(request)
    return secret


def end_session(request: Request) -> None:
    """Sign out: revoke the session row and clear the cookie."""
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        revoke_session(request.db, secret)
    _set_cookie(request, None)
    _identity_cache.clear(request)


def current_session_id(request: Request) -> str | None:
    """The stored id (hash) of the browser's session cookie, if it sent one."""
    secret = request.cookies.get(SESSION_COOKIE)
    return digest(secret) if secret else None


def _set_cookie(request: Request, value: str | None) -> None:
    """Set or delete the session cookie on whatever response this request ends with."""
    secure = cookies_secure(request)

    def callback(_request: Request, response: Response) -> None:
        if value is None:
            response.delete_cookie(SESSION_COOKIE, path="/")
        else:
            response.set_cookie(
                SESSION_COOKIE, value, path="/", httponly=True, secure=secure, samesite="Lax"
            )
        response.headers["Cache-Control"] = "no-store"

    request.add_response_callback(callback)


def revoke_session(db: Session, secret: str) -> None:
    """End the session whose cookie value is ``secret``."""
    db.execute(
        sa.update(WebSession)
        .where(WebSession.id == digest(secret), WebSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def revoke_user_sessions(db: Session, user_id: int, *, keep: str | None = None) -> None:
    """End every session of a user except the one with stored id ``keep``."""
    statement = sa.update(WebSession).where(
        WebSession.user_id == user_id, WebSession.revoked_at.is_(None)
    )
    if keep is not None:
        statement = statement.where(WebSession.id != keep)
    db.execute(statement.values(revoked_at=utcnow()))


#: Dead sessions are kept this long after they could last have been used (for investigations).
KEEP_DEAD_SESSIONS = dt.timedelta(days=1)


def purge_sessions(db: Session, settings: dict[str, object], now: dt.datetime) -> None:
    """Delete sessions that died more than :data:`KEEP_DEAD_SESSIONS` ago (housekeeping)."""
    _, absolute = session_timeouts(settings)
    cutoff = now - KEEP_DEAD_SESSIONS
    db.execute(
        sa.delete(WebSession).where(
            sa.or_(WebSession.revoked_at < cutoff, WebSession.created_at < cutoff - absolute)
        )
    )


# --- API tokens -----------------------------------------------------------------------------


def new_api_token(db: Session, user: User, description: str = "") -> tuple[ApiToken, str]:
    """A new bearer token for ``user``; the secret is returned once and never stored."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        token_hash=digest(secret),
        prefix=secret[:TOKEN_PREFIX_LENGTH],
        description=description.strip()[:200],
    )
    db.add(token)
    db.flush()
    return token, secret


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


# --- the identity loader --------------------------------------------------------------------


def _touch_later(request: Request, statement: sa.Update) -> None:
    """Record activity after the response is made, in a short transaction of its own.

    Doing it outside the request transaction keeps reading requests readers (SQLite would
    otherwise have to upgrade their lock) and means a busy database can delay the timestamp,
    never the page.
    """

    def callback(request: Request) -> None:
        try:
            with request.registry["db.engine"].begin() as connection:
                connection.execute(statement)
        except sa.exc.SQLAlchemyError:
            log.warning("could not record session or token activity", exc_info=True)

    request.add_finished_callback(callback)


def _session_user(request: Request) -> User | None:
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    row = request.db.get(WebSession, digest(secret))
    now = utcnow()
    if (
        row is None
        or row.user_id is None
        or not session_is_live(row, now, request.registry.settings)
    ):
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        _touch_later(
            request,
            sa.update(WebSession).where(WebSession.id == row.id).values(last_seen_at=now),
        )
    return request.db.get(User, row.user_id)


def _token_user(request: Request, secret: str) -> User | None:
    token = request.db.scalar(sa.select(ApiToken).where(ApiToken.token_hash == digest(secret)))
    if token is None or token.revoked_at is not None:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
        _touch_later(
            request, sa.update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now)
        )
    return request.db.get(User, token.user_id)


def _load(request: Request) -> User | None:
    token = bearer_token(request)
    if token is not None:
        # A request that names a token is judged by it alone: a bad token never falls back to
        # the cookie, which is also why bearer requests can skip the CSRF check.
        return _token_user(request, token)
    return _session_user(request)


_identity_cache = RequestLocalCache(_load)


def load_identity(request: Request) -> User | None:
    """The identity loader: a bearer token (API clients) or the session cookie (browsers).

    Loaded once per request; :class:`qicollab.security.SecurityPolicy` drops inactive users.
    """
    return _identity_cache.get_or_create(request)
