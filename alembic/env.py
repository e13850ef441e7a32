"""Alembic environment: one history for SQLite and PostgreSQL.

The URL comes from the caller (``qicollab db upgrade`` passes the app's engine), else from
``DATABASE_URL``, else from the ini's ``sqlalchemy.url``, else the embedded SQLite default.
SQLite cannot ALTER most things in place, so migrations run in batch mode there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from qicollab.config import apply_defaults
from qicollab.db import UTCDateTime, create_engine_from_settings
from qicollab.models import Base

config = context.config
target_metadata = Base.metadata


def _engine() -> sa.Engine:
    url = config.attributes.get("sqlalchemy.url") or config.get_main_option("sqlalchemy.url")
    settings = apply_defaults({"sqlalchemy.url": url} if url else {})
    return create_engine_from_settings(settings, poolclass=sa.pool.NullPool)


def _render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Migrations spell out plain SQL types, so they never import application code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
        render_item=_render_item,
    )


def run_migrations_online() -> None:
    """Run against a live connection (the only mode we support: DDL differs per dialect)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = _engine()
    with engine.connect() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
