"""The context factories: where scope is enforced, once, for every route that names an object.

Each factory is called as the router calls it, with a request carrying the database session,
the signed-in user and the route's ids; the permission check is Pyramid's ACL over the
principals the security policy gives that user. What every factory must do:

- an id of another collaborative, and an id that does not exist: the same 404;
- an anonymous request: 403 before anything is looked up;
- an id of the user's own collaborative: the object, whose ACL then decides (403 for a member's
  data to the officers of other members; the API's readers get 404, as if it did not exist).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
import webtest
from pyramid.authorization import ACLHelper, Everyone
from pyramid.httpexceptions import HTTPForbidden, HTTPNotFound

from qicollab.accounts.models import ApiToken, Role, User
from qicollab.accounts.resources import token_factory, user_factory
from qicollab.benchmarking.models import BenchmarkRun, RunStatus
from qicollab.cycles.models import LearningSession
from qicollab.db import utcnow
from qicollab.improvement.models import PdsaCycle
from qicollab.improvement.resources import pdsa_factory, readable_pdsa_factory, session_factory
from qicollab.jobs.models import Job
from qicollab.jobs.views import job_factory
from qicollab.members.models import Member
from qicollab.permissions import Permission
from qicollab.reporting.models import Report, ReportKind
from qicollab.reporting.resources import report_factory, run_factory
from qicollab.resources import member_factory
from qicollab.schedule.calendar import CycleStatus
from qicollab.security import principals_for
from qicollab.services import collaborative_service
from qicollab.submissions.models import (
    Submission,
    SubmissionBatch,
    SubmissionSource,
    SubmissionStatus,
)
from qicollab.submissions.resources import (
    batch_factory,
    readable_submission_factory,
    submission_factory,
)
from tests.factories import (
    CollaborativeFactory,
    LearningCycleFactory,
    MeasureFactory,
    MemberFactory,
    ReportingPeriodFactory,
    UserFactory,
)
from tests.helpers import create_api_token, sign_in


@dataclass
class FakeRequest:
    """What a context factory reads from a request, with the app's ACL check."""

    db: Any
    identity: User | None
    matchdict: dict[str, str] = field(default_factory=dict)

    def find_service(self, iface: Any) -> Any:
        """Collaborative-wide services, built as the app's registered factories build them."""
        return collaborative_service(iface)(None, self)

    def has_permission(self, permission: str, context: Any) -> bool:
        principals = [Everyone] if self.identity is None else principals_for(self.identity)
        return bool(ACLHelper().permits(context, principals, permission))


@dataclass
class Owned:
    """One member's objects: a batch, a version, a PDSA cycle, a run with its report, a job,
    an officer and the officer's API token, a learning session."""

    member: Member
    officer: User
    token: ApiToken
    batch: SubmissionBatch
    submission: Submission
    pdsa: PdsaCycle
    run: BenchmarkRun
    report: Report
    job: Job
    learning_session: LearningSession


def _objects(session: Any, collaborative: Any, member: Member, *, published: bool) -> Owned:
    measure = MeasureFactory(collaborative=collaborative)
    period = ReportingPeriodFactory(collaborative=collaborative)
    status = CycleStatus.PUBLISHED if published else CycleStatus.LOCKED
    cycle = LearningCycleFactory(collaborative=collaborative, measures=[measure], status=status)
    batch = SubmissionBatch(
        member_id=member.id,
        measure_id=measure.id,
        source=SubmissionSource.FORM,
        content_hash="0" * 64,
        row_count=1,
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
        submitted_at=utcnow(),
    )
    pdsa = PdsaCycle(
        collaborative_id=collaborative.id,
        member_id=member.id,
        title="Test a checklist",
        starts_on=dt.date(2026, 1, 5),
    )
    run = BenchmarkRun(
        collaborative_id=collaborative.id, cycle_id=cycle.id, status=RunStatus.SUCCEEDED
    )
    job = Job(collaborative_id=collaborative.id, kind="benchmark")
    meeting = LearningSession(cycle_id=cycle.id, held_on=dt.date(2026, 3, 2), title="Kick-off")
    session.add_all([submission, pdsa, run, job, meeting])
    session.flush()
    report = Report(
        run_id=run.id,
        kind=ReportKind.MEMBER,
        member_id=member.id,
        path=f"reports/{run.id}/{member.code}.pdf",
        sha256="2" * 64,
        size_bytes=1,
    )
    session.add(report)
    officer = UserFactory(member=member)
    create_api_token(session, officer)
    session.commit()
    token = session.scalars(sa.select(ApiToken).where(ApiToken.user_id == officer.id)).one()
    return Owned(member, officer, token, batch, submission, pdsa, run, report, job, meeting)


@dataclass
class World:
    """Collaborative QI (members H01, H02) and FX (member F01), each member with objects."""

    home: Owned
    other: Owned
    foreign: Owned
    users: dict[str, User]


@pytest.fixture
def world(factories: Any, db_session: Any) -> World:
    qi = CollaborativeFactory(slug="qi")
    fx = CollaborativeFactory(slug="fx")
    home = MemberFactory(collaborative=qi, code="H01")
    other = MemberFactory(collaborative=qi, code="H02")
    foreign = MemberFactory(collaborative=fx, code="F01")
    users = {
        "officer": UserFactory(member=home),
        "viewer": UserFactory(member=home, role=Role.MEMBER_VIEWER),
        "coordinator": UserFactory(collaborative=qi, role=Role.COORDINATOR),
        "admin": UserFactory(collaborative=qi, role=Role.ADMIN),
    }
    db_session.commit()
    return World(
        home=_objects(db_session, qi, home, published=False),
        other=_objects(db_session, qi, other, published=True),
        foreign=_objects(db_session, fx, foreign, published=True),
        users=users,
    )


def call(factory: Any, db: Any, user: User | None, **ids: int) -> Any:
    return factory(FakeRequest(db, user, {k: str(v) for k, v in ids.items()}))


#: Every factory, and how to name each member's object to it.
FACTORIES = {
    "member": (member_factory, lambda o: {"member_id": o.member.id}),
    "batch": (batch_factory, lambda o: {"member_id": o.member.id, "batch_id": o.batch.id}),
    "submission": (submission_factory, lambda o: {"submission_id": o.submission.id}),
    "readable_submission": (
        readable_submission_factory,
        lambda o: {"submission_id": o.submission.id},
    ),
    "pdsa": (pdsa_factory, lambda o: {"member_id": o.member.id, "pdsa_id": o.pdsa.id}),
    "readable_pdsa": (readable_pdsa_factory, lambda o: {"pdsa_id": o.pdsa.id}),
    "run": (run_factory, lambda o: {"run_id": o.run.id}),
    "report": (report_factory, lambda o: {"report_id": o.report.id}),
    "job": (job_factory, lambda o: {"job_id": o.job.id}),
    "user": (user_factory, lambda o: {"user_id": o.officer.id}),
    "token": (token_factory, lambda o: {"token_id": o.token.id}),
    "learning_session": (session_factory, lambda o: {"session_id": o.learning_session.id}),
}
ROLES = ["officer", "viewer", "coordinator", "admin"]


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_foreign_and_unknown_ids_are_the_same_404_for_every_role(name, world, db_session):
    factory, ids_of = FACTORIES[name]
    foreign = ids_of(world.foreign)
    unknown = {key: value + 10_000 for key, value in foreign.items()}
    for role in ROLES:
        for ids in (foreign, unknown):
            with pytest.raises(HTTPNotFound):
                call(factory, db_session, world.users[role], **ids)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_anonymous_requests_are_refused_before_any_lookup(name, world, db_session):
    factory, ids_of = FACTORIES[name]
    for owned in (world.home, world.foreign):
        with pytest.raises(HTTPForbidden):
            call(factory, db_session, None, **ids_of(owned))
    with pytest.raises(HTTPForbidden):
        call(factory, None, None, **dict.fromkeys(ids_of(world.home), 1))  # no database at all


def test_own_ids_give_the_loaded_object(world, db_session):
    officer, home = world.users["officer"], world.home
    assert call(member_factory, db_session, officer, member_id=home.member.id).member.id == (
        home.member.id
    )
    batch = call(
        batch_factory, db_session, officer, member_id=home.member.id, batch_id=home.batch.id
    )
    assert (batch.member.id, batch.batch.id) == (home.member.id, home.batch.id)
    version = call(
        readable_submission_factory, db_session, officer, submission_id=home.submission.id
    )
    assert (version.member.id, version.submission.id) == (home.member.id, home.submission.id)
    pdsa = call(readable_pdsa_factory, db_session, officer, pdsa_id=home.pdsa.id)
    assert (pdsa.member.id, pdsa.cycle.id) == (home.member.id, home.pdsa.id)
    assert call(job_factory, db_session, officer, job_id=home.job.id).job.id == home.job.id
    coordinator = world.users["coordinator"]
    assert call(run_factory, db_session, coordinator, run_id=home.run.id).run.id == home.run.id
    report = call(report_factory, db_session, coordinator, report_id=home.report.id)
    assert report.report.id == home.report.id
    meeting = call(session_factory, db_session, officer, session_id=home.learning_session.id)
    assert meeting.session.id == home.learning_session.id
    user = call(user_factory, db_session, coordinator, user_id=home.officer.id)
    assert user.user.id == home.officer.id
    token = call(token_factory, db_session, home.officer, token_id=home.token.id)
    assert (token.token.id, token.owner.id) == (home.token.id, home.officer.id)
    assert call(token_factory, db_session, coordinator, token_id=home.token.id).owner.id == (
        home.officer.id
    )


def test_a_token_is_revoked_by_its_owner_and_coordinators_only(world, db_session):
    """Another officer's token is 404 to an officer, as if it did not exist; an admin's token
    is 404 to coordinators."""
    home, other = world.home, world.other
    with pytest.raises(HTTPNotFound):
        call(token_factory, db_session, home.officer, token_id=other.token.id)
    admin = world.users["admin"]
    create_api_token(db_session, admin)
    db_session.commit()
    admins = db_session.scalars(sa.select(ApiToken).where(ApiToken.user_id == admin.id)).one()
    with pytest.raises(HTTPNotFound):
        call(token_factory, db_session, world.users["coordinator"], token_id=admins.id)
    assert call(token_factory, db_session, admin, token_id=admins.id).token.id == admins.id


def test_a_child_object_must_belong_to_the_member_in_the_path(world, db_session):
    """Another member's batch or PDSA cycle under my member's path is 404, not a way in."""
    officer, home, other = world.users["officer"], world.home, world.other
    with pytest.raises(HTTPNotFound):
        call(batch_factory, db_session, officer, member_id=home.member.id, batch_id=other.batch.id)
    with pytest.raises(HTTPNotFound):
        call(pdsa_factory, db_session, officer, member_id=home.member.id, pdsa_id=other.pdsa.id)


def test_within_the_collaborative_the_acl_decides(world, db_session):
    """Another member's data: the context loads, and its ACL refuses officers and viewers (403)
    while coordinators and admins read it; the API's readers see it as nonexistent (404)."""
    other = world.other
    for role in ROLES:
        user = world.users[role]
        member = call(member_factory, db_session, user, member_id=other.member.id)
        reads = FakeRequest(db_session, user).has_permission(Permission.MEMBER_VIEW, member)
        assert reads is (role in {"coordinator", "admin"}), role
        version = call(submission_factory, db_session, user, submission_id=other.submission.id)
        reviews = FakeRequest(db_session, user).has_permission(
            Permission.COLLABORATIVE_MANAGE, version
        )
        assert reviews is (role in {"coordinator", "admin"}), role
        if not reads:
            with pytest.raises(HTTPNotFound):
                call(
                    readable_submission_factory, db_session, user, submission_id=other.submission.id
                )
            with pytest.raises(HTTPNotFound):
                call(readable_pdsa_factory, db_session, user, pdsa_id=other.pdsa.id)


def test_members_do_not_see_runs_before_their_cycle_is_published(world, db_session):
    """H01's run belongs to a locked cycle: no run at all for members, a run for coordinators."""
    unpublished, published = world.home.run.id, world.other.run.id
    for role in ("officer", "viewer"):
        user = world.users[role]
        with pytest.raises(HTTPNotFound):
            call(run_factory, db_session, user, run_id=unpublished)
        with pytest.raises(HTTPNotFound):
            call(report_factory, db_session, user, report_id=world.home.report.id)
        assert call(run_factory, db_session, user, run_id=published).run.id == published
    for role in ("coordinator", "admin"):
        assert call(run_factory, db_session, world.users[role], run_id=unpublished).run.id == (
            unpublished
        )


def test_through_the_app_foreign_and_unknown_ids_answer_alike(app, world, db_session):
    """The router's view of it: the same 404 page for a foreign and an unknown member, 403 for
    another member of the collaborative, 200 for one's own."""
    browser = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "10.0.0.9"})
    sign_in(browser, db_session, world.users["officer"])
    foreign = browser.get(f"/members/{world.foreign.member.id}/results", status=404)
    unknown = browser.get(f"/members/{world.foreign.member.id + 10_000}/results", status=404)
    assert foreign.text == unknown.text
    browser.get(f"/members/{world.other.member.id}/results", status=403)
    browser.get(f"/members/{world.home.member.id}/completeness", status=200)
    api = browser.get(f"/api/submissions/{world.foreign.submission.id}", status=404)
    assert api.json == browser.get(f"/api/submissions/{10**9}", status=404).json
