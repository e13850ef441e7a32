"""Sign-in, sessions, CSRF, headers, throttling, resets, tokens, user admin, authorization."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
import webtest
from click.testing import CliRunner
from pyramid.security import NO_PERMISSION_REQUIRED

from qicollab.accounts.models import ApiToken, Role, User, WebSession
from qicollab.accounts.passwords import hash_password
from qicollab.audit.models import AuditEvent
from qicollab.cli import cli
from qicollab.members.models import BedSizeBand, Collaborative, Member, OrgType, Rurality
from tests.helpers import create_api_token, csrf_token, login

PASSWORD = "correct horse battery"
_HASH = hash_password(PASSWORD)


@pytest.fixture
def people(db_session):
    collaborative = Collaborative(slug="c", name="C")
    db_session.add(collaborative)
    db_session.flush()
    members = []
    for code in ("H01", "H02"):
        member = Member(
            collaborative_id=collaborative.id,
            code=code,
            name=f"{code} Hospital",
            blinded_code=f"P-{code}",
            org_type=OrgType.ACUTE_HOSPITAL,
            bed_size_band=BedSizeBand.UNDER_100,
            rurality=Rurality.URBAN,
            region="North",
        )
        db_session.add(member)
        members.append(member)
    db_session.flush()
    users = {}
    for name, role, member in (
        ("officer", Role.QUALITY_OFFICER, members[0]),
        ("viewer", Role.MEMBER_VIEWER, members[0]),
        ("other_officer", Role.QUALITY_OFFICER, members[1]),
        ("coordinator", Role.COORDINATOR, None),
        ("admin", Role.ADMIN, None),
    ):
        users[name] = User(
            collaborative_id=collaborative.id,
            email=f"{name}@example.org",
            password_hash=_HASH,
            role=role,
            member_id=member.id if member else None,
        )
    db_session.add_all(users.values())
    db_session.commit()
    return users, members


def _browser(app, **environ):
    return webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "10.0.0.1", **environ})


def test_login_sets_a_hardened_session_cookie_and_rotates_it(app, people, db_session):
    browser = _browser(
        app, **{"wsgi.url_scheme": "https", "HTTP_REFERER": "https://localhost/login"}
    )
    first = login(browser, "officer@example.org", PASSWORD)
    cookie = first.headers.getall("Set-Cookie")
    session_cookie = next(c for c in cookie if c.startswith("qicollab_session="))
    assert "HttpOnly" in session_cookie
    assert "SameSite=Lax" in session_cookie
    assert "secure" in session_cookie.lower()
    value_one = browser.cookies["qicollab_session"]
    login(browser, "officer@example.org", PASSWORD)
    assert browser.cookies["qicollab_session"] != value_one
    stored = db_session.scalars(sa.select(WebSession.id)).all()
    db_session.commit()  # end the read, so the app can write
    assert value_one not in stored  # only hashes are stored
    assert browser.get("/").text.count("officer@example.org") >= 1


def test_wrong_password_is_refused_and_audited(app, people, db_session):
    browser = _browser(app)
    response = login(browser, "officer@example.org", "not the password", status=401)
    assert "not right" in response.text
    actions = db_session.scalars(sa.select(AuditEvent.action)).all()
    db_session.commit()
    assert "login.failed" in actions
    assert "qicollab_session" not in browser.cookies


def test_logout_revokes_the_session(app, people, db_session):
    browser = _browser(app)
    login(browser, "viewer@example.org", PASSWORD)
    page = browser.get("/catalogue/measures")
    browser.post("/logout", {"csrf_token": csrf_token(page)}, status=303)
    assert db_session.scalars(sa.select(WebSession.revoked_at)).all()[0] is not None
    db_session.commit()
    browser.get("/catalogue/measures", status=403)


def test_idle_and_absolute_timeouts_end_sessions(app, people, engine):
    browser = _browser(app)
    login(browser, "viewer@example.org", PASSWORD)
    browser.get("/catalogue/measures", status=200)
    old = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    with engine.begin() as connection:
        connection.execute(sa.update(WebSession).values(last_seen_at=old))
    browser.get("/catalogue/measures", status=403)


def test_state_changing_requests_need_the_csrf_token(app, people):
    browser = _browser(app)
    browser.get("/login")
    browser.post("/login", {"email": "officer@example.org", "password": PASSWORD}, status=400)


def test_security_headers_on_every_response(app):
    response = _browser(app).get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "object-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"]


def test_ten_failures_per_account_then_429(app, people):
    for attempt in range(10):
        login(
            _browser(app, REMOTE_ADDR=f"10.1.0.{attempt}"),
            "officer@example.org",
            "x" * 12,
            status=401,
        )
    response = login(
        _browser(app, REMOTE_ADDR="10.2.0.1"), "officer@example.org", PASSWORD, status=429
    )
    assert response.headers["Retry-After"]


def test_ten_failures_per_address_then_429(app, people):
    browser = _browser(app, REMOTE_ADDR="10.9.9.9")
    for attempt in range(10):
        login(browser, f"nobody{attempt}@example.org", "x" * 12, status=401)
    login(browser, "viewer@example.org", PASSWORD, status=429)


def test_password_reset_by_a_one_time_emailed_link(app, people, settings):
    browser = _browser(app)
    page = browser.get("/password/forgot")
    browser.post(
        "/password/forgot", {"email": "viewer@example.org", "csrf_token": csrf_token(page)}
    )
    mails = list((Path(settings["qicollab.storage"]) / "mail").iterdir())
    assert len(mails) == 1
    link = re.search(r"http://\S+/password/reset/\S+", mails[0].read_text()).group(0)
    path = link.split("localhost", 1)[1]
    page = browser.get(path)
    browser.post(
        path, {"new_password": "a brand new passphrase", "csrf_token": csrf_token(page)}, status=303
    )
    login(_browser(app), "viewer@example.org", "a brand new passphrase")
    page = browser.get(path)
    used = browser.post(
        path, {"new_password": "another new passphrase", "csrf_token": csrf_token(page)}, status=422
    )
    assert "expired or was used" in used.text
    # Unknown addresses get the same answer and no mail.
    page = browser.get("/password/forgot")
    answer = browser.post(
        "/password/forgot", {"email": "ghost@example.org", "csrf_token": csrf_token(page)}
    )
    assert "If that address belongs" in answer.text
    assert len(list((Path(settings["qicollab.storage"]) / "mail").iterdir())) == 1


def test_api_tokens_authenticate_and_can_be_revoked(app, people, db_session):
    users, _ = people
    secret = create_api_token(db_session, users["officer"])
    db_session.commit()
    assert secret not in db_session.scalars(sa.select(ApiToken.token_hash)).all()
    token_id = db_session.scalar(sa.select(ApiToken.id))
    db_session.commit()
    api = _browser(app, HTTP_AUTHORIZATION=f"Bearer {secret}")
    api.get("/catalogue/measures", status=200)
    browser = _browser(app)
    login(browser, "officer@example.org", PASSWORD)
    page = browser.get("/account/tokens")
    browser.post(f"/account/tokens/{token_id}/revoke", {"csrf_token": csrf_token(page)}, status=303)
    api.get("/catalogue/measures", status=403)
    _browser(app, HTTP_AUTHORIZATION="Bearer qic_forged").get("/catalogue/measures", status=403)


def test_cli_creates_tokens_and_users(database_url, people, tmp_path):
    env = {"DATABASE_URL": database_url, "QICOLLAB_STORAGE": str(tmp_path)}
    runner = CliRunner()
    result = runner.invoke(cli, ["tokens", "create", "officer@example.org"], env=env)
    assert result.exit_code == 0
    assert result.output.startswith("qic_")
    added = runner.invoke(
        cli,
        [
            "users",
            "add",
            "new@example.org",
            "--role",
            "member_viewer",
            "--member",
            "H02",
            "--password-stdin",
        ],
        input="a long enough password\n",
        env=env,
    )
    assert added.exit_code == 0, added.output
    missing = runner.invoke(
        cli,
        ["users", "add", "x@example.org", "--role", "quality_officer", "--password-stdin"],
        input="a long enough password\n",
        env=env,
    )
    assert missing.exit_code != 0
    assert "--member" in missing.output
    listing = runner.invoke(cli, ["users", "list"], env=env)
    assert "new@example.org\tmember_viewer\tH02" in listing.output
    assert "coordinator@example.org\tcoordinator\t-" in listing.output


def test_coordinators_manage_users_but_cannot_make_admins(app, people, db_session):
    browser = _browser(app)
    login(browser, "coordinator@example.org", PASSWORD)
    page = browser.get("/users/new")
    browser.post(
        "/users/new",
        {
            "email": "o2@example.org",
            "role": "quality_officer",
            "member": "H02",
            "is_active": "on",
            "csrf_token": csrf_token(page),
        },
        status=302,
    )
    created = db_session.scalar(sa.select(User).where(User.email == "o2@example.org"))
    assert created.role is Role.QUALITY_OFFICER
    db_session.commit()
    refused = browser.post(
        "/users/new",
        {"email": "boss@example.org", "role": "admin", "csrf_token": csrf_token(page)},
        status=422,
    )
    assert "administrator" in refused.text
    officer = _browser(app)
    login(officer, "officer@example.org", PASSWORD)
    officer.get("/users", status=403)


def _routes(app):
    introspector = app.registry.introspector
    for route in introspector.get_category("routes"):
        yield route["introspectable"]


def _view_permissions(app):
    """(route name, permission or None) of every view attached to a route."""
    for item in app.registry.introspector.get_category("views"):
        view = item["introspectable"]
        if view["route_name"] is None:
            continue
        named = [r["value"] for r in item["related"] if r.category_name == "permissions"]
        yield view["route_name"], (named[0] if named else None)


def test_every_routed_view_names_its_permission(app):
    missing = sorted({route for route, permission in _view_permissions(app) if permission is None})
    assert missing == []


def test_no_role_reaches_another_members_pages(app, people):
    """Every member-scoped route, for every role of member H01, with H02's id: 403 or 404."""
    users, members = people
    other = str(members[1].id)
    patterns = [r["pattern"] for r in _routes(app) if "{member_id}" in (r["pattern"] or "")]
    assert len(patterns) >= 5
    for role in ("officer", "viewer"):
        browser = _browser(app)
        login(browser, users[role].email, PASSWORD)
        for pattern in patterns:
            path = re.sub(r"\{member_id\}", other, pattern)
            path = re.sub(r"\{[^}]+\}", "1", path)
            status = browser.get(path, expect_errors=True).status_int
            assert status in (403, 404, 405), (role, path, status)
            status = browser.post(path, {}, expect_errors=True).status_int
            assert status in (400, 403, 404, 405), (role, path, status)


def test_public_routes_are_few_and_deliberate(app):
    public = {
        r
        for r, p in _view_permissions(app)
        if p == NO_PERMISSION_REQUIRED and not r.endswith("static/")  # bundled CSS, JS, fonts
    }
    assert public <= {
        "home",
        "health",
        "login",
        "logout",
        "password.forgot",
        "password.reset",
        "api.openapi_json",
        "api.openapi_yaml",
    }
