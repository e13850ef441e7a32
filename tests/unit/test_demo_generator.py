"""The demo generator is deterministic and its saved truth is what generated the data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from qicollab.demo.generator import CHANGE_DATE, generate, linear_predictor


@pytest.fixture(scope="module")
def demo():
    return generate()


def test_same_seed_same_collaborative(demo):
    again = generate()
    pd.testing.assert_frame_equal(demo.aggregate, again.aggregate)
    pd.testing.assert_frame_equal(demo.patients, again.patients)
    assert demo.truth == again.truth
    other = generate(seed=7)
    assert not other.aggregate.equals(demo.aggregate)


def test_shape_of_the_collaborative(demo):
    assert len(demo.members) == 40
    assert len(demo.months) == 36
    assert len({m.org_type for m in demo.members}) >= 2
    levels = {m.level for m in demo.measures}
    assert levels == {"aggregate", "patient"}
    assert len(demo.measures) >= 8
    # Some members are small enough that counts fall below the cell-size threshold (11).
    sepsis = demo.aggregate[demo.aggregate.measure == "SEPSIS"]
    assert (sepsis.denominator.between(1, 10)).mean() > 0.1
    # Missing months are absent rows, never zeros.
    assert len(demo.missing) == 25


def test_outliers_are_large_shifts(demo):
    for code, outliers in demo.truth.outliers.items():
        sigma = demo.truth.sigmas[code]
        for member in outliers:
            assert abs(demo.truth.effects[code][member]) > 1.5 * sigma


def test_improvers_improve_after_the_change_date(demo):
    hh = demo.aggregate[demo.aggregate.measure == "HH"].copy()
    hh["after"] = hh.period >= CHANGE_DATE
    hh["improver"] = hh.member.isin(demo.truth.improvers)
    rates = hh.groupby(["improver", "after"]).apply(
        lambda g: g.numerator.sum() / g.denominator.sum(), include_groups=False
    )
    improver_gain = rates[(True, True)] - rates[(True, False)]
    others_gain = rates[(False, True)] - rates[(False, False)]
    assert improver_gain > 0.05
    assert abs(others_gain) < 0.02


def test_patient_outcomes_follow_the_saved_coefficients(demo):
    """A logistic fit with member offsets recovers the generating coefficients."""
    rows = demo.patients[demo.patients.measure == "SURG-MORT"]
    truth = demo.truth.coefficients["SURG-MORT"]
    offset = rows.member.map(demo.truth.effects["SURG-MORT"]).to_numpy()
    terms = [t for t in truth if t != "intercept"]
    design = np.column_stack(
        [np.ones(len(rows))] + [linear_predictor(rows, {t: 1.0}) for t in terms]
    )
    fit = sm.GLM(
        rows.outcome.to_numpy(), design, family=sm.families.Binomial(), offset=offset
    ).fit()
    estimates = dict(zip(["intercept", *terms], fit.params, strict=True))
    for term in ("age_band[75-84]", "asa_class[4]", "emergency", "chf"):
        se = fit.bse[["intercept", *terms].index(term)]
        assert abs(estimates[term] - truth[term]) < 3.5 * se, term


def test_true_oe_reflects_the_member_effect(demo):
    oe = demo.truth.true_oe["SURG-MORT"]
    effects = demo.truth.effects["SURG-MORT"]
    for member, value in oe.items():
        assert np.sign(np.log(value)) == np.sign(effects[member]) or abs(effects[member]) < 1e-9
