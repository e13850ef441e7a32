"""Properties of the API under arbitrary input and under concurrent retries.

Response validation is on, so "never a 500" here also means "every answer matches the
document": a response that drifted from ``openapi.yaml`` would be turned into a 500.
"""

from __future__ import annotations

import threading

import hypothesis.strategies as st
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings

from qicollab.submissions.models import Submission, SubmissionBatch
from tests.cycles.world import api_client, issue_token

CELLS = st.one_of(
    st.none(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["45", "0", "-1", "1e3", "=1+1", "555-867-5309", "2026-01-15", "NaN"]),
)
PERIODS = st.one_of(
    st.sampled_from(["2026-01", "2026-02", "2025-03", "2027-01", "2026-13", "1999-01"]),
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}\Z"),
)
ROW = st.fixed_dictionaries(
    {"period": PERIODS},
    optional={"numerator": CELLS, "denominator": CELLS, "exclusions": CELLS, "comment": CELLS},
)
BODY = st.fixed_dictionaries(
    {"measure": st.sampled_from(["HH", "CLABSI", "D2P", "SURG", "NOPE"])},
    optional={
        "rows": st.lists(ROW, max_size=4),
        "member": st.sampled_from(["H01", "H02", "", "x" * 40]),
        "reason": st.one_of(st.none(), st.text(max_size=30)),
        "draft": st.booleans(),
    },
)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=BODY, dry_run=st.booleans())
def test_any_body_gets_a_documented_answer(api, world, body, dry_run):
    path = "/api/submissions/aggregate" + ("?dry_run=true" if dry_run else "")
    response = api("officer").post_json(path, body, expect_errors=True)
    assert response.status_int in {200, 201, 400, 403, 404, 413, 422}, response.text
    assert response.content_type == "application/json"


def test_concurrent_retries_store_once(wf_app, world, db_session):
    """Five copies of one request with one Idempotency-Key, at once: one batch, same answer."""
    token = issue_token(wf_app, db_session, world.users["officer"])
    body = {"measure": "HH", "rows": [{"period": "2026-04", "numerator": 4, "denominator": 5}]}
    headers = {"Idempotency-Key": "nightly-export-2026-04"}
    start = threading.Barrier(5)
    answers = []

    def send():
        client = api_client(wf_app, token)
        start.wait()
        response = client.post_json("/api/submissions/aggregate", body, headers=headers)
        answers.append((response.status_int, response.json))

    threads = [threading.Thread(target=send) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 5
    assert {status for status, _ in answers} == {201}
    assert all(body == answers[0][1] for _, body in answers)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(SubmissionBatch)) == 1
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Submission)) == 1
    db_session.commit()
