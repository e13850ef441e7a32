"""User administration in the portal: coordinators and admins; officers and viewers never."""

from __future__ import annotations

import re

import sqlalchemy as sa

from qicollab.accounts.models import Role, User, WebSession
from qicollab.audit.models import AuditEvent
from tests.accounts.conftest import client
from tests.factories import CollaborativeFactory, UserFactory
from tests.helpers import fetch_all, fetch_one, login, post_form, sign_in


def signed_in(app, db_session, user):
    browser = client(app)
    sign_in(browser, db_session, user)
    return browser


def new_user(browser, status: int = 303, **fields):
    page = browser.get("/users/new")
    data = {"email": "", "display_name": "", "role": "", "member": "", "is_active": "on"} | fields
    return post_form(browser, page, "/users/new", data, status=status)


def test_officers_and_viewers_cannot_reach_user_admin(app, people, db_session):
    for user in (people.officer, people.viewer):
        browser = signed_in(app, db_session, user)
        browser.get("/users", status=403)
        browser.get("/users/new", status=403)
        browser.get(f"/users/{people.officer.id}/edit", status=403)
        page = browser.get("/account/tokens")
        post_form(browser, page, "/users/new", {"email": "x@example.test"}, status=403)
    client(app).get("/users", status=403)


def test_coordinator_creates_an_officer_for_a_member(app, people, db_session, mailer):
    browser = signed_in(app, db_session, people.coordinator)
    listing = browser.get("/users")
    assert "officer@example.test" in listing.text
    form = browser.get("/users/new")
    assert 'value="admin"' not in form.text  # not offered
    done = new_user(
        browser,
        email="New.Officer@Example.test",
        display_name="New Officer",
        role="quality_officer",
        member="H02",
    )
    assert "/users" in done.location
    created = fetch_one(db_session, sa.select(User).where(User.email == "new.officer@example.test"))
    assert created.role is Role.QUALITY_OFFICER
    assert created.member_id == people.other.id
    assert created.collaborative_id == people.collaborative.id
    assert created.password_hash is None
    # The invitation is a reset link; following it sets the password.
    (message,) = mailer.outbox
    assert message.recipients == ["new.officer@example.test"]
    path = re.search(r"/password/reset/\S+", message.body).group(0)
    invited = client(app)
    page = invited.get(path)
    post_form(
        invited,
        page,
        path,
        {"new_password": "my own passphrase", "confirm_password": "my own passphrase"},
        status=303,
    )
    login(invited, "new.officer@example.test", "my own passphrase")
    (event,) = fetch_all(
        db_session, sa.select(AuditEvent).where(AuditEvent.action == "user.created")
    )
    assert event.actor_id == people.coordinator.id
    assert event.details["role"] == "quality_officer"
    assert event.member_id == people.other.id


def test_coordinator_cannot_create_or_change_admins(app, people, db_session):
    browser = signed_in(app, db_session, people.coordinator)
    refused = new_user(browser, email="boss@example.test", role="admin", status=422)
    assert "Only an administrator can make administrators." in refused.text
    assert fetch_one(db_session, sa.select(User).where(User.email == "boss@example.test")) is None
    page = browser.get(f"/users/{people.admin.id}/edit")
    assert "Only an administrator can change an administrator." in page.text
    post_form(
        browser,
        page,
        f"/users/{people.admin.id}/edit",
        {"email": "admin@example.test", "role": "coordinator", "member": ""},
        status=422,
    )
    promote = browser.get(f"/users/{people.officer.id}/edit")
    post_form(
        browser,
        promote,
        f"/users/{people.officer.id}/edit",
        {"email": "officer@example.test", "role": "admin", "member": "", "is_active": "on"},
        status=422,
    )
    assert (
        fetch_one(db_session, sa.select(User.role).where(User.id == people.admin.id)) is Role.ADMIN
    )


def test_admins_can_create_admins(app, people, db_session):
    browser = signed_in(app, db_session, people.admin)
    new_user(browser, email="second.admin@example.test", role="admin")
    created = fetch_one(
        db_session, sa.select(User).where(User.email == "second.admin@example.test")
    )
    assert created.role is Role.ADMIN


def test_role_and_member_must_agree(app, people, db_session):
    browser = signed_in(app, db_session, people.coordinator)
    missing = new_user(browser, email="a@example.test", role="member_viewer", status=422)
    assert 'id="member-error"' in missing.text
    assert "need the member" in missing.text
    extra = new_user(browser, email="b@example.test", role="coordinator", member="H01", status=422)
    assert "belongs to no member" in extra.text
    unknown = new_user(
        browser, email="c@example.test", role="quality_officer", member="ZZ9", status=422
    )
    assert "no member" in unknown.text
    clash = new_user(
        browser, email="OFFICER@example.test", role="quality_officer", member="H01", status=422
    )
    assert "exists already" in clash.text
    bad = new_user(browser, email="not an address", role="coordinator", status=422)
    assert 'id="email-error"' in bad.text
    assert 'value="not an address"' in bad.text  # what was typed is kept


def test_changing_role_member_and_status_is_audited_and_ends_sessions(app, people, db_session):
    victim = client(app)
    sign_in(victim, db_session, people.viewer)
    browser = signed_in(app, db_session, people.coordinator)
    path = f"/users/{people.viewer.id}/edit"
    page = browser.get(path)
    post_form(
        browser,
        page,
        path,
        {
            "email": "viewer@example.test",
            "display_name": "Moved",
            "role": "quality_officer",
            "member": "H02",
            "is_active": "on",
        },
    )
    changed = fetch_one(db_session, sa.select(User).where(User.id == people.viewer.id))
    assert (changed.role, changed.member_id) == (Role.QUALITY_OFFICER, people.other.id)
    victim.get("/account/tokens", status=403)  # new rights take effect at the next sign-in
    (event,) = fetch_all(
        db_session, sa.select(AuditEvent).where(AuditEvent.action == "user.changed")
    )
    assert event.details["changes"]["role"] == ["member_viewer", "quality_officer"]
    assert event.details["changes"]["member_id"] == [people.home.id, people.other.id]
    # Deactivation (an unticked box is absent from the form).
    page = browser.get(path)
    post_form(
        browser,
        page,
        path,
        {"email": "viewer@example.test", "role": "quality_officer", "member": "H02"},
    )
    assert (
        fetch_one(db_session, sa.select(User.is_active).where(User.id == people.viewer.id)) is False
    )
    revoked = fetch_all(
        db_session,
        sa.select(WebSession.revoked_at).where(WebSession.user_id == people.viewer.id),
    )
    assert all(revoked)


def test_coordinators_cannot_lock_themselves_out(app, people, db_session):
    browser = signed_in(app, db_session, people.coordinator)
    path = f"/users/{people.coordinator.id}/edit"
    page = browser.get(path)
    refused = post_form(
        browser,
        page,
        path,
        {"email": "coordinator@example.test", "role": "coordinator"},
        status=422,
    )
    assert "cannot change your own role or deactivate yourself" in refused.text


def test_users_of_other_collaboratives_are_not_found(app, people, db_session, factories):
    elsewhere = UserFactory(collaborative=CollaborativeFactory(), role=Role.COORDINATOR)
    browser = signed_in(app, db_session, people.coordinator)
    browser.get(f"/users/{elsewhere.id}/edit", status=404)
    assert elsewhere.email not in browser.get("/users").text
