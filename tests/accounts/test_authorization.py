"""Authorization across the whole app, built from the route and view introspectors.

The walk requests EVERY registered route, as every role, with the ids of objects that belong to
someone else: officers and viewers of member H01 get member H02's ids; coordinators and admins
get the ids of a member in ANOTHER collaborative (they rightly see all members of their own).
Routes added later are walked automatically; their placeholders are filled from the database
(``{x_id}`` from a table named like ``x``, ``{..code}`` from coded rows of the target).

Expected outcome for each request:

- a public view (``NO_PERMISSION_REQUIRED``), or a collaborative-level view (no context factory)
  whose permission the role holds on the collaborative: allowed, but never a 5xx and never a
  word of the other member (its name, code, users' addresses) in the response;
- everything else: 403 or 404 (401 for the API's own anonymous answer).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
import webtest
from pyramid.authorization import ACLHelper
from pyramid.security import NO_PERMISSION_REQUIRED

from qicollab.accounts.models import Role, User
from qicollab.benchmarking.models import BenchmarkRun, RunStatus
from qicollab.db import Base, utcnow
from qicollab.jobs.models import Job
from qicollab.members.models import Member
from qicollab.reporting.models import Report, ReportKind
from qicollab.resources import Root
from qicollab.security import principals_for
from qicollab.submissions.models import (
    AggregateValue,
    Submission,
    SubmissionBatch,
    SubmissionSource,
    SubmissionStatus,
)
from tests.accounts.conftest import client
from tests.factories import (
    CollaborativeFactory,
    LearningCycleFactory,
    MeasureFactory,
    MemberFactory,
    PeerGroupFactory,
    ReportingPeriodFactory,
    UserFactory,
)
from tests.helpers import create_api_token, csrf_token, sign_in

PLACEHOLDER = re.compile(r"\{(\w+)(?::((?:[^{}]|\{[^{}]*\})*))?\}")
MAX_PATHS_PER_ROUTE = 8


# --- the world ------------------------------------------------------------------------------


@dataclass
class Target:
    """Whose objects a role must not reach, and the words that would betray them."""

    member: Member
    markers: list[str] = field(default_factory=list)
    #: In another collaborative: its collaborative-level objects (runs, jobs) are off limits too.
    foreign: bool = False


@dataclass
class Walk:
    """Signed-in roles, each with the target it must not reach."""

    roles: dict[str, tuple[User | None, Target]]


def _member_objects(session: Any, member: Member, user: User, collaborative: Any) -> None:
    """A submission, a token, a run with a member report, and a job belonging to ``member``."""
    measure = MeasureFactory(collaborative=collaborative)
    period = ReportingPeriodFactory(collaborative=collaborative)
    batch = SubmissionBatch(
        member_id=member.id,
        measure_id=measure.id,
        source=SubmissionSource.FORM,
        content_hash="0" * 64,
        row_count=1,
        created_by_id=user.id,
    )
    session.add(batch)
    session.flush()
    submission = Submission(
        member_id=member.id,
        measure_id=measure.id,
        period_id=period.id,
        version=1,
        status=SubmissionStatus.SUBMITTED,
        content_hash="1" * 64,
        batch_id=batch.id,
        submitted_by_id=user.id,
        submitted_at=utcnow(),
    )
    session.add(submission)
    session.flush()
    session.add(AggregateValue(submission_id=submission.id, numerator=3, denominator=40))
    run = BenchmarkRun(collaborative_id=collaborative.id, status=RunStatus.SUCCEEDED)
    job = Job(collaborative_id=collaborative.id, kind="benchmark")
    session.add_all([run, job])
    session.flush()
    session.add(
        Report(
            run_id=run.id,
            kind=ReportKind.MEMBER,
            member_id=member.id,
            path=f"reports/{run.id}/{member.code}.pdf",
            sha256="2" * 64,
            size_bytes=1,
        )
    )
    create_api_token(session, user, "other's token")
    session.commit()


@pytest.fixture
def walk(factories: Any, db_session: Any) -> Walk:
    """Collaborative QI (members H01, ZQXB9) and collaborative FX (member FXQ7), with objects."""
    home_collab = CollaborativeFactory(slug="qi", name="QI collaborative")
    home = MemberFactory(collaborative=home_collab, code="H01", name="Home Hospital")
    other = MemberFactory(collaborative=home_collab, code="ZQXB9", name="Zanzibar Other Hospital")
    PeerGroupFactory(collaborative=home_collab, code="PGQ", members=[home, other])
    LearningCycleFactory(
        collaborative=home_collab,
        code="C2026",
        measures=[MeasureFactory(collaborative=home_collab)],
    )
    other_officer = UserFactory(member=other, email="zanzibar.officer@example.test")
    _member_objects(db_session, other, other_officer, home_collab)

    foreign_collab = CollaborativeFactory(slug="fx", name="Foreign Collaborative Secret")
    foreign = MemberFactory(collaborative=foreign_collab, code="FXQ7", name="Foreign Member Secret")
    foreign_measure = MeasureFactory(
        collaborative=foreign_collab, code="FXM1", title="Foreign Measure Secret"
    )
    PeerGroupFactory(collaborative=foreign_collab, code="FXPG", name="Foreign Group Secret")
    LearningCycleFactory(
        collaborative=foreign_collab,
        code="FXC1",
        title="Foreign Cycle Secret",
        measures=[foreign_measure],
    )
    foreign_officer = UserFactory(member=foreign, email="foreign.officer@example.test")
    _member_objects(db_session, foreign, foreign_officer, foreign_collab)

    same_collaborative = Target(
        other, ["Zanzibar Other Hospital", "ZQXB9", "zanzibar.officer@example.test"]
    )
    other_collaborative = Target(
        foreign,
        [
            "Foreign Collaborative Secret",
            "Foreign Member Secret",
            "FXQ7",
            "Foreign Measure Secret",
            "Foreign Group Secret",
            "Foreign Cycle Secret",
            "foreign.officer@example.test",
        ],
        foreign=True,
    )
    return Walk(
        roles={
            "anonymous": (None, same_collaborative),
            "quality_officer": (UserFactory(member=home), same_collaborative),
            "member_viewer": (
                UserFactory(member=home, role=Role.MEMBER_VIEWER),
                same_collaborative,
            ),
            "coordinator": (
                UserFactory(collaborative=home_collab, role=Role.COORDINATOR),
                other_collaborative,
            ),
            "admin": (UserFactory(collaborative=home_collab, role=Role.ADMIN), other_collaborative),
        }
    )


# --- reading the registry -------------------------------------------------------------------


@dataclass(frozen=True)
class RouteView:
    """One (route, method) and the permission of the view that answers it."""

    name: str
    pattern: str
    method: str
    permission: Any
    has_factory: bool


def routed_views(app: Any) -> list[RouteView]:
    """Every route with a view, per method (GET and POST), from the introspector."""
    introspector = app.registry.introspector
    found: list[RouteView] = []
    for entry in introspector.get_category("routes"):
        route = entry["introspectable"]
        if route["name"].startswith("__"):
            continue  # add_static_view routes ("__static/", ...): bundled files, public by design
        for view in (r for r in entry["related"] if r.category_name == "views"):
            methods = view["request_methods"]
            if methods is None:
                methods = ("GET", "POST")
            elif isinstance(methods, str):
                methods = (methods,)
            permissions = [
                p["value"] for p in introspector.related(view) if p.category_name == "permissions"
            ]
            for method in ("GET", "POST"):
                if method in methods:
                    found.append(
                        RouteView(
                            route["name"],
                            route["pattern"],
                            method,
                            permissions[0] if permissions else None,
                            route["factory"] is not None,
                        )
                    )
    return found


def _candidates(session: Any, name: str, constraint: str | None, target: Target) -> list[str]:
    """Values for one placeholder: the target's objects where the database has them."""
    member = target.member
    if name == "member_id":
        return [str(member.id)]
    if name.endswith("_id"):
        stem = name.removesuffix("_id")
        ids: list[int] = []
        for table in Base.metadata.sorted_tables:
            if not (
                table.name in {stem, stem + "s", stem + "es"} or table.name.endswith(f"_{stem}s")
            ):
                continue
            if "member_id" in table.c:
                ids += session.scalars(sa.select(table.c.id).where(table.c.member_id == member.id))
            elif "user_id" in table.c:
                ids += session.scalars(
                    sa.select(table.c.id)
                    .join(User.__table__, User.__table__.c.id == table.c.user_id)
                    .where(User.__table__.c.member_id == member.id)
                )
            elif "collaborative_id" in table.c and target.foreign:
                ids += session.scalars(
                    sa.select(table.c.id).where(table.c.collaborative_id == member.collaborative_id)
                )
        return [str(i) for i in ids] or [str(member.id)]
    if "code" in name:
        codes: list[str] = []
        for table in Base.metadata.sorted_tables:
            if "code" in table.c and "collaborative_id" in table.c:
                codes += session.scalars(
                    sa.select(table.c.code).where(
                        table.c.collaborative_id == member.collaborative_id
                    )
                )
        return codes or [member.code]
    if constraint and re.fullmatch(r"[\w|]+", constraint):
        return [constraint.split("|")[0]]
    if name == "ext":
        return ["csv"]
    return ["0123456789abcdef"]


def _fill(pattern: str, values: tuple[str, ...]) -> str:
    """``pattern`` with its placeholders replaced by ``values``, in order."""
    chosen = iter(values)
    return PLACEHOLDER.sub(lambda _match: next(chosen), pattern)


def paths_for(session: Any, pattern: str, target: Target) -> list[str]:
    """The route's pattern with its placeholders filled in every way the database suggests."""
    slots = PLACEHOLDER.findall(pattern)
    options = [_candidates(session, name, constraint or None, target) for name, constraint in slots]
    paths = []
    for values in itertools.islice(itertools.product(*options), MAX_PATHS_PER_ROUTE):
        path = _fill(pattern, values)
        paths.append(path if path.startswith("/") else "/" + path)
    session.commit()
    return paths


def allowed_on_collaborative(user: User | None, permission: Any) -> bool:
    """Whether the role holds ``permission`` on the collaborative as a whole."""
    if permission == NO_PERMISSION_REQUIRED:
        return True
    if user is None or permission is None:
        return False
    return bool(ACLHelper().permits(Root(None), principals_for(user), permission))  # type: ignore[arg-type]


# --- the tests ------------------------------------------------------------------------------


def _request(browser: webtest.TestApp, method: str, path: str, token: str) -> webtest.TestResponse:
    if method == "GET":
        return browser.get(path, expect_errors=True)
    return browser.post(path, {"csrf_token": token}, expect_errors=True)


@pytest.mark.parametrize(
    "role", ["anonymous", "quality_officer", "member_viewer", "coordinator", "admin"]
)
def test_no_role_reaches_another_members_objects(role, app, walk, db_session):
    user, target = walk.roles[role]
    views = routed_views(app)
    assert len({v.name for v in views}) >= 40, "the route introspector came back nearly empty"
    problems: list[str] = []
    walked = 0
    for view in views:
        for path in paths_for(db_session, view.pattern, target):
            browser = client(app)
            token = ""
            if user is not None:
                sign_in(browser, db_session, user)  # a fresh session: earlier posts may sign out
                token = csrf_token(browser.get("/account/tokens"))
            response = _request(browser, view.method, path, token)
            walked += 1
            status = response.status_int
            allowed = view.permission == NO_PERMISSION_REQUIRED or (
                not view.has_factory and allowed_on_collaborative(user, view.permission)
            )
            where = f"{role} {view.method} {path} ({view.name}, {view.permission}) -> {status}"
            if status >= 500:
                problems.append(f"server error: {where}")
            elif not allowed and status not in {401, 403, 404}:
                problems.append(f"reached: {where}")
            body = response.body.decode("utf-8", "replace")
            leaked = [marker for marker in target.markers if marker in body]
            if leaked:
                problems.append(f"leaked {leaked}: {where}")
    assert walked >= len(views)
    assert problems == []


def test_every_routed_view_names_its_permission(app):
    """No view attached to a route relies on the default permission (error views excepted)."""
    introspector = app.registry.introspector
    missing = []
    for entry in introspector.get_category("views"):
        view = entry["introspectable"]
        if view["route_name"] is None or view["exception_only"]:
            continue  # exception, not-found and forbidden views have no route
        if view["route_name"].startswith("__"):
            continue  # static views
        permissions = [p for p in introspector.related(view) if p.category_name == "permissions"]
        if not permissions or permissions[0]["value"] is None:
            missing.append(f"{view['route_name']} {view['request_methods']}")
    assert missing == []


def test_public_routes_are_few_and_deliberate(app):
    public = {v.name for v in routed_views(app) if v.permission == NO_PERMISSION_REQUIRED}
    assert public <= {
        "home",
        "health",
        "login",
        "logout",
        "password.forgot",
        "password.reset",
        "api.openapi_json",
        "api.openapi_yaml",
    }


def test_member_scoped_roles_reach_their_own_member(app, walk, db_session):
    """The walk's 403s are about the other member, not a broken sign-in: own pages work."""
    officer, _ = walk.roles["quality_officer"]
    browser = client(app)
    sign_in(browser, db_session, officer)
    browser.get(f"/members/{officer.member_id}/submit", status=200)
    browser.get(f"/members/{officer.member_id}/completeness", status=200)
