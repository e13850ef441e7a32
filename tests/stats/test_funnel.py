"""Funnel limits, overdispersion and outlier flags against FunnelPlotR and PHE fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from qicollab.stats.funnel import (
    adjusted_limits,
    aggregate_units,
    dispersion,
    funnel_analysis,
    outlier_status,
    performance_label,
    phe_proportion_funnel,
    phe_proportion_limits,
    phe_ratio_funnel_table,
    phe_ratio_significance,
    shmi_truncation,
    unadjusted_limits,
    winsorise,
)

DATA = Path(__file__).resolve().parents[1] / "data"

# FunnelPlotR tests/testthat/test-classes_methods.R (inline data)
NUM = np.array([100, 150, 180, 80, 120, 225], dtype=float)
DEN = np.array([108, 112, 165, 95, 100, 220], dtype=float)


class TestFunnelPlotRPoissonLimits:
    """test-poisson_limits.R: calculate_limits(c(15, 20, 30), target = 1)."""

    E = np.array([15.0, 20.0, 30.0])

    def test_95(self) -> None:
        lower, upper = unadjusted_limits(self.E, level=0.95)
        assert_allclose(lower, [0.5596924, 0.6108260, 0.6746958], atol=5e-8)
        assert_allclose(upper, [1.649348, 1.544419, 1.427562], atol=5e-7)

    def test_998(self) -> None:
        lower, upper = unadjusted_limits(self.E, level=0.998)
        assert_allclose(lower, [0.3862650, 0.4479107, 0.5289724], atol=5e-8)
        assert_allclose(upper, [2.082907, 1.902094, 1.702771], atol=5e-7)

    def test_zero_precision_is_nan(self) -> None:
        lower, upper = unadjusted_limits([0.0, 10.0])
        assert np.isnan(lower[0])
        assert np.isnan(upper[0])
        assert np.isfinite(lower[1])


class TestFunnelPlotRDispersion:
    def test_shmi_phi_is_the_published_value(self) -> None:
        result = funnel_analysis(NUM, DEN, units=list("abcdef"), method="shmi", trim=0.1)
        assert result.phi == pytest.approx(2.948033, abs=5e-7)

    def test_shmi_derived_tau2_and_z(self) -> None:
        result = funnel_analysis(NUM, DEN, method="shmi", trim=0.1)
        assert result.tau2 == pytest.approx(0.019478, abs=5e-7)
        z = [row.z for row in result.rows]
        assert_allclose(z, [-0.7998, 3.0917, 1.1177, -1.6750, 1.8232, 0.3333], atol=5e-5)

    def test_no_unit_is_truncated_with_six_units(self) -> None:
        result = funnel_analysis(NUM, DEN, method="shmi", trim=0.1)
        assert all(row.used_in_dispersion for row in result.rows)
        assert result.n_used == 6

    @pytest.mark.parametrize(
        ("trim", "phi", "tau2"), [(0.1, 2.327178, 0.003440), (0.05, 2.746783, 0.004406)]
    )
    def test_cqc_derived_values(self, trim: float, phi: float, tau2: float) -> None:
        result = funnel_analysis(NUM, DEN, method="cqc", trim=trim)
        assert result.phi == pytest.approx(phi, abs=5e-7)
        assert result.tau2 == pytest.approx(tau2, abs=5e-7)
        assert result.adjustment == "additive"

    def test_funnel_tau2_is_not_the_meta_analysis_tau2(self) -> None:
        # METHODS 2.6: statsmodels combine_effects(method_re="dl") gives 0.015485 around the
        # weighted mean; the funnel formula works around the fixed target.
        result = funnel_analysis(NUM, DEN, method="shmi")
        assert result.tau2 != pytest.approx(0.015485, abs=1e-4)

    def test_overdispersion_p_value_is_chi_square_on_i_phi(self) -> None:
        result = funnel_analysis(NUM, DEN, method="shmi")
        assert result.overdispersion_pvalue == pytest.approx(stats.chi2.sf(6 * 2.948033, 6))

    def test_shmi_adjusted_limits_use_log_scale(self) -> None:
        result = funnel_analysis(NUM, DEN, method="shmi")
        row = result.rows[0]
        half = 1.959964 * np.sqrt(1 / 108 + result.tau2)
        assert row.adjusted_lower95 == pytest.approx(np.exp(-half), rel=1e-6)
        assert row.adjusted_upper95 == pytest.approx(np.exp(half), rel=1e-6)

    def test_cqc_limits_are_squared_back_not_funnelplotr_issue_33(self) -> None:
        result = funnel_analysis(NUM, DEN, method="cqc", trim=0.1)
        row = result.rows[1]
        half = 3.090232 * np.sqrt(1 / (4 * 112) + result.tau2)
        assert row.adjusted_upper998 == pytest.approx((1 + half) ** 2, rel=1e-6)
        assert row.adjusted_lower998 == pytest.approx((1 - half) ** 2, rel=1e-6)
        assert row.adjusted_upper998 != pytest.approx(1 + half, rel=1e-3)

    def test_unadjusted_lower_exceeds_adjusted_lower(self) -> None:
        # test-funnel_plot.R ordering check: unadjusted LCL95[5] > default adjusted OD95LCL[5]
        result = funnel_analysis(NUM, DEN, method="shmi")
        assert result.rows[4].lower95 > result.rows[4].adjusted_lower95

    def test_spiegelhalter_is_multiplicative(self) -> None:
        result = funnel_analysis(NUM, DEN, method="spiegelhalter", trim=0.1)
        assert result.adjustment == "multiplicative"
        row = result.rows[3]
        spread = 1.959964 * np.sqrt(result.phi) / (2 * np.sqrt(95))
        assert row.adjusted_lower95 == pytest.approx((1 - spread) ** 2, rel=1e-6)
        assert row.z_adjusted == pytest.approx(row.z / np.sqrt(result.phi))


class TestAggregation:
    def test_funnelplotr_aggregate_rr(self) -> None:
        # test-aggregate_fun.R
        units, num, den = aggregate_units(
            list("aaabbc"), [100, 150, 180, 89, 120, 225], [102, 135, 165, 95, 100, 220]
        )
        assert list(units) == ["a", "b", "c"]
        assert_allclose(num / den, [1.069652, 1.071795, 1.022727], atol=5e-7)


class TestOutlierFlags:
    """test-outliers_func.R: flags for fixed limits, inclusive limits."""

    RR = np.array([1, 0.95, 1.05, 0.8, 1.2, 0.6, 1.4, 0.4, 1.6, 0])

    @pytest.mark.parametrize(
        ("lower", "upper", "expected"),
        [
            (0.9, 1.1, "0001111111"),
            (0.79, 1.21, "0000011111"),
            (0.59, 1.41, "0000000111"),
            (0.38, 1.62, "0000000001"),
        ],
    )
    def test_published_flag_patterns(self, lower: float, upper: float, expected: str) -> None:
        flags = "".join("0" if s is None else "1" for s in outlier_status(self.RR, lower, upper))
        assert flags == expected

    def test_multiplier_100_flags_everything(self) -> None:
        assert all(s is not None for s in outlier_status(self.RR * 100, 0.38, 1.62))

    def test_direction_of_flags(self) -> None:
        assert outlier_status([1.7, 0.1, 1.0], 0.38, 1.62) == ("high", "low", None)

    def test_value_on_a_limit_is_not_an_outlier(self) -> None:
        assert outlier_status([0.9, 1.1], 0.9, 1.1) == (None, None)

    def test_nan_is_not_an_outlier(self) -> None:
        assert outlier_status([np.nan], 0.9, 1.1) == (None,)

    @pytest.mark.parametrize(
        ("status", "improvement", "label"),
        [
            ("high", "decrease", "worse"),
            ("low", "decrease", "better"),
            ("high", "increase", "better"),
            ("low", "increase", "worse"),
            (None, "increase", "as expected"),
            ("high", None, "higher"),
        ],
    )
    def test_direction_aware_labels(
        self, status: str | None, improvement: str | None, label: str
    ) -> None:
        assert performance_label(status, improvement) == label  # type: ignore[arg-type]

    def test_unknown_direction_is_refused(self) -> None:
        with pytest.raises(ValueError, match="improvement"):
            performance_label("high", "up")  # type: ignore[arg-type]


class TestPheProportionFunnel:
    def test_significance_bands_303_of_303(self) -> None:
        frame = pd.read_csv(DATA / "phe_testdata_funnel_prop_inputs.csv")
        result = phe_proportion_funnel(frame["numerator"], frame["denominator"])
        assert result.baseline * 100 == pytest.approx(80.642448, abs=5e-7)
        assert list(result.bands) == frame["significance"].tolist()

    def test_limit_table_to_1e_6(self) -> None:
        frame = pd.read_csv(DATA / "phe_testdata_funnel_prop_outputs.csv")
        baseline = frame["Baseline"].iloc[0] / 100
        for level, low_col, high_col in [
            (0.95, "Lower2s0025limit", "Upper2s0025limit"),
            (0.998, "Lower3s0001limit", "Upper3s0001limit"),
        ]:
            lower, upper = phe_proportion_limits(frame["Population"], baseline, level=level)
            # the fixture is rounded to 6 decimals on the percentage scale
            assert_allclose(lower * 100, frame[low_col], atol=1e-6)
            assert_allclose(upper * 100, frame[high_col], atol=1e-6)

    def test_zero_denominator_refused(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            phe_proportion_funnel([1, 2], [0, 4])


class TestPheRatioFunnel:
    def test_significance_bands_300_of_300(self) -> None:
        frame = pd.read_csv(DATA / "phe_testdata_funnel_ratio_inputs.csv")
        result = phe_ratio_significance(frame["obs"], frame["expected"])
        assert list(result.bands) == frame["significance"].tolist()
        counts = pd.Series(result.bands).value_counts()
        assert counts["Not significant"] == 129

    def test_output_table(self) -> None:
        # PHE finds these expected counts with R's uniroot (default tol = eps^0.25 = 1.2e-4),
        # so the fixture is accurate to ~1.2e-4 in E, not 1e-6; our E are the closed-form
        # chi-square quantiles. Tolerances below are that root finder's, stated per column.
        frame = pd.read_csv(DATA / "phe_testdata_funnel_ratio_outputs.csv")
        table = phe_ratio_funnel_table(frame["Observed_events"])
        for level, key, tag in [(0.95, "95", "2s"), (0.998, "99.8", "3s")]:
            assert_allclose(
                table.lower_expected[key], frame[f"lower_{tag}_exp_events"], atol=2.5e-4
            )
            assert_allclose(
                table.upper_expected[key], frame[f"upper_{tag}_exp_events"], atol=2.5e-4
            )
            for side in ("lower", "upper"):
                ratio = table.limit(level, side)  # type: ignore[arg-type]
                assert_allclose(ratio * 100, frame[f"{side}_{tag}_isr"], rtol=5e-5)
                assert_allclose(ratio - 1, frame[f"{side}_{tag}_count"], atol=5e-5 * ratio.max())

    def test_lower_limits_agree_to_1e_6_relative(self) -> None:
        # Where uniroot's absolute tolerance is small relative to E, the table agrees to 1e-6.
        frame = pd.read_csv(DATA / "phe_testdata_funnel_ratio_outputs.csv")
        table = phe_ratio_funnel_table(frame["Observed_events"])
        assert_allclose(table.lower_expected["95"], frame["lower_2s_exp_events"], rtol=1e-6)
        assert_allclose(table.lower_expected["99.8"], frame["lower_3s_exp_events"], rtol=1e-6)

    def test_first_row_published_values(self) -> None:
        table = phe_ratio_funnel_table([1])
        assert table.lower_expected["95"][0] == pytest.approx(5.571644585, rel=1e-6)
        assert table.upper_expected["95"][0] == pytest.approx(0.025317898, abs=1e-6)
        assert table.limit(0.998, "lower")[0] * 100 == pytest.approx(10.83023482, rel=1e-6)


class TestFallbackAndEdges:
    def test_phi_at_most_one_falls_back_to_unadjusted_limits(self) -> None:
        expected = np.array([10.0, 20.0, 40.0, 80.0, 160.0])
        result = funnel_analysis(expected, expected, method="shmi")  # O = E: every z is 0
        assert result.phi == 0.0
        assert result.fallback
        assert "no overdispersion" in result.note
        for row in result.rows:
            assert row.limits(0.998, adjusted=True) == row.limits(0.998)
            assert row.z_adjusted == row.z

    def test_zero_count_on_shmi_scale_is_finite_and_flagged(self) -> None:
        observed = np.array([0, 95, 105, 98, 102, 100, 97, 103], dtype=float)
        expected = np.full(observed.size, 100.0)
        result = funnel_analysis(observed, expected, method="shmi", trim=0.0)
        zero = result.rows[0]
        assert np.isfinite(zero.z)
        assert zero.z == pytest.approx(np.log(0.5 / 100) * 10)
        assert zero.zero_count_adjusted
        assert zero.value == 0.0
        assert zero.outlier998 == "low"
        assert np.isfinite(result.phi)

    def test_zero_precision_units_are_kept_but_ignored(self) -> None:
        result = funnel_analysis([0, 100, 150, 180], [0, 108, 112, 165], units=["x", 1, 2, 3])
        assert np.isnan(result.rows[0].value)
        assert not result.rows[0].used_in_dispersion
        assert result.rows[0].outlier95 is None
        assert result.n_used == 3

    def test_invalid_inputs(self) -> None:
        with pytest.raises(ValueError, match=r"shmi|SHMI"):
            funnel_analysis([1], [10], data_type="proportion", method="shmi")
        with pytest.raises(ValueError, match="non-negative"):
            funnel_analysis([-1, 2], [10, 10])
        with pytest.raises(ValueError, match="exceeds"):
            funnel_analysis([11], [10], data_type="proportion")
        with pytest.raises(ValueError, match="trim"):
            funnel_analysis([1, 2], [3, 4], trim=0.6)
        with pytest.raises(ValueError, match="method"):
            funnel_analysis([1, 2], [3, 4], method="reml")  # type: ignore[arg-type]

    def test_shmi_rounding_rounds_expected_to_two_decimals(self) -> None:
        rounded = funnel_analysis([10, 12, 9], [10.004, 11.996, 9.499], shmi_rounding=True)
        assert [row.precision for row in rounded.rows] == [10.0, 12.0, 9.5]
        plain = funnel_analysis([10, 12, 9], [10.004, 11.996, 9.499])
        assert plain.rows[0].precision == 10.004


class TestTruncationAndWinsorising:
    def test_shmi_truncation_drops_top_and_bottom_tenth(self) -> None:
        z = np.arange(100, dtype=float)
        kept = shmi_truncation(z, 0.1)
        # sp = floor(rank * 10 / 101): ranks 1..10 give sp 0, ranks 91..100 give sp 9
        assert not kept[:10].any()
        assert not kept[90:].any()
        assert kept[10:90].all()

    def test_no_trim_keeps_everything(self) -> None:
        assert shmi_truncation([3.0, -2.0, 1.0], 0.0).all()
        assert_allclose(winsorise([3.0, -2.0, 1.0], 0.0), [3.0, -2.0, 1.0])

    def test_winsorising_uses_linear_quantiles(self) -> None:
        z = np.array([-10.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 50.0])
        low, high = np.quantile(z, [0.1, 0.9], method="linear")
        assert_allclose(winsorise(z, 0.1), np.clip(z, low, high))
        assert low == pytest.approx(-1.9)  # R quantile(type = 7)
        assert high == pytest.approx(10.4)

    def test_dispersion_formula(self) -> None:
        z = np.array([2.0, -1.0, 0.5])
        s = np.array([0.1, 0.2, 0.3])
        phi, tau2 = dispersion(z, s)
        w = 1 / s**2
        assert phi == pytest.approx(np.mean(z**2))
        assert tau2 == pytest.approx((3 * phi - 2) / (w.sum() - (w**2).sum() / w.sum()))

    def test_dispersion_clamps_tau2_at_zero(self) -> None:
        assert dispersion([0.1, -0.1, 0.0], [0.1, 0.1, 0.1])[1] == 0.0


class TestProportionsAndCurves:
    def setup_method(self) -> None:
        rng = np.random.default_rng(7)
        self.n = rng.integers(20, 2000, size=60).astype(float)
        p = np.clip(rng.normal(0.8, 0.05, size=60), 0.01, 0.99)
        self.x = rng.binomial(self.n.astype(int), p).astype(float)

    def test_proportion_target_is_pooled_and_limits_stay_in_range(self) -> None:
        result = funnel_analysis(self.x, self.n, data_type="proportion", method="cqc")
        assert result.target == pytest.approx(self.x.sum() / self.n.sum())
        frame = result.to_frame()
        for column in ("lower998", "upper998", "adjusted_lower998", "adjusted_upper998"):
            assert frame[column].between(0, 1).all()
        assert result.method == "cqc"

    def test_proportion_adjusted_limits_back_transform_from_arcsine(self) -> None:
        result = funnel_analysis(self.x, self.n, data_type="proportion", method="cqc")
        assert not result.fallback
        row = result.rows[0]
        centre = np.arcsin(np.sqrt(result.target))
        half = 1.959964 * np.sqrt(1 / (4 * row.precision) + result.tau2)
        assert row.adjusted_upper95 == pytest.approx(
            np.sin(min(centre + half, np.pi / 2)) ** 2, rel=1e-6
        )

    @pytest.mark.parametrize("method", ["random-effects", "cqc", "spiegelhalter"])
    def test_curves_narrow_with_precision_and_match_the_rows(self, method: str) -> None:
        result = funnel_analysis(self.x, self.n, data_type="proportion", method=method)
        curves = result.curves()
        width = curves.upper["99.8"] - curves.lower["99.8"]
        # Exact limits are steps of 1/n: they narrow overall, not at every grid point.
        assert width[-1] < width[len(width) // 2] < width[0]
        adjusted = result.curves(self.n)
        assert_allclose(adjusted.adjusted_lower["95"], result.to_frame()["adjusted_lower95"])
        assert_allclose(adjusted.upper["99.8"], result.to_frame()["upper998"])

    def test_adjusted_limits_function_matches_result(self) -> None:
        # Decision limits are, per side, the wider of the published and the exact limits.
        result = funnel_analysis(NUM, DEN, method="shmi")
        lower, _ = adjusted_limits(DEN, method="shmi", level=0.998, tau2=result.tau2)
        exact = [row.lower998 for row in result.rows]
        assert_allclose(np.minimum(lower, exact), result.to_frame()["adjusted_lower998"])

    def test_limits_accessor_rejects_other_levels(self) -> None:
        row = funnel_analysis(NUM, DEN).rows[0]
        with pytest.raises(ValueError, match=r"0\.95"):
            row.limits(0.99)


class TestDampingCorrection:
    def test_factors_are_normal_second_moments_after_damping(self) -> None:
        from scipy import integrate

        from qicollab.stats.funnel import damping_factor

        c = stats.norm.ppf(0.9)
        inside, _ = integrate.quad(lambda z: z * z * stats.norm.pdf(z), -c, c)
        assert damping_factor("shmi", 0.1) == pytest.approx(inside / 0.8, rel=1e-9)
        assert damping_factor("cqc", 0.1) == pytest.approx(inside + 0.2 * c * c, rel=1e-9)
        assert damping_factor("cqc", 0.0) == 1.0

    def test_correction_divides_phi_and_is_reported(self) -> None:
        plain = funnel_analysis(NUM, DEN, method="cqc", trim=0.1)
        corrected = funnel_analysis(NUM, DEN, method="cqc", trim=0.1, damping_correction=True)
        assert corrected.phi == pytest.approx(plain.phi / corrected.damping_factor)
        assert corrected.tau2 > plain.tau2
        assert "corrected for damping" in corrected.note
        assert plain.damping_factor == 1.0
