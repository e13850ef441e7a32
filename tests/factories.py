"""factory_boy factories for the main models, shared by every test package.

Binding. Factories write through the session bound with :func:`bind_session` (the ``factories``
fixture below does it for ``db_session``). Import the fixture into a conftest to use it::

    from tests.factories import factories  # noqa: F401 - a fixture

Persistence is ``"commit"``: every ``XFactory()`` commits at once. The app under test runs on its
own connections, so rows must be committed to be seen, and on SQLite an open write transaction in
the test's session would make the app wait. Objects stay usable after the commit (the session
factory sets ``expire_on_commit=False``). Use ``XFactory.build()`` for unsaved objects.

Defaults (every value can be overridden):

- ``CollaborativeFactory``: slug ``collab-N``, safe-harbor, minimum cell size 11.
- ``MemberFactory``: an acute hospital ``HNNN`` with blinded code ``PNNN`` in a new
  collaborative (pass ``collaborative=``).
- ``PeerGroupFactory(members=[...])``: a group ``PGN`` of the given members.
- ``UserFactory``: a quality officer of a new member, e-mail ``userN@example.test``, password
  :data:`TEST_PASSWORD` (hashed once per test session). ``UserFactory(role=Role.COORDINATOR,
  collaborative=c)`` gives a coordinator (no member); ``UserFactory(member=m)`` joins ``m``'s
  collaborative. ``password="..."`` hashes another password (slow: Argon2id).
- ``MeasureFactory``: an aggregate proportion ``MNN`` (lower is better, shown in %);
  ``MeasureFactory(patient_level=True)`` is patient-level with :func:`small_risk_model`.
- ``ReportingPeriodFactory``: consecutive calendar months from 2024-01 (label ``YYYY-MM``).
- ``LearningCycleFactory(measures=[...])``: a planned cycle over 2026 whose window opens
  2026-01-01 with a deadline 60 days later.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import factory
import pytest

from qicollab.accounts.models import Role, User
from qicollab.accounts.passwords import hash_password
from qicollab.cycles.models import CycleStatus, Granularity, LearningCycle, ReportingPeriod
from qicollab.measures.models import DataLevel, Direction, Measure, MeasureType
from qicollab.measures.spec import Covariate, CovariateType, OutcomeFamily, RiskModelSpec
from qicollab.members.models import (
    BedSizeBand,
    Collaborative,
    DeidProfile,
    Member,
    OrgType,
    PeerGroup,
    Rurality,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: The password of every factory user (unless ``password=`` is given).
TEST_PASSWORD = "correct horse battery staple"

_bound: list[Session] = []


def bind_session(session: Session) -> None:
    """Make factories write through ``session`` (until :func:`unbind_session`)."""
    _bound[:] = [session]


def unbind_session() -> None:
    """Forget the bound session."""
    _bound.clear()


def _session() -> Session:
    if not _bound:
        msg = "no session bound to the factories: use the `factories` fixture or bind_session()"
        raise RuntimeError(msg)
    return _bound[0]


@pytest.fixture
def factories(db_session: Session) -> Iterator[Any]:
    """Factories bound to this test's ``db_session``; yields this module for convenience."""
    bind_session(db_session)
    yield sys.modules[__name__]
    unbind_session()


@functools.cache
def known_password_hash() -> str:
    """One Argon2id hash of :data:`TEST_PASSWORD` per test session (hashing is slow on purpose)."""
    return hash_password(TEST_PASSWORD)


def small_risk_model() -> RiskModelSpec:
    """A small binomial risk model: age (numeric), sex (categorical), emergency (binary)."""
    return RiskModelSpec(
        outcome="died_30d",
        outcome_label="Died within 30 days",
        family=OutcomeFamily.BINOMIAL,
        covariates=(
            Covariate("age", CovariateType.NUMERIC, "Age (years)", minimum=18, maximum=90),
            Covariate("sex", CovariateType.CATEGORICAL, "Sex", ("F", "M"), "F"),
            Covariate("emergency", CovariateType.BINARY, "Emergency admission"),
        ),
    )


class _Factory(factory.alchemy.SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = _session
        sqlalchemy_session_persistence = "commit"


class CollaborativeFactory(_Factory):
    """A collaborative with the default (safe-harbor) de-identification profile."""

    class Meta:
        model = Collaborative

    slug = factory.Sequence(lambda n: f"collab-{n}")
    name = factory.Sequence(lambda n: f"Collaborative {n}")
    deid_profile = DeidProfile.SAFE_HARBOR
    min_cell_size = 11
    default_methods = factory.LazyFunction(dict)


class MemberFactory(_Factory):
    """A member hospital; its blinded code is not derived from its name or code."""

    class Meta:
        model = Member

    collaborative = factory.SubFactory(CollaborativeFactory)
    code = factory.Sequence(lambda n: f"H{n:03d}")
    name = factory.Sequence(lambda n: f"Hospital {n}")
    blinded_code = factory.Sequence(lambda n: f"P{(n * 7919) % 1000:03d}")
    org_type = OrgType.ACUTE_HOSPITAL
    bed_size_band = BedSizeBand.FROM_100_TO_299
    beds = 200
    teaching = False
    rurality = Rurality.URBAN
    region = "North"
    has_data_use_agreement = False
    active = True


class PeerGroupFactory(_Factory):
    """A peer group; pass ``members=[...]`` to fill it."""

    class Meta:
        model = PeerGroup

    class Params:
        collaborative = factory.SubFactory(CollaborativeFactory)

    collaborative_id = factory.SelfAttribute("collaborative.id")
    code = factory.Sequence(lambda n: f"PG{n}")
    name = factory.Sequence(lambda n: f"Peer group {n}")
    description = ""
    criteria = factory.LazyFunction(dict)

    @factory.post_generation
    def members(self, create: bool, extracted: list[Member] | None, **_kw: Any) -> None:
        """Add the given members (and commit when creating)."""
        if extracted:
            self.members.extend(extracted)
            if create:
                _session().commit()


class UserFactory(_Factory):
    """A user; quality officer of a new member unless told otherwise."""

    class Meta:
        model = User

    class Params:
        password = None

    collaborative = factory.SubFactory(CollaborativeFactory)
    role = Role.QUALITY_OFFICER
    member = factory.Maybe(
        factory.LazyAttribute(lambda o: Role(o.role).is_member_scoped),
        yes_declaration=factory.SubFactory(
            MemberFactory, collaborative=factory.SelfAttribute("..collaborative")
        ),
        no_declaration=None,
    )
    email = factory.Sequence(lambda n: f"user{n}@example.test")
    display_name = factory.Sequence(lambda n: f"User {n}")
    password_hash = factory.LazyAttribute(
        lambda o: hash_password(o.password) if o.password else known_password_hash()
    )
    is_active = True

    @classmethod
    def _generate(cls, strategy: Any, params: dict[str, Any]) -> User:
        """A given member brings its collaborative along (they must agree)."""
        member = params.get("member")
        if member is not None and "collaborative" not in params:
            params = {**params, "collaborative": member.collaborative}
        return super()._generate(strategy, params)


class MeasureFactory(_Factory):
    """An aggregate proportion measure; ``patient_level=True`` for a risk-adjusted one."""

    class Meta:
        model = Measure

    class Params:
        collaborative = factory.SubFactory(CollaborativeFactory)
        patient_level = factory.Trait(
            level=DataLevel.PATIENT,
            unit="%",
            risk_model=factory.LazyFunction(lambda: small_risk_model().to_json()),
        )

    collaborative_id = factory.SelfAttribute("collaborative.id")
    code = factory.Sequence(lambda n: f"M{n:02d}")
    title = factory.Sequence(lambda n: f"Measure {n}")
    description = "A test measure."
    measure_type = MeasureType.PROPORTION
    level = DataLevel.AGGREGATE
    numerator_definition = "Patients with the event"
    denominator_definition = "Eligible patients"
    direction = Direction.DECREASE
    unit = "%"
    multiplier = 100.0
    target = None
    minimum_volume = 0
    risk_model = None
    active = True


def _month(n: int) -> tuple[str, dt.date, dt.date]:
    year, month = 2024 + n // 12, n % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return f"{year}-{month:02d}", dt.date(year, month, 1), dt.date(year, month, last)


class ReportingPeriodFactory(_Factory):
    """Consecutive calendar months from January 2024."""

    class Meta:
        model = ReportingPeriod

    class Params:
        collaborative = factory.SubFactory(CollaborativeFactory)
        month = factory.Sequence(_month)

    collaborative_id = factory.SelfAttribute("collaborative.id")
    label = factory.LazyAttribute(lambda o: o.month[0])
    granularity = Granularity.MONTH
    start_date = factory.LazyAttribute(lambda o: o.month[1])
    end_date = factory.LazyAttribute(lambda o: o.month[2])


class LearningCycleFactory(_Factory):
    """A planned learning cycle over 2026; pass ``measures=[...]``."""

    class Meta:
        model = LearningCycle

    class Params:
        collaborative = factory.SubFactory(CollaborativeFactory)

    collaborative_id = factory.SelfAttribute("collaborative.id")
    code = factory.Sequence(lambda n: f"C{n}")
    title = factory.Sequence(lambda n: f"Learning cycle {n}")
    status = CycleStatus.PLANNED
    first_period_start = dt.date(2026, 1, 1)
    last_period_end = dt.date(2026, 12, 31)
    window_opens_at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    deadline = factory.LazyAttribute(lambda o: o.window_opens_at + dt.timedelta(days=60))
    lock_date = None

    @factory.post_generation
    def measures(self, create: bool, extracted: list[Measure] | None, **_kw: Any) -> None:
        """Attach the given measures (and commit when creating)."""
        if extracted:
            self.measures.extend(extracted)
            if create:
                _session().commit()
