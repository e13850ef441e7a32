"""Settings: defaults, then the ini file, then environment variables for secrets and paths.

Deployments keep secrets out of ini files, so the database URL, the storage folder and the
session secret can always be overridden from the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: Environment variable -> setting it overrides.
ENVIRONMENT_OVERRIDES = {
    "DATABASE_URL": "sqlalchemy.url",
    "QICOLLAB_STORAGE": "qicollab.storage",
    "QICOLLAB_FILE_STORE": "qicollab.file_store",
    "QICOLLAB_SECRET": "qicollab.secret",
    "QICOLLAB_MAIL_SENDER": "mail.default_sender",
}

DEFAULTS: dict[str, Any] = {
    "qicollab.storage": "./var",
    "qicollab.upload_max_bytes": str(25 * 1024 * 1024),
    "qicollab.session_idle_minutes": "30",
    "qicollab.session_absolute_hours": "12",
    # Sign-in throttling (see qicollab.accounts.services.Throttle): free failures per account
    # from one address, per address over all accounts, and per account over all addresses
    # (beyond which each address gets one), within the window; then doubling delays.
    "qicollab.login_max_failures": "10",
    "qicollab.login_address_max_failures": "30",
    "qicollab.login_account_max_failures": "50",
    "qicollab.login_window_minutes": "15",
    "qicollab.login_first_delay_seconds": "1",
    "qicollab.login_max_delay_minutes": "15",
    "pyramid.default_locale_name": "en",
    "retry.attempts": "3",
    "jinja2.filters": "",
}


class MissingSecretError(RuntimeError):
    """A production configuration started without its secret."""


def storage_folder(settings: dict[str, Any]) -> Path:
    """The folder generated files (database, reports, exports) go to; not created here."""
    return Path(settings.get("qicollab.storage") or DEFAULTS["qicollab.storage"]).resolve()


def storage_path(settings: dict[str, Any]) -> Path:
    """The storage folder, created on demand (by whatever first writes into it)."""
    path = storage_folder(settings)
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_database_url(settings: dict[str, Any]) -> str:
    """The embedded default: a SQLite file inside the storage folder.

    Reading settings creates nothing: the folder appears when an engine is first made for it,
    so a command that refuses to start (``serve`` on a missing database) leaves no ``./var``.
    """
    return f"sqlite:///{storage_folder(settings) / 'qicollab.sqlite'}"


def apply_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    """Fill missing settings and apply environment overrides (the environment wins)."""
    merged = {**DEFAULTS, **settings}
    for variable, key in ENVIRONMENT_OVERRIDES.items():
        value = os.environ.get(variable)
        if value:
            merged[key] = value
    if not merged.get("sqlalchemy.url"):
        merged["sqlalchemy.url"] = default_database_url(merged)
    if not merged.get("qicollab.secret"):
        if as_bool(merged.get("qicollab.require_secret")):
            msg = "QICOLLAB_SECRET must be set (production.ini requires a real secret)"
            raise MissingSecretError(msg)
        merged["qicollab.secret"] = "development-only-secret-change-me"
    return merged


def find_config_uri(config_uri: str | None) -> str | None:
    """The ini the CLI should read: the one given, else development.ini in the working folder."""
    if config_uri:
        return config_uri
    candidate = Path("development.ini")
    return str(candidate) if candidate.exists() else None


def load_settings(config_uri: str | None) -> dict[str, Any]:
    """Read the ``[app:main]`` settings of an ini file (if any) and apply defaults."""
    uri = find_config_uri(config_uri)
    settings: dict[str, Any] = {}
    if uri:
        import plaster  # noqa: PLC0415 - only the CLI reads ini files this way

        loader = plaster.get_loader(uri, protocols=["wsgi"])
        settings = dict(loader.get_settings("app:main"))
        settings["qicollab.config_uri"] = str(Path(uri).resolve())
    return apply_defaults(settings)


def as_bool(value: object) -> bool:
    """Ini files hold strings; accept the usual spellings of true."""
    return str(value).strip().lower() in {"1", "true", "yes", "on"}
