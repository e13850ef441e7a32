"""The application context that CLI commands share, built only when a command needs it."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker


class LazyApp:
    """Settings, engine and sessions for a CLI run; nothing is opened until first used."""

    def __init__(self, config_uri: str | None) -> None:
        self.config_uri = config_uri

    @cached_property
    def settings(self) -> dict[str, Any]:
        import click  # noqa: PLC0415

        from qicollab.config import MissingSecretError, load_settings  # noqa: PLC0415

        try:
            return load_settings(self.config_uri)
        except MissingSecretError as error:
            raise click.ClickException(str(error)) from error

    @cached_property
    def engine(self) -> Engine:
        from qicollab.db import create_engine_from_settings  # noqa: PLC0415

        return create_engine_from_settings(self.settings)

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        from qicollab.db import get_session_factory  # noqa: PLC0415

        return get_session_factory(self.engine)

    def close(self) -> None:
        """Release pooled connections (only if the engine was ever created)."""
        if "engine" in self.__dict__:
            self.engine.dispose()
