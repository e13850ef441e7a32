"""The shared factories make valid, committed rows that the app can see (both databases)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from qicollab.accounts.models import Role, User
from qicollab.accounts.passwords import verify_password
from qicollab.cycles.models import LearningCycle
from qicollab.measures.models import DataLevel, Measure
from qicollab.measures.spec import RiskModelSpec
from qicollab.members.models import Member
from tests import factories as f
from tests.helpers import login


def test_defaults_make_consistent_rows(factories, engine):
    officer = f.UserFactory()
    assert officer.role is Role.QUALITY_OFFICER
    assert officer.member.collaborative_id == officer.collaborative_id
    coordinator = f.UserFactory(role=Role.COORDINATOR, collaborative=officer.collaborative)
    assert coordinator.member is None
    viewer = f.UserFactory(member=officer.member, role=Role.MEMBER_VIEWER)
    assert viewer.collaborative_id == officer.collaborative_id
    group = f.PeerGroupFactory(collaborative=officer.collaborative, members=[officer.member])
    aggregate = f.MeasureFactory(collaborative=officer.collaborative)
    patient = f.MeasureFactory(collaborative=officer.collaborative, patient_level=True)
    first, second = f.ReportingPeriodFactory.create_batch(2, collaborative=officer.collaborative)
    cycle = f.LearningCycleFactory(collaborative=officer.collaborative, measures=[aggregate])
    # Committed: another connection sees them.
    with engine.connect() as connection:
        assert connection.scalar(sa.select(sa.func.count()).select_from(User)) == 3
        assert connection.scalar(sa.select(sa.func.count()).select_from(Member)) == 1
        members = connection.execute(sa.text("SELECT count(*) FROM peer_group_members")).scalar()
        assert members == 1
        assert connection.scalar(sa.select(sa.func.count()).select_from(Measure)) == 2
        assert connection.scalar(sa.select(sa.func.count()).select_from(LearningCycle)) == 1
    assert group.members == [officer.member]
    assert aggregate.level is DataLevel.AGGREGATE
    assert aggregate.risk_model is None
    assert patient.level is DataLevel.PATIENT
    assert RiskModelSpec.from_json(patient.risk_model).covariate_names == (
        "age",
        "sex",
        "emergency",
    )
    assert second.start_date > first.end_date
    assert cycle.measures == [aggregate]


def test_factory_users_share_one_password_hash(factories):
    one, two = f.UserFactory(), f.UserFactory()
    assert one.password_hash == two.password_hash == f.known_password_hash()
    assert verify_password(one.password_hash, f.TEST_PASSWORD)
    custom = f.UserFactory(password="another long passphrase")
    assert verify_password(custom.password_hash, "another long passphrase")


def test_factory_users_can_sign_in(factories, webapp):
    user = f.UserFactory(email="someone@example.test")
    login(webapp, user.email, f.TEST_PASSWORD)
    assert "someone@example.test" in webapp.get("/").text


def test_factories_need_a_bound_session():
    f.unbind_session()
    with pytest.raises(RuntimeError, match="no session bound"):
        f.CollaborativeFactory()
    assert f.CollaborativeFactory.build().id is None
