"""Sign-in throttling: 10 failures in 5 minutes per account and per address, then 429."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from qicollab import main
from qicollab.accounts.models import LoginAttempt
from qicollab.audit.models import AuditEvent
from qicollab.db import utcnow
from tests.accounts.conftest import client
from tests.factories import TEST_PASSWORD
from tests.helpers import fetch_all, login

WRONG = "wrong password, long enough"


def test_ten_failures_for_an_account_lock_it_from_every_address(app, people, db_session):
    for attempt in range(10):
        browser = client(app, REMOTE_ADDR=f"10.1.0.{attempt}")
        login(browser, "officer@example.test", WRONG, status=401)
    # The right password, from a fresh address, is still refused for now.
    refused = login(
        client(app, REMOTE_ADDR="10.2.0.1"), "officer@example.test", TEST_PASSWORD, status=429
    )
    assert 1 <= int(refused.headers["Retry-After"]) <= 300
    assert "Too many failed sign-ins" in refused.text
    # Other accounts are not affected.
    login(client(app, REMOTE_ADDR="10.2.0.2"), "viewer@example.test", TEST_PASSWORD)
    # Throttled attempts are not counted (waiting is enough) and no session is started.
    attempts = fetch_all(
        db_session, sa.select(LoginAttempt).where(LoginAttempt.email == "officer@example.test")
    )
    assert len(attempts) == 10


def test_ten_failures_from_an_address_lock_it_for_every_account(app, people):
    browser = client(app, REMOTE_ADDR="10.9.9.9")
    for attempt in range(10):
        login(browser, f"guess{attempt}@example.test", WRONG, status=401)
    response = login(browser, "viewer@example.test", TEST_PASSWORD, status=429)
    assert int(response.headers["Retry-After"]) >= 1
    # Another address signs in to the same account without trouble.
    login(client(app, REMOTE_ADDR="10.9.9.10"), "viewer@example.test", TEST_PASSWORD)


def test_failures_older_than_the_window_no_longer_count(app, people, engine):
    browser = client(app, REMOTE_ADDR="10.3.0.1")
    for _ in range(10):
        login(browser, "officer@example.test", WRONG, status=401)
    login(browser, "officer@example.test", TEST_PASSWORD, status=429)
    with engine.begin() as connection:
        connection.execute(
            sa.update(LoginAttempt).values(
                attempted_at=utcnow() - dt.timedelta(minutes=5, seconds=5)
            )
        )
    login(browser, "officer@example.test", TEST_PASSWORD)


def test_retry_after_counts_down_to_when_the_oldest_failure_leaves_the_window(app, people, engine):
    browser = client(app, REMOTE_ADDR="10.4.0.1")
    for _ in range(10):
        login(browser, "officer@example.test", WRONG, status=401)
    with engine.begin() as connection:
        connection.execute(
            sa.update(LoginAttempt).values(attempted_at=utcnow() - dt.timedelta(minutes=4))
        )
    response = login(browser, "officer@example.test", TEST_PASSWORD, status=429)
    assert 1 <= int(response.headers["Retry-After"]) <= 61


def test_the_limits_come_from_the_settings(settings, engine, people, db_session):
    app = main(
        {},
        **settings,
        **{
            "db.engine": engine,
            "qicollab.login_max_failures": "3",
            "qicollab.login_window_minutes": "1",
        },
    )
    browser = client(app, REMOTE_ADDR="10.5.0.1")
    for _ in range(3):
        login(browser, "officer@example.test", WRONG, status=401)
    response = login(browser, "officer@example.test", TEST_PASSWORD, status=429)
    assert int(response.headers["Retry-After"]) <= 60
    audited = fetch_all(
        db_session, sa.select(AuditEvent.action).where(AuditEvent.action.like("login.%"))
    )
    assert audited.count("login.failed") == 3
