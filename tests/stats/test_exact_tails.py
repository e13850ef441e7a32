"""Exact discrete tails: limits that mean the tail probabilities, in every funnel method."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from scipy import stats

from qicollab.stats.exact_tails import count_limits, count_quantiles, tail_probabilities
from qicollab.stats.funnel import METHODS, funnel_analysis

RATIO_METHODS = METHODS
PROPORTION_METHODS = tuple(m for m in METHODS if m != "shmi")


@pytest.mark.parametrize(
    ("data_type", "target", "dispersion"),
    [
        ("ratio", 1.0, 0.0),
        ("ratio", 1.3, 0.05),
        ("proportion", 0.3, 0.0),
        ("proportion", 0.3, 0.02),
    ],
)
@pytest.mark.parametrize("level", [0.95, 0.998])
def test_limits_flag_exactly_the_members_whose_tail_is_below_alpha_half(
    data_type: str, target: float, dispersion: float, level: float
) -> None:
    # Every count from 0 to well above the mean, at several precisions: a count is outside the
    # limits if and only if its own tail probability is below alpha/2.
    precision = np.array([0.5, 1.0, 3.0, 12.0, 60.0, 250.0])
    if data_type == "proportion":
        precision = np.round(precision * 4 + 1)
    tail = (1 - level) / 2
    for e in precision:
        counts = np.arange(0, int(e * target * 4 + 20) + 1, dtype=float)
        if data_type == "proportion":
            counts = counts[counts <= e]
        each = np.full(counts.size, e)
        lower, upper = count_limits(
            each, data_type=data_type, target=target, level=level, dispersion=dispersion
        )
        p_low, p_high = tail_probabilities(
            counts, each, data_type=data_type, target=target, dispersion=dispersion
        )
        value = counts / e
        assert_array_equal(value < lower, p_low < tail)
        assert_array_equal(value > upper, p_high < tail)


def test_beta_binomial_quantiles_equal_scipy_including_large_denominators() -> None:
    n = np.array([5.0, 37.0, 400.0, 2000.0, 250_000.0])
    a, b = 0.3 * (1 / 0.02 - 1), 0.7 * (1 / 0.02 - 1)
    for level in (0.95, 0.998):
        tail = (1 - level) / 2
        low, high = count_quantiles(
            n, data_type="proportion", target=0.3, level=level, dispersion=0.02
        )
        assert_array_equal(low, stats.betabinom.ppf(tail, n, a, b))
        assert_array_equal(high, stats.betabinom.isf(tail, n, a, b))


def test_extreme_inputs_give_no_warnings() -> None:
    # pytest turns warnings into errors: tiny and huge E, tiny and large dispersion.
    e = np.array([1e-6, 0.01, 1.0, 1e4, 1e7])
    for dispersion in (0.0, 1e-9, 1e-6, 0.5, 50.0):
        low, high = count_limits(
            e, data_type="ratio", target=1.0, level=0.998, dispersion=dispersion
        )
        assert np.all(np.isfinite(low))
        assert np.all(high >= low)
    low, high = count_limits(
        [1.0, 3.0, 1e6], data_type="proportion", target=0.001, level=0.998, dispersion=0.9
    )
    assert np.all((low >= 0) & (high <= 1))


@pytest.mark.parametrize("method", RATIO_METHODS)
def test_zero_of_one_expected_is_never_an_outlier(method: str) -> None:
    # Strongly overdispersed collaborative with a zero at E = 1 and at E = 2.
    rng = np.random.default_rng(11)
    expected = np.r_[1.0, 2.0, rng.uniform(5, 300, 60)]
    observed = np.r_[0.0, 0.0, rng.poisson(expected[2:] * rng.lognormal(0, 0.4, 60))]
    result = funnel_analysis(observed, expected, method=method)  # type: ignore[arg-type]
    for row in result.rows[:2]:
        for level in (0.95, 0.998):
            assert row.outlier(level) is None
            assert row.outlier(level, adjusted=True) is None
    # A zero where 10 were expected is low at 99.8% (P(O = 0) = 4.5e-5).
    big = funnel_analysis(np.r_[0.0, observed[2:]], np.r_[10.0, expected[2:]], method=method)  # type: ignore[arg-type]
    assert big.rows[0].outlier998 == "low"


@pytest.mark.parametrize(
    ("data_type", "method"),
    [
        *(("ratio", m) for m in RATIO_METHODS),
        *(("proportion", m) for m in PROPORTION_METHODS),
    ],
)
def test_adjustment_only_widens(data_type: str, method: str) -> None:
    rng = np.random.default_rng(5)
    if data_type == "ratio":
        precision = np.exp(rng.uniform(np.log(0.5), np.log(200), 400))
        # SHMI truncation biases phi low: at SD 0.3 it still finds no overdispersion.
        observed = rng.poisson(precision * rng.lognormal(0, 0.6, 400)).astype(float)
    else:
        precision = np.round(np.exp(rng.uniform(np.log(5), np.log(2000), 400)))
        p = 1 / (1 + np.exp(-(np.log(0.25 / 0.75) + rng.normal(0, 0.3, 400))))
        observed = rng.binomial(precision.astype(int), p).astype(float)
    result = funnel_analysis(observed, precision, data_type=data_type, method=method)  # type: ignore[arg-type]
    assert not result.fallback
    for row in result.rows:
        for level in (0.95, 0.998):
            low, high = row.limits(level)
            adj_low, adj_high = row.limits(level, adjusted=True)
            assert adj_low <= low
            assert adj_high >= high
            if row.outlier(level, adjusted=True) is not None:
                assert row.outlier(level) == row.outlier(level, adjusted=True)


def test_unadjusted_flags_are_the_exact_poisson_test() -> None:
    rng = np.random.default_rng(8)
    expected = np.exp(rng.uniform(np.log(0.5), np.log(200), 300))
    observed = rng.poisson(expected * 1.4).astype(float)
    result = funnel_analysis(observed, expected, method="shmi")
    for row in result.rows:
        low = stats.poisson.cdf(row.observed, row.precision) < 0.001
        high = stats.poisson.sf(row.observed - 1, row.precision) < 0.001
        assert row.outlier998 == ("low" if low else "high" if high else None)
