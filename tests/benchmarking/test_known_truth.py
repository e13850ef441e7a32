"""A run on the 40-member demo recovers the truth the generator saved (truth.json).

The generator gives every member a true effect per measure (u ~ N(0, sigma), the "in-control"
spread), three larger members a large shift (two "worse", one "better"), and six members an
improvement step in mid-2024 on the aggregate measures. What a run should recover:

* **True outliers** get the matching status at the warning (95%) limit or beyond: we ask for
  at least 90% of the 24 (8 measures x 3), and never the opposite direction. (Measured: 24/24.)
* **In-control members** are rarely flagged at the alarm (99.8%, overdispersion-adjusted)
  limit. Their true effects are real, so a member two or more sigma out in the in-control
  distribution can legitimately cross the alarm limit of a large member; we allow at most two
  per measure and eight in all (3% of ~270), and require every such flag to belong to a member
  whose true effect is at least 1.5 sigma out, on the flagged side. (Measured: 5, all >= 2.1
  sigma.) Improvers are left out for the aggregate measures, whose cycle averages include their
  real improvement.
* **O/E intervals** (patient level) cover the true O/E. The run's model is fitted on the pooled
  collaborative, so its O/E is relative to the collaborative average, while truth.true_oe is
  relative to the generator's baseline (u = 0); the outliers move the average by ~9% for
  mortality and readmission. We compare with true_oe / R, R = sum(true_oe_j E_j) / sum(E_j),
  the collaborative's own true O/E. Coverage per measure is Binomial(40, ~0.95): its 1st
  percentile is 35, so we ask for >= 35/40 per measure and 90-100% pooled over 120 intervals.
  (Measured: 39, 40, 38.) At 99.8% we ask for >= 38/40.
* **Coefficients** are close to truth.coefficients: every non-intercept term within 4 standard
  errors and 0.25 on the link scale (the intercept absorbs the average member effect).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from qicollab.benchmarking.models import MemberResult, RiskModelFitRecord
from qicollab.benchmarking.payloads import MemberPayload
from qicollab.benchmarking.services import BenchmarkRunService
from qicollab.db import create_engine_from_settings, get_session_factory
from qicollab.demo.loader import HISTORY_CYCLE
from qicollab.measures.models import Measure
from qicollab.members.models import Member

PATIENT = ("SURG-MORT", "READMIT", "LOS")
AGGREGATE = ("HH", "SEPSIS", "CLABSI", "FALLS", "D2P")


def _oe_ci(row: MemberResult, level: str) -> tuple[float, float]:
    low, high = MemberPayload.from_json(row.payload).oe_ci[level]
    assert low is not None
    assert high is not None
    return low, high


@pytest.fixture(scope="module")
def outcome(full_demo_shared):
    """One run per backend, shared by the checks below (they only read it)."""
    engine = create_engine_from_settings(full_demo_shared.settings)
    factory = get_session_factory(engine)
    service = BenchmarkRunService(factory)
    run = service.execute(service.create(cycle_code=HISTORY_CYCLE).id)
    with factory() as session:
        members = dict(session.execute(sa.select(Member.id, Member.code)).all())
        measures = dict(session.execute(sa.select(Measure.id, Measure.code)).all())
        rows = session.scalars(
            sa.select(MemberResult).where(
                MemberResult.run_id == run.id, MemberResult.period_id.is_(None)
            )
        ).all()
        fits = session.scalars(
            sa.select(RiskModelFitRecord).where(RiskModelFitRecord.run_id == run.id)
        ).all()
    engine.dispose()
    results = {(measures[r.measure_id], members[r.member_id]): r for r in rows}
    return full_demo_shared.truth, results, {measures[f.measure_id]: f for f in fits}


def test_true_outliers_are_flagged_in_their_direction(outcome):
    truth, results, _ = outcome
    hits, total = [], 0
    for measure, outliers in truth["outliers"].items():
        for member, label in outliers.items():
            total += 1
            warning = MemberPayload.from_json(results[(measure, member)].payload).status.warning
            opposite = "better" if label == "worse" else "worse"
            assert warning != opposite, (measure, member, label)
            if warning == label:
                hits.append((measure, member))
    assert total == 24
    assert len(hits) >= 0.9 * total, hits


def test_in_control_members_rarely_alarm(outcome):
    truth, results, _ = outcome
    improvers = set(truth["improvers"])
    flagged = []
    for (measure, member), row in results.items():
        if member in truth["outliers"][measure]:
            continue
        if measure in AGGREGATE and member in improvers:
            continue
        if row.outlier_status in {"worse", "better"}:
            flagged.append((measure, member, row.outlier_status))
    assert len(flagged) <= 8, flagged
    for measure in truth["outliers"]:
        assert sum(1 for m, _, _ in flagged if m == measure) <= 2, flagged
    for measure, member, status in flagged:
        z = truth["effects"][measure][member] / truth["sigmas"][measure]
        # Worse means higher for "decrease" measures; the effect is on the outcome's scale.
        decrease = measure not in {"HH", "SEPSIS"}
        higher = (status == "worse") == decrease
        assert abs(z) >= 1.5, (measure, member, z)
        assert (z > 0) == higher, (measure, member, z, status)


def test_oe_intervals_cover_the_true_oe(outcome):
    truth, results, _ = outcome
    pooled = 0
    for measure in PATIENT:
        pairs = [(results[(measure, m)], value) for m, value in truth["true_oe"][measure].items()]
        reference = sum(v * r.expected for r, v in pairs) / sum(r.expected for r, v in pairs)
        cover95 = sum(_oe_ci(r, "95")[0] <= v / reference <= _oe_ci(r, "95")[1] for r, v in pairs)
        cover998 = sum(
            _oe_ci(r, "99.8")[0] <= v / reference <= _oe_ci(r, "99.8")[1] for r, v in pairs
        )
        assert len(pairs) == 40
        assert cover95 >= 35, (measure, cover95)
        assert cover998 >= 38, (measure, cover998)
        pooled += cover95
    assert 0.90 <= pooled / 120 <= 1.0


def test_fitted_coefficients_are_close_to_the_truth(outcome):
    truth, _, fits = outcome
    assert set(fits) == set(PATIENT)
    for measure, fit in fits.items():
        true = truth["coefficients"][measure]
        terms = {c["term"]: c for c in fit.coefficients}
        assert set(terms) == set(true), measure
        for term, value in true.items():
            if term == "intercept":
                continue
            estimate, se = terms[term]["estimate"], terms[term]["std_error"]
            assert abs(estimate - value) <= 4 * se, (measure, term, estimate, value, se)
            assert abs(estimate - value) <= 0.25, (measure, term, estimate, value)
    assert fits["SURG-MORT"].diagnostics["c_statistic"] > 0.75
