"""The foundation commands: db upgrade/check and the demo, on both databases."""

from __future__ import annotations

import json

import sqlalchemy as sa
from click.testing import CliRunner

from qicollab.cli import cli
from qicollab.db import create_engine_from_settings


def _run(args, database_url, tmp_path, **kwargs):
    env = {"DATABASE_URL": database_url, "QICOLLAB_STORAGE": str(tmp_path / "storage")}
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False, **kwargs)


def test_every_command_has_help():
    runner = CliRunner()
    for args in (
        ["--help"],
        ["db", "--help"],
        ["db", "upgrade", "--help"],
        ["db", "check", "--help"],
        ["serve", "--help"],
        ["demo", "--help"],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, args
        assert "Usage:" in result.output


def test_db_check_fails_on_an_empty_database_and_passes_after_upgrade(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    assert _run(["db", "check"], url, tmp_path).exit_code == 1
    assert _run(["db", "upgrade"], url, tmp_path).exit_code == 0
    result = _run(["db", "check"], url, tmp_path)
    assert result.exit_code == 0
    assert "matches the models" in result.output


def test_db_check_detects_drift(database_url, tmp_path, engine):
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE members ADD COLUMN shoe_size INTEGER"))
    result = _run(["db", "check"], database_url, tmp_path)
    assert result.exit_code == 1


def test_demo_builds_a_populated_database(database_url, tmp_path):
    result = _run(["demo", "--no-serve"], database_url, tmp_path)
    assert result.exit_code == 0, result.output
    assert "coordinator@demo.qicollab.org" in result.output
    assert "officer.h01@demo.qicollab.org" in result.output
    engine = create_engine_from_settings({"sqlalchemy.url": database_url})
    with engine.connect() as connection:
        count = lambda table: connection.execute(  # noqa: E731
            sa.text(f"SELECT count(*) FROM {table}")
        ).scalar_one()
        assert count("members") == 40
        assert count("measures") == 8
        assert count("users") == 6
        assert count("patient_records") > 100_000
        assert count("submissions") > 7_000
        roles = {row[0] for row in connection.execute(sa.text("SELECT role FROM users"))}
        # The computed history cycle is published (members see only published results), by
        # the audited transition rather than a raw status write.
        cycles = dict(connection.execute(sa.text("SELECT code, status FROM learning_cycles")).all())
        published = connection.execute(
            sa.text("SELECT count(*) FROM audit_events WHERE action = 'cycle.published'")
        ).scalar_one()
    engine.dispose()
    assert cycles == {"C2023-25": "published", "C2026": "open"}
    assert published == 1
    assert roles == {"admin", "coordinator", "quality_officer", "member_viewer"}
    truth = json.loads((tmp_path / "storage" / "demo" / "truth.json").read_text())
    assert set(truth["effects"]) == {
        "HH",
        "SEPSIS",
        "CLABSI",
        "FALLS",
        "D2P",
        "SURG-MORT",
        "READMIT",
        "LOS",
    }
    # Running it again keeps the data instead of failing or duplicating it.
    again = _run(["demo", "--no-serve"], database_url, tmp_path)
    assert again.exit_code == 0
    assert "already loaded" in again.output
    assert "already published" in again.output
