"""Shared fixtures: a migrated database per test on SQLite and on a throwaway PostgreSQL.

The schema is migrated once per backend per session into a template (a SQLite file, a
PostgreSQL template database); each test then gets its own copy, so tests are isolated, can
commit for real (concurrency, all-or-nothing checks) and never see each other's rows.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import transaction
import webtest
from sqlalchemy.orm import Session

from qicollab import main
from qicollab.db import create_engine_from_settings, get_session_factory
from qicollab.migrations import upgrade
from tests.pg import PostgresCluster, postgres_unavailable_reason

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
_counter = itertools.count()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite"
    engine = create_engine_from_settings({"sqlalchemy.url": f"sqlite:///{path}"})
    upgrade(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster on loopback, with a migrated template database."""
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    # Its own folder, not under pytest's basetemp: pytest prunes old basetemp folders, which
    # would delete the data directory of a cluster another concurrent run is still using.
    folder = Path(tempfile.mkdtemp(prefix="qicollab-pg-"))
    cluster = PostgresCluster(folder)
    cluster.start()
    try:
        cluster.create_database("qicollab_template")
        engine = create_engine_from_settings(
            {"sqlalchemy.url": cluster.url("qicollab_template")}, poolclass=sa.pool.NullPool
        )
        upgrade(engine)
        engine.dispose()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database for this test, on each backend."""
    if request.param == "sqlite":
        target = tmp_path / "qicollab.sqlite"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    name = f"test_{os.getpid()}_{next(_counter)}"
    cluster.create_database(name, template="qicollab_template")
    return cluster.url(name)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> dict[str, Any]:
    """App settings pointing at this test's database and a private storage folder."""
    return {
        "sqlalchemy.url": database_url,
        "qicollab.storage": str(tmp_path / "storage"),
        "qicollab.secret": "test-secret",
        "mail.mailer": "console",
    }


@pytest.fixture
def engine(settings: dict[str, Any]) -> Iterator[sa.Engine]:
    """The engine for this test's database."""
    engine = create_engine_from_settings(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(engine: sa.Engine) -> Iterator[Session]:
    """A plain session on this test's database; commit to make rows visible to the app."""
    session = get_session_factory(engine)()
    yield session
    session.close()


@pytest.fixture
def app(settings: dict[str, Any], engine: sa.Engine) -> Any:
    """The WSGI app on this test's database (sharing the test's engine)."""
    return main({}, **settings, **{"db.engine": engine})


@pytest.fixture
def webapp(app: Any) -> webtest.TestApp:
    """WebTest driving the whole app over this test's database."""
    return webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})


@pytest.fixture
def tm() -> Iterator[transaction.TransactionManager]:
    """An explicit transaction manager for service tests that use ``get_tm_session``."""
    manager = transaction.TransactionManager(explicit=True)
    yield manager
    if manager.isDoomed() or manager._txn is not None:
        manager.abort()
