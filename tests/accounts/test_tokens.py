"""API tokens: shown once, stored hashed, sent as a bearer token, revocable, exempt from CSRF."""

from __future__ import annotations

import re

import sqlalchemy as sa
from pyramid.config import Configurator

from qicollab.accounts.models import ApiToken
from qicollab.accounts.sessions import TOKEN_PREFIX, digest
from qicollab.audit.models import AuditEvent
from qicollab.permissions import Permission
from tests.accounts.conftest import client
from tests.helpers import create_api_token, fetch_all, fetch_one, post_form, sign_in


def bearer(app, token: str):
    return client(app, HTTP_AUTHORIZATION=f"Bearer {token}")


def create_in_portal(browser, description: str = "hospital EHR export") -> str:
    page = browser.get("/account/tokens")
    created = post_form(browser, page, "/account/tokens", {"description": description})
    return created.html.find("input", id="new-token")["value"]


def test_a_token_made_in_the_portal_is_shown_once_and_stored_hashed(browser, people, db_session):
    sign_in(browser, db_session, people.officer)
    secret = create_in_portal(browser)
    assert secret.startswith(TOKEN_PREFIX)
    assert len(secret) > 40
    (row,) = fetch_all(db_session, sa.select(ApiToken))
    assert row.token_hash == digest(secret)
    assert row.prefix == secret[:12]
    assert row.description == "hospital EHR export"
    assert row.user_id == people.officer.id
    assert secret not in browser.get("/account/tokens").text  # never again
    assert row.prefix in browser.get("/account/tokens").text
    assert "token.created" in fetch_all(db_session, sa.select(AuditEvent.action))


def test_bearer_tokens_authenticate_api_calls_and_record_their_use(app, people, db_session):
    token = create_api_token(db_session, people.officer)
    db_session.commit()
    response = bearer(app, token).get("/api/me")
    assert response.json["email"] == "officer@example.test"
    assert response.json["member"] == "H01"
    row = fetch_one(db_session, sa.select(ApiToken))
    assert row.last_used_at is not None
    assert "no-store" in response.headers["Cache-Control"]


def test_forged_revoked_and_deactivated_tokens_fail(app, people, db_session):
    token = create_api_token(db_session, people.officer)
    db_session.commit()
    bearer(app, "qic_forged-token-value").get("/api/me", status=401)
    bearer(app, token[:-1]).get("/api/me", status=401)
    people.officer.is_active = False
    db_session.commit()
    bearer(app, token).get("/api/me", status=401)
    people.officer.is_active = True
    db_session.commit()
    bearer(app, token).get("/api/me", status=200)
    browser = client(app)
    sign_in(browser, db_session, people.officer)
    token_id = fetch_one(db_session, sa.select(ApiToken.id))
    page = browser.get("/account/tokens")
    post_form(browser, page, f"/account/tokens/{token_id}/revoke", status=303)
    bearer(app, token).get("/api/me", status=401)
    assert "revoked" in browser.get("/account/tokens").text
    assert "token.revoked" in fetch_all(db_session, sa.select(AuditEvent.action))


def test_a_bad_bearer_token_does_not_fall_back_to_the_cookie(app, people, db_session):
    browser = client(app, HTTP_AUTHORIZATION="Bearer qic_not-a-token")
    sign_in(browser, db_session, people.officer)
    browser.get("/account/tokens", status=403)


def test_owners_and_coordinators_revoke_tokens_others_cannot(app, people, db_session):
    token = create_api_token(db_session, people.officer)
    db_session.commit()
    token_id = fetch_one(db_session, sa.select(ApiToken.id))
    other = client(app)
    sign_in(other, db_session, people.other_officer)
    assert token[:12] not in other.get("/account/tokens").text
    page = other.get("/account/tokens")
    post_form(other, page, f"/account/tokens/{token_id}/revoke", status=404)
    post_form(other, page, "/account/tokens/999999/revoke", status=404)
    bearer(app, token).get("/api/me", status=200)
    coordinator = client(app)
    sign_in(coordinator, db_session, people.coordinator)
    listing = coordinator.get("/account/tokens")
    assert "officer@example.test" in listing.text
    post_form(coordinator, listing, f"/account/tokens/{token_id}/revoke", status=303)
    bearer(app, token).get("/api/me", status=401)
    (event,) = fetch_all(
        db_session, sa.select(AuditEvent).where(AuditEvent.action == "token.revoked")
    )
    assert event.actor_id == people.coordinator.id


def test_bearer_requests_skip_csrf_but_cookie_requests_do_not(app, people, db_session):
    """The default CSRF check applies to every unsafe request except bearer-token ones."""
    config = Configurator(registry=app.registry)
    config.add_route("test.echo", "/test-echo")
    config.add_view(
        lambda request: {"user": request.identity.email},
        route_name="test.echo",
        request_method="POST",
        renderer="json",
        permission=Permission.ACCOUNT,
    )
    config.commit()
    token = create_api_token(db_session, people.officer)
    db_session.commit()
    assert bearer(app, token).post("/test-echo").json == {"user": "officer@example.test"}
    browser = client(app)
    sign_in(browser, db_session, people.officer)
    browser.post("/test-echo", status=403)
    page = browser.get("/account/tokens")
    assert post_form(browser, page, "/test-echo").json == {"user": "officer@example.test"}


def test_the_new_token_is_labelled_for_screen_readers(browser, people, db_session):
    sign_in(browser, db_session, people.viewer)
    page = browser.get("/account/tokens")
    created = post_form(browser, page, "/account/tokens", {"description": "x"})
    assert re.search(r'<label for="new-token">', created.text)


def test_coordinators_cannot_revoke_an_administrators_token(app, people, db_session):
    create_api_token(db_session, people.admin)
    db_session.commit()
    token_id = fetch_one(db_session, sa.select(ApiToken.id))
    coordinator = client(app)
    sign_in(coordinator, db_session, people.coordinator)
    page = coordinator.get("/account/tokens")
    post_form(coordinator, page, f"/account/tokens/{token_id}/revoke", status=404)
    assert fetch_one(db_session, sa.select(ApiToken.revoked_at)) is None
