"""A file store per backend: the local folder, the database on SQLite, and on PostgreSQL."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from qicollab.db import create_engine_from_settings
from qicollab.storage import DatabaseFileStore, FileStore, LocalFileStore

_counter = itertools.count()


def fresh_database_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """A migrated database of its own for this test."""
    if backend == "sqlite":
        target = tmp_path / "store.sqlite"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    cluster = request.getfixturevalue("postgres_cluster")
    name = f"store_{os.getpid()}_{next(_counter)}"
    cluster.create_database(name, template="qicollab_template")
    return cluster.url(name)


@pytest.fixture(
    params=["local", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def backend(request: pytest.FixtureRequest) -> str:
    """local, or the database backend on sqlite / postgresql."""
    return request.param


@pytest.fixture
def store_engine(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> Iterator[sa.Engine | None]:
    """The database engine of the database backends (None for the local folder)."""
    if backend == "local":
        yield None
        return
    engine = create_engine_from_settings(
        {"sqlalchemy.url": fresh_database_url(request, backend, tmp_path)}
    )
    yield engine
    engine.dispose()


@pytest.fixture
def store(store_engine: sa.Engine | None, tmp_path: Path) -> FileStore:
    """The store under test."""
    if store_engine is None:
        return LocalFileStore(tmp_path / "files")
    return DatabaseFileStore(store_engine)
