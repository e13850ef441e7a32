"""Run the Alembic history from code (CLI, tests, the demo) without an alembic.ini."""

from __future__ import annotations

import io
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


def alembic_config(engine: sa.Engine) -> Config:
    """An Alembic config pointing at the top-level ``alembic/`` folder and ``engine``."""
    config = Config(stdout=io.StringIO())
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    config.attributes["sqlalchemy.url"] = engine.url.render_as_string(hide_password=False)
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision``."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision in the history."""
    return ScriptDirectory(str(ALEMBIC_DIR)).get_current_head()


def schema_problems(engine: sa.Engine) -> list[str]:
    """Why the database does not match the models: behind head, or drift. Empty when fine."""
    from alembic.autogenerate import compare_metadata  # noqa: PLC0415

    from qicollab.models import Base  # noqa: PLC0415

    problems: list[str] = []
    current, head = current_revision(engine), head_revision()
    if current != head:
        problems.append(f"database is at revision {current or 'none'}, head is {head}")
        return problems
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        problems.extend(repr(diff) for diff in compare_metadata(context, Base.metadata))
    return problems
