"""``qicollab users`` and ``qicollab tokens`` through click's CliRunner, on each database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from qicollab.accounts.models import ApiToken, Role, User
from qicollab.accounts.passwords import verify_password
from qicollab.accounts.sessions import digest
from qicollab.audit.models import AuditEvent
from qicollab.cli import cli
from tests.accounts.conftest import client
from tests.factories import CollaborativeFactory
from tests.helpers import fetch_all, fetch_one

PASSWORD = "a long enough password"


@pytest.fixture
def run(database_url, tmp_path):
    """Run a command against this test's database; returns click's Result."""

    def invoke(*args: str, stdin: str | None = None):
        env = {"DATABASE_URL": database_url, "QICOLLAB_STORAGE": str(tmp_path / "cli")}
        return CliRunner().invoke(cli, list(args), input=stdin, env=env, obj=None)

    return invoke


def test_every_command_has_help(run):
    for command in (
        ["users", "--help"],
        ["users", "add", "--help"],
        ["users", "list", "--help"],
        ["tokens", "--help"],
        ["tokens", "create", "--help"],
        ["tokens", "revoke", "--help"],
    ):
        result = run(*command)
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output
    assert "--password-stdin" in run("users", "add", "--help").output


def test_users_add_reads_the_password_from_stdin(run, people, db_session):
    result = run(
        "users", "add", "New@Example.test", "--role", "member_viewer", "--member", "H02",
        "--name", "New Viewer", "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "added new@example.test (member_viewer, member H02)" in result.output
    assert PASSWORD not in result.output
    user = fetch_one(db_session, sa.select(User).where(User.email == "new@example.test"))
    assert (user.role, user.member_id, user.display_name) == (
        Role.MEMBER_VIEWER,
        people.other.id,
        "New Viewer",
    )
    assert verify_password(user.password_hash, PASSWORD)
    (event,) = fetch_all(
        db_session, sa.select(AuditEvent).where(AuditEvent.action == "user.created")
    )
    assert event.actor == "cli"


def test_users_add_without_a_password_leaves_it_to_a_reset_link(run, people, db_session):
    result = run("users", "add", "coord2@example.test", "--role", "coordinator")
    assert result.exit_code == 0, result.output
    user = fetch_one(db_session, sa.select(User).where(User.email == "coord2@example.test"))
    assert user.password_hash is None


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--role", "quality_officer"], PASSWORD, "--member: Quality officers and member viewers"),
        (["--role", "coordinator", "--member", "H01"], PASSWORD, "--member: A coordinator"),
        (["--role", "member_viewer", "--member", "NOPE"], PASSWORD, "no member 'NOPE'"),
        (["--role", "coordinator"], "short", "at least 12 characters"),
        (["--role", "coordinator"], "\n", "standard input held no password"),
        (["--role", "wizard"], PASSWORD, "Invalid value for '--role'"),
    ],
)
def test_users_add_explains_what_is_wrong(run, people, args, stdin, message, db_session):
    result = run("users", "add", "x@example.test", *args, "--password-stdin", stdin=stdin + "\n")
    assert result.exit_code != 0
    assert message in result.output
    assert fetch_one(db_session, sa.select(User).where(User.email == "x@example.test")) is None


def test_users_add_refuses_duplicates_and_asks_which_collaborative(run, people, factories):
    duplicate = run("users", "add", "OFFICER@example.test", "--role", "coordinator")
    assert duplicate.exit_code != 0
    assert "exists already" in duplicate.output
    CollaborativeFactory(slug="second")
    ambiguous = run("users", "add", "y@example.test", "--role", "coordinator")
    assert ambiguous.exit_code != 0
    assert "--collaborative" in ambiguous.output
    chosen = run(
        "users", "add", "y@example.test", "--role", "coordinator", "--collaborative", "second"
    )
    assert chosen.exit_code == 0, chosen.output


def test_users_list_prints_one_user_a_line(run, people, db_session):
    people.viewer.is_active = False
    db_session.commit()
    result = run("users", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "officer@example.test\tquality_officer\tH01" in lines
    assert "coordinator@example.test\tcoordinator\t-" in lines
    assert "viewer@example.test\tmember_viewer\tH01\tinactive" in lines
    assert len(lines) == 5


def test_tokens_create_prints_a_working_token_once(run, app, people, db_session):
    result = run("tokens", "create", "officer@example.test", "--description", "nightly export")
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    row = fetch_one(db_session, sa.select(ApiToken))
    assert row.token_hash == digest(token)
    assert row.description == "nightly export"
    api = client(app, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/me").json["email"] == "officer@example.test"
    missing = run("tokens", "create", "nobody@example.test")
    assert missing.exit_code != 0
    assert "no active user" in missing.output


def test_tokens_revoke_by_prefix(run, app, people, db_session):
    first = run("tokens", "create", "officer@example.test").output.strip()
    run("tokens", "create", "viewer@example.test")
    short = run("tokens", "revoke", "qic_")
    assert short.exit_code != 0
    assert "at least 8" in short.output
    none = run("tokens", "revoke", "qic_zzzzzzzz-none")
    assert none.exit_code != 0
    result = run("tokens", "revoke", first[:12])
    assert result.exit_code == 0, result.output
    assert f"revoked {first[:12]}" in result.output
    client(app, HTTP_AUTHORIZATION=f"Bearer {first}").get("/api/me", status=401)
    again = run("tokens", "revoke", first)
    assert again.exit_code != 0  # it is no longer live
    actions = fetch_all(db_session, sa.select(AuditEvent.action))
    assert actions.count("token.created") == 2
    assert actions.count("token.revoked") == 1
