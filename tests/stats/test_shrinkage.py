"""Empirical-Bayes shrinkage: marginal ML against scipy's distributions, posteriors, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import optimize, stats

from qicollab.stats.shrinkage import beta_binomial_shrinkage, gamma_poisson_shrinkage


def _overdispersed_counts(seed: int, units: int = 200, shape: float = 6.0):
    rng = np.random.default_rng(seed)
    expected = rng.uniform(5, 120, units)
    theta = rng.gamma(shape, 1 / shape, units)
    return rng.poisson(theta * expected).astype(float), expected


class TestGammaPoisson:
    def test_mean_one_shape_maximises_scipy_negative_binomial_likelihood(self) -> None:
        observed, expected = _overdispersed_counts(1)
        result = gamma_poisson_shrinkage(observed, expected)

        def negative_loglik(log_a: float) -> float:
            a = math.exp(log_a)
            return -stats.nbinom.logpmf(observed, a, a / (a + expected)).sum()

        reference = optimize.minimize_scalar(negative_loglik, bounds=(-5, 10), method="bounded")
        assert result.shape == pytest.approx(math.exp(reference.x), rel=1e-4)
        assert result.rate == result.shape
        assert result.overdispersed

    def test_free_prior_maximises_the_two_parameter_likelihood(self) -> None:
        observed, expected = _overdispersed_counts(2)
        observed = observed * 0 + np.round(observed * 1.3)  # prior mean away from 1
        result = gamma_poisson_shrinkage(observed, expected, prior="free")

        def negative_loglik(t: np.ndarray) -> float:
            a, b = np.exp(t)
            return -stats.nbinom.logpmf(observed, a, b / (b + expected)).sum()

        reference = optimize.minimize(
            negative_loglik,
            x0=[1.0, 1.0],
            method="Nelder-Mead",
            options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000},
        )
        a, b = np.exp(reference.x)
        assert result.shape == pytest.approx(a, rel=1e-3)
        assert result.rate == pytest.approx(b, rel=1e-3)
        assert result.prior_mean == pytest.approx(1.3, abs=0.15)

    def test_posterior_mean_and_interval(self) -> None:
        observed, expected = _overdispersed_counts(3)
        result = gamma_poisson_shrinkage(observed, expected, level=0.9)
        a, b = result.shape, result.rate
        frame = result.to_frame()
        assert_allclose(frame["shrunk"], (observed + a) / (expected + b))
        assert_allclose(
            frame["lower"], stats.gamma.ppf(0.05, observed + a, scale=1 / (expected + b))
        )
        assert_allclose(frame["weight"], expected / (expected + b))
        raw, shrunk = frame["raw"].to_numpy(), frame["shrunk"].to_numpy()
        # shrinkage moves every unit towards the prior mean 1, never past it
        assert np.all(np.abs(shrunk - 1) <= np.abs(raw - 1) + 1e-12)
        assert np.all((shrunk - 1) * (raw - 1) >= -1e-12)

    def test_underdispersed_counts_have_no_overdispersion(self) -> None:
        # Counts closer to E than Poisson chance allows: the marginal likelihood increases all
        # the way to the Poisson limit (a -> infinity).
        rng = np.random.default_rng(4)
        expected = rng.uniform(5, 50, 80)
        observed = np.round(expected)
        result = gamma_poisson_shrinkage(observed, expected)
        assert not result.overdispersed
        assert math.isinf(result.shape)
        assert "No overdispersion" in result.note
        assert all(e.shrunk == 1.0 and e.lower == e.upper == 1.0 for e in result.estimates)
        free = gamma_poisson_shrinkage(observed, expected, prior="free")
        assert not free.overdispersed
        assert free.estimates[0].shrunk == pytest.approx(observed.sum() / expected.sum())

    def test_all_zero_counts_do_not_crash(self) -> None:
        result = gamma_poisson_shrinkage([0, 0, 0], [1.0, 2.0, 3.0], prior="free")
        assert not result.overdispersed
        assert result.estimates[0].shrunk == 0.0
        assert np.isfinite(gamma_poisson_shrinkage([0, 0, 0], [1.0, 2.0, 3.0]).log_likelihood)

    def test_invalid_inputs(self) -> None:
        with pytest.raises(ValueError, match="expected > 0"):
            gamma_poisson_shrinkage([1, 2], [0.0, 1.0])
        with pytest.raises(ValueError, match="prior"):
            gamma_poisson_shrinkage([1], [1.0], prior="flat")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="label"):
            gamma_poisson_shrinkage([1, 2], [1.0, 1.0], units=["a"])


class TestBetaBinomial:
    def test_maximises_scipy_beta_binomial_likelihood(self) -> None:
        rng = np.random.default_rng(5)
        n = rng.integers(20, 400, 150)
        x = rng.binomial(n, rng.beta(8, 24, 150))
        result = beta_binomial_shrinkage(x, n, units=[f"u{i}" for i in range(150)])

        def negative_loglik(t: np.ndarray) -> float:
            a, b = np.exp(t)
            return -stats.betabinom.logpmf(x, n, a, b).sum()

        reference = optimize.minimize(
            negative_loglik,
            x0=[1.0, 2.0],
            method="Nelder-Mead",
            options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000},
        )
        a, b = np.exp(reference.x)
        assert result.alpha == pytest.approx(a, rel=1e-3)
        assert result.beta == pytest.approx(b, rel=1e-3)
        assert result.intraclass_correlation == pytest.approx(1 / (a + b + 1), rel=1e-3)
        first = result.estimates[0]
        assert first.unit == "u0"
        assert first.shrunk == pytest.approx((x[0] + result.alpha) / (n[0] + result.precision))
        assert first.upper == pytest.approx(
            stats.beta.ppf(0.975, x[0] + result.alpha, n[0] - x[0] + result.beta)
        )

    def test_underdispersed_proportions_shrink_to_the_pooled_proportion(self) -> None:
        rng = np.random.default_rng(6)
        n = rng.integers(20, 400, 100)
        x = np.round(n * 0.3)
        result = beta_binomial_shrinkage(x, n)
        assert not result.overdispersed
        assert result.intraclass_correlation == 0.0
        assert all(e.shrunk == pytest.approx(x.sum() / n.sum()) for e in result.estimates)

    def test_invalid_inputs(self) -> None:
        with pytest.raises(ValueError, match="0 <= x <= n"):
            beta_binomial_shrinkage([5], [4])
