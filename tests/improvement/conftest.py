"""Fixtures of the improvement tests: the workflow's small collaborative and signed-in clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import webtest
from sqlalchemy.orm import Session

from qicollab.accounts.passwords import hash_password
from tests.cycles.world import NOW, PASSWORD, World, build_world, client, make_app


@pytest.fixture(scope="session")
def password_hash() -> str:
    """One Argon2 hash for every test user (hashing is deliberately slow)."""
    return hash_password(PASSWORD)


@pytest.fixture
def world(db_session: Session, password_hash: str) -> World:
    """The collaborative, committed so the app sees it."""
    built = build_world(db_session, NOW, password_hash=password_hash)
    db_session.commit()
    return built


@pytest.fixture
def imp_app(settings: dict[str, Any], engine: Any, world: World) -> Any:
    """The app on the test database with the clock fixed at the world's now."""
    return make_app(settings, engine, clock=lambda: NOW)


@pytest.fixture
def as_user(imp_app: Any, world: World) -> Callable[[str | None], webtest.TestApp]:
    """A signed-in client by the world's user name (None: anonymous)."""

    def make(name: str | None) -> webtest.TestApp:
        return client(imp_app, world.users[name] if name else None)

    return make
