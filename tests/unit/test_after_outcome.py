"""``after_outcome``: work outside the database that follows a transaction's outcome (a report
file deleted once its replacement's row commits, or the new file once it rolls back)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from qicollab.db import after_outcome, get_session_factory


@pytest.fixture
def session(engine):
    session = get_session_factory(engine)()
    yield session
    session.close()


def _watch(session) -> list[str]:
    seen: list[str] = []
    after_outcome(
        session,
        committed=lambda: seen.append("committed"),
        rolled_back=lambda: seen.append("rolled back"),
    )
    return seen


def test_a_commit_calls_committed_once(session):
    session.begin()
    session.execute(sa.text("SELECT 1"))
    seen = _watch(session)
    session.commit()
    session.begin()
    session.commit()  # a later transaction of the same session is not the one watched
    assert seen == ["committed"]


def test_a_rollback_calls_rolled_back(session):
    session.begin()
    seen = _watch(session)
    session.rollback()
    assert seen == ["rolled back"]


@pytest.mark.parametrize("savepoint_ends", ["commit", "rollback"])
def test_a_savepoint_inside_does_not_count(session, savepoint_ends):
    session.begin()
    seen = _watch(session)
    nested = session.begin_nested()
    getattr(nested, savepoint_ends)()
    assert seen == []
    session.rollback()
    assert seen == ["rolled back"]


def test_it_needs_a_transaction_in_progress(session):
    with pytest.raises(RuntimeError, match="transaction in progress"):
        _watch(session)
