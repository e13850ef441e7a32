"""FHIR R4 MeasureReport import: good reports stored as versions, bad ones as OperationOutcome."""

from __future__ import annotations

import copy
import json

import pytest
import sqlalchemy as sa

from qicollab.api.fhir import MEASURE_POPULATION_SYSTEM, parse_measure_report
from qicollab.submissions.models import (
    AggregateValue,
    Submission,
    SubmissionBatch,
    SubmissionSource,
)

FHIR = "application/fhir+json"
URL = "/api/fhir/MeasureReport"


def report(**changes):
    """A valid summary MeasureReport of HH for H01, January 2026 (R4 JSON)."""
    document = {
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": "https://quality.example.org/fhir/Measure/HH|2026",
        "reporter": {"identifier": {"system": "urn:qicollab:member", "value": "H01"}},
        "date": "2026-02-03",
        "period": {"start": "2026-01-01", "end": "2026-01-31"},
        "group": [
            {
                "population": [
                    {
                        "code": {
                            "coding": [
                                {"system": MEASURE_POPULATION_SYSTEM, "code": "initial-population"}
                            ]
                        },
                        "count": 60,
                    },
                    {
                        "code": {
                            "coding": [{"system": MEASURE_POPULATION_SYSTEM, "code": "numerator"}]
                        },
                        "count": 45,
                    },
                    {
                        "code": {
                            "coding": [{"system": MEASURE_POPULATION_SYSTEM, "code": "denominator"}]
                        },
                        "count": 50,
                    },
                    {
                        "code": {
                            "coding": [
                                {
                                    "system": MEASURE_POPULATION_SYSTEM,
                                    "code": "denominator-exclusion",
                                }
                            ]
                        },
                        "count": 2,
                    },
                ]
            }
        ],
    }
    document.update(changes)
    return document


def post(client, document, *, status=None, query="", headers=None):
    return client.post(
        URL + query,
        json.dumps(document),
        headers={"Content-Type": FHIR, **(headers or {})},
        status=status,
        expect_errors=status is not None,
    )


def issues(response):
    assert response.content_type == FHIR
    body = response.json
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"]


def expressions(response):
    return [e for issue in issues(response) for e in issue.get("expression", [])]


def read(db_session, statement, method="scalar"):
    result = getattr(db_session, method)(statement)
    if method == "scalars":
        result = result.all()
    db_session.commit()
    return result


def test_a_good_report_is_stored_as_a_version(api, world, db_session):
    response = post(api("officer"), report())
    assert response.status_int == 201
    [info] = issues(response)
    assert info["severity"] == "information"
    assert "HH 2026-01: version 1 stored" in info["details"]["text"]
    value = read(db_session, sa.select(AggregateValue))
    assert (value.numerator, value.denominator, value.exclusions) == (45, 50, 2)
    assert read(db_session, sa.select(SubmissionBatch.source)) is SubmissionSource.FHIR
    again = post(api("officer"), report())
    assert again.status_int == 200
    assert "already current" in issues(again)[0]["details"]["text"]
    # Reporter as an Organization reference works too; a change needs a reason.
    changed = report(reporter={"reference": "Organization/H01"})
    changed["group"][0]["population"][1]["count"] = 44
    refused = post(api("officer"), changed, status=422)
    assert "reason" in issues(refused)[0]["details"]["text"]
    fixed = post(api("officer"), changed, query="?reason=late+cases+found")
    assert fixed.status_int == 201
    assert read(db_session, sa.select(sa.func.count()).select_from(Submission)) == 2


def test_dry_run_and_idempotency(api, world, db_session):
    client = api("officer")
    dry = post(client, report(), query="?dry_run=true")
    assert dry.status_int == 200
    assert "would be add" in issues(dry)[0]["details"]["text"]
    assert read(db_session, sa.select(sa.func.count()).select_from(Submission)) == 0
    headers = {"Idempotency-Key": "fhir-1"}
    first = post(client, report(), headers=headers)
    replay = post(client, report(), headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json == first.json
    different = report(period={"start": "2026-02-01", "end": "2026-02-28"})
    mismatch = post(client, different, headers=headers, status=422)
    assert issues(mismatch)[0]["code"] == "conflict"


def population(document, index):
    return document["group"][0]["population"][index]


def bad_reports():
    negative = report()
    population(negative, 2)["count"] = -1
    too_many = report()
    population(too_many, 1)["count"] = 51
    unknown_code = report()
    population(unknown_code, 3)["code"]["coding"][0]["code"] = "numerator-exclusion"
    no_denominator = report()
    del no_denominator["group"][0]["population"][2]
    duplicate = report()
    duplicate["group"][0]["population"].append(copy.deepcopy(population(duplicate, 1)))
    return [
        ("draft", report(status="pending"), ["MeasureReport.status"]),
        ("individual", report(type="individual"), ["MeasureReport.type"]),
        ("negative", negative, ["MeasureReport.group[0].population[2].count"]),
        ("numerator>denominator", too_many, ["MeasureReport.group[0].population[1].count"]),
        ("unknown population", unknown_code, ["MeasureReport.group[0].population[3].code"]),
        ("no denominator", no_denominator, ["MeasureReport.group[0].population"]),
        ("duplicate", duplicate, ["MeasureReport.group[0].population[4].code"]),
        (
            "unknown measure",
            report(measure="https://x.example/Measure/NOPE"),
            ["MeasureReport.measure"],
        ),
        ("bad canonical", report(measure="https://x.example/Measure/"), ["MeasureReport.measure"]),
        (
            "patient-level",
            report(measure="https://x.example/Measure/SURG"),
            ["MeasureReport.measure"],
        ),
        (
            "not a month",
            report(period={"start": "2026-01-01", "end": "2026-03-31"}),
            ["MeasureReport.period"],
        ),
        ("no reporter", report(reporter=None), ["MeasureReport.reporter"]),
        (
            "locked period",
            report(period={"start": "2025-03-01", "end": "2025-03-31"}),
            ["MeasureReport.period"],
        ),
        (
            "contained patient",
            report(contained=[{"resourceType": "Patient", "id": "p1"}]),
            ["MeasureReport.contained"],
        ),
        ("no groups", report(group=[]), ["MeasureReport.group"]),
    ]


@pytest.mark.parametrize(
    ("label", "document", "paths"), bad_reports(), ids=[b[0] for b in bad_reports()]
)
def test_bad_reports_name_the_element(api, world, db_session, label, document, paths):
    document = {k: v for k, v in document.items() if v is not None}
    response = post(api("officer"), document, status=422)
    assert expressions(response) == paths
    assert all(issue["severity"] == "error" for issue in issues(response))
    assert read(db_session, sa.select(sa.func.count()).select_from(Submission)) == 0


def test_locked_period_says_why(api, world):
    response = post(
        api("officer"), report(period={"start": "2025-03-01", "end": "2025-03-31"}), status=422
    )
    texts = " ".join(issue["details"]["text"] for issue in issues(response))
    assert "locked in learning cycle C2025" in texts
    assert {issue["code"] for issue in issues(response)} == {"business-rule"}


def test_malformed_structure_is_400_with_the_path(api, world):
    response = post(api("officer"), report(period={"start": "January"}), status=422)
    assert expressions(response) == ["MeasureReport.period.start"]
    wrong_type = post(api("officer"), {"resourceType": "Patient", "id": "x"}, status=400)
    assert expressions(wrong_type) == ["resourceType"]
    not_json = api("officer").post(URL, "{", headers={"Content-Type": FHIR}, expect_errors=True)
    assert not_json.status_int == 400
    assert not_json.content_type == FHIR


def test_reporter_must_be_the_callers_member(api, world, db_session):
    other = report(reporter={"identifier": {"system": "urn:qicollab:member", "value": "H02"}})
    response = post(api("officer"), other, status=403)
    [issue] = issues(response)
    assert issue["code"] == "forbidden"
    assert issue["expression"] == ["MeasureReport.reporter"]
    assert post(api("viewer"), report(), status=403)
    assert read(db_session, sa.select(sa.func.count()).select_from(Submission)) == 0
    # A coordinator imports for any member of the collaborative.
    assert post(api("coordinator"), other).status_int == 201


def test_no_token_is_an_operation_outcome(api, world):
    response = post(api(None), report(), status=401)
    assert issues(response)[0]["code"] == "login"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_mean_measures_read_the_measure_score():
    parsed = parse_measure_report(
        report(
            measure="https://x.example/Measure/D2P",
            group=[
                {
                    "measureScore": {"value": 27.5, "unit": "min"},
                    "population": [{"code": {"coding": [{"code": "denominator"}]}, "count": 140}],
                }
            ],
        )
    )
    assert parsed.row("2026-01", mean=True) == {
        "period": "2026-01",
        "value": 27.5,
        "denominator": 140,
    }


@pytest.mark.parametrize(
    ("changes", "element"),
    [
        (
            {"text": {"status": "generated", "div": "<div>John Smith, MRN 1234567</div>"}},
            "MeasureReport.text",
        ),
        ({"contained": [{"resourceType": "Patient", "id": "p1"}]}, "MeasureReport.contained"),
        ({"subject": {"reference": "Patient/123"}}, "MeasureReport.subject"),
        ({"evaluatedResource": [{"reference": "Encounter/9"}]}, "MeasureReport.evaluatedResource"),
        (
            {"reporter": {"display": "Ward clerk Mary Johnson", "reference": "Organization/H01"}},
            "MeasureReport.reporter.display",
        ),
    ],
)
def test_narrative_and_identifying_elements_are_refused_by_name(api, world, changes, element):
    response = post(api("officer"), report(**changes), status=422)
    outcome = response.json
    assert outcome["resourceType"] == "OperationOutcome"
    assert element in outcome["issue"][0]["expression"]
    assert element in outcome["issue"][0]["diagnostics"]
    for secret in ("John", "Smith", "1234567", "Mary", "Johnson"):
        assert secret not in response.text
