"""``qicollab users``: add and list users from the shell (the first coordinator, scripted setup)."""

from __future__ import annotations

import sys

import click
import sqlalchemy as sa

from qicollab.accounts.models import Role, User
from qicollab.accounts.services import AccountError, UserAdminService
from qicollab.cli import cli
from qicollab.cli.context import LazyApp
from qicollab.db import session_scope
from qicollab.members.models import Collaborative, Member


@cli.group()
def users() -> None:
    """Users and their roles."""


def _collaborative(session: sa.orm.Session, slug: str | None) -> Collaborative:
    """The collaborative named by ``--collaborative``, or the only one there is."""
    query = sa.select(Collaborative).order_by(Collaborative.slug)
    if slug:
        query = query.where(Collaborative.slug == slug)
    found = session.scalars(query).all()
    if not found:
        msg = f"no collaborative {slug!r}" if slug else "no collaborative yet (load one first)"
        raise click.ClickException(msg)
    if len(found) > 1:
        slugs = ", ".join(c.slug for c in found)
        msg = f"several collaboratives ({slugs}): choose one with --collaborative"
        raise click.ClickException(msg)
    return found[0]


@users.command("add")
@click.argument("email")
@click.option(
    "--role",
    required=True,
    type=click.Choice([role.value for role in Role]),
    help="What the user may do.",
)
@click.option(
    "--member",
    "member_code",
    default=None,
    help="Code of the member (required for quality_officer and member_viewer, refused otherwise).",
)
@click.option("--name", default="", help="Display name.")
@click.option(
    "--collaborative", "slug", default=None, help="Collaborative slug (when there are several)."
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (never from the command line).",
)
@click.pass_obj
def add_user(  # noqa: PLR0917 - one parameter per option, as click passes them
    app: LazyApp,
    email: str,
    role: str,
    member_code: str | None,
    name: str,
    slug: str | None,
    password_stdin: bool,
) -> None:
    """Create a user with a role (and a member for officers and viewers).

    Without --password-stdin the user has no password yet and sets one with the "Forgot your
    password?" link.
    """
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    if password_stdin and not password:
        msg = "--password-stdin: standard input held no password"
        raise click.ClickException(msg)
    with session_scope(app.session_factory) as session:
        collaborative = _collaborative(session, slug)
        try:
            user = UserAdminService(session).create_user(
                None,
                collaborative_id=collaborative.id,
                email=email,
                role=role,
                member_code=member_code,
                display_name=name,
                password=password,
            )
        except AccountError as error:
            option = {"member": "--member", "role": "--role", "password": "password"}.get(
                error.field or "", ""
            )
            raise click.ClickException(f"{option}: {error}" if option else str(error)) from error
        address, member = user.email, member_code or "-"
    click.echo(f"added {address} ({role}, member {member})")


@users.command("list")
@click.option("--collaborative", "slug", default=None, help="Only this collaborative's users.")
@click.pass_obj
def list_users(app: LazyApp, slug: str | None) -> None:
    """One user a line, tab-separated: email, role, member code (or -)."""
    with session_scope(app.session_factory) as session:
        query = (
            sa.select(User.email, User.role, Member.code, User.is_active)
            .outerjoin(Member, Member.id == User.member_id)
            .order_by(User.email)
        )
        if slug:
            query = query.where(User.collaborative_id == _collaborative(session, slug).id)
        rows = session.execute(query).all()
    for email, role, code, active in rows:
        suffix = "" if active else "\tinactive"
        click.echo(f"{email}\t{role.value}\t{code or '-'}{suffix}")
