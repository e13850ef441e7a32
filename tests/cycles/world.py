"""A small collaborative for the workflow, audit and API tests, and signed-in WebTest clients.

Dates are built relative to ``now`` so the same world serves the WebTest tests (a fixed clock
registered under ``qicollab.clock``) and the browser tests (the real time): last year's cycle is
locked, this year's is open with its deadline ten days away, next year's is planned.

Until the accounts domain provides a login, the app gets a test identity loader (a user id in the
WSGI environ) and Pyramid's cookie CSRF storage with CSRF required on every unsafe request; the
views only use ``request.identity`` and ``pyramid.csrf``, so the flows stay the same.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import webtest
from pyramid.csrf import CookieCSRFStoragePolicy
from sqlalchemy.orm import Session

from qicollab import make_config
from qicollab.accounts.models import Role, User
from qicollab.cycles.models import CycleStatus, LearningCycle, ReportingPeriod
from qicollab.measures.models import Measure
from qicollab.measures.spec import Covariate, CovariateType, OutcomeFamily, RiskModelSpec
from qicollab.members.models import (
    Collaborative,
    DeidProfile,
    Member,
)
from qicollab.security import IDENTITY_LOADER_KEY
from tests.small_collaborative import two_hospitals, year_and_month_periods

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
USER_KEY = "qicollab.test_user_id"
PASSWORD = "correct horse battery staple 2026"


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
            Covariate("emergency", CovariateType.BINARY, "Emergency"),
        ),
    )


@dataclass
class World:
    """The objects the tests act on."""

    now: dt.datetime
    collaborative: Collaborative
    h01: Member
    h02: Member
    measures: dict[str, Measure]
    users: dict[str, User]
    cycles: dict[str, LearningCycle]
    periods: dict[str, ReportingPeriod] = field(default_factory=dict)

    @property
    def this_year(self) -> int:
        return self.now.year


def build_world(
    session: Session, now: dt.datetime = NOW, *, password_hash: str | None = None
) -> World:
    """Two members, three aggregate measures and one patient-level measure, three cycles."""
    year = now.year
    base = two_hospitals(
        session,
        slug="wf",
        name="Workflow collaborative",
        profile=DeidProfile.LIMITED_DATA_SET,
        risk_model=risk_model(),
    )
    collaborative, h01, h02, measures = base.collaborative, base.h01, base.h02, base.measures
    periods = year_and_month_periods(session, collaborative.id, (year - 1, year, year + 1))
    deadline = (now + dt.timedelta(days=10)).replace(hour=23, minute=59, second=0, microsecond=0)
    cycles = {
        "last": LearningCycle(
            collaborative_id=collaborative.id,
            code=f"C{year - 1}",
            title=f"Cycle {year - 1}",
            status=CycleStatus.LOCKED,
            first_period_start=dt.date(year - 1, 1, 1),
            last_period_end=dt.date(year - 1, 12, 31),
            window_opens_at=dt.datetime(year - 1, 1, 1, tzinfo=dt.UTC),
            deadline=now - dt.timedelta(days=60),
            lock_date=now - dt.timedelta(days=50),
            locked_at=now - dt.timedelta(days=50),
            measures=list(measures.values()),
        ),
        "this": LearningCycle(
            collaborative_id=collaborative.id,
            code=f"C{year}",
            title=f"Cycle {year}",
            status=CycleStatus.OPEN,
            first_period_start=dt.date(year, 1, 1),
            last_period_end=dt.date(year, 12, 31),
            window_opens_at=now - dt.timedelta(days=30),
            deadline=deadline,
            lock_date=deadline + dt.timedelta(days=14),
            measures=[measures["HH"], measures["CLABSI"], measures["SURG"]],
        ),
        "next": LearningCycle(
            collaborative_id=collaborative.id,
            code=f"C{year + 1}",
            title=f"Cycle {year + 1}",
            status=CycleStatus.PLANNED,
            first_period_start=dt.date(year + 1, 1, 1),
            last_period_end=dt.date(year + 1, 12, 31),
            window_opens_at=dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC),
            deadline=dt.datetime(year + 2, 1, 31, 23, 59, tzinfo=dt.UTC),
            measures=list(measures.values()),
        ),
    }
    session.add_all(cycles.values())
    users: dict[str, User] = {}
    for name, role, who in (
        ("officer", Role.QUALITY_OFFICER, h01),
        ("viewer", Role.MEMBER_VIEWER, h01),
        ("other_officer", Role.QUALITY_OFFICER, h02),
        ("other_viewer", Role.MEMBER_VIEWER, h02),
        ("coordinator", Role.COORDINATOR, None),
        ("admin", Role.ADMIN, None),
    ):
        users[name] = User(
            collaborative_id=collaborative.id,
            email=f"{name.replace('_', '.')}@wf.example",
            display_name=name,
            role=role,
            member_id=who.id if who else None,
            password_hash=password_hash,
        )
    session.add_all(users.values())
    session.flush()
    return World(now, collaborative, h01, h02, measures, users, cycles, periods)


# --- the app and signed-in clients ---------------------------------------------------------------


TEST_TOKEN_PREFIX = "test-token-"


def _environ_loader(request: Any) -> User | None:
    """The user named in the environ (portal) or by a test bearer token (API)."""
    authorization = request.headers.get("Authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer":
        raw = token.removeprefix(TEST_TOKEN_PREFIX)
        return request.db.get(User, int(raw)) if raw.isdigit() and token != raw else None
    raw = request.environ.get(USER_KEY)
    return None if raw is None else request.db.get(User, int(raw))


def make_app(settings: dict[str, Any], engine: Any, *, clock: Any = None) -> Any:
    """The whole app on the test database; a test identity loader when accounts has none."""
    config = make_config({**settings, "db.engine": engine})
    config.commit()
    if config.registry.get(IDENTITY_LOADER_KEY) is None:
        config.registry[IDENTITY_LOADER_KEY] = _environ_loader
        config.registry["qicollab.test_loader"] = True
        config.set_csrf_storage_policy(CookieCSRFStoragePolicy())
        config.set_default_csrf_options(require_csrf=True)
    if clock is not None:
        config.registry["qicollab.clock"] = clock
    return config.make_wsgi_app()


def client(app: Any, user: User | None) -> webtest.TestApp:
    """A WebTest client signed in as ``user`` (anonymous for None)."""
    environ = {"REMOTE_ADDR": "127.0.0.1"}
    if user is not None and app.registry.get("qicollab.test_loader"):
        environ[USER_KEY] = str(user.id)
    browser = webtest.TestApp(app, extra_environ=environ)
    if user is not None and not app.registry.get("qicollab.test_loader"):
        from tests.helpers import login  # the accounts domain's helper, once it exists

        login(browser, user.email, PASSWORD)
    return browser


def issue_token(app: Any, db_session: Session, user: User) -> str:
    """An API token for ``user``: the accounts domain's, or the test loader's stand-in."""
    if app.registry.get("qicollab.test_loader"):
        return f"{TEST_TOKEN_PREFIX}{user.id}"
    from tests.helpers import create_api_token  # the accounts domain's helper, once it exists

    token = create_api_token(db_session, user)
    db_session.commit()
    return token


def api_client(app: Any, token: str | None) -> webtest.TestApp:
    """A WebTest client that sends ``token`` as a bearer token (none for None)."""
    environ = {"REMOTE_ADDR": "127.0.0.1"}
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return webtest.TestApp(app, extra_environ=environ)


def csrf(page: webtest.TestResponse) -> str:
    """The CSRF token of a rendered form."""
    return page.html.find("input", attrs={"name": "csrf_token"})["value"]
