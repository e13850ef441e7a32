"""The API tests share the workflow tests' collaborative and app, and add token clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import webtest
from sqlalchemy.orm import Session

from tests.cycles.conftest import as_user, password_hash, wf_app, world
from tests.cycles.world import World, api_client, issue_token

__all__ = ["api", "as_user", "password_hash", "wf_app", "world"]


@pytest.fixture
def api(wf_app: Any, world: World, db_session: Session) -> Callable[[str | None], webtest.TestApp]:
    """A client sending the named user's API token (None: no token)."""

    def make(name: str | None) -> webtest.TestApp:
        if name is None:
            return api_client(wf_app, None)
        return api_client(wf_app, issue_token(wf_app, db_session, world.users[name]))

    return make
