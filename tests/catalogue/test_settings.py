"""Coordinators set their collaborative's minimum number of contributing members from the
portal: a form with CSRF protection, validation with a clear error, an audit entry, and the
next benchmark run carries the new value."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from qicollab.accounts.models import Role
from qicollab.audit.models import AuditEvent
from qicollab.benchmarking.settings import RunSettings
from qicollab.members.models import Collaborative
from qicollab.members.views import parse_min_contributors
from tests.factories import (
    CollaborativeFactory,
    MemberFactory,
    UserFactory,
    factories,  # noqa: F401 - a fixture
)
from tests.helpers import fetch_all, fetch_one, post_form, sign_in

URL = "/catalogue/settings"


@pytest.fixture
def collaborative(factories):  # noqa: F811 - the imported fixture
    return CollaborativeFactory()


@pytest.fixture
def coordinator(db_session, webapp, collaborative):
    sign_in(webapp, db_session, UserFactory(role=Role.COORDINATOR, collaborative=collaborative))
    return webapp


def _stored(db_session, collaborative) -> int:
    found = fetch_one(
        db_session, sa.select(Collaborative).where(Collaborative.id == collaborative.id)
    )
    return found.min_contributors


def test_a_coordinator_changes_the_minimum_and_it_is_audited(
    coordinator, db_session, collaborative
):
    page = coordinator.get(URL)
    assert 'name="min_contributors"' in page.text
    assert 'value="5"' in page.text
    done = post_form(coordinator, page, URL, {"min_contributors": "8"}, status=302)
    assert _stored(db_session, collaborative) == 8
    assert "Saved" in coordinator.get(done.location).text
    events = fetch_all(
        db_session,
        sa.select(AuditEvent).where(AuditEvent.action == "collaborative.settings_updated"),
    )
    assert len(events) == 1
    assert events[0].details == {"min_contributors": {"before": 5, "after": 8}}
    assert events[0].collaborative_id == collaborative.id
    # Every later run carries it.
    assert RunSettings().merged({"min_contributors": 8}).min_contributors == 8


@pytest.mark.parametrize(
    ("posted", "words"),
    [("0", "at least 1"), ("-3", "at least 1"), ("two", "not a whole number"), ("", "enter")],
)
def test_bad_values_are_refused_with_the_reason(
    coordinator, db_session, collaborative, posted, words
):
    page = coordinator.get(URL)
    refused = post_form(coordinator, page, URL, {"min_contributors": posted}, status=422)
    assert "Not saved" in refused.text
    assert words in refused.text
    assert _stored(db_session, collaborative) == 5
    assert not fetch_all(
        db_session,
        sa.select(AuditEvent).where(AuditEvent.action == "collaborative.settings_updated"),
    )


def test_the_form_needs_its_csrf_token(coordinator, db_session, collaborative):
    coordinator.post(URL, {"min_contributors": "2"}, status=403)
    assert _stored(db_session, collaborative) == 5


def test_members_cannot_change_it(webapp, db_session, collaborative):
    officer = UserFactory(member=MemberFactory(collaborative=collaborative))
    sign_in(webapp, db_session, officer)
    webapp.get(URL, status=403)
    assert _stored(db_session, collaborative) == 5


def test_parse_names_the_field():
    assert parse_min_contributors(" 3 ") == 3
    with pytest.raises(ValueError, match="Minimum contributors"):
        parse_min_contributors("1.5")
