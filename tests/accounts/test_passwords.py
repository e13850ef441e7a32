"""Password change (current password required, other sessions end) and one-time reset links."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from pyramid_mailer.mailer import DebugMailer, DummyMailer, Mailer

from qicollab import main
from qicollab.accounts.mail import ConsoleMailer, mailer_from_settings
from qicollab.accounts.models import PasswordResetToken, WebSession
from qicollab.accounts.passwords import MIN_PASSWORD_LENGTH
from qicollab.accounts.sessions import SESSION_COOKIE, digest
from qicollab.audit.models import AuditEvent
from qicollab.db import utcnow
from tests.accounts.conftest import client
from tests.factories import TEST_PASSWORD
from tests.helpers import fetch_all, fetch_one, login, post_form, sign_in

NEW = "a brand new passphrase"


def change(browser, current: str, new: str, confirm: str | None = None, status: int = 200):
    page = browser.get("/account/password")
    data = {
        "current_password": current,
        "new_password": new,
        "confirm_password": new if confirm is None else confirm,
    }
    return post_form(browser, page, "/account/password", data, status=status)


def test_change_needs_the_current_password_and_a_long_enough_new_one(browser, people, db_session):
    sign_in(browser, db_session, people.officer)
    wrong = change(browser, "not my password", NEW, status=422)
    assert 'id="current_password-error"' in wrong.text
    assert 'aria-invalid="true"' in wrong.text
    short = change(browser, TEST_PASSWORD, "x" * (MIN_PASSWORD_LENGTH - 1), status=422)
    assert f"at least {MIN_PASSWORD_LENGTH} characters" in short.text
    differ = change(browser, TEST_PASSWORD, NEW, confirm=NEW + "!", status=422)
    assert "differ" in differ.text
    own_email = change(browser, TEST_PASSWORD, "officer@example.test", status=422)
    assert "e-mail address" in own_email.text


def test_change_ends_the_other_sessions_only(app, people, db_session):
    here, elsewhere = client(app), client(app)
    login(here, "officer@example.test", TEST_PASSWORD)
    login(elsewhere, "officer@example.test", TEST_PASSWORD)
    done = change(here, TEST_PASSWORD, NEW)
    assert "Your password was changed" in done.text
    here.get("/account/tokens", status=200)
    elsewhere.get("/account/tokens", status=403)
    login(client(app), "officer@example.test", TEST_PASSWORD, status=401)
    login(client(app), "officer@example.test", NEW)
    events = fetch_all(
        db_session, sa.select(AuditEvent).where(AuditEvent.action == "password.changed")
    )
    assert [e.actor_id for e in events] == [people.officer.id]
    assert NEW not in str(events[0].details)


def reset_link(mailer: DummyMailer) -> str:
    (message,) = mailer.outbox
    match = re.search(r"https?://\S+/password/reset/\S+", message.body)
    assert match, message.body
    return match.group(0).split("localhost", 1)[1].removeprefix(":80")


def ask_for_reset(browser, email: str):
    page = browser.get("/password/forgot")
    return post_form(browser, page, "/password/forgot", {"email": email})


def test_reset_by_a_one_time_link(browser, people, db_session, mailer):
    other_session = client(browser.app)
    sign_in(other_session, db_session, people.viewer)
    answer = ask_for_reset(browser, "Viewer@example.test")
    assert "If that address belongs to an account" in answer.text
    assert mailer.outbox[0].recipients == ["viewer@example.test"]
    path = reset_link(mailer)
    secret = path.rsplit("/", 1)[1]
    stored = fetch_one(db_session, sa.select(PasswordResetToken))
    assert stored.token_hash == digest(secret)  # only the hash is kept
    assert stored.expires_at - utcnow() <= dt.timedelta(hours=1)
    page = browser.get(path)
    assert 'autocomplete="new-password"' in page.text
    mismatch = post_form(
        browser, page, path, {"new_password": NEW, "confirm_password": "other"}, status=422
    )
    assert "differ" in mismatch.text
    done = post_form(
        browser, page, path, {"new_password": NEW, "confirm_password": NEW}, status=303
    )
    assert "/login" in done.location
    login(client(browser.app), "viewer@example.test", NEW)
    other_session.get("/account/tokens", status=403)  # every session ended
    # The link works once.
    assert "expired or was used" in browser.get(path, status=404).text
    again = post_form(
        browser, page, path, {"new_password": NEW + "2", "confirm_password": NEW + "2"}, status=422
    )
    assert "expired or was used" in again.text
    actions = fetch_all(db_session, sa.select(AuditEvent.action))
    assert "password.reset_requested" in actions
    assert "password.reset" in actions


def test_unknown_addresses_get_the_same_answer_and_no_mail(browser, people, mailer, db_session):
    known = ask_for_reset(browser, "viewer@example.test")
    unknown = ask_for_reset(browser, "ghost@example.test")
    inactive_user = people.other_officer
    inactive_user.is_active = False
    db_session.commit()
    inactive = ask_for_reset(browser, inactive_user.email)
    assert known.status_int == unknown.status_int == inactive.status_int == 200
    strip = lambda r: re.sub(r'name="csrf_token" value="[^"]+"', "", r.text)  # noqa: E731
    assert strip(known) == strip(unknown) == strip(inactive)
    assert len(mailer.outbox) == 1


def test_expired_links_are_refused(browser, people, mailer, engine):
    ask_for_reset(browser, "viewer@example.test")
    path = reset_link(mailer)
    with engine.begin() as connection:
        connection.execute(
            sa.update(PasswordResetToken).values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )
    browser.get(path, status=404)
    page = browser.get("/password/forgot")
    post_form(browser, page, path, {"new_password": NEW, "confirm_password": NEW}, status=422)
    login(client(browser.app), "viewer@example.test", TEST_PASSWORD)


def test_a_reset_invalidates_every_other_link(browser, people, mailer):
    ask_for_reset(browser, "viewer@example.test")
    ask_for_reset(browser, "viewer@example.test")
    first, second = (
        re.search(r"/password/reset/\S+", message.body).group(0) for message in mailer.outbox
    )
    page = browser.get(second)
    post_form(browser, page, second, {"new_password": NEW, "confirm_password": NEW}, status=303)
    browser.get(first, status=404)


def test_no_more_than_three_live_links_are_mailed(browser, people, mailer):
    for _ in range(5):
        ask_for_reset(browser, "viewer@example.test")
    assert len(mailer.outbox) == 3


def test_sessions_cookie_is_untouched_by_a_failed_change(browser, people, db_session):
    secret = sign_in(browser, db_session, people.officer)
    change(browser, "wrong", NEW, status=422)
    assert browser.cookies[SESSION_COOKIE].strip('"') == secret
    row = fetch_one(db_session, sa.select(WebSession).where(WebSession.id == digest(secret)))
    assert row.revoked_at is None


def test_file_mailer_writes_to_the_storage_folder(settings, engine, people, tmp_path):
    app = main({}, **{**settings, "db.engine": engine, "mail.mailer": "file"})
    ask_for_reset(client(app), "viewer@example.test")
    (mail,) = (Path(settings["qicollab.storage"]) / "mail").iterdir()
    text = mail.read_text()
    assert "To: viewer@example.test" in text
    assert "/password/reset/" in text


def test_console_mailer_prints_the_message(capsys, people, settings, engine):
    app = main({}, **{**settings, "db.engine": engine, "mail.mailer": "console"})
    ask_for_reset(client(app), "viewer@example.test")
    assert "/password/reset/" in capsys.readouterr().out


def test_mailer_choice(tmp_path):
    base = {"qicollab.storage": str(tmp_path)}
    assert isinstance(mailer_from_settings({**base, "mail.mailer": "smtp"}), Mailer)
    assert isinstance(mailer_from_settings({**base, "mail.mailer": "file"}), DebugMailer)
    assert isinstance(mailer_from_settings({**base, "mail.mailer": "console"}), ConsoleMailer)
    assert isinstance(mailer_from_settings({**base, "mail.mailer": "dummy"}), DummyMailer)
    assert isinstance(mailer_from_settings(base), ConsoleMailer)
    with pytest.raises(ValueError, match=r"mail\.mailer"):
        mailer_from_settings({**base, "mail.mailer": "carrier-pigeon"})
