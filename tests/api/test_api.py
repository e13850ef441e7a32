"""The JSON API as a member's system uses it: document, auth, submit, dry run, idempotency."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
import yaml

from qicollab.api import views as api_views
from qicollab.audit.models import AuditEvent
from qicollab.submissions.models import (
    IdempotencyKey,
    Submission,
    SubmissionBatch,
    SubmissionSource,
    SubmissionStatus,
)
from tests.cycles.world import NOW, api_client


def read(db_session, statement, method="scalar"):
    result = getattr(db_session, method)(statement)
    if method == "scalars":
        result = result.all()
    db_session.commit()
    return result


def count(db_session, model) -> int:
    return read(db_session, sa.select(sa.func.count()).select_from(model))


HH_ROWS = [
    {"period": "2026-01", "numerator": 45, "denominator": 50},
    {"period": "2026-02", "numerator": "40", "denominator": "50", "comment": "new audit tool"},
]


def surg_rows(n=3, year=2026):
    return [
        {
            "case_key": f"K{i:04d}",
            "event_year": year,
            "event_month": i % 12 + 1,
            "age_band": "65-74",
            "sex": "FM"[i % 2],
            "emergency": i % 2,
            "died_30d": int(i == 0),
        }
        for i in range(n)
    ]


# --- the document and the rest of the app -------------------------------------------------------


def test_openapi_document_is_served_as_json_and_yaml(api, world):
    anonymous = api(None)
    as_json = anonymous.get("/api/openapi.json")
    assert as_json.content_type == "application/json"
    as_yaml = anonymous.get("/api/openapi.yaml")
    assert yaml.safe_load(as_yaml.body) == as_json.json
    assert as_json.json["openapi"] == "3.1.0"
    assert "/api/fhir/MeasureReport" in as_json.json["paths"]
    assert as_json.json["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_portal_pages_are_not_validated_by_the_api(api, as_user, world):
    page = as_user("viewer").get(f"/members/{world.h01.id}/completeness")
    assert page.content_type == "text/html"
    assert api(None).get("/health").json["status"] == "ok"
    # A portal 404 is still the HTML page; an API 404 is JSON.
    assert api(None).get("/no-such-page", expect_errors=True).content_type == "text/html"
    missing = api("officer").get("/api/nothing-here", expect_errors=True)
    assert missing.status_int == 404
    assert missing.json["code"] == "not_found"


# --- authentication ----------------------------------------------------------------------------


def test_me_and_missing_or_bad_tokens(api, wf_app, world):
    me = api("officer").get("/api/me")
    assert me.json == {"email": "officer@wf.example", "role": "quality_officer", "member": "H01"}
    assert api("coordinator").get("/api/me").json["member"] is None
    for client in (api(None), api_client(wf_app, "not-a-token")):
        response = client.get("/api/me", expect_errors=True)
        assert response.status_int == 401
        assert response.json["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_portal_session_cannot_use_the_api(as_user, world):
    """Bearer tokens only: a browser's session cookie does not reach the API (no CSRF hole)."""
    response = as_user("officer").get("/api/me", expect_errors=True)
    assert response.status_int == 401
    assert response.json["code"] == "unauthorized"


# --- catalogue ---------------------------------------------------------------------------------


def test_measures_with_open_periods(api, world):
    body = api("officer").get("/api/measures").json
    assert body["member"] == "H01"
    by_code = {m["code"]: m for m in body["measures"]}
    assert by_code["HH"]["open_periods"] == [f"2026-{m:02d}" for m in range(1, 13)]
    assert by_code["SURG"]["open_periods"] == ["2026"]
    assert by_code["D2P"]["open_periods"] == []  # not collected by the open cycle


def test_measure_definition_follows_the_member(api, world):
    hh = api("officer").get("/api/measures/HH").json
    assert [c["name"] for c in hh["columns"]] == [
        "period",
        "numerator",
        "denominator",
        "exclusions",
        "comment",
    ]
    assert hh["endpoint"] == "/api/submissions/aggregate"
    surg = api("officer").get("/api/measures/SURG").json
    assert surg["allows_month"] is True
    assert "event_month" in [c["name"] for c in surg["columns"]]
    other = api("other_officer").get("/api/measures/SURG").json
    assert other["allows_month"] is False  # no data use agreement
    assert "event_month" not in [c["name"] for c in other["columns"]]
    assert api("officer").get("/api/measures/NOPE", expect_errors=True).status_int == 404


def test_periods_with_window_reasons(api, world):
    periods = api("officer").get("/api/measures/HH/periods").json["periods"]
    states = {p["period"]: p["state"] for p in periods}
    assert states["2025-03"] == "locked"
    assert states["2026-03"] == "open"
    assert states["2027-03"] == "not-yet-open"
    locked = next(p for p in periods if p["period"] == "2025-03")
    assert "locked in learning cycle C2025" in locked["reason"]
    open_only = api("officer").get("/api/measures/HH/periods", {"open": "true"}).json
    assert {p["period"] for p in open_only["periods"]} == {f"2026-{m:02d}" for m in range(1, 13)}


# --- submitting --------------------------------------------------------------------------------


def test_dry_run_stores_nothing(api, world, db_session):
    response = api("officer").post_json(
        "/api/submissions/aggregate?dry_run=true", {"measure": "HH", "rows": HH_ROWS}
    )
    assert response.status_int == 200
    body = response.json
    assert body["dry_run"] is True
    assert body["ok"] is True
    assert body["stored"] is False
    assert [(p["period"], p["action"]) for p in body["periods"]] == [
        ("2026-01", "add"),
        ("2026-02", "add"),
    ]
    assert count(db_session, Submission) == 0
    bad = api("officer").post_json(
        "/api/submissions/aggregate?dry_run=true",
        {"measure": "HH", "rows": [{"period": "2026-03", "numerator": 9, "denominator": 5}]},
    )
    assert bad.json["ok"] is False
    problem = bad.json["problems"][0]
    assert (problem["row"], problem["column"], problem["rule"]) == (
        1,
        "numerator",
        "numerator_exceeds_denominator",
    )
    assert count(db_session, Submission) == 0


def test_submit_versions_duplicates_and_corrections(api, world, db_session):
    client = api("officer")
    created = client.post_json("/api/submissions/aggregate", {"measure": "HH", "rows": HH_ROWS})
    assert created.status_int == 201
    assert created.json["stored"] is True
    assert [(p["period"], p["version"], p["status"]) for p in created.json["periods"]] == [
        ("2026-01", 1, "submitted"),
        ("2026-02", 1, "submitted"),
    ]
    batch = read(db_session, sa.select(SubmissionBatch))
    assert batch.source is SubmissionSource.API
    again = client.post_json("/api/submissions/aggregate", {"measure": "HH", "rows": HH_ROWS})
    assert again.status_int == 200
    assert again.json["duplicate"] is True
    assert count(db_session, Submission) == 2

    corrected = [{"period": "2026-01", "numerator": 44, "denominator": 50}]
    refused = client.post_json(
        "/api/submissions/aggregate", {"measure": "HH", "rows": corrected}, status=422
    )
    assert refused.json["code"] == "reason_required"
    fixed = client.post_json(
        "/api/submissions/aggregate",
        {"measure": "HH", "rows": corrected, "reason": "one sheet was counted twice"},
    )
    period = fixed.json["periods"][0]
    assert (period["action"], period["version"]) == ("replace", 2)
    versions = client.get("/api/submissions", {"measure": "HH", "period": "2026-01"}).json
    assert [(v["version"], v["status"], v["reason"]) for v in versions["versions"]] == [
        (2, "submitted", "one sheet was counted twice"),
        (1, "superseded", None),
    ]
    one = client.get(f"/api/submissions/{period['submission_id']}").json
    assert one["values"]["numerator"] == 44
    assert one["predecessor_id"] == versions["versions"][1]["id"]
    statuses = client.get("/api/submissions", {"status": "superseded"}).json["versions"]
    assert [v["period"] for v in statuses] == ["2026-01"]


def test_review_status_is_visible_to_the_client(api, world, db_session):
    from qicollab.cycles.services import CycleService

    api("officer").post_json("/api/submissions/aggregate", {"measure": "HH", "rows": HH_ROWS[:1]})
    submission = read(db_session, sa.select(Submission))
    CycleService(db_session, world.collaborative.id, clock=lambda: NOW).review(
        submission, "return", reason="the denominator looks low", actor=world.users["coordinator"]
    )
    db_session.commit()
    version = api("officer").get(f"/api/submissions/{submission.id}").json
    assert version["status"] == "returned"
    assert version["review_reason"] == "the denominator looks low"


def test_window_closed_says_why(api, world, db_session):
    response = api("officer").post_json(
        "/api/submissions/aggregate",
        {"measure": "HH", "rows": [{"period": "2025-03", "numerator": 1, "denominator": 2}]},
        status=422,
    )
    assert response.json["code"] == "window_closed"
    assert "locked in learning cycle C2025" in response.json["windows"]["2025-03"]
    assert count(db_session, Submission) == 0


def test_phi_is_refused_masked_and_audited(api, world, db_session):
    response = api("officer").post_json(
        "/api/submissions/aggregate",
        {
            "measure": "HH",
            "rows": [
                {"period": "2026-01", "numerator": 1, "denominator": 2, "comment": "555-867-5309"}
            ],
        },
        status=422,
    )
    assert response.json["code"] == "phi_refused"
    assert "555" not in response.text
    assert count(db_session, Submission) == 0
    event = read(db_session, sa.select(AuditEvent).where(AuditEvent.action == "submission.refused"))
    assert event.details["source"] == "api"
    assert "555" not in json.dumps(event.details)


def test_identifiers_and_other_errors_are_refused_in_one_answer(api, world, db_session):
    response = api("officer").post_json(
        "/api/submissions/aggregate?dry_run=true",
        {
            "measure": "HH",
            "rows": [
                {"period": "2026-01", "numerator": 1, "denominator": 2, "comment": "555-867-5309"},
                {"period": "2026-02", "numerator": 9, "denominator": 2},
            ],
        },
        status=422,
    )
    assert response.json["code"] == "phi_refused"
    problems = {(p["row"], p["column"], p["rule"]) for p in response.json["problems"]}
    assert (1, "comment", "phi_phone") in problems
    assert (2, "numerator", "numerator_exceeds_denominator") in problems
    assert "555" not in response.text
    assert count(db_session, Submission) == 0


def test_patient_rows(api, world, db_session):
    client = api("officer")
    response = client.post_json(
        "/api/submissions/patient", {"measure": "SURG", "rows": surg_rows()}
    )
    assert response.status_int == 201
    assert response.json["periods"][0]["rows"] == 3
    wrong = client.post_json(
        "/api/submissions/aggregate",
        {"measure": "SURG", "rows": [{"period": "2026-01"}]},
        status=422,
    )
    assert wrong.json["code"] == "wrong_endpoint"
    assert "/api/submissions/patient" in wrong.json["message"]
    extra = surg_rows(1)
    extra[0]["patient_name"] = "x"
    refused = client.post_json(
        "/api/submissions/patient", {"measure": "SURG", "rows": extra}, status=422
    )
    assert refused.json["code"] in {"phi_refused", "invalid"}


def test_request_validation(api, world):
    client = api("officer")
    missing = client.post_json("/api/submissions/aggregate", {"measure": "HH"}, status=400)
    assert missing.json["code"] == "bad_request"
    assert missing.json["errors"]
    unknown = client.post_json(
        "/api/submissions/aggregate",
        {"measure": "HH", "rows": [{"period": "2026-01", "numerator": 1, "ssn": "x"}]},
        status=400,
    )
    assert unknown.json["code"] == "bad_request"
    bad_period = client.post_json(
        "/api/submissions/aggregate",
        {"measure": "HH", "rows": [{"period": "Jan 2026", "numerator": 1}]},
        status=400,
    )
    assert any("period" in (e.get("field") or e["message"]) for e in bad_period.json["errors"])
    assert client.get("/api/submissions/abc", expect_errors=True).status_int in {400, 404}


def test_an_invalid_response_is_caught(api, world, monkeypatch):
    api("officer").post_json("/api/submissions/aggregate", {"measure": "HH", "rows": HH_ROWS})

    def broken(*args, **kwargs):
        return {"id": "not a number", "surprise": True}

    monkeypatch.setattr(api_views, "_version_json", broken)
    response = api("officer").get("/api/submissions", expect_errors=True)
    assert response.status_int == 500
    assert response.json["code"] == "server_error"
    assert "surprise" not in response.text


# --- idempotency -------------------------------------------------------------------------------


def test_idempotency_key(api, world, db_session):
    client = api("officer")
    headers = {"Idempotency-Key": "batch-2026-01-run-1"}
    body = {"measure": "HH", "rows": HH_ROWS}
    first = client.post_json("/api/submissions/aggregate", body, headers=headers)
    assert first.status_int == 201
    assert "Idempotent-Replayed" not in first.headers
    replay = client.post_json("/api/submissions/aggregate", body, headers=headers)
    assert replay.status_int == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json == first.json
    assert count(db_session, Submission) == 2
    assert count(db_session, SubmissionBatch) == 1
    other = {"measure": "HH", "rows": HH_ROWS[:1]}
    mismatch = client.post_json("/api/submissions/aggregate", other, headers=headers, status=422)
    assert mismatch.json["code"] == "idempotency_key_reused"
    # Another user's identical key is another key.
    theirs = api("other_officer").post_json(
        "/api/submissions/aggregate",
        {"measure": "HH", "rows": HH_ROWS[:1]},
        headers=headers,
    )
    assert theirs.status_int == 201
    assert count(db_session, IdempotencyKey) == 2


def test_a_refused_request_does_not_burn_its_key(api, world, db_session):
    client = api("officer")
    headers = {"Idempotency-Key": "k-1"}
    bad = {"measure": "HH", "rows": [{"period": "2026-01", "numerator": 9, "denominator": 5}]}
    client.post_json("/api/submissions/aggregate", bad, headers=headers, status=422)
    assert count(db_session, IdempotencyKey) == 0
    good = {"measure": "HH", "rows": [{"period": "2026-01", "numerator": 4, "denominator": 5}]}
    assert client.post_json("/api/submissions/aggregate", good, headers=headers).status_int == 201


# --- member scoping ----------------------------------------------------------------------------


def test_cross_member_access_is_denied(api, world, db_session):
    theirs = api("other_officer").post_json(
        "/api/submissions/aggregate", {"measure": "HH", "rows": HH_ROWS[:1]}
    )
    their_id = theirs.json["periods"][0]["submission_id"]
    officer = api("officer")
    for member in ("H02", "NOPE"):
        response = officer.post_json(
            "/api/submissions/aggregate",
            {"measure": "HH", "member": member, "rows": HH_ROWS[:1]},
            status=403,
        )
        assert response.json["code"] == "forbidden"
        assert officer.get("/api/measures", {"member": member}, status=403)
        assert officer.get("/api/submissions", {"member": member}, status=403)
    assert officer.get(f"/api/submissions/{their_id}", status=404)
    assert api("viewer").get(f"/api/submissions/{their_id}", status=404)
    assert read(db_session, sa.select(Submission.member_id)) == world.h02.id
    viewer = api("viewer").post_json(
        "/api/submissions/aggregate", {"measure": "HH", "rows": HH_ROWS[:1]}, status=403
    )
    assert viewer.json["message"] == "this token may read but not submit"
    assert api("viewer").get("/api/submissions").json["versions"] == []


def test_coordinators_name_the_member(api, world, db_session):
    coordinator = api("coordinator")
    needs = coordinator.post_json(
        "/api/submissions/aggregate", {"measure": "HH", "rows": HH_ROWS[:1]}, status=422
    )
    assert needs.json["code"] == "member_required"
    done = coordinator.post_json(
        "/api/submissions/aggregate", {"measure": "HH", "member": "H02", "rows": HH_ROWS[:1]}
    )
    assert done.status_int == 201
    assert coordinator.get("/api/measures", {"member": "NOPE"}, status=404)
    submission = read(db_session, sa.select(Submission))
    assert submission.status is SubmissionStatus.SUBMITTED
    assert submission.submitted_by_id == world.users["coordinator"].id


@pytest.mark.parametrize(
    "path", ["/api/me", "/api/measures", "/api/measures/HH", "/api/submissions"]
)
def test_every_endpoint_needs_a_token(api, world, path):
    assert api(None).get(path, status=401).json["code"] == "unauthorized"
