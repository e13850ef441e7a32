"""The demo shows the whole improvement loop, consistent with the generator's known truth."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from qicollab.cycles.annotations import AnnotationService
from qicollab.demo.generator import generate
from qicollab.demo.loader import load
from qicollab.improvement.models import ActDecision, MonthlyReport, PdsaCycle
from qicollab.improvement.package import ChangePackageService
from qicollab.improvement.pdsa import PdsaService
from qicollab.improvement.progress import ProgressService
from qicollab.improvement.sessions import SessionService, calendar
from qicollab.members.models import Member
from qicollab.schedule.calendar import LearningCycle


@pytest.fixture
def demo(db_session, tmp_path):
    built = generate(n_members=12)
    load(db_session, built, storage=tmp_path)
    db_session.commit()
    return built


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_demo_seeds_ramps_at_the_change_date_scores_and_sessions(db_session, demo):
    truth = demo.truth
    members = {m.code: m for m in db_session.scalars(sa.select(Member))}
    collaborative_id = next(iter(members.values())).collaborative_id
    assert len(ChangePackageService(db_session, collaborative_id).diagram().ideas) == 5
    pdsa = PdsaService(db_session, collaborative_id)
    notes = AnnotationService(db_session, collaborative_id)
    for code in truth.improvers:
        ramps = pdsa.ramps(members[code].id)
        assert len(ramps) == 5
        for ramp in ramps:
            assert [c.decision for c in ramp] == [
                ActDecision.ADAPT,
                ActDecision.ADAPT,
                ActDecision.ADOPT,
            ]
            assert ramp[-1].decided_on == truth.change_date
            (measure,) = ramp[-1].measures
            assert notes.phase_starts(members[code].id, measure.id) == [truth.change_date]
    others = [m for code, m in members.items() if code not in truth.improvers]
    abandoned = db_session.scalars(
        sa.select(PdsaCycle).where(PdsaCycle.member_id.in_([m.id for m in others]))
    ).all()
    assert abandoned
    assert {c.decision for c in abandoned} == {ActDecision.ABANDON}
    progress = ProgressService(db_session, collaborative_id)
    last = progress.latest_month()
    assert last == demo.months[-1]
    improver_trend = progress.trend(members[truth.improvers[0]].id)
    assert len(improver_trend) == 18
    assert improver_trend[-1].faculty > improver_trend[0].faculty
    latest = {p.month: p for p in progress.trend(others[0].id)}[last]
    assert latest.faculty <= improver_trend[-1].faculty
    missing = progress.not_reported(last)
    assert {m.code for m in missing} <= {m.code for m in others}
    assert db_session.scalar(sa.select(sa.func.count(MonthlyReport.id))) >= 12 * 17
    history = db_session.scalar(sa.select(LearningCycle).order_by(LearningCycle.id))
    sessions = SessionService(db_session, collaborative_id)
    entries = calendar(history, sessions.sessions(history))
    kinds = [e.kind for e in entries]
    assert kinds.count("session") == 3
    assert "action period" in kinds
    first = next(e for e in entries if e.kind == "session")
    assert first.starts_on < truth.change_date < entries[2].starts_on + dt.timedelta(days=365)
    assert len(sessions.agenda(first.session_id)) == 3
    attended = sessions.attendance(first.session_id)
    assert {members[c].id for c in truth.improvers} <= set(attended)
