"""The Alembic history builds the schema the models describe, on both databases."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from qicollab.db import create_engine_from_settings
from qicollab.migrations import head_revision, schema_problems, upgrade


def test_migrated_database_matches_the_models(engine):
    assert schema_problems(engine) == []


def test_drift_is_detected(engine):
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE stray (id INTEGER PRIMARY KEY)"))
    problems = schema_problems(engine)
    assert any("stray" in problem for problem in problems)


def test_an_empty_sqlite_file_upgrades_to_head(tmp_path):
    engine = create_engine_from_settings({"sqlalchemy.url": f"sqlite:///{tmp_path / 'x.db'}"})
    assert schema_problems(engine) == [f"database is at revision none, head is {head_revision()}"]
    upgrade(engine)
    assert schema_problems(engine) == []
    engine.dispose()


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas only")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_concurrent_sqlite_writers_wait_instead_of_failing(engine):
    """BEGIN IMMEDIATE makes the second writer wait; a deferred BEGIN would raise "locked"."""
    import threading

    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite locking only")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE counter (n INTEGER)"))
        connection.execute(sa.text("INSERT INTO counter VALUES (0)"))
    errors: list[Exception] = []

    def bump() -> None:
        try:
            for _ in range(20):
                with engine.begin() as connection:
                    value = connection.execute(sa.text("SELECT n FROM counter")).scalar_one()
                    connection.execute(sa.text("UPDATE counter SET n = :n"), {"n": value + 1})
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT n FROM counter")).scalar_one() == 160
