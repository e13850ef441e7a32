"""``qicollab users``: add and list users from the shell."""

from __future__ import annotations

import sys

import click
import sqlalchemy as sa

from qicollab.accounts.models import Role, User
from qicollab.accounts.passwords import hash_password
from qicollab.accounts.services import AccountError, check_password_strength, normalise_email
from qicollab.cli import cli
from qicollab.cli.context import LazyApp
from qicollab.db import session_scope
from qicollab.members.models import Collaborative, Member


@cli.group()
def users() -> None:
    """Users and their roles."""


@users.command("add")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--member", "member_code", default=None, help="Member code (officers, viewers).")
@click.option("--name", default="", help="Display name.")
@click.option("--collaborative", "slug", default=None, help="Collaborative slug (if several).")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the password from stdin.")
@click.pass_obj
def add_user(  # noqa: PLR0917 - click passes options positionally
    app: LazyApp,
    email: str,
    role: str,
    member_code: str | None,
    name: str,
    slug: str | None,
    password_stdin: bool,
) -> None:
    """Create a user with a role, and a member for quality officers and member viewers."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else ""
    chosen = Role(role)
    try:
        check_password_strength(password, email)
    except AccountError as error:
        raise click.ClickException(str(error)) from error
    with session_scope(app.session_factory) as session:
        query = sa.select(Collaborative)
        if slug:
            query = query.where(Collaborative.slug == slug)
        collaboratives = session.scalars(query).all()
        if len(collaboratives) != 1:
            raise click.ClickException(
                "no collaborative found"
                if not collaboratives
                else "several collaboratives: choose one with --collaborative"
            )
        collaborative = collaboratives[0]
        member = None
        if chosen.is_member_scoped:
            if not member_code:
                raise click.ClickException(f"--member is required for the {role} role")
            member = session.scalar(
                sa.select(Member).where(
                    Member.collaborative_id == collaborative.id, Member.code == member_code
                )
            )
            if member is None:
                raise click.ClickException(f"no member with code {member_code}")
        elif member_code:
            raise click.ClickException(f"the {role} role belongs to no member; drop --member")
        address = normalise_email(email)
        if session.scalar(sa.select(User.id).where(User.email == address)):
            raise click.ClickException(f"a user {address} exists already")
        session.add(
            User(
                collaborative_id=collaborative.id,
                email=address,
                display_name=name,
                password_hash=hash_password(password),
                role=chosen,
                member_id=member.id if member else None,
            )
        )
    click.echo(f"added {address} ({role}{', ' + member_code if member_code else ''})")


@users.command("list")
@click.pass_obj
def list_users(app: LazyApp) -> None:
    """One user a line: email, role, member code (or -)."""
    with session_scope(app.session_factory) as session:
        rows = session.execute(
            sa.select(User.email, User.role, Member.code)
            .outerjoin(Member, Member.id == User.member_id)
            .order_by(User.email)
        ).all()
    for email, role, code in rows:
        click.echo(f"{email}\t{role.value}\t{code or '-'}")
