"""Helpers shared by functional tests: sign in through the real form, issue API tokens."""

from __future__ import annotations

import re

import webtest
from sqlalchemy.orm import Session

from qicollab.accounts.models import User
from qicollab.accounts.sessions import new_api_token


def csrf_token(page: webtest.TestResponse) -> str:
    """The CSRF token embedded in a form on ``page``."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(
    browser: webtest.TestApp, email: str, password: str, status: int = 303
) -> webtest.TestResponse:
    """Sign in through /login like a person; returns the response."""
    page = browser.get("/login")
    return browser.post(
        "/login",
        {"email": email, "password": password, "csrf_token": csrf_token(page)},
        status=status,
    )


def create_api_token(db_session: Session, user: User, description: str = "tests") -> str:
    """A real API token for ``user`` (the caller commits)."""
    _, secret = new_api_token(db_session, user, description)
    return secret
