"""Signing in and out: server-side sessions, rotation, cookie flags, timeouts, CSRF, headers."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from qicollab.accounts.models import WebSession
from qicollab.accounts.sessions import SESSION_COOKIE, digest
from qicollab.audit.models import AuditEvent
from qicollab.db import utcnow
from tests.accounts.conftest import client
from tests.factories import TEST_PASSWORD
from tests.helpers import csrf_token, fetch_all, fetch_one, login, post_form, sign_in


def session_cookie_header(response) -> str:
    return next(h for h in response.headers.getall("Set-Cookie") if h.startswith(SESSION_COOKIE))


def test_login_with_the_right_password_starts_a_session(browser, people, db_session):
    response = login(browser, "officer@example.test", TEST_PASSWORD)
    assert response.location.endswith("/")
    assert "officer@example.test" in browser.get("/").text
    secret = browser.cookies[SESSION_COOKIE]
    stored = fetch_one(db_session, sa.select(WebSession).where(WebSession.id == digest(secret)))
    assert stored.user_id == people.officer.id
    assert stored.ip_address == "10.0.0.1"
    assert fetch_one(db_session, sa.select(WebSession).where(WebSession.id == secret)) is None
    actions = fetch_all(db_session, sa.select(AuditEvent.action))
    assert "login.succeeded" in actions


def test_email_is_matched_without_regard_to_case(browser, people):
    login(browser, "  Officer@Example.TEST ", TEST_PASSWORD)


def test_wrong_password_and_unknown_address_get_the_same_refusal(browser, people, db_session):
    wrong = login(browser, "officer@example.test", "not the password at all", status=401)
    unknown = login(browser, "nobody@example.test", "not the password at all", status=401)
    message = "The e-mail address or password is not right."
    assert message in wrong.text
    assert message in unknown.text
    assert SESSION_COOKIE not in browser.cookies
    failed = fetch_all(db_session, sa.select(AuditEvent).where(AuditEvent.action == "login.failed"))
    assert [event.details["email"] for event in failed] == [
        "officer@example.test",
        "nobody@example.test",
    ]
    assert all("not the password" not in str(event.details) for event in failed)
    assert failed[0].collaborative_id == people.collaborative.id  # coordinators see it


def test_deactivated_users_cannot_sign_in(browser, people, db_session):
    people.viewer.is_active = False
    db_session.commit()
    login(browser, "viewer@example.test", TEST_PASSWORD, status=401)


def test_login_redirects_only_to_local_paths(browser, people):
    page = browser.get("/login?next=/catalogue/measures")
    response = post_form(
        browser,
        page,
        "/login",
        {"email": "officer@example.test", "password": TEST_PASSWORD, "next": "/catalogue/measures"},
        status=303,
    )
    assert response.location.endswith("/catalogue/measures")
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        page = browser.get("/login")
        response = post_form(
            browser,
            page,
            "/login",
            {"email": "officer@example.test", "password": TEST_PASSWORD, "next": target},
            status=303,
        )
        assert response.location in {"http://localhost/", "http://localhost:80/"}


def test_login_issues_a_new_session_id_and_revokes_the_old_one(browser, people, db_session):
    login(browser, "officer@example.test", TEST_PASSWORD)
    first = browser.cookies[SESSION_COOKIE]
    login(browser, "officer@example.test", TEST_PASSWORD)
    second = browser.cookies[SESSION_COOKIE]
    assert first != second
    rows = {row.id: row for row in fetch_all(db_session, sa.select(WebSession))}
    assert rows[digest(first)].revoked_at is not None
    assert rows[digest(second)].revoked_at is None


def test_a_planted_session_id_is_not_adopted(browser, people, db_session):
    """Session fixation: a cookie value set before login never becomes a valid session."""
    browser.set_cookie(SESSION_COOKIE, "planted-by-an-attacker")
    login(browser, "officer@example.test", TEST_PASSWORD)
    assert browser.cookies[SESSION_COOKIE] != "planted-by-an-attacker"
    assert (
        fetch_one(
            db_session,
            sa.select(WebSession).where(WebSession.id == digest("planted-by-an-attacker")),
        )
        is None
    )


def test_cookie_is_httponly_lax_and_secure_only_over_https(browser, https_browser, people):
    plain = session_cookie_header(login(browser, "officer@example.test", TEST_PASSWORD))
    assert "HttpOnly" in plain
    assert "SameSite=Lax" in plain
    assert "Path=/" in plain
    assert "secure" not in plain.lower()
    secure = session_cookie_header(login(https_browser, "officer@example.test", TEST_PASSWORD))
    assert "secure" in secure.lower()
    assert "HttpOnly" in secure
    assert "SameSite=Lax" in secure


def test_idle_sessions_expire(browser, people, db_session, engine):
    sign_in(browser, db_session, people.viewer)
    browser.get("/account/tokens", status=200)
    idle = utcnow() - dt.timedelta(minutes=31)
    with engine.begin() as connection:
        connection.execute(sa.update(WebSession).values(last_seen_at=idle))
    browser.get("/account/tokens", status=403)


def test_activity_keeps_a_session_alive(browser, people, db_session, engine):
    secret = sign_in(browser, db_session, people.viewer)
    nearly_idle = utcnow() - dt.timedelta(minutes=29)
    with engine.begin() as connection:
        connection.execute(sa.update(WebSession).values(last_seen_at=nearly_idle))
    browser.get("/account/tokens", status=200)
    row = fetch_one(db_session, sa.select(WebSession).where(WebSession.id == digest(secret)))
    assert row.last_seen_at > nearly_idle + dt.timedelta(minutes=28)


def test_sessions_end_after_the_absolute_limit_however_active(browser, people, db_session, engine):
    sign_in(browser, db_session, people.viewer)
    with engine.begin() as connection:
        connection.execute(
            sa.update(WebSession).values(
                created_at=utcnow() - dt.timedelta(hours=12, minutes=1), last_seen_at=utcnow()
            )
        )
    browser.get("/account/tokens", status=403)


def test_timeouts_come_from_the_settings(settings, engine, people, db_session):
    from qicollab import main

    app = main({}, **settings, **{"db.engine": engine, "qicollab.session_idle_minutes": "5"})
    browser = client(app)
    sign_in(browser, db_session, people.viewer)
    with engine.begin() as connection:
        connection.execute(
            sa.update(WebSession).values(last_seen_at=utcnow() - dt.timedelta(minutes=6))
        )
    browser.get("/account/tokens", status=403)


def test_logout_is_a_post_that_revokes_the_session(browser, people, db_session):
    login(browser, "officer@example.test", TEST_PASSWORD)
    secret = browser.cookies[SESSION_COOKIE]
    page = browser.get("/account/tokens")
    browser.get("/logout", status=404)  # not by a link or an image
    response = post_form(browser, page, "/logout", status=303)
    assert SESSION_COOKIE not in browser.cookies
    assert "Max-Age=0" in session_cookie_header(response)
    row = fetch_one(db_session, sa.select(WebSession).where(WebSession.id == digest(secret)))
    assert row.revoked_at is not None
    # The old cookie value is worthless even if it was copied.
    browser.set_cookie(SESSION_COOKIE, secret)
    browser.get("/account/tokens", status=403)
    assert "logout" in fetch_all(db_session, sa.select(AuditEvent.action))


def test_state_changing_requests_need_the_csrf_token(browser, people, db_session):
    browser.get("/login")
    browser.post("/login", {"email": "officer@example.test", "password": TEST_PASSWORD}, status=403)
    browser.post(
        "/login",
        {"email": "officer@example.test", "password": TEST_PASSWORD, "csrf_token": "forged"},
        status=403,
    )
    sign_in(browser, db_session, people.officer)
    browser.post("/logout", status=403)
    browser.post("/account/tokens", {"description": "x"}, status=403)
    browser.post(
        "/account/password",
        {
            "current_password": TEST_PASSWORD,
            "new_password": "a fresh long passphrase",
            "confirm_password": "a fresh long passphrase",
        },
        status=403,
    )
    browser.get("/account/tokens", status=200)  # still signed in: nothing happened


def test_csrf_tokens_belong_to_one_session(app, people, db_session):
    """A token read by another browser (another session) does not work here."""
    mine, theirs = client(app), client(app)
    sign_in(mine, db_session, people.officer)
    sign_in(theirs, db_session, people.other_officer)
    their_token = csrf_token(theirs.get("/account/tokens"))
    mine.post("/logout", {"csrf_token": their_token}, status=403)
    own_token = csrf_token(mine.get("/account/tokens"))
    assert own_token != their_token
    mine.post("/logout", {"csrf_token": own_token}, status=303)


def test_the_csrf_token_changes_with_the_session(browser, people):
    before = csrf_token(browser.get("/login"))
    login(browser, "officer@example.test", TEST_PASSWORD)
    after = csrf_token(browser.get("/account/tokens"))
    assert before != after


def test_https_form_posts_must_come_from_our_own_pages(https_browser, people):
    page = https_browser.get("/login")
    data = {"email": "officer@example.test", "password": TEST_PASSWORD}
    post_form(
        https_browser,
        page,
        "/login",
        data,
        headers={"Referer": "https://evil.example/"},
        status=403,
    )
    post_form(
        https_browser, page, "/login", data, headers={"Origin": "https://evil.example"}, status=403
    )
    post_form(https_browser, page, "/login", data, status=303)


def test_security_headers_on_every_response(browser, people, db_session):
    responses = [
        browser.get("/"),
        browser.get("/login"),
        browser.get("/no/such/page", status=404),
        browser.get("/account/tokens", status=403),
        browser.get("/static/portal.css"),
    ]
    for response in responses:
        csp = response.headers["Content-Security-Policy"]
        for directive in (
            "default-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "img-src 'self' data:",
            "style-src 'self'",
        ):
            assert directive in csp
        assert "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] in {
            "same-origin",
            "strict-origin-when-cross-origin",
        }
    assert "Strict-Transport-Security" not in responses[0].headers


def test_signed_in_pages_are_never_cached(browser, https_browser, people, db_session):
    assert "no-store" not in browser.get("/").headers.get("Cache-Control", "")
    sign_in(browser, db_session, people.officer)
    assert browser.get("/").headers["Cache-Control"] == "no-store"
    assert browser.get("/account/tokens").headers["Cache-Control"] == "no-store"
    assert "no-store" not in browser.get("/static/portal.css").headers.get("Cache-Control", "")
    login_page = https_browser.get("/login")
    assert login_page.headers["Cache-Control"] == "no-store"  # it carries a per-visitor token
    assert login_page.headers["Strict-Transport-Security"].startswith("max-age=")


def test_long_dead_sessions_are_deleted_at_the_next_login(browser, people, db_session, engine):
    stale = sign_in(client(browser.app), db_session, people.viewer)
    recent = sign_in(client(browser.app), db_session, people.viewer)
    with engine.begin() as connection:
        connection.execute(
            sa.update(WebSession)
            .where(WebSession.id == digest(stale))
            .values(revoked_at=utcnow() - dt.timedelta(days=2))
        )
        connection.execute(
            sa.update(WebSession)
            .where(WebSession.id == digest(recent))
            .values(revoked_at=utcnow() - dt.timedelta(hours=1))
        )
    login(browser, "officer@example.test", TEST_PASSWORD)
    ids = set(fetch_all(db_session, sa.select(WebSession.id)))
    assert digest(stale) not in ids
    assert digest(recent) in ids  # kept a day for investigations
