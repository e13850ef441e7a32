"""CSRF tokens bound to the server-side session (or, before sign-in, to a pre-session cookie).

The token is an HMAC of the session secret under the application secret, so it needs no
storage and no write on a reading request, it changes whenever the session id does (login
rotates it), and a page can only be submitted by the browser that holds that session. Before
sign-in (the login and password-reset forms) the same is done with a random ``qicollab_csrf``
cookie.

Requests authenticated by a bearer token are not checked: a browser never adds an
``Authorization: Bearer`` header to a cross-site request, and such requests are never
authenticated by the cookie (see :func:`qicollab.accounts.sessions.load_identity`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

from pyramid.interfaces import ICSRFStoragePolicy
from zope.interface import implementer

from qicollab.accounts.sessions import SESSION_COOKIE, bearer_token
from qicollab.security import cookies_secure

if TYPE_CHECKING:
    from pyramid.request import Request
    from pyramid.response import Response

#: Cookie holding the pre-session secret of a visitor who has not signed in.
ANONYMOUS_COOKIE = "qicollab_csrf"
_ATTRIBUTE = "_qicollab_csrf_anonymous"


def csrf_check_needed(request: Request) -> bool:
    """The ``callback`` of the default CSRF options: skip bearer-token (API) requests only."""
    return bearer_token(request) is None


def _current_anonymous(request: Request) -> str | None:
    """The pre-session secret set earlier in this request, else the one the browser sent."""
    return getattr(request, _ATTRIBUTE, None) or request.cookies.get(ANONYMOUS_COOKIE)


@implementer(ICSRFStoragePolicy)
class SessionCSRFStoragePolicy:
    """Pyramid's CSRF storage, derived from the session (see the module docstring)."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"qicollab csrf\x00" + secret.encode()).digest()

    def _sign(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def _anonymous_secret(
        self, request: Request, *, create: bool, fresh: bool = False
    ) -> str | None:
        value = None if fresh else _current_anonymous(request)
        if value or not create:
            return value
        value = secrets.token_urlsafe(32)
        setattr(request, _ATTRIBUTE, value)
        secure = cookies_secure(request)

        def set_cookie(_request: Request, response: Response) -> None:
            response.set_cookie(
                ANONYMOUS_COOKIE, value, path="/", httponly=True, secure=secure, samesite="Lax"
            )
            response.headers["Cache-Control"] = "no-store"  # the page holds a per-visitor token

        request.add_response_callback(set_cookie)
        return value

    def _expected(self, request: Request, *, create: bool) -> str | None:
        session = request.cookies.get(SESSION_COOKIE)
        if session:
            return self._sign("session", session)
        anonymous = self._anonymous_secret(request, create=create)
        return self._sign("anonymous", anonymous) if anonymous else None

    def new_csrf_token(self, request: Request) -> str:
        """A fresh token: for a visitor a new pre-session cookie; in a session, the session's
        token (it is renewed by signing in again, which rotates the session)."""
        session = request.cookies.get(SESSION_COOKIE)
        if session:
            return self._sign("session", session)
        anonymous = self._anonymous_secret(request, create=True, fresh=True)
        return self._sign("anonymous", str(anonymous))

    def get_csrf_token(self, request: Request) -> str:
        """The token to embed in forms (creating the pre-session cookie when needed)."""
        return str(self._expected(request, create=True))

    def check_csrf_token(self, request: Request, supplied_token: str) -> bool:
        """True when the token belongs to this browser's session or pre-session cookie."""
        expected = self._expected(request, create=False)
        return bool(expected and supplied_token) and hmac.compare_digest(
            expected.encode(), supplied_token.encode()
        )
