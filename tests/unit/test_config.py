"""Settings: ini values, environment overrides for secrets and paths, safe defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from qicollab.config import MissingSecretError, apply_defaults, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_environment_overrides_database_and_storage(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.example/qicollab")
    monkeypatch.setenv("QICOLLAB_STORAGE", str(tmp_path))
    settings = apply_defaults({"sqlalchemy.url": "sqlite:///ignored.sqlite"})
    assert settings["sqlalchemy.url"] == "postgresql://db.example/qicollab"
    assert settings["qicollab.storage"] == str(tmp_path)


def test_default_database_is_sqlite_in_the_storage_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("QICOLLAB_STORAGE", str(tmp_path))
    settings = apply_defaults({})
    assert settings["sqlalchemy.url"] == f"sqlite:///{tmp_path / 'qicollab.sqlite'}"


def test_production_ini_refuses_to_start_without_a_secret(monkeypatch):
    monkeypatch.delenv("QICOLLAB_SECRET", raising=False)
    with pytest.raises(MissingSecretError):
        load_settings(str(ROOT / "production.ini"))
    monkeypatch.setenv("QICOLLAB_SECRET", "s3cret-from-the-environment")
    assert load_settings(str(ROOT / "production.ini"))["qicollab.secret"] == (
        "s3cret-from-the-environment"
    )


@pytest.mark.parametrize("ini", ["development.ini", "testing.ini"])
def test_shipped_ini_files_load(ini, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = load_settings(str(ROOT / ini))
    assert settings["sqlalchemy.url"].startswith("sqlite:///")
