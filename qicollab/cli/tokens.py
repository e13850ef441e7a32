"""``qicollab tokens``: API tokens for a member's systems."""

from __future__ import annotations

import click
import sqlalchemy as sa

from qicollab.accounts.models import ApiToken, User
from qicollab.accounts.services import normalise_email
from qicollab.accounts.sessions import new_api_token
from qicollab.audit.services import record
from qicollab.cli import cli
from qicollab.cli.context import LazyApp
from qicollab.db import session_scope, utcnow


@cli.group()
def tokens() -> None:
    """API tokens (sent as ``Authorization: Bearer TOKEN``)."""


@tokens.command("create")
@click.argument("email")
@click.option("--description", default="", help="What the token is for.")
@click.pass_obj
def create_token(app: LazyApp, email: str, description: str) -> None:
    """Print a new token for EMAIL; it is shown once and stored only as a hash."""
    with session_scope(app.session_factory) as session:
        user = session.scalar(sa.select(User).where(User.email == normalise_email(email)))
        if user is None or not user.is_active:
            raise click.ClickException(f"no active user {email}")
        token, secret = new_api_token(session, user, description)
        record(
            session,
            "token.created",
            actor="cli",
            object_type="api_token",
            object_id=token.prefix,
            member_id=user.member_id,
            collaborative_id=user.collaborative_id,
        )
    click.echo(secret)


@tokens.command("revoke")
@click.argument("prefix")
@click.pass_obj
def revoke_token(app: LazyApp, prefix: str) -> None:
    """Revoke the token that starts with PREFIX."""
    with session_scope(app.session_factory) as session:
        matches = session.scalars(sa.select(ApiToken).where(ApiToken.prefix == prefix[:12])).all()
        if len(matches) != 1:
            raise click.ClickException("no single token starts with that prefix")
        matches[0].revoked_at = matches[0].revoked_at or utcnow()
        record(session, "token.revoked", actor="cli", object_type="api_token", object_id=prefix)
    click.echo("revoked")
