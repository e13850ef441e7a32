"""A small collaborative to submit into: members, measures of every kind, periods, cycles.

The clock is fixed at 2026-06-15 12:00 UTC: the 2025 cycle is locked, the 2026 cycle is open.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session

from qicollab.accounts.models import Role, User
from qicollab.cycles.models import CycleStatus, LearningCycle
from qicollab.measures.models import Measure
from qicollab.measures.spec import Covariate, CovariateType, OutcomeFamily, RiskModelSpec
from qicollab.members.models import (
    Collaborative,
    DeidProfile,
    Member,
)
from qicollab.submissions.services import SubmissionService
from tests.small_collaborative import two_hospitals, year_and_month_periods

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)


def risk_model() -> RiskModelSpec:
    return RiskModelSpec(
        outcome="died_30d",
        outcome_label="Died within 30 days",
        family=OutcomeFamily.BINOMIAL,
        covariates=(
            Covariate(
                "age_band",
                CovariateType.CATEGORICAL,
                "Age band",
                ("18-49", "50-64", "65-74", "75-84", "85-89", "90+"),
                "18-49",
            ),
            Covariate("sex", CovariateType.CATEGORICAL, "Sex", ("F", "M"), "F"),
            Covariate("asa_class", CovariateType.CATEGORICAL, "ASA", ("01", "02", "03"), "01"),
            Covariate("emergency", CovariateType.BINARY, "Emergency"),
            Covariate("bmi", CovariateType.NUMERIC, "BMI", minimum=10, maximum=80),
        ),
    )


@dataclass
class World:
    """The objects tests submit with."""

    collaborative: Collaborative
    member: Member  # has a data use agreement
    other: Member  # no data use agreement
    officer: User
    hh: Measure  # proportion
    clabsi: Measure  # rate
    d2p: Measure  # mean
    surg: Measure  # patient level


def build_world(session: Session, *, profile: DeidProfile = DeidProfile.LIMITED_DATA_SET) -> World:
    base = two_hospitals(
        session, slug="test", name="Test collaborative", profile=profile, risk_model=risk_model()
    )
    collaborative = base.collaborative
    year_and_month_periods(session, collaborative.id, (2024, 2025, 2026, 2027))
    session.add_all(
        [
            LearningCycle(
                collaborative_id=collaborative.id,
                code="C2025",
                title="2025",
                status=CycleStatus.LOCKED,
                first_period_start=dt.date(2025, 1, 1),
                last_period_end=dt.date(2025, 12, 31),
                window_opens_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
                deadline=dt.datetime(2026, 1, 31, tzinfo=dt.UTC),
            ),
            LearningCycle(
                collaborative_id=collaborative.id,
                code="C2026",
                title="2026",
                status=CycleStatus.OPEN,
                first_period_start=dt.date(2026, 1, 1),
                last_period_end=dt.date(2026, 12, 31),
                window_opens_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                deadline=dt.datetime(2027, 1, 31, tzinfo=dt.UTC),
            ),
            LearningCycle(
                collaborative_id=collaborative.id,
                code="C2027",
                title="2027",
                status=CycleStatus.PLANNED,
                first_period_start=dt.date(2027, 1, 1),
                last_period_end=dt.date(2027, 12, 31),
                window_opens_at=dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
                deadline=dt.datetime(2028, 1, 31, tzinfo=dt.UTC),
            ),
        ]
    )
    officer = User(
        collaborative_id=collaborative.id,
        email="officer@h01.example",
        role=Role.QUALITY_OFFICER,
        member_id=None,
    )
    session.flush()
    officer.member_id = base.h01.id
    session.add(officer)
    session.flush()
    m = base.measures
    return World(
        collaborative, base.h01, base.h02, officer, m["HH"], m["CLABSI"], m["D2P"], m["SURG"]
    )


@pytest.fixture
def world(db_session: Session) -> World:
    """The test collaborative, committed so other sessions and the app can see it."""
    built = build_world(db_session)
    db_session.commit()
    return built


@pytest.fixture
def service(db_session: Session) -> SubmissionService:
    """The submission service on the test session, with the clock fixed at :data:`NOW`."""
    return SubmissionService(db_session, clock=lambda: NOW)


def aggregate_csv(
    *rows: str, header: str = "period,numerator,denominator,exclusions,comment"
) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


PATIENT_HEADER = "case_key,event_year,event_month,age_band,sex,asa_class,emergency,bmi,died_30d"


def patient_csv(*rows: str, header: str = PATIENT_HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def patient_rows(n: int, *, year: int = 2026, start: int = 0) -> list[str]:
    bands = ("18-49", "50-64", "65-74", "75-84", "85-89", "90+")
    return [
        f"K{i:05d}X,{year},{i % 6 + 1},{bands[i % 6]},{'FM'[i % 2]},0{i % 3 + 1},{i % 2},"
        f"{20 + i % 15}.5,{int(i % 17 == 0)}"
        for i in range(start, start + n)
    ]
