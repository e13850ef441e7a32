"""The annotations service: notes on a member's charts, some of which start a phase."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from qicollab.audit.models import AuditEvent
from qicollab.cycles.annotations import AnnotationError, AnnotationService
from qicollab.cycles.models import Annotation, AnnotationKind
from qicollab.db import get_session_factory
from qicollab.measures.models import Measure
from qicollab.members.models import Collaborative, Member


@pytest.fixture
def world(small_engine):
    session = get_session_factory(small_engine)()
    collaborative = session.scalar(sa.select(Collaborative))
    member = session.scalar(sa.select(Member).order_by(Member.id))
    other = session.scalar(sa.select(Member).order_by(Member.id.desc()))
    measure = session.scalar(sa.select(Measure).where(Measure.code == "SEPSIS"))
    yield session, AnnotationService(session, collaborative.id), member, other, measure
    session.rollback()
    session.close()


def test_create_list_and_phase_starts(world):
    session, service, member, other, measure = world
    before = len(service.list(member_id=member.id, measure_id=measure.id))
    note = service.create(
        member_id=member.id,
        measure_id=measure.id,
        kind="pdsa",
        occurred_on=dt.date(2025, 3, 14),
        label="PDSA 3: nurse-led screening",
        starts_phase=True,
        actor="coordinator@example.test",
    )
    general = service.create(
        member_id=None,
        measure_id=measure.id,
        kind=AnnotationKind.DATA_ISSUE,
        occurred_on=dt.date(2024, 1, 1),
        label="Definition updated (SEP-1 v5.15)",
    )
    listed = service.list(member_id=member.id, measure_id=measure.id)
    assert len(listed) == before + 2
    assert listed == sorted(listed, key=lambda n: (n.occurred_on, n.id))
    assert general in service.list(member_id=other.id, measure_id=measure.id)
    assert note not in service.list(member_id=other.id, measure_id=measure.id)
    assert dt.date(2025, 3, 14) in service.phase_starts(member.id, measure.id)
    assert dt.date(2024, 1, 1) not in service.phase_starts(member.id, measure.id)
    audit = session.scalar(
        sa.select(AuditEvent).where(
            AuditEvent.action == "annotation.created", AuditEvent.object_id == str(note.id)
        )
    )
    assert audit.details["starts_phase"] is True
    assert session.get(Annotation, note.id).kind is AnnotationKind.PDSA


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"label": " "}, "short label"),
        ({"label": "x" * 81}, "longer than"),
        ({"kind": "gossip"}, "unknown annotation kind"),
        ({"member_id": 10**9}, "unknown member"),
        ({"measure_id": 10**9}, "unknown measure"),
        ({"member_id": None, "starts_phase": True}, "must name the member"),
        ({"occurred_on": dt.datetime(2025, 1, 1, tzinfo=dt.UTC)}, "calendar date"),
    ],
)
def test_invalid_notes_are_refused(world, changes, message):
    _, service, member, _, measure = world
    arguments = {
        "member_id": member.id,
        "measure_id": measure.id,
        "kind": "change",
        "occurred_on": dt.date(2025, 1, 1),
        "label": "A change",
        "starts_phase": False,
    } | changes
    with pytest.raises(AnnotationError, match=message):
        service.create(**arguments)
