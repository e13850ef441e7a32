"""The PDSA API: the portal's checks, markers and scope, over JSON."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from qicollab.cycles.models import Annotation
from tests.cycles.world import api_client, issue_token


def _client(imp_app, db_session, world, name):
    return api_client(imp_app, issue_token(imp_app, db_session, world.users[name]))


def test_officer_records_reads_and_replaces_a_cycle(imp_app, db_session, world):
    officer = _client(imp_app, db_session, world, "officer")
    body = {
        "title": "Bedside hand-rub, ward 4",
        "own_change": "Hand-rub at every bed",
        "measures": ["HH"],
        "starts_on": "2026-04-06",
        "prediction": "Compliance above 80%",
    }
    created = officer.post_json("/api/pdsa", body, status=201).json
    assert (created["member"], created["stage"], created["measures"]) == (
        world.h01.code,
        "Plan",
        ["HH"],
    )
    listed = officer.get("/api/pdsa").json
    assert [c["id"] for c in listed["cycles"]] == [created["id"]]
    replaced = officer.put_json(
        f"/api/pdsa/{created['id']}",
        {**body, "decision": "adopt", "decided_on": "2026-05-04", "starts_phase": True},
    ).json
    assert (replaced["stage"], replaced["decision"]) == ("Act", "adopt")
    phases = db_session.scalars(
        sa.select(Annotation.occurred_on).where(Annotation.starts_phase.is_(True))
    ).all()
    db_session.commit()
    assert phases == [dt.date(2026, 5, 4)]


def test_scope_and_refusals(imp_app, db_session, world):
    officer = _client(imp_app, db_session, world, "officer")
    created = officer.post_json(
        "/api/pdsa", {"title": "Huddle", "own_change": "Huddle", "starts_on": "2026-04-06"}
    ).json
    other = _client(imp_app, db_session, world, "other_officer")
    assert other.get(f"/api/pdsa/{created['id']}", status=404).json["code"] == "not_found"
    other.put_json(
        f"/api/pdsa/{created['id']}",
        {"title": "x", "own_change": "y", "starts_on": "2026-04-06"},
        status=404,
    )
    assert other.get("/api/pdsa").json["cycles"] == []
    viewer = _client(imp_app, db_session, world, "viewer")
    assert viewer.get(f"/api/pdsa/{created['id']}").json["title"] == "Huddle"
    refused = viewer.post_json(
        "/api/pdsa", {"title": "x", "own_change": "y", "starts_on": "2026-04-06"}, status=403
    )
    assert "may read but not submit" in refused.json["message"]
    identifying = officer.post_json(
        "/api/pdsa",
        {"title": "x", "own_change": "y", "starts_on": "2026-04-06", "study": "MRN 123456789"},
        status=422,
    ).json
    assert identifying["errors"][0]["field"] == "study"
    unknown = officer.post_json(
        "/api/pdsa",
        {"title": "x", "own_change": "y", "starts_on": "2026-04-06", "measures": ["NOPE"]},
        status=422,
    ).json
    assert "NOPE" in unknown["message"]
    officer.post_json("/api/pdsa", {"title": "x"}, status=400)
    coordinator = _client(imp_app, db_session, world, "coordinator")
    listed = coordinator.get(f"/api/pdsa?member={world.h01.code}").json
    assert [c["title"] for c in listed["cycles"]] == ["Huddle"]


def test_delete_removes_the_cycle_and_its_markers_for_its_team_only(imp_app, db_session, world):
    officer = _client(imp_app, db_session, world, "officer")
    created = officer.post_json(
        "/api/pdsa",
        {"title": "Huddle", "own_change": "Huddle", "starts_on": "2026-04-06", "measures": ["HH"]},
        status=201,
    ).json
    path = f"/api/pdsa/{created['id']}"
    other = _client(imp_app, db_session, world, "other_officer")
    assert other.delete(path, status=404).json["code"] == "not_found"
    viewer = _client(imp_app, db_session, world, "viewer")
    viewer.delete(path, status=403)
    assert db_session.scalar(sa.select(sa.func.count(Annotation.id))) == 1
    db_session.commit()
    response = officer.delete(path, status=204)
    assert response.body == b""
    assert db_session.scalar(sa.select(sa.func.count(Annotation.id))) == 0
    db_session.commit()
    officer.get(path, status=404)
    officer.delete(path, status=404)
    again = officer.post_json(
        "/api/pdsa", {"title": "Huddle 2", "own_change": "Huddle", "starts_on": "2026-04-06"}
    ).json
    coordinator = _client(imp_app, db_session, world, "coordinator")
    coordinator.delete(f"/api/pdsa/{again['id']}", status=204)
    assert officer.get("/api/pdsa").json["cycles"] == []
