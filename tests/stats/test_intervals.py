"""Wilson, exact Poisson and Byar intervals against PHEindicatormethods' published test data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from statsmodels.stats.rates import confint_poisson

from qicollab.stats.intervals import (
    byar_interval,
    clopper_pearson_interval,
    exact_poisson_interval,
    level_key,
    normal_ratio_interval,
    ratio_interval,
    ratio_interval_method,
    sample_mean_interval,
    t_interval,
    wilson_interval,
    z_value,
)

DATA = Path(__file__).resolve().parents[1] / "data"


def _phe_cases(method: str) -> pd.DataFrame:
    frame = pd.read_csv(DATA / "phe_testdata_Byars_Wilson__testdata_B_W.csv")
    frame = frame[frame["method"] == method].copy()
    frame["level"] = frame["confidence"].map({"95%": 0.95, "99.8%": 0.998})
    return frame


class TestConstants:
    def test_z_values_of_the_reported_levels(self) -> None:
        assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)
        assert z_value(0.998) == pytest.approx(3.090232, abs=1e-6)

    def test_level_keys(self) -> None:
        assert (level_key(0.95), level_key(0.998)) == ("95", "99.8")

    def test_level_must_be_a_probability(self) -> None:
        with pytest.raises(ValueError, match="level"):
            wilson_interval(1, 2, level=95)


class TestByar:
    @pytest.mark.parametrize(
        "row", list(_phe_cases("Byars").dropna(subset=["lowercl"]).itertuples())
    )
    def test_matches_phe_testdata_b_w(self, row: pd.Series) -> None:
        lower, upper = byar_interval(row.x, level=row.level).as_floats()
        assert_allclose([lower, upper], [row.lowercl, row.uppercl], rtol=1e-9)

    def test_upper_limit_of_one_event_at_998_where_phe_gives_no_lower(self) -> None:
        # PHE's fixture has no lower limit for O = 1 at 99.8% (the cubed term is negative).
        row = _phe_cases("Byars").query("x == 1 and level == 0.998").iloc[0]
        assert np.isnan(row["lowercl"])
        lower, upper = byar_interval(1, level=0.998).as_floats()
        assert upper == pytest.approx(row["uppercl"], rel=1e-9)
        assert lower == 0.0

    def test_divides_by_expected(self) -> None:
        lower, upper = byar_interval(65, 50.0).as_floats()
        assert_allclose([lower, upper], [50.16318771 / 50, 82.84913855 / 50], rtol=1e-9)


class TestWilson:
    @pytest.mark.parametrize("row", list(_phe_cases("Wilson").itertuples()))
    def test_matches_phe_testdata_b_w(self, row: pd.Series) -> None:
        lower, upper = wilson_interval(row.x, row.n, level=row.level).as_floats()
        assert_allclose([lower, upper], [row.lowercl, row.uppercl], rtol=1e-8)

    def test_matches_phe_proportion_file_vectorised(self) -> None:
        frame = pd.read_csv(DATA / "phe_testdata_Proportion__testdata_Prop.csv").dropna()
        mult = frame["multiplier"].to_numpy()
        for level, low_col, high_col in [
            (0.95, "lower95_0cl", "upper95_0cl"),
            (0.998, "lower99_8cl", "upper99_8cl"),
        ]:
            lower, upper = wilson_interval(frame["Numerator"], frame["Denominator"], level=level)
            assert_allclose(lower * mult, frame[low_col], rtol=1e-8)
            assert_allclose(upper * mult, frame[high_col], rtol=1e-8)

    def test_zero_denominator_gives_nan_not_an_error(self) -> None:
        lower, upper = wilson_interval([0, 3], [0, 10])
        assert np.isnan(lower[0])
        assert np.isnan(upper[0])
        assert 0 < lower[1] < upper[1] < 1

    def test_edges_are_clipped_to_zero_and_one(self) -> None:
        lower, upper = wilson_interval([0, 5], [5, 5])
        assert lower[0] == 0.0
        assert upper[1] == 1.0

    def test_numerator_above_denominator_is_refused(self) -> None:
        with pytest.raises(ValueError, match="exceed"):
            wilson_interval(6, 5)

    def test_clopper_pearson_contains_wilson_centre_and_is_wider_at_the_edge(self) -> None:
        cp = clopper_pearson_interval(0, 20)
        wi = wilson_interval(0, 20)
        assert cp.as_floats()[0] == 0.0
        assert cp.as_floats()[1] > wi.as_floats()[1]


class TestExactPoisson:
    def test_statsmodels_exact_case_from_methods_section_3(self) -> None:
        lower, upper = exact_poisson_interval(9, 835.883561).as_floats()
        assert_allclose([lower, upper], [0.0049234, 0.0204392], atol=5e-8)
        reference = confint_poisson(9, 835.883561, alpha=0.05, method="exact-c")
        assert_allclose([lower, upper], np.asarray(reference).ravel(), rtol=1e-10)

    def test_zero_observed_has_lower_zero_and_finite_upper(self) -> None:
        lower, upper = exact_poisson_interval([0, 0], [2.0, 10.0], level=0.998)
        assert_allclose(lower, [0.0, 0.0])
        assert np.all(np.isfinite(upper))
        # -ln(alpha/2) / E: the exact upper limit for O = 0
        assert_allclose(upper, -np.log(0.001) / np.array([2.0, 10.0]), rtol=1e-10)

    def test_zero_expected_gives_nan_not_infinity(self) -> None:
        lower, upper = exact_poisson_interval(3, 0.0)
        assert np.isnan(lower)
        assert np.isnan(upper)

    def test_negative_counts_are_refused(self) -> None:
        with pytest.raises(ValueError, match="non-negative"):
            exact_poisson_interval(-1, 2.0)


class TestPheRule:
    def test_exact_below_ten_byar_from_ten(self) -> None:
        observed = np.array([0, 9, 10, 895])
        combined = ratio_interval(observed, 100.0)
        exact = exact_poisson_interval(observed, 100.0)
        byar = byar_interval(observed, 100.0)
        assert_allclose(combined.lower[:2], exact.lower[:2])
        assert_allclose(combined.lower[2:], byar.lower[2:])
        assert_allclose(combined.upper[2:], byar.upper[2:])
        assert list(ratio_interval_method(observed)) == ["exact", "exact", "byar", "byar"]

    def test_explicit_methods_and_unknown_method(self) -> None:
        assert ratio_interval(5, 2.0, method="byar").method == "byar"
        assert ratio_interval(5, 2.0, method="exact").method == "exact"
        with pytest.raises(ValueError, match="unknown"):
            ratio_interval(5, 2.0, method="wald")  # type: ignore[arg-type]

    def test_scalar_interval_unpacks(self) -> None:
        lower, upper = ratio_interval(12, 10.0)
        assert float(lower) < 1.2 < float(upper)
        with pytest.raises(ValueError, match="scalar"):
            ratio_interval([1, 2], 1.0).as_floats()


# R 4.2.2: o <- c(412.5, 38.2, 9.1); e <- c(380.25, 45.0, 12.4); v <- c(1510.3, 260.9, 88.7)
#   z <- qnorm(1 - (1 - lvl) / 2); pmax(o/e - z*sqrt(v)/e, 0); o/e + z*sqrt(v)/e
RATIO_INPUT = ((412.5, 38.2, 9.1), (380.25, 45.0, 12.4), (1510.3, 260.9, 88.7))
RATIO_R = {
    0.95: (
        (0.884499003253167, 0.145375095533329, 0.0),
        (1.28512624329516, 1.55240268224445, 2.22250593379170),
    ),
    0.998: (
        (0.76898252392692, 0.0, 0.0),
        (1.40064272262140, 1.95810368528842, 3.08096912896532),
    ),
}

# R 4.2.2: m <- c(4.2, 7.85, 12.0); se <- c(0.31, 1.2, 2.5); df <- c(11, 3, 1)
#   q <- qt(1 - (1 - lvl) / 2, df); m - q*se; m + q*se
T_INPUT = ((4.2, 7.85, 12.0), (0.31, 1.2, 2.5), (11, 3, 1))
T_R = {
    0.95: (
        (3.51769460037159, 4.03106443365955, -19.76551184043674),
        (4.88230539962841, 11.66893556634045, 43.76551184043674),
    ),
    0.998: (
        (2.95234267833447, -4.40743822288886, -783.77209746387541),
        (5.44765732166553, 20.10743822288886, 807.77209746387541),
    ),
}

# R 4.2.2: x <- c(5.1, 4.7, 6.3, 5.9, 4.4, 5.5, 6.8, 5.0, 4.9, 6.1, 5.6, 5.2)
#   t.test(x)$conf.int; t.test(x, conf.level = 0.998)$conf.int
SAMPLE = (5.1, 4.7, 6.3, 5.9, 4.4, 5.5, 6.8, 5.0, 4.9, 6.1, 5.6, 5.2)
SAMPLE_R = {
    0.95: (5.00705546716159, 5.90961119950508),
    0.998: (4.63313081530927, 6.28353585135739),
}


class TestNormalRatio:
    @pytest.mark.parametrize("level", [0.95, 0.998])
    def test_matches_r(self, level: float) -> None:
        interval = normal_ratio_interval(*RATIO_INPUT, level=level)
        assert interval.method == "normal"
        assert_allclose(interval.lower, RATIO_R[level][0], rtol=1e-12, atol=1e-15)
        assert_allclose(interval.upper, RATIO_R[level][1], rtol=1e-12)

    def test_undefined_without_expected(self) -> None:
        lower, upper = normal_ratio_interval([3.0, 0.0], [0.0, 0.0], [2.0, 1.0])
        assert np.isnan(lower).all()
        assert np.isnan(upper).all()

    def test_negative_variance_is_refused(self) -> None:
        with pytest.raises(ValueError, match="variance"):
            normal_ratio_interval(5.0, 4.0, -1.0)


class TestStudentT:
    @pytest.mark.parametrize("level", [0.95, 0.998])
    def test_summary_statistics_match_r(self, level: float) -> None:
        interval = t_interval(*T_INPUT, level=level)
        assert interval.method == "t"
        assert_allclose(interval.lower, T_R[level][0], rtol=1e-12)
        assert_allclose(interval.upper, T_R[level][1], rtol=1e-12)

    @pytest.mark.parametrize("level", [0.95, 0.998])
    def test_sample_matches_r_t_test(self, level: float) -> None:
        lower, upper = sample_mean_interval(SAMPLE, level=level).as_floats()
        assert_allclose([lower, upper], SAMPLE_R[level], rtol=1e-12)

    def test_two_values(self) -> None:
        # R 4.2.2: t.test(c(3.5, 4.25))$conf.int -> -0.88982677606551, 8.63982677606551
        lower, upper = sample_mean_interval([3.5, 4.25]).as_floats()
        assert_allclose([lower, upper], [-0.88982677606551, 8.63982677606551], rtol=1e-12)

    def test_infinite_df_is_the_normal_interval(self) -> None:
        lower, upper = t_interval(10.0, 2.0, np.inf).as_floats()
        assert_allclose([lower, upper], [10 - 2 * z_value(0.95), 10 + 2 * z_value(0.95)])

    def test_undefined_without_degrees_of_freedom_or_values(self) -> None:
        lower, upper = t_interval([1.0, 1.0], [0.5, 0.5], [0, np.nan])
        assert np.isnan(lower).all()
        assert np.isnan(upper).all()
        assert np.isnan(sample_mean_interval([2.0]).as_floats()).all()
        assert np.isnan(sample_mean_interval([2.0, np.nan]).as_floats()).all()
