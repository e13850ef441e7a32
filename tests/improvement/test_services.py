"""Services of the improvement domain: change package, PDSA cycles and their chart markers,
progress scores, monthly reports and learning sessions."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from qicollab.audit.models import AuditEvent
from qicollab.cycles.annotations import AnnotationService
from qicollab.cycles.models import Annotation, AnnotationKind, LearningSession
from qicollab.improvement.models import ActDecision, MaterialKind, Scorer
from qicollab.improvement.package import ChangePackageService, parse_evidence
from qicollab.improvement.pdsa import PdsaDraft, PdsaService, stage
from qicollab.improvement.progress import SCALE, ProgressService, halves_of
from qicollab.improvement.sessions import SessionService, calendar
from qicollab.improvement.text import ImprovementError


def _package(db_session, world):
    service = ChangePackageService(db_session, world.collaborative.id)
    service.save_aim(aim="Halve central-line infections by 2027", actor="coordinator")
    primary = service.save_driver(title="Reliable line insertion", actor="coordinator")
    secondary = service.save_driver(
        title="Insertion checklist used every time", parent_id=primary.id, actor="coordinator"
    )
    idea = service.save_idea(
        driver_id=secondary.id,
        code="c1",
        title="Nurse empowered to stop a non-sterile insertion",
        evidence=parse_evidence("Pronovost 2006 | https://doi.org/10.1056/NEJMoa061115"),
        actor="coordinator",
    )
    return service, primary, secondary, idea


def test_driver_diagram_is_a_tree_with_evidence(db_session, world):
    service, primary, secondary, _ = _package(db_session, world)
    diagram = service.diagram()
    assert diagram.aim == "Halve central-line infections by 2027"
    assert [p.title for p in diagram.primaries] == ["Reliable line insertion"]
    assert [s.id for s in diagram.secondaries] == [secondary.id]
    assert [(i.code, i.evidence[0].url) for i in diagram.ideas] == [
        ("C1", "https://doi.org/10.1056/NEJMoa061115")
    ]
    with pytest.raises(ImprovementError, match="secondary driver"):
        service.save_idea(driver_id=primary.id, code="C2", title="x", actor="coordinator")
    with pytest.raises(ImprovementError, match="already has the code C1"):
        service.save_idea(driver_id=secondary.id, code="C1", title="y", actor="coordinator")
    with pytest.raises(ImprovementError, match="not from another secondary"):
        service.save_driver(title="z", parent_id=secondary.id, actor="coordinator")
    with pytest.raises(ImprovementError, match="not an http"):
        parse_evidence("a trial | ftp://example.org/x")
    actions = set(db_session.scalars(sa.select(AuditEvent.action)))
    assert {"change_package.aim_saved", "change_package.idea_added"} <= actions


def test_pdsa_draws_markers_and_an_adopted_change_starts_a_phase(db_session, world):
    _, _, _, idea = _package(db_session, world)
    service = PdsaService(db_session, world.collaborative.id)
    clabsi, hh = world.measures["CLABSI"], world.measures["HH"]
    first = service.create(
        world.h01.id,
        PdsaDraft(
            title="Checklist on one ward",
            starts_on=dt.date(2026, 2, 3),
            measure_ids=(clabsi.id,),
            change_idea_id=idea.id,
            prediction="Checklist completed for 9 of 10 insertions",
        ),
        actor=world.users["officer"],
    )
    assert stage(first) == "Plan"
    notes = AnnotationService(db_session, world.collaborative.id)
    drawn = notes.list(member_id=world.h01.id, measure_id=clabsi.id)
    assert [(n.kind, n.occurred_on, n.starts_phase) for n in drawn] == [
        (AnnotationKind.PDSA, dt.date(2026, 2, 3), False)
    ]
    second = service.create(
        world.h01.id,
        PdsaDraft(
            title="Checklist on every ward",
            starts_on=dt.date(2026, 3, 2),
            measure_ids=(clabsi.id, hh.id),
            change_idea_id=idea.id,
            follows_id=first.id,
            study="Completion 96%; two infections fewer than predicted",
            decision=ActDecision.ADOPT,
            decided_on=dt.date(2026, 4, 1),
            starts_phase=True,
        ),
        actor=world.users["officer"],
    )
    assert stage(second) == "Act"
    assert notes.phase_starts(world.h01.id, clabsi.id) == [dt.date(2026, 4, 1)]
    assert notes.phase_starts(world.h01.id, hh.id) == [dt.date(2026, 4, 1)]
    assert notes.list(member_id=world.h02.id, measure_id=clabsi.id) == []
    assert [[c.id for c in ramp] for ramp in service.ramps(world.h01.id)] == [[first.id, second.id]]
    # Editing rewrites the markers: unlinking HH removes its notes, the decision date moves.
    service.update(
        second,
        PdsaDraft(
            title="Checklist on every ward",
            starts_on=dt.date(2026, 3, 2),
            measure_ids=(clabsi.id,),
            change_idea_id=idea.id,
            follows_id=first.id,
            decision=ActDecision.ADOPT,
            decided_on=dt.date(2026, 5, 1),
            starts_phase=True,
        ),
        actor=world.users["officer"],
    )
    assert notes.phase_starts(world.h01.id, clabsi.id) == [dt.date(2026, 5, 1)]
    assert notes.list(member_id=world.h01.id, measure_id=hh.id) == []
    assert db_session.scalar(sa.select(sa.func.count(Annotation.id))) == 3
    audit = db_session.scalars(
        sa.select(AuditEvent.action).where(AuditEvent.object_type == "pdsa")
    ).all()
    assert audit == ["pdsa.created", "pdsa.created", "pdsa.updated"]
    assert [c.id for c in service.active_in(world.h01.id, dt.date(2026, 3, 20))] == [second.id]
    # Another team cannot see or follow the cycle.
    assert service.get(world.h02.id, first.id) is None
    with pytest.raises(ImprovementError, match="your team's cycles"):
        service.create(
            world.h02.id,
            PdsaDraft(title="x", starts_on=dt.date(2026, 3, 2), own_change="y", follows_id=1),
            actor=world.users["other_officer"],
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"title": " "}, "title is required"),
        ({"own_change": ""}, "name the change tested"),
        ({"ends_on": dt.date(2026, 1, 1)}, "before the start date"),
        ({"decision": ActDecision.ADAPT}, "date of the decision"),
        ({"starts_phase": True}, "only an adopted change"),
        ({"observations": "Mrs Smith, MRN 12345678, fell"}, "record, account"),
        ({"study": "call 617-555-0199 for the list"}, "telephone"),
        ({"measure_ids": (10**9,)}, "unknown measure"),
    ],
)
def test_invalid_pdsa_is_refused(db_session, world, changes, message):
    fields = {"title": "Test", "starts_on": dt.date(2026, 2, 1), "own_change": "Huddles"}
    service = PdsaService(db_session, world.collaborative.id)
    with pytest.raises(ImprovementError, match=message):
        service.create(world.h01.id, PdsaDraft(**{**fields, **changes}), actor="officer")


def test_dates_and_months_are_allowed_in_pdsa_text(db_session, world):
    service = PdsaService(db_session, world.collaborative.id)
    cycle = service.create(
        world.h01.id,
        PdsaDraft(
            title="Night-shift huddle",
            starts_on=dt.date(2026, 2, 1),
            own_change="Huddles",
            observations="From 3 March 2026 the night shift ran it on 5 of 7 nights",
        ),
        actor="officer",
    )
    assert "3 March 2026" in cycle.observations


def test_scores_trend_distribution_and_monthly_reports(db_session, world):
    service = ProgressService(db_session, world.collaborative.id)
    assert [level.score for level in SCALE] == [1 + k / 2 for k in range(9)]
    with pytest.raises(ImprovementError, match="half steps"):
        halves_of("3.2")
    with pytest.raises(ImprovementError, match="half steps"):
        halves_of("5.5")
    with pytest.raises(ImprovementError, match="number"):
        halves_of("three")
    march, april = dt.date(2026, 3, 1), dt.date(2026, 4, 9)
    service.submit_report(
        world.h01.id,
        march,
        tested="Checklist on one ward",
        learned="Needs a champion per shift",
        barriers="",
        score="2.5",
        actor="officer",
    )
    service.score(world.h01.id, march, Scorer.FACULTY, 2.0, actor="coordinator")
    service.score(world.h02.id, march, Scorer.FACULTY, 1.5, actor="coordinator")
    service.submit_report(
        world.h01.id, april, tested="Every ward", learned="", barriers="", score=3, actor="x"
    )
    assert [(p.month, p.team, p.faculty) for p in service.trend(world.h01.id)] == [
        (march, 2.5, 2.0),
        (dt.date(2026, 4, 1), 3.0, None),
    ]
    distribution = service.distribution(march)
    assert distribution.team[2.5] == 1
    assert distribution.faculty == {**dict.fromkeys(distribution.faculty, 0), 1.5: 1, 2.0: 1}
    assert (distribution.team_scored, distribution.faculty_scored, distribution.teams) == (1, 2, 2)
    assert [m.code for m in service.not_reported(march)] == [world.h02.code]
    assert service.latest_month() == dt.date(2026, 4, 1)
    with pytest.raises(ImprovementError, match="in a few words"):
        service.submit_report(
            world.h02.id, march, tested="", learned="", barriers="", score=2, actor="x"
        )


def test_learning_session_agenda_material_attendance_and_calendar(db_session, world):
    cycle = world.cycles["this"]
    first = LearningSession(cycle_id=cycle.id, held_on=dt.date(2026, 3, 10), title="LS1")
    second = LearningSession(cycle_id=cycle.id, held_on=dt.date(2026, 7, 7), title="LS2")
    db_session.add_all([first, second])
    db_session.flush()
    service = SessionService(db_session, world.collaborative.id)
    service.add_agenda_item(
        first.id, title="What the best performers do", starts_at="09:30", actor="coordinator"
    )
    with pytest.raises(ImprovementError, match="HH:MM"):
        service.add_agenda_item(first.id, title="Lunch", starts_at="25:00", actor="coordinator")
    service.attach(first.id, MaterialKind.CHANGE_PACKAGE, actor="coordinator")
    with pytest.raises(ImprovementError, match="finished benchmark run"):
        service.attach(first.id, MaterialKind.BLINDED_SUMMARY, run_id=None, actor="coordinator")
    service.record_attendance(first.id, {world.h01.id: 3, world.h02.id: 0}, actor="coordinator")
    assert service.attendance(first.id) == {world.h01.id: 3}
    assert [i.title for i in service.agenda(first.id)] == ["What the best performers do"]
    assert [m.kind for m in service.materials(first.id)] == [MaterialKind.CHANGE_PACKAGE]
    entries = calendar(cycle, service.sessions(cycle))
    assert [(e.kind, e.starts_on, e.ends_on) for e in entries] == [
        ("session", dt.date(2026, 3, 10), dt.date(2026, 3, 10)),
        ("action period", dt.date(2026, 3, 11), dt.date(2026, 7, 6)),
        ("session", dt.date(2026, 7, 7), dt.date(2026, 7, 7)),
        ("action period", dt.date(2026, 7, 8), dt.date(2026, 12, 31)),
    ]
    assert entries[1].days == 118
