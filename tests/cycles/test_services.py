"""The workflow service on a real database: windows, cycles, review, reopening, completeness."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from qicollab.audit.models import AuditEvent
from qicollab.benchmarking.models import BenchmarkRun, RunStatus
from qicollab.cycles.completeness import CellStatus
from qicollab.cycles.deadlines import days_until, due_text
from qicollab.cycles.models import CycleReopening, CycleStatus, LearningCycle, ReportingPeriod
from qicollab.cycles.planning import CycleDraft
from qicollab.cycles.reasons import CycleError
from qicollab.cycles.services import CycleService
from qicollab.schedule.windows import WindowCalendar, WindowState, submission_window_status
from qicollab.submissions.models import (
    AggregateValue,
    Submission,
    SubmissionSource,
    SubmissionStatus,
)
from qicollab.submissions.services import SubmissionService
from tests.cycles.world import NOW


def service(db_session, world, now=NOW) -> CycleService:
    return CycleService(db_session, world.collaborative.id, clock=lambda: now)


def actions(db_session) -> list[str]:
    return list(db_session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)))


def add_version(db_session, world, member, code, label, status, *, version=1, predecessor=None):
    submission = Submission(
        member_id=member.id,
        measure_id=world.measures[code].id,
        period_id=world.periods[label].id,
        version=version,
        status=status,
        content_hash=f"{label}-{version}",
        submitted_at=None if status is SubmissionStatus.DRAFT else NOW,
        predecessor_id=predecessor.id if predecessor else None,
    )
    db_session.add(submission)
    db_session.flush()
    db_session.add(AggregateValue(submission_id=submission.id, numerator=4, denominator=5))
    db_session.flush()
    return submission


# --- windows ------------------------------------------------------------------------------------


def test_window_states_and_reasons(db_session, world):
    hh, d2p = world.measures["HH"], world.measures["D2P"]

    def state(period, measure=hh, member=world.h01, now=NOW):
        return submission_window_status(db_session, member, measure, world.periods[period], now)

    now_open = state("2026-03")
    assert now_open.state is WindowState.OPEN
    assert now_open.is_open
    assert "open for submissions until 2026-06-25 23:59 UTC" in now_open.reason

    locked = state("2025-03")
    assert locked.state is WindowState.LOCKED
    assert not locked.is_open
    assert "locked in learning cycle C2025" in locked.reason
    assert "reopen" in locked.reason

    planned = state("2027-01")
    assert planned.state is WindowState.NOT_YET_OPEN
    assert "planned to open on 2027-01-01 00:00 UTC" in planned.reason

    assert state("2026-03", measure=d2p).state is WindowState.NO_CYCLE

    late = state("2026-03", now=NOW + dt.timedelta(days=20))
    assert late.state is WindowState.CLOSED_AFTER_DEADLINE
    assert "deadline for 2026-03 passed on 2026-06-25 23:59 UTC" in late.reason
    assert "ask a coordinator to reopen" in late.reason


def test_closing_early_says_so(db_session, world):
    service(db_session, world).transition(
        world.cycles["this"], "close", actor=world.users["coordinator"]
    )
    window = submission_window_status(
        db_session, world.h01, world.measures["HH"], world.periods["2026-03"], NOW
    )
    assert window.state is WindowState.CLOSED_AFTER_DEADLINE
    assert "closed learning cycle C2026 before its deadline" in window.reason


def test_reopening_opens_one_member_measure_period(db_session, world):
    coordinator = world.users["coordinator"]
    reopening = service(db_session, world).reopen(
        world.cycles["last"],
        member=world.h01,
        measure=world.measures["HH"],
        period=world.periods["2025-03"],
        reason="late audit sheets found in the ward office",
        closes_at=NOW + dt.timedelta(days=7),
        actor=coordinator,
    )
    calendar = WindowCalendar.load(db_session, world.collaborative.id)
    hh = world.measures["HH"].id
    reopened = calendar.status(world.h01.id, hh, world.periods["2025-03"], NOW)
    assert reopened.state is WindowState.REOPENED_UNTIL
    assert reopened.until == NOW + dt.timedelta(days=7)
    assert "late audit sheets found in the ward office" in reopened.reason
    assert calendar.status(world.h02.id, hh, world.periods["2025-03"], NOW).state is (
        WindowState.LOCKED
    )
    assert calendar.status(world.h01.id, hh, world.periods["2025-04"], NOW).state is (
        WindowState.LOCKED
    )
    later = calendar.status(world.h01.id, hh, world.periods["2025-03"], NOW + dt.timedelta(days=8))
    assert later.state is WindowState.LOCKED
    stored = db_session.get(CycleReopening, reopening.id)
    assert stored.reason == "late audit sheets found in the ward office"
    assert stored.reopened_by_id == coordinator.id
    event = db_session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "cycle.reopened"))
    assert event.member_id == world.h01.id
    assert event.details["reason"] == "late audit sheets found in the ward office"
    assert event.details["period"] == "2025-03"


def test_the_submission_service_honours_a_reopening(db_session, world):
    submissions = SubmissionService(db_session, clock=lambda: NOW)
    rows = [{"period": "2025-03", "numerator": "4", "denominator": "5"}]
    hh = world.measures["HH"]
    preview = submissions.preview_rows(member=world.h01, measure=hh, rows=rows)
    assert [p.rule for p in preview.errors] == ["window_closed"]
    service(db_session, world).reopen(
        world.cycles["last"],
        member=world.h01,
        measure=hh,
        period=world.periods["2025-03"],
        reason="late audit sheets found",
        closes_at=NOW + dt.timedelta(days=7),
        actor=world.users["coordinator"],
    )
    result = submissions.submit_rows(
        member=world.h01, measure=hh, rows=rows, source=SubmissionSource.API, actor="test"
    )
    assert [v.period for v in result.versions] == ["2025-03"]


@pytest.mark.parametrize(
    ("deadline", "expected"),
    [
        (NOW + dt.timedelta(days=10, hours=11), "due in 10 days"),
        (NOW + dt.timedelta(days=1), "due in 1 day"),
        (NOW + dt.timedelta(hours=3), "due today"),
        (NOW - dt.timedelta(hours=3), "the deadline passed today"),
        (NOW - dt.timedelta(days=1), "1 day past the deadline"),
        (NOW - dt.timedelta(days=5), "5 days past the deadline"),
    ],
)
def test_due_text(deadline, expected):
    assert due_text(deadline, NOW) == expected


def test_days_until_counts_calendar_days_in_utc():
    late_evening = dt.datetime(2026, 6, 15, 23, 0, tzinfo=dt.UTC)
    assert days_until(dt.datetime(2026, 6, 16, 0, 30, tzinfo=dt.UTC), late_evening) == 1
    assert days_until(dt.datetime(2026, 6, 14, 0, 30, tzinfo=dt.UTC), late_evening) == -1


# --- creating, editing, transitions --------------------------------------------------------------


def draft(**changes) -> CycleDraft:
    values = {
        "code": "C2028",
        "title": "Cycle 2028",
        "first_period": "2028-01",
        "last_period": "2028-12",
        "window_opens_at": dt.datetime(2028, 1, 1, tzinfo=dt.UTC),
        "deadline": dt.datetime(2029, 1, 31, 23, 59, tzinfo=dt.UTC),
        "lock_date": dt.datetime(2029, 2, 15, tzinfo=dt.UTC),
        "measure_codes": ("HH", "SURG"),
    }
    return CycleDraft(**{**values, **changes})


def test_create_makes_missing_periods_and_is_audited(db_session, world):
    cycle = service(db_session, world).create(draft(), actor=world.users["coordinator"])
    assert cycle.status is CycleStatus.PLANNED
    assert cycle.last_period_end == dt.date(2028, 12, 31)
    assert sorted(m.code for m in cycle.measures) == ["HH", "SURG"]
    labels = set(
        db_session.scalars(
            sa.select(ReportingPeriod.label).where(ReportingPeriod.label.like("2028%"))
        )
    )
    assert labels == {"2028", *(f"2028-{m:02d}" for m in range(1, 13))}
    event = db_session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "cycle.created"))
    assert event.details["measures"] == ["HH", "SURG"]
    assert event.actor == "coordinator@wf.example"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"code": "bad code!"}, "the code must be"),
        ({"code": "C2026"}, "already exists"),
        ({"title": "  "}, "needs a title"),
        ({"first_period": "2028-13"}, "first period must be a month"),
        ({"last_period": "2027-12"}, "last period comes before the first"),
        ({"deadline": dt.datetime(2027, 12, 1, tzinfo=dt.UTC)}, "deadline must come after"),
        ({"lock_date": dt.datetime(2029, 1, 1, tzinfo=dt.UTC)}, "lock date cannot come before"),
        ({"measure_codes": ("HH", "NOPE")}, "unknown measure(s): NOPE"),
        ({"first_period": "2026-06", "last_period": "2026-07"}, "C2026 already collects"),
        ({"deadline": dt.datetime(2029, 1, 31)}, "timezone-aware"),
    ],
)
def test_create_refusals(db_session, world, changes, message):
    with pytest.raises(CycleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        service(db_session, world).create(draft(**changes), actor=world.users["coordinator"])
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 0


def test_overlap_with_other_measures_is_allowed(db_session, world):
    cycle = service(db_session, world).create(
        draft(code="D2026", first_period="2026-01", last_period="2026-12", measure_codes=("D2P",)),
        actor=world.users["coordinator"],
    )
    assert [m.code for m in cycle.measures] == ["D2P"]


def test_transitions_and_their_audit(db_session, world):
    wf = service(db_session, world)
    coordinator = world.users["coordinator"]
    cycle = wf.create(draft(), actor=coordinator)
    with pytest.raises(CycleError, match="is planned and cannot be locked"):
        wf.transition(cycle, "lock", actor=coordinator)
    wf.transition(cycle, "open", actor=coordinator)
    wf.transition(cycle, "close", actor=coordinator)
    wf.transition(cycle, "open", actor=coordinator)
    facts = wf.lock_facts(cycle)
    assert facts.needs_reason
    assert facts.missing == facts.total > 0
    with pytest.raises(CycleError, match="a lock reason is required"):
        wf.transition(cycle, "lock", actor=coordinator)
    wf.transition(cycle, "lock", actor=coordinator, reason="pilot cycle, closing early")
    assert cycle.status is CycleStatus.LOCKED
    assert cycle.locked_at == NOW
    assert cycle.locked_by_id == coordinator.id
    assert cycle.lock_reason == "pilot cycle, closing early"
    with pytest.raises(CycleError, match="reopen periods instead"):
        wf.update(cycle, draft(title="Renamed"), actor=coordinator)
    with pytest.raises(CycleError, match="no succeeded benchmark run"):
        wf.transition(cycle, "publish", actor=coordinator)
    with pytest.raises(CycleError, match="an unlock reason is required"):
        wf.transition(cycle, "unlock", actor=coordinator)
    wf.transition(cycle, "unlock", actor=coordinator, reason="late data from one member")
    assert (cycle.status, cycle.locked_at, cycle.lock_reason) == (CycleStatus.CLOSED, None, None)
    wf.transition(cycle, "lock", actor=coordinator, reason="late data is in now")
    # A run from before the unlock would not count; one since the lock does.
    run = BenchmarkRun(
        collaborative_id=cycle.collaborative_id,
        cycle_id=cycle.id,
        status=RunStatus.SUCCEEDED,
        settings={},
        created_at=NOW,
    )
    db_session.add(run)
    db_session.flush()
    wf.transition(cycle, "publish", actor=coordinator)
    with pytest.raises(CycleError, match="is published and cannot be unlocked"):
        wf.transition(cycle, "unlock", actor=coordinator, reason="too late for this")
    with pytest.raises(CycleError, match="unknown action"):
        wf.transition(cycle, "explode", actor=coordinator)
    assert actions(db_session) == [
        "cycle.created",
        "cycle.opened",
        "cycle.closed",
        "cycle.opened",
        "cycle.locked",
        "cycle.unlocked",
        "cycle.locked",
        "cycle.published",
    ]
    events = db_session.scalars(
        sa.select(AuditEvent)
        .where(AuditEvent.action.in_(["cycle.locked", "cycle.unlocked"]))
        .order_by(AuditEvent.id)
    ).all()
    assert [e.details["reason"] for e in events] == [
        "pilot cycle, closing early",
        "late data from one member",
        "late data is in now",
    ]
    assert events[0].details["missing_cells"] == facts.missing


def test_update_records_what_changed(db_session, world):
    wf = service(db_session, world)
    cycle = world.cycles["this"]
    wf.update(
        cycle,
        draft(
            code=cycle.code,
            title=cycle.title,
            first_period="2026-01",
            last_period="2026-12",
            window_opens_at=cycle.window_opens_at,
            deadline=cycle.deadline + dt.timedelta(days=7),
            lock_date=None,
            measure_codes=("HH", "CLABSI", "SURG"),
        ),
        actor=world.users["coordinator"],
    )
    event = db_session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "cycle.updated"))
    assert set(event.details["changed"]) == {"deadline", "lock_date"}


# --- review ------------------------------------------------------------------------------------


def test_accept_and_return_with_reasons(db_session, world):
    wf = service(db_session, world)
    coordinator = world.users["coordinator"]
    first = add_version(db_session, world, world.h01, "HH", "2026-01", SubmissionStatus.SUBMITTED)
    with pytest.raises(CycleError, match="a reason is required"):
        wf.review(first, "return", reason="  ", actor=coordinator)
    wf.review(first, "return", reason="denominator looks like last month's", actor=coordinator)
    assert first.status is SubmissionStatus.RETURNED
    assert first.review_reason == "denominator looks like last month's"
    assert first.reviewed_by_id == coordinator.id
    assert first.reviewed_at == NOW
    wf.review(first, "accept", reason=None, actor=coordinator)
    assert first.status is SubmissionStatus.ACCEPTED
    with pytest.raises(CycleError, match="already accepted"):
        wf.review(first, "accept", reason=None, actor=coordinator)
    events = db_session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action.like("submission.%")).order_by(AuditEvent.id)
    ).all()
    assert [(e.action, e.details["reason"]) for e in events] == [
        ("submission.returned", "denominator looks like last month's"),
        ("submission.accepted", None),
    ]
    assert events[0].member_id == world.h01.id
    assert events[0].details["period"] == "2026-01"


def test_review_refusals(db_session, world):
    wf = service(db_session, world)
    coordinator = world.users["coordinator"]
    old = add_version(db_session, world, world.h01, "HH", "2026-02", SubmissionStatus.SUPERSEDED)
    draft_version = add_version(
        db_session, world, world.h01, "HH", "2026-03", SubmissionStatus.DRAFT
    )
    current = add_version(
        db_session,
        world,
        world.h01,
        "HH",
        "2026-02",
        SubmissionStatus.SUBMITTED,
        version=2,
        predecessor=old,
    )
    with pytest.raises(CycleError, match="superseded"):
        wf.review(old, "accept", reason=None, actor=coordinator)
    with pytest.raises(CycleError, match="draft"):
        wf.review(draft_version, "accept", reason=None, actor=coordinator)
    with pytest.raises(CycleError, match="accept or return"):
        wf.review(current, "maybe", reason=None, actor=coordinator)
    with pytest.raises(CycleError, match="keep identifiers out"):
        wf.review(current, "return", reason="call Jane on 555-123-4567", actor=coordinator)
    assert current.status is SubmissionStatus.SUBMITTED
    other = CycleService(db_session, world.collaborative.id + 1000)
    assert other.submission(current.id) is None


# --- reopenings --------------------------------------------------------------------------------


def test_reopen_refusals(db_session, world):
    wf = service(db_session, world)
    coordinator = world.users["coordinator"]
    soon = NOW + dt.timedelta(days=3)
    with pytest.raises(CycleError, match="has not opened yet"):
        wf.reopen(world.cycles["next"], reason="late data", closes_at=soon, actor=coordinator)
    with pytest.raises(CycleError, match="still open"):
        wf.reopen(world.cycles["this"], reason="late data", closes_at=soon, actor=coordinator)
    with pytest.raises(CycleError, match="reason is required"):
        wf.reopen(world.cycles["last"], reason="", closes_at=soon, actor=coordinator)
    with pytest.raises(CycleError, match="close in the future"):
        wf.reopen(world.cycles["last"], reason="late data", closes_at=NOW, actor=coordinator)
    with pytest.raises(CycleError, match="not one of the periods"):
        wf.reopen(
            world.cycles["last"],
            period=world.periods["2026-01"],
            reason="late data",
            closes_at=soon,
            actor=coordinator,
        )
    with pytest.raises(CycleError, match="signed-in coordinator"):
        wf.reopen(world.cycles["last"], reason="late data", closes_at=soon, actor="cli")
    assert db_session.scalar(sa.select(sa.func.count()).select_from(CycleReopening)) == 0


def test_learning_sessions(db_session, world):
    wf = service(db_session, world)
    cycle = world.cycles["this"]
    wf.add_session(
        cycle,
        held_on=dt.date(2026, 9, 10),
        title="Autumn session",
        notes="Sepsis bundle",
        actor=world.users["coordinator"],
    )
    wf.add_session(cycle, held_on=dt.date(2026, 7, 1), title="Kick-off", actor="cli")
    assert [s.title for s in wf.sessions(cycle)] == ["Kick-off", "Autumn session"]
    with pytest.raises(CycleError, match="needs a title"):
        wf.add_session(cycle, held_on=dt.date(2026, 7, 1), title="", actor="cli")
    assert actions(db_session) == ["learning_session.created", "learning_session.created"]


# --- completeness ------------------------------------------------------------------------------


def test_completeness_counts(db_session, world):
    wf = service(db_session, world)
    S = SubmissionStatus
    add_version(db_session, world, world.h01, "HH", "2026-01", S.ACCEPTED)
    add_version(db_session, world, world.h01, "HH", "2026-02", S.SUBMITTED)
    returned = add_version(db_session, world, world.h01, "HH", "2026-03", S.RETURNED)
    returned.review_reason = "please recount"
    add_version(db_session, world, world.h01, "HH", "2026-04", S.DRAFT)
    old = add_version(db_session, world, world.h01, "HH", "2026-05", S.SUPERSEDED)
    add_version(
        db_session, world, world.h01, "HH", "2026-05", S.SUBMITTED, version=2, predecessor=old
    )
    # A correction in draft over an accepted version: the accepted one still counts.
    accepted = add_version(db_session, world, world.h01, "HH", "2026-06", S.ACCEPTED)
    add_version(
        db_session, world, world.h01, "HH", "2026-06", S.DRAFT, version=2, predecessor=accepted
    )
    # Another member, and data outside the cycle, do not leak into H01's counts.
    add_version(db_session, world, world.h02, "HH", "2026-01", S.ACCEPTED)
    add_version(db_session, world, world.h01, "HH", "2025-01", S.ACCEPTED)
    db_session.flush()

    grid = wf.completeness(world.cycles["this"])
    assert [m.code for m in grid.measures] == ["CLABSI", "HH", "SURG"]
    assert grid.total == 2 * (12 + 12 + 1)
    hh = world.measures["HH"].id
    assert grid.counts(member_id=world.h01.id, measure_id=hh) == {
        CellStatus.MISSING: 6,
        CellStatus.DRAFT: 1,
        CellStatus.RETURNED: 1,
        CellStatus.SUBMITTED: 2,
        CellStatus.ACCEPTED: 2,
    }
    assert grid.counts(member_id=world.h02.id)[CellStatus.ACCEPTED] == 1
    assert grid.counts()[CellStatus.MISSING] == 50 - 7
    cells = {c.period_label: c for c in grid.row(world.h01.id, hh)}
    assert cells["2026-03"].review_reason == "please recount"
    assert cells["2026-05"].version == 2
    assert cells["2026-06"].status is CellStatus.ACCEPTED
    assert cells["2026-07"].window.state is WindowState.OPEN
    assert grid.due == "due in 10 days"
    surg = grid.row(world.h01.id, world.measures["SURG"].id)
    assert [c.period_label for c in surg] == ["2026"]

    own = wf.completeness(world.cycles["this"], member_ids=[world.h02.id])
    assert [m.code for m in own.members] == ["H02"]
    assert own.total == 25


def test_current_cycle_prefers_the_open_one(db_session, world):
    wf = service(db_session, world)
    assert wf.current_cycle().code == "C2026"
    wf.transition(
        world.cycles["this"],
        "lock",
        actor=world.users["coordinator"],
        reason="closing this cycle early",
    )
    assert wf.current_cycle().code == "C2027"
    assert isinstance(wf.cycles()[0], LearningCycle)
