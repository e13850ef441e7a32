"""``qicollab db``: migrate the database and check it matches the models."""

from __future__ import annotations

import click

from qicollab.cli import cli
from qicollab.cli.context import LazyApp
from qicollab.migrations import schema_problems, upgrade


@cli.group()
def db() -> None:
    """Database schema: upgrade and check."""


@db.command("upgrade")
@click.argument("revision", default="head")
@click.pass_obj
def upgrade_command(app: LazyApp, revision: str) -> None:
    """Apply migrations up to REVISION (default: head). Honours DATABASE_URL."""
    upgrade(app.engine, revision)
    click.echo(f"database at {revision}: {app.engine.url.render_as_string(hide_password=True)}")


@db.command("check")
@click.pass_obj
def check_command(app: LazyApp) -> None:
    """Exit non-zero when the schema is behind head or differs from the models."""
    problems = schema_problems(app.engine)
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        raise SystemExit(1)
    click.echo("schema is at head and matches the models")
