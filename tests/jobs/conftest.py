"""A collaborative with users for job tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from qicollab.accounts.models import Role, User
from qicollab.members.models import (
    BedSizeBand,
    Collaborative,
    Member,
    OrgType,
    Rurality,
)


@dataclass
class People:
    collaborative: Collaborative
    other_collaborative: Collaborative
    officer: User
    other_officer: User
    coordinator: User
    foreign_coordinator: User


@pytest.fixture
def people(db_session) -> People:
    first = Collaborative(slug="one", name="One")
    second = Collaborative(slug="two", name="Two")
    db_session.add_all([first, second])
    db_session.flush()
    member = Member(
        collaborative_id=first.id,
        code="H01",
        name="Hospital 1",
        blinded_code="P-1",
        org_type=OrgType.ACUTE_HOSPITAL,
        bed_size_band=BedSizeBand.FROM_100_TO_299,
        rurality=Rurality.URBAN,
        region="North",
    )
    db_session.add(member)
    db_session.flush()

    def user(name, role, collaborative, member_id=None):
        account = User(
            collaborative_id=collaborative.id,
            email=f"{name}@example.test",
            role=role,
            member_id=member_id,
        )
        db_session.add(account)
        return account

    people = People(
        collaborative=first,
        other_collaborative=second,
        officer=user("officer", Role.QUALITY_OFFICER, first, member.id),
        other_officer=user("other", Role.QUALITY_OFFICER, first, member.id),
        coordinator=user("coordinator", Role.COORDINATOR, first),
        foreign_coordinator=user("foreign", Role.COORDINATOR, second),
    )
    db_session.commit()
    return people
