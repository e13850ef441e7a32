"""Sign-in throttling: progressive delays charged to the address that fails, never a lockout of
the account for everyone (anyone could otherwise lock any user out by guessing)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from qicollab import main
from qicollab.accounts.models import LoginAttempt
from qicollab.accounts.services import Throttle
from qicollab.audit.models import AuditEvent
from qicollab.db import utcnow
from tests.accounts.conftest import client
from tests.factories import TEST_PASSWORD
from tests.helpers import fetch_all, login

WRONG = "wrong password, long enough"


@pytest.fixture
def app(settings, engine, clock):
    """The app with its throttle reading :class:`SteppingClock` instead of the wall clock."""
    return main({}, **settings, **{"db.engine": engine, "qicollab.login_clock": clock})


def test_guessing_at_an_account_slows_the_guesser_not_the_owner(app, people, db_session):
    guesser = client(app, REMOTE_ADDR="10.1.0.1")
    for _ in range(10):
        login(guesser, "officer@example.test", WRONG, status=401)
    # The guessing address must now wait, even with the right password ...
    refused = login(guesser, "officer@example.test", TEST_PASSWORD, status=429)
    assert int(refused.headers["Retry-After"]) == 1
    assert "Too many failed sign-ins from your address" in refused.text
    # ... while the owner, from their own address, signs in at once.
    login(client(app, REMOTE_ADDR="10.2.0.1"), "officer@example.test", TEST_PASSWORD)
    # Throttled attempts are not recorded (waiting is enough).
    attempts = fetch_all(
        db_session, sa.select(LoginAttempt).where(LoginAttempt.email == "officer@example.test")
    )
    assert sum(not attempt.succeeded for attempt in attempts) == 10


def test_the_wait_doubles_with_every_further_failure(app, people, clock):
    guesser = client(app, REMOTE_ADDR="10.3.0.1")
    for _ in range(10):
        login(guesser, "officer@example.test", WRONG, status=401)
    waits = []
    for _ in range(5):
        response = login(guesser, "officer@example.test", WRONG, status=429)
        waits.append(int(response.headers["Retry-After"]))
        clock.advance(waits[-1])
        login(guesser, "officer@example.test", WRONG, status=401)
    assert waits == [1, 2, 4, 8, 16]


def test_one_address_guessing_across_accounts_is_slowed_for_every_account(app, people):
    sprayer = client(app, REMOTE_ADDR="10.9.9.9")
    for attempt in range(30):
        login(sprayer, f"guess{attempt}@example.test", WRONG, status=401)
    response = login(sprayer, "viewer@example.test", TEST_PASSWORD, status=429)
    assert int(response.headers["Retry-After"]) >= 1
    # Another address signs in to the same account without trouble.
    login(client(app, REMOTE_ADDR="10.9.9.10"), "viewer@example.test", TEST_PASSWORD)


def test_guessing_spread_over_many_addresses_leaves_each_one_free_failure(app, people, clock):
    for attempt in range(50):
        login(
            client(app, REMOTE_ADDR=f"10.4.{attempt // 200}.{attempt % 200}"),
            "officer@example.test",
            WRONG,
            status=401,
        )
    # Under attack, an address that failed on this account waits after every further failure
    # (without the attack it would have ten free ones). 10.4.0.7 used its free failure above;
    # a second later its one-second wait is over, and each failure from now on is charged.
    clock.advance(1)
    once = client(app, REMOTE_ADDR="10.4.0.7")
    login(once, "officer@example.test", WRONG, status=401)
    assert int(login(once, "officer@example.test", WRONG, status=429).headers["Retry-After"]) == 2
    # An address that never failed on it is not slowed at all: the owner signs in.
    login(client(app, REMOTE_ADDR="10.5.0.1"), "officer@example.test", TEST_PASSWORD)


def test_failures_older_than_the_window_no_longer_count(app, people, clock):
    browser = client(app, REMOTE_ADDR="10.3.0.1")
    for _ in range(10):
        login(browser, "officer@example.test", WRONG, status=401)
    login(browser, "officer@example.test", TEST_PASSWORD, status=429)
    # Just inside the 15-minute window the ten still count: one more failure means a wait.
    clock.advance(15 * 60 - 1)
    login(browser, "officer@example.test", WRONG, status=401)
    refused = login(browser, "officer@example.test", WRONG, status=429)
    assert int(refused.headers["Retry-After"]) == 2
    # Once they are all older than the window, one fresh failure alone costs nothing.
    clock.advance(15 * 60 + 1)
    login(browser, "officer@example.test", WRONG, status=401)
    login(browser, "officer@example.test", TEST_PASSWORD)


def test_signing_in_wipes_the_slate_of_that_account_at_that_address(app, people):
    browser = client(app, REMOTE_ADDR="10.6.0.1")
    for _ in range(9):
        login(browser, "officer@example.test", WRONG, status=401)
    login(browser, "officer@example.test", TEST_PASSWORD)
    # Nine more typos later the same day are nine, not eighteen: no wait yet.
    other = client(app, REMOTE_ADDR="10.6.0.1")
    for _ in range(9):
        login(other, "officer@example.test", WRONG, status=401)
    login(other, "officer@example.test", TEST_PASSWORD)


def test_the_longest_wait_is_capped():
    throttle = Throttle(max_failures=3, max_delay=dt.timedelta(minutes=15))
    now = utcnow()
    assert throttle.wait(2, 3, now, now) == 0
    assert throttle.wait(3, 3, now, now) == 1
    assert throttle.wait(6, 3, now, now) == 8
    assert throttle.wait(500, 3, now, now) == 15 * 60
    assert throttle.wait(500, 3, now - dt.timedelta(minutes=16), now) == 0


def test_the_limits_come_from_the_settings(settings, engine, people, db_session, clock):
    app = main(
        {},
        **settings,
        **{
            "db.engine": engine,
            "qicollab.login_clock": clock,
            "qicollab.login_max_failures": "3",
            "qicollab.login_window_minutes": "1",
        },
    )
    browser = client(app, REMOTE_ADDR="10.5.0.1")
    for _ in range(3):
        login(browser, "officer@example.test", WRONG, status=401)
    response = login(browser, "officer@example.test", TEST_PASSWORD, status=429)
    assert int(response.headers["Retry-After"]) == 1
    audited = fetch_all(
        db_session, sa.select(AuditEvent.action).where(AuditEvent.action.like("login.%"))
    )
    assert audited.count("login.failed") == 3
