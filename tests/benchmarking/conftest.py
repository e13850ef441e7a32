"""Demo collaboratives loaded once per backend per session into templates, copied per test.

Loading the 40-member demo takes a few seconds; each test gets its own copy (a file copy on
SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL), so tests can run and commit benchmark
runs without seeing each other's. ``small_demo`` (12 members) keeps most tests fast; the
known-truth checks use the full demo.
"""

from __future__ import annotations

import itertools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from qicollab.db import create_engine_from_settings, get_session_factory, session_scope
from qicollab.demo.generator import DEFAULT_SEED, DemoCollaborative, generate
from qicollab.demo.loader import load
from tests.conftest import BACKENDS
from tests.pg import PostgresCluster

_counter = itertools.count()


@dataclass(frozen=True)
class DemoDatabase:
    """A test's own copy of a loaded demo."""

    url: str
    settings: dict[str, Any]
    demo: DemoCollaborative
    truth: dict[str, Any]


def _load(url: str, demo: DemoCollaborative, storage: Path) -> None:
    engine = create_engine_from_settings({"sqlalchemy.url": url}, poolclass=sa.pool.NullPool)
    with session_scope(get_session_factory(engine)) as session:
        load(session, demo, storage=storage)
    engine.dispose()


class _Templates:
    """Per-session templates, built on first use."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.demos: dict[int, DemoCollaborative] = {}
        self.sqlite: dict[int, Path] = {}
        self.postgres: dict[int, str] = {}

    def demo(self, n_members: int) -> DemoCollaborative:
        if n_members not in self.demos:
            self.demos[n_members] = generate(DEFAULT_SEED, n_members=n_members)
        return self.demos[n_members]

    def sqlite_copy(self, n_members: int, sqlite_template: Path, target: Path) -> str:
        if n_members not in self.sqlite:
            folder = self.factory.mktemp(f"demo{n_members}")
            path = folder / "demo.sqlite"
            shutil.copyfile(sqlite_template, path)
            _load(f"sqlite:///{path}", self.demo(n_members), folder)
            self.sqlite[n_members] = path
        shutil.copyfile(self.sqlite[n_members], target)
        return f"sqlite:///{target}"

    def postgres_copy(self, n_members: int, cluster: PostgresCluster) -> str:
        if n_members not in self.postgres:
            name = f"demo_template_{n_members}"
            cluster.create_database(name, template="qicollab_template")
            _load(cluster.url(name), self.demo(n_members), self.factory.mktemp("pgdemo"))
            self.postgres[n_members] = name
        name = f"demo_{os.getpid()}_{next(_counter)}"
        cluster.create_database(name, template=self.postgres[n_members])
        return cluster.url(name)


@pytest.fixture(scope="session")
def demo_templates(tmp_path_factory: pytest.TempPathFactory) -> _Templates:
    return _Templates(tmp_path_factory)


def _demo_database(request, tmp_path: Path, templates: _Templates, n_members: int) -> DemoDatabase:
    if request.param == "sqlite":
        url = templates.sqlite_copy(
            n_members, request.getfixturevalue("sqlite_template"), tmp_path / "demo.sqlite"
        )
    else:
        url = templates.postgres_copy(n_members, request.getfixturevalue("postgres_cluster"))
    demo = templates.demo(n_members)
    settings = {
        "sqlalchemy.url": url,
        "qicollab.storage": str(tmp_path / "storage"),
        "qicollab.secret": "test-secret",
    }
    return DemoDatabase(url, settings, demo, demo.truth.to_json())


@pytest.fixture(params=BACKENDS)
def small_demo(request, tmp_path, demo_templates) -> DemoDatabase:
    """A 12-member demo, on each backend."""
    return _demo_database(request, tmp_path, demo_templates, 12)


@pytest.fixture(params=BACKENDS)
def full_demo(request, tmp_path, demo_templates) -> DemoDatabase:
    """The 40-member demo of ``qicollab demo``, on each backend."""
    return _demo_database(request, tmp_path, demo_templates, 40)


@pytest.fixture(scope="module", params=BACKENDS)
def full_demo_shared(request, tmp_path_factory, demo_templates) -> DemoDatabase:
    """The full demo, one copy per backend per test module (for read-only checks of one run)."""
    return _demo_database(request, tmp_path_factory.mktemp("full"), demo_templates, 40)


@pytest.fixture
def small_engine(small_demo):
    """The engine of the small demo copy."""
    engine = create_engine_from_settings(small_demo.settings)
    yield engine
    engine.dispose()


@pytest.fixture
def full_engine(full_demo):
    """The engine of the full demo copy."""
    engine = create_engine_from_settings(full_demo.settings)
    yield engine
    engine.dispose()
