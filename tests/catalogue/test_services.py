"""Coordinators' catalogue services: peer groups from member attributes, measure definitions."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from qicollab.demo.generator import generate
from qicollab.demo.loader import load
from qicollab.measures.models import Measure
from qicollab.measures.services import MeasureDraft, MeasureError, MeasureService
from qicollab.members.models import Collaborative
from qicollab.members.services import MemberService, PeerGroupDraft, PeerGroupError


@pytest.fixture
def collaborative(db_session, tmp_path):
    load(db_session, generate(n_members=12), storage=tmp_path)
    db_session.commit()
    return db_session.scalar(sa.select(Collaborative))


def test_peer_group_from_criteria_and_hand_picked_members(db_session, collaborative):
    service = MemberService(db_session, collaborative.id)
    rural = [m for m in service.members() if m.rurality.value == "rural"]
    urban_code = next(m.code for m in service.members() if m.rurality.value == "urban")
    group = service.save_peer_group(
        PeerGroupDraft(
            code="rural-plus",
            name="Rural and one partner",
            description="",
            criteria={"rurality": ["rural"]},
            extra_member_codes=(urban_code,),
        )
    )
    db_session.commit()
    assert group.code == "RURAL-PLUS"
    assert {m.code for m in group.members} == {m.code for m in rural} | {urban_code}


@pytest.mark.parametrize(
    ("draft", "message"),
    [
        (PeerGroupDraft("", "x", "", {"rurality": ["rural"]}), "code"),
        (PeerGroupDraft("G1", "", "", {"rurality": ["rural"]}), "name"),
        (PeerGroupDraft("G1", "x", "", {"shoe_size": ["9"]}), "shoe_size"),
        (PeerGroupDraft("G1", "x", "", {"rurality": ["lunar"]}), "lunar"),
        (PeerGroupDraft("G1", "x", "", {}, ("H99",)), "H99"),
        (PeerGroupDraft("TEACH", "x", "", {"rurality": ["rural"]}), "exists"),
        (PeerGroupDraft("G1", "x", "", {}, ("H01",)), "two members"),
    ],
)
def test_bad_peer_groups_are_refused_with_the_reason(db_session, collaborative, draft, message):
    with pytest.raises(PeerGroupError, match=message):
        MemberService(db_session, collaborative.id).save_peer_group(draft)


def _draft(**changes):
    base = {
        "code": "vte",
        "title": "VTE prophylaxis",
        "measure_type": "proportion",
        "level": "aggregate",
        "direction": "increase",
        "numerator_definition": "Patients given prophylaxis",
        "denominator_definition": "Patients at risk",
        "unit": "%",
        "multiplier": 100.0,
        "target": 0.95,
    }
    return MeasureDraft(**{**base, **changes})


def test_measure_is_created_and_found_by_code(db_session, collaborative):
    service = MeasureService(db_session, collaborative.id)
    service.save(_draft())
    db_session.commit()
    measure = service.by_code("VTE")
    assert measure is not None
    assert measure.risk_model is None
    assert "VTE" in [m.code for m in service.measures()]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"code": "HH"}, "code"),
        ({"title": " "}, "title"),
        ({"measure_type": "vibes"}, "type"),
        ({"multiplier": 0.0}, "multiplier"),
        ({"target": 95.0}, "target"),
        ({"chart_override": "zz"}, "chart_override"),
        ({"level": "patient"}, "risk_model"),
        ({"risk_model": {"outcome": "y", "family": "binomial"}}, "risk_model"),
        ({"level": "patient", "risk_model": {"outcome": "y", "family": "nope"}}, "risk_model"),
    ],
)
def test_bad_measures_name_the_field(db_session, collaborative, changes, field):
    with pytest.raises(MeasureError) as raised:
        MeasureService(db_session, collaborative.id).save(_draft(**changes))
    assert raised.value.field == field


def test_patient_level_measure_keeps_a_validated_risk_model(db_session, collaborative):
    spec = {
        "outcome": "died",
        "family": "binomial",
        "covariates": [
            {
                "name": "age_band",
                "type": "categorical",
                "levels": ["<65", "65+"],
                "reference": "<65",
            },
            {"name": "emergency", "type": "binary"},
        ],
    }
    measure = MeasureService(db_session, collaborative.id).save(
        _draft(
            code="MORT",
            level="patient",
            measure_type="ratio",
            direction="decrease",
            target=None,
            risk_model=spec,
        )
    )
    db_session.commit()
    stored = db_session.get(Measure, measure.id)
    assert stored.risk_model["covariates"][0]["reference"] == "<65"
