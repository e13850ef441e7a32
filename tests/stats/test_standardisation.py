"""Indirect standardisation against PHE's ISR test results; AHRQ smoothing arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from qicollab.stats.standardisation import (
    ahrq_from_patients,
    ahrq_smoothed_rates,
    indirect_standardisation,
    isr_by_strata,
    ratio_estimates,
)

DATA = Path(__file__).resolve().parents[1] / "data"

# AHRQ QI v2024 IQI 15 (AMI mortality) parameters, IQI_HOSP_Sigvar_Array_v2024.sas
P3_IQI15 = 0.051869187161
P2_IQI15 = 0.000113701961


@pytest.fixture(scope="module")
def phe_isr() -> pd.DataFrame:
    frame = pd.read_csv(DATA / "phe_testdata_DSR_ISR__testdata_multiarea_isr.csv")
    reference = pd.read_csv(DATA / "phe_testdata_DSR_ISR__refdata.csv")
    result = isr_by_strata(
        frame,
        reference,
        unit="area",
        stratum="ageband",
        count="count",
        population="pop",
        ref_stratum="Age Band",
    )
    return result.to_frame().set_index("unit")


@pytest.fixture(scope="module")
def phe_expected() -> pd.DataFrame:
    frame = pd.read_csv(DATA / "phe_testdata_DSR_ISR__testresults_ISR.csv")
    # The Area1/Area2 rows come from another PHE test input that is not in the fixtures.
    return frame[frame["area"].str.startswith("testdata_")]


class TestPheIsr:
    def test_expected_is_published_for_all_three_areas(self, phe_isr: pd.DataFrame) -> None:
        assert_allclose(phe_isr["expected"], 835.8835612, rtol=1e-9)

    def test_ratio_and_limits_x1_and_x100(
        self, phe_isr: pd.DataFrame, phe_expected: pd.DataFrame
    ) -> None:
        for statistic, scale in [
            ("indirectly standardised ratio x 1", 1.0),
            ("indirectly standardised ratio x 100", 100.0),
        ]:
            expected = phe_expected[phe_expected["statistic"] == statistic].set_index("area")
            got = phe_isr.loc[expected.index]
            assert_allclose(got["observed"], expected["observed"])
            assert_allclose(got["ratio"] * scale, expected["value"], rtol=1e-8)
            assert_allclose(got["lower95"] * scale, expected["lower95_0cl"], rtol=1e-8)
            assert_allclose(got["upper95"] * scale, expected["upper95_0cl"], rtol=1e-8)
            assert_allclose(got["lower998"] * scale, expected["lower99_8cl"], rtol=1e-8)
            assert_allclose(got["upper998"] * scale, expected["upper99_8cl"], rtol=1e-8)

    def test_interval_method_follows_the_phe_rule(
        self, phe_isr: pd.DataFrame, phe_expected: pd.DataFrame
    ) -> None:
        published = phe_expected.drop_duplicates("area").set_index("area")["method"]
        got = phe_isr.loc[published.index, "interval_method"]
        assert list(got) == [m.lower().rstrip("s") for m in published]  # Byars -> byar

    @pytest.mark.parametrize(
        ("statistic", "multiplier"),
        [
            ("indirectly standardised rate per 100000", 100_000),
            ("indirectly standardised rate per 1000", 1000),
        ],
    )
    def test_indirectly_standardised_rate(
        self, phe_isr: pd.DataFrame, phe_expected: pd.DataFrame, statistic: str, multiplier: int
    ) -> None:
        expected = phe_expected[phe_expected["statistic"] == statistic].set_index("area")
        got = phe_isr.loc[expected.index]
        assert_allclose(got["reference_rate"] * multiplier, expected["ref_rate"], rtol=1e-9)
        assert_allclose(got["rate"] * multiplier, expected["value"], rtol=1e-8)
        assert_allclose(got["rate_lower95"] * multiplier, expected["lower95_0cl"], rtol=1e-8)
        assert_allclose(got["rate_upper998"] * multiplier, expected["upper99_8cl"], rtol=1e-8)

    def test_published_headline_values(self, phe_isr: pd.DataFrame) -> None:
        big = phe_isr.loc["testdata_big"]
        assert big["ratio"] == pytest.approx(1.070723, abs=5e-7)
        assert (big["lower95"], big["upper95"]) == pytest.approx((1.001715, 1.143233), abs=5e-7)
        tiny = phe_isr.loc["testdata_tiny"]
        assert (tiny["lower95"], tiny["upper95"]) == pytest.approx((0.004923, 0.020439), abs=5e-7)

    def test_observed_totals_lookup_replaces_the_summed_counts(self) -> None:
        frame = pd.read_csv(DATA / "phe_testdata_DSR_ISR__testdata_multiarea_isr.csv")
        reference = pd.read_csv(DATA / "phe_testdata_DSR_ISR__refdata.csv")
        lookup = pd.read_csv(DATA / "phe_testdata_DSR_ISR__testdata_multiarea_lookup.csv")
        totals = dict(zip(lookup["area"], lookup["total_count"] + 1, strict=True))
        result = isr_by_strata(
            frame,
            reference,
            unit="area",
            stratum="ageband",
            count="count",
            population="pop",
            ref_stratum="Age Band",
            observed_totals=totals,
        )
        assert result.get("testdata_big").observed == 896

    def test_missing_reference_count_is_zero_and_unknown_stratum_refused(self) -> None:
        frame = pd.DataFrame(
            {"u": ["a", "a"], "k": ["y", "o"], "count": [1, 4], "pop": [100.0, 100.0]}
        )
        reference = pd.DataFrame(
            {"k": ["y", "o"], "refcount": [np.nan, 10.0], "refpop": [1000.0, 1000.0]}
        )
        result = isr_by_strata(
            frame, reference, unit="u", stratum="k", count="count", population="pop"
        )
        assert result.get("a").expected == pytest.approx(1.0)
        with pytest.raises(ValueError, match="strata without"):
            isr_by_strata(
                frame.assign(k=["y", "z"]),
                reference,
                unit="u",
                stratum="k",
                count="count",
                population="pop",
            )


class TestModelBased:
    def test_nboca_worked_example(self) -> None:
        # 10 patients, O = 1, E = 1.15, national rate 3.8% -> adjusted 3.3%
        result = ratio_estimates(["unit"], [1], [1.15], n=[10], reference_rate=0.038)
        assert result.estimates[0].rate == pytest.approx(0.033, abs=5e-4)
        assert result.estimates[0].interval_method == "exact"

    def test_patient_level_by_unit_and_period(self) -> None:
        frame = pd.DataFrame(
            {
                "unit": ["a", "a", "a", "b", "b", "b"],
                "period": [1, 1, 2, 1, 2, 2],
                "died": [1, 0, 1, 0, 0, 1],
                "p": [0.5, 0.25, 0.5, 0.1, 0.2, 0.3],
            }
        )
        result = indirect_standardisation(
            frame, unit="unit", outcome="died", expected="p", period="period"
        )
        got = result.get("a", 1)
        assert (got.observed, got.expected, got.n) == (1.0, 0.75, 2.0)
        assert got.reference_rate == pytest.approx(0.5)
        assert got.rate == pytest.approx(1 / 0.75 * 0.5)
        assert len(result.estimates) == 4
        assert result.to_frame().shape[0] == 4

    def test_zero_expected_gives_nan_ratio(self) -> None:
        result = ratio_estimates(["a"], [0], [0.0])
        assert np.isnan(result.estimates[0].ratio)
        assert result.estimates[0].rate is None

    def test_missing_values_refused(self) -> None:
        frame = pd.DataFrame({"unit": ["a"], "died": [np.nan], "p": [0.1]})
        with pytest.raises(ValueError, match="missing"):
            indirect_standardisation(frame, unit="unit", outcome="died", expected="p")

    def test_unknown_period_lookup(self) -> None:
        result = ratio_estimates(["a"], [3], [2.0])
        with pytest.raises(KeyError):
            result.get("a", 2)


class TestAhrq:
    def test_methods_4_4_arithmetic(self) -> None:
        result = ahrq_smoothed_rates(
            ["h"],
            [400],
            [30],
            [24],
            [22.2],
            reference_rate=P3_IQI15,
            signal_variance=P2_IQI15,
        )
        row = result.estimates[0]
        assert row.observed_rate == pytest.approx(0.075)
        assert row.expected_rate == pytest.approx(0.06)
        assert row.risk_adjusted_rate == pytest.approx(0.064836, abs=5e-7)
        assert row.se == pytest.approx(0.010183, abs=5e-7)
        assert row.variance == pytest.approx(0.00010369, abs=5e-9)
        assert row.reliability == pytest.approx(0.52302, abs=5e-6)
        assert row.smoothed_rate == pytest.approx(0.058651, abs=5e-7)
        assert row.smoothed_se == pytest.approx(0.0073643, abs=5e-8)
        assert (row.lower, row.upper) == pytest.approx((0.044878, 0.084795), abs=5e-7)
        assert result.signal_variance_source == "given"

    def test_lower_limit_truncated_at_zero(self) -> None:
        result = ahrq_smoothed_rates(
            ["h"], [10], [0], [0.5], [0.45], reference_rate=P3_IQI15, signal_variance=P2_IQI15
        )
        assert result.estimates[0].lower == 0.0

    def test_patient_level_calibration_and_cap(self) -> None:
        frame = pd.DataFrame(
            {"h": ["a", "a", "b", "b"], "y": [1, 0, 1, 1], "p": [0.995, 0.2, 0.4, 0.3]}
        )
        result = ahrq_from_patients(
            frame,
            unit="h",
            outcome="y",
            expected="p",
            reference_rate=0.5,
            signal_variance=0.01,
            calibration="none",
        )
        a = result.estimates[0]
        assert a.expected_sum == pytest.approx(0.99 + 0.2)  # capped at 0.99
        assert a.phat_sum == pytest.approx(0.99 * 0.01 + 0.2 * 0.8)
        other = pd.DataFrame(
            {"h": ["a", "a", "b", "b"], "y": [1, 0, 0, 1], "p": [0.5, 0.2, 0.4, 0.3]}
        )
        data = ahrq_from_patients(
            other, unit="h", outcome="y", expected="p", reference_rate=0.5, signal_variance=0.01
        )
        total_e = sum(e.expected_sum for e in data.estimates)
        assert total_e == pytest.approx(2.0)  # sum O / sum EHAT calibration
        scaled = ahrq_from_patients(
            frame,
            unit="h",
            outcome="y",
            expected="p",
            reference_rate=0.5,
            signal_variance=0.01,
            calibration=0.5,
        )
        assert scaled.estimates[1].expected_sum == pytest.approx(0.35)

    def test_signal_variance_by_moments_recovers_the_truth(self) -> None:
        rng = np.random.default_rng(2024)
        hospitals, true_p2, p3 = 400, 0.0004, 0.05
        n = rng.integers(300, 3000, size=hospitals).astype(float)
        true_rate = np.clip(rng.normal(p3, np.sqrt(true_p2), size=hospitals), 0.001, None)
        events = rng.binomial(n.astype(int), true_rate).astype(float)
        ehat = n * p3
        phat = n * p3 * (1 - p3)
        result = ahrq_smoothed_rates(np.arange(hospitals), n, events, ehat, phat, reference_rate=p3)
        assert result.signal_variance_source == "method of moments"
        assert result.signal_variance == pytest.approx(true_p2, rel=0.25)
        frame = result.to_frame()
        # smoothing pulls every rate towards P3
        assert np.all(
            np.abs(frame["smoothed_rate"] - p3) <= np.abs(frame["risk_adjusted_rate"] - p3) + 1e-15
        )
