"""``qicollab tokens``: API tokens for a member's systems, from the shell."""

from __future__ import annotations

import click

from qicollab.accounts.services import TokenService, find_user
from qicollab.cli import cli
from qicollab.cli.context import LazyApp
from qicollab.db import session_scope

#: Shortest prefix accepted by ``tokens revoke`` (the 4-character marker plus 4 more).
MIN_PREFIX = 8


@cli.group()
def tokens() -> None:
    """API tokens (sent as ``Authorization: Bearer TOKEN``)."""


@tokens.command("create")
@click.argument("email")
@click.option("--description", default="", help="What the token is for (shown in the portal).")
@click.pass_obj
def create_token(app: LazyApp, email: str, description: str) -> None:
    """Print a new token for the user EMAIL.

    The token is printed once and stored only as a SHA-256 hash: keep it somewhere safe.
    """
    with session_scope(app.session_factory) as session:
        user = find_user(session, email)
        if user is None or not user.is_active:
            msg = f"no active user {email}"
            raise click.ClickException(msg)
        _, secret = TokenService(session).create(user, description, actor="cli")
    click.echo(secret)


@tokens.command("revoke")
@click.argument("prefix")
@click.pass_obj
def revoke_token(app: LazyApp, prefix: str) -> None:
    """Revoke the live token starting with PREFIX (as the portal shows it, or the whole token)."""
    if len(prefix.strip()) < MIN_PREFIX:
        msg = f"give at least {MIN_PREFIX} characters of the token"
        raise click.ClickException(msg)
    with session_scope(app.session_factory) as session:
        service = TokenService(session)
        matches = service.find_by_prefix(prefix)
        if not matches:
            msg = "no live token starts with that prefix"
            raise click.ClickException(msg)
        if len(matches) > 1:
            msg = f"{len(matches)} live tokens start with that prefix; give more characters"
            raise click.ClickException(msg)
        token = matches[0]
        service.revoke(token, actor="cli")
        shown = token.prefix
    click.echo(f"revoked {shown}…")
