"""Helpers for functional tests: sign in (through the form, or quickly), CSRF tokens, API tokens.

``login`` goes through ``/login`` like a person (Argon2 verification included, ~0.1 s);
``sign_in`` stores a session row directly and sets the cookie, for tests that need many signed-in
clients and are not about signing in. Both leave the WebTest client holding a real session
cookie, so CSRF tokens, timeouts and revocation behave as in production.

On SQLite a test's own session holds the write lock from its first statement until it commits,
and the app would wait for it; ``fetch_all`` and ``fetch_one`` read and then end the transaction.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import webtest
    from sqlalchemy.orm import Session
    from sqlalchemy.sql import Executable

    from qicollab.accounts.models import User

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(page: webtest.TestResponse) -> str:
    """The CSRF token embedded in a form on ``page``."""
    match = _CSRF.search(page.text)
    assert match, "no CSRF token on the page"
    return match.group(1)


def _origin_headers(page: webtest.TestResponse) -> dict[str, str]:
    """What a browser sends with a same-origin form post (Pyramid checks it over HTTPS)."""
    return {"Referer": page.request.url}


def post_form(
    browser: webtest.TestApp,
    page: webtest.TestResponse,
    url: str,
    data: dict[str, Any] | None = None,
    **kwargs: Any,
) -> webtest.TestResponse:
    """POST ``data`` to ``url`` with the CSRF token of ``page``, as a browser would."""
    fields = {"csrf_token": csrf_token(page), **(data or {})}
    headers = {**_origin_headers(page), **kwargs.pop("headers", {})}
    return browser.post(url, fields, headers=headers, **kwargs)


def login(
    browser: webtest.TestApp, email: str, password: str, status: int = 303
) -> webtest.TestResponse:
    """Sign in through /login like a person; returns the response (303 on success)."""
    page = browser.get("/login")
    return post_form(browser, page, "/login", {"email": email, "password": password}, status=status)


def logout(browser: webtest.TestApp) -> webtest.TestResponse:
    """Sign out through the form in the page header."""
    page = browser.get("/account/password")
    return post_form(browser, page, "/logout", status=303)


def sign_in(browser: webtest.TestApp, session: Session, user: User) -> str:
    """Give ``browser`` a fresh session for ``user`` without the password form (fast).

    Commits ``session``. Returns the cookie value.
    """
    from qicollab.accounts.sessions import SESSION_COOKIE, create_session

    secret = create_session(session, user, ip_address="127.0.0.1", user_agent="tests")
    session.commit()
    browser.set_cookie(SESSION_COOKIE, secret)
    return secret


def create_api_token(db_session: Session, user: User, description: str = "tests") -> str:
    """A real API token for ``user``; the caller commits. Returns the secret."""
    from qicollab.accounts.sessions import new_api_token

    _, secret = new_api_token(db_session, user, description)
    return secret


def _fresh(statement: Executable) -> Executable:
    """Refresh objects already in the session (the app changed them behind its back)."""
    return statement.execution_options(populate_existing=True)


def fetch_all(session: Session, statement: Executable) -> list[Any]:
    """``session.scalars(statement).all()`` with fresh objects, then commit (see above)."""
    rows = list(session.scalars(_fresh(statement)).all())
    session.commit()
    return rows


def fetch_one(session: Session, statement: Executable) -> Any:
    """``session.scalar(statement)`` with fresh objects, then commit (see above)."""
    value = session.scalar(_fresh(statement))
    session.commit()
    return value
