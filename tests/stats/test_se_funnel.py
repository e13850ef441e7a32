"""Funnels with given standard errors, normal-normal shrinkage and the ABC ranked on shrunk
values: the methods that moved from benchmarking/methods.py into the core (issue 11, item 10)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from qicollab.stats.achievable import achievable_benchmark
from qicollab.stats.se_funnel import (
    CURVE_POINTS,
    curve_axis,
    normal_curve,
    normal_funnel,
    ratio_curve,
    ratio_se_funnel,
)
from qicollab.stats.shrinkage import normal_normal_shrinkage

# FunnelPlotR tests/testthat/test-classes_methods.R (inline data)
NUM = np.array([100, 150, 180, 80, 120, 225], dtype=float)
DEN = np.array([108, 112, 165, 95, 100, 220], dtype=float)


class TestRatioWithModelVariance:
    def test_poisson_variance_reproduces_funnelplotr_shmi(self) -> None:
        # With Var(O) = E the funnel is FunnelPlotR's SHMI funnel: phi 2.948033, tau2 0.019478.
        result = ratio_se_funnel(NUM, DEN, DEN, method="shmi", trim=0.1)
        assert result.phi == pytest.approx(2.948033, abs=5e-7)
        assert result.tau2 == pytest.approx(0.019478, abs=5e-7)
        assert_allclose(result.z, [-0.7998, 3.0917, 1.1177, -1.6750, 1.8232, 0.3333], atol=5e-5)
        half = 1.959964 * np.sqrt(1 / 108 + result.tau2)
        assert result.adjusted_lower["95"][0] == pytest.approx(np.exp(-half), rel=1e-6)

    @pytest.mark.parametrize(
        ("trim", "phi", "tau2"), [(0.1, 2.327178, 0.003440), (0.05, 2.746783, 0.004406)]
    )
    def test_poisson_variance_reproduces_funnelplotr_cqc(
        self, trim: float, phi: float, tau2: float
    ) -> None:
        result = ratio_se_funnel(NUM, DEN, DEN, method="cqc", trim=trim)
        assert result.phi == pytest.approx(phi, abs=5e-7)
        assert result.tau2 == pytest.approx(tau2, abs=5e-7)
        half = 3.090232 * np.sqrt(1 / (4 * 112) + result.tau2)
        assert result.adjusted_upper["99.8"][1] == pytest.approx((1 + half) ** 2, rel=1e-6)

    def test_larger_model_variance_widens_and_unflags(self) -> None:
        # Length of stay: Var(O) well above E; member b (150 of 112) is no longer high.
        poisson = ratio_se_funnel(NUM, DEN, DEN)
        wide = ratio_se_funnel(NUM, DEN, 6 * DEN)
        assert poisson.flags["99.8"][1] == "high"
        assert wide.flags["99.8"][1] is None
        assert np.all(wide.upper["95"] > poisson.upper["95"])

    def test_zero_is_judged_as_half_an_event(self) -> None:
        observed = np.array([0.0, 95, 105, 98, 102, 100, 97, 103])
        expected = np.r_[1.0, np.full(7, 100.0)]
        result = ratio_se_funnel(observed, expected, 3 * expected, trim=0.0)
        assert np.isfinite(result.z[0])
        assert result.judged[0] == 0.5
        assert result.flags["99.8"][0] is None  # 0.5 events of 1 expected is no outlier
        big = ratio_se_funnel(np.r_[0.0, observed[1:]], np.full(8, 100.0), np.full(8, 300.0))
        assert big.flags["99.8"][0] == "low"

    def test_no_overdispersion_falls_back(self) -> None:
        result = ratio_se_funnel(DEN, DEN, DEN)
        assert result.fallback
        assert result.tau2 == 0.0
        for key in ("95", "99.8"):
            assert_allclose(result.adjusted_lower[key], result.lower[key])


class TestNormalFunnel:
    def test_formulas(self) -> None:
        value = np.array([4.0, 5.5, 6.0, 3.0, 5.0, 9.0, 5.1])
        se = np.array([0.5, 0.4, 0.8, 0.3, 0.2, 0.6, 0.25])
        result = normal_funnel(value, se, 5.0, trim=0.0)
        z = (value - 5.0) / se
        w = 1 / se**2
        phi = np.mean(z**2)
        tau2 = (7 * phi - 6) / (w.sum() - (w**2).sum() / w.sum())
        assert result.phi == pytest.approx(phi)
        assert result.tau2 == pytest.approx(tau2)
        assert_allclose(result.upper["95"], 5.0 + 1.959964 * se, rtol=1e-6)
        assert_allclose(
            result.adjusted_lower["99.8"], 5.0 - stats.norm.ppf(0.999) * np.sqrt(se**2 + tau2)
        )
        assert result.flags["99.8"][5] == "high"
        assert result.adjusted_flags["99.8"][5] is None
        assert_allclose(
            result.limits_for_se(se, level=0.95, adjusted=True)[1], result.adjusted_upper["95"]
        )

    def test_in_control_means_are_flagged_at_the_nominal_rate(self) -> None:
        rng = np.random.default_rng(3)
        flagged = 0
        total = 0
        for _ in range(20):
            se = rng.uniform(0.1, 2.0, 500)
            result = normal_funnel(rng.normal(10.0, se), se, 10.0)
            flagged += sum(flag is not None for flag in result.adjusted_flags["95"])
            total += 500
        assert flagged / total == pytest.approx(0.05, abs=0.01)

    def test_adjustment_only_widens(self) -> None:
        rng = np.random.default_rng(4)
        se = rng.uniform(0.1, 1.0, 300)
        result = normal_funnel(rng.normal(10 + rng.normal(0, 0.5, 300), se), se, 10.0)
        assert not result.fallback
        for key in ("95", "99.8"):
            assert np.all(result.adjusted_lower[key] <= result.lower[key])
            assert np.all(result.adjusted_upper[key] >= result.upper[key])


class TestNormalNormalShrinkage:
    def test_formula_and_intervals(self) -> None:
        y = np.array([4.0, 5.5, 6.0, 3.0, 5.0, 9.0])
        se = np.array([0.5, 0.4, 0.8, 0.3, 0.2, 0.6])
        result = normal_normal_shrinkage(y, se, 5.0, units=list("abcdef"))
        z = (y - 5) / se
        w = 1 / se**2
        tau2 = (6 * np.mean(z**2) - 5) / (w.sum() - (w**2).sum() / w.sum())
        assert result.tau2 == pytest.approx(tau2)
        frame = result.to_frame()
        weight = tau2 / (tau2 + se**2)
        assert_allclose(frame["shrunk"], 5 + weight * (y - 5))
        assert_allclose(
            frame["upper"] - frame["lower"], 2 * 1.959964 * np.sqrt(weight) * se, rtol=1e-6
        )
        assert list(frame["unit"]) == list("abcdef")

    def test_recovers_the_truth_better_than_raw_values(self) -> None:
        rng = np.random.default_rng(9)
        theta = rng.normal(0.0, 0.3, 2000)
        se = rng.uniform(0.1, 1.0, 2000)
        y = rng.normal(theta, se)
        result = normal_normal_shrinkage(y, se, 0.0)
        shrunk = result.to_frame()["shrunk"].to_numpy()
        assert result.tau2 == pytest.approx(0.09, abs=0.02)
        assert np.mean((shrunk - theta) ** 2) < 0.5 * np.mean((y - theta) ** 2)
        covered = (result.to_frame()["lower"] <= theta) & (theta <= result.to_frame()["upper"])
        assert covered.mean() == pytest.approx(0.95, abs=0.02)

    def test_no_spread_shrinks_all_the_way_and_bad_se_is_nan(self) -> None:
        result = normal_normal_shrinkage([5.0, 5.01, 4.99, 7.0], [1.0, 1.0, 1.0, 0.0], 5.0)
        frame = result.to_frame()
        assert result.tau2 == 0.0
        assert_allclose(frame["shrunk"][:3], 5.0)
        assert np.isnan(frame["shrunk"][3])


class TestAbcRankedByShrunkValues:
    def test_ranks_on_the_given_values_and_pools_value_times_denominator(self) -> None:
        # Mean length of stay, lower is better. The small member's raw 2.0 is shrunk to 4.4, so
        # the two large members with shrunk 3.1 and 3.3 set the benchmark.
        n = np.array([5.0, 400.0, 300.0, 600.0, 500.0])
        value = np.array([2.0, 3.0, 3.3, 5.0, 4.5])
        shrunk = np.array([4.4, 3.1, 3.3, 4.9, 4.5])
        result = achievable_benchmark(
            list("abcde"), value * n, n, lower_is_better=True, fraction=0.3, rank_by=shrunk
        )
        assert result.benchmark_units == ("b", "c")
        assert result.abc == pytest.approx((3.0 * 400 + 3.3 * 300) / 700)
        assert "shrunk" in result.method

    def test_afp_as_the_ranking_gives_the_classic_abc(self) -> None:
        x = np.array([3.0, 46.0, 30.0, 80.0, 10.0])
        n = np.array([3.0, 50.0, 40.0, 100.0, 20.0])
        classic = achievable_benchmark(list("abcde"), x, n)
        ranked = achievable_benchmark(list("abcde"), x, n, rank_by=(x + 1) / (n + 2))
        assert ranked.benchmark_units == classic.benchmark_units
        assert ranked.abc == classic.abc

    def test_members_without_a_ranking_value_are_left_out(self) -> None:
        result = achievable_benchmark(
            ["a", "b", "c"], [10.0, 20.0, 30.0], [10.0, 10.0, 10.0], rank_by=[np.nan, 2.0, 3.0]
        )
        assert result.excluded == ("a",)
        assert result.benchmark_units == ("c",)


class TestCurves:
    """The drawn curves pass through the limits that judged each member."""

    def test_normal_curve_by_hand(self) -> None:
        # se = 2 / sqrt(n) exactly: at n = 4 the 95% limits are 10 -/+ 1.959964
        n = np.array([4.0, 16.0, 100.0])
        result = normal_funnel(np.array([10.0, 10.5, 9.8]), 2.0 / np.sqrt(n), 10.0, trim=0.0)
        curve = normal_curve(result, n)
        assert curve is not None
        assert curve.x[0] == pytest.approx(4.0)
        assert curve.x[-1] == pytest.approx(100.0)
        assert curve.x.size == CURVE_POINTS
        assert curve.lower["95"][0] == pytest.approx(10.0 - 1.959963984540054)
        assert curve.upper["99.8"][-1] == pytest.approx(10.0 + 3.090232306167813 * 0.2)

    def test_normal_curve_meets_each_members_limits(self) -> None:
        rng = np.random.default_rng(3)
        n = rng.uniform(20, 400, 30)
        se = 3.0 / np.sqrt(n)
        result = normal_funnel(5.0 + rng.normal(0, 0.4, 30) + se * rng.normal(size=30), se, 5.0)
        curve = normal_curve(result, n)
        assert curve is not None
        for key in ("95", "99.8"):
            for drawn, own in (
                (curve.adjusted_lower[key], result.adjusted_lower[key]),
                (curve.upper[key], result.upper[key]),
            ):
                assert np.interp(n, curve.x, drawn) == pytest.approx(own, rel=2e-3)

    @pytest.mark.parametrize("method", ["shmi", "cqc"])
    def test_ratio_curve_meets_each_members_limits(self, method: str) -> None:
        rng = np.random.default_rng(5)
        e = rng.uniform(5, 300, 40)
        v = 2.5 * e  # Var O proportional to E, as for lengths of stay
        o = e * np.exp(rng.normal(0, 0.15, 40))
        result = ratio_se_funnel(o, e, v, method=method)
        curve = ratio_curve(result, e, v)
        assert curve is not None
        for key in ("95", "99.8"):
            for drawn, own in (
                (curve.lower[key], result.lower[key]),
                (curve.adjusted_upper[key], result.adjusted_upper[key]),
            ):
                # exactly at the smallest and largest member, within the grid's step between
                ends = [int(np.argmin(e)), int(np.argmax(e))]
                assert drawn[[0, -1]] == pytest.approx(own[ends], rel=1e-9)
                assert np.interp(e, curve.x, drawn) == pytest.approx(own, rel=1e-2, abs=3e-3)

    def test_no_curve_without_members(self) -> None:
        result = normal_funnel(np.array([1.0]), np.array([0.5]), 1.0)
        assert normal_curve(result, np.array([10.0])) is None
        assert curve_axis(np.array([np.nan, 0.0])).size == 0
