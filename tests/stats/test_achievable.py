"""Achievable Benchmark of Care: the hand-checkable example of METHODS 4.6 and the options."""

from __future__ import annotations

import numpy as np
import pytest

from qicollab.stats.achievable import achievable_benchmark, benchmark_gaps

UNITS = list("ABCDEFGH")
X = [3, 18, 46, 80, 27, 60, 9, 280]
N = [3, 20, 50, 100, 30, 80, 12, 400]


class TestMethodsExample:
    def test_abc_and_benchmark_units(self) -> None:
        result = achievable_benchmark(UNITS, X, N)
        assert result.abc == pytest.approx(0.9125)
        assert result.benchmark_units == ("C", "E")

    def test_afp_order_and_values(self) -> None:
        result = achievable_benchmark(UNITS, X, N)
        assert [u.unit for u in result.units] == list("CEBADFGH")
        assert [round(u.afp, 4) for u in result.units] == [
            0.9038,
            0.8750,
            0.8636,
            0.8000,
            0.7941,
            0.7439,
            0.7143,
            0.6990,
        ]

    def test_raw_best_is_not_a_benchmark_unit(self) -> None:
        result = achievable_benchmark(UNITS, X, N)
        a = next(u for u in result.units if u.unit == "A")
        assert a.rate == 1.0
        assert not a.in_benchmark

    def test_overall_coverage_and_distance(self) -> None:
        result = achievable_benchmark(UNITS, X, N)
        assert result.overall == pytest.approx(sum(X) / sum(N))
        assert result.covered == pytest.approx(80 / 695)
        h = next(u for u in result.units if u.unit == "H")
        assert h.distance == pytest.approx(0.7 - 0.9125)
        assert h.gap == pytest.approx(0.9125 - 0.7)
        assert next(u for u in result.units if u.unit == "A").gap == 0.0


class TestOptions:
    def test_lower_is_better_mirrors_the_complement(self) -> None:
        failures = [n - x for x, n in zip(X, N, strict=True)]
        result = achievable_benchmark(UNITS, failures, N, lower_is_better=True)
        assert result.benchmark_units == ("C", "E")
        assert result.abc == pytest.approx(1 - 0.9125)
        assert result.lower_is_better

    def test_ties_at_the_cut_are_all_included(self) -> None:
        # three providers tied on AFP; the first alone reaches 10%
        result = achievable_benchmark(
            ["p", "q", "r", "s"], [90, 90, 90, 100], [100, 100, 100, 200], fraction=0.1
        )
        assert set(result.benchmark_units) == {"p", "q", "r"}
        assert result.abc == pytest.approx(0.9)

    def test_min_units(self) -> None:
        result = achievable_benchmark(UNITS, X, N, min_units=3)
        assert result.benchmark_units == ("C", "E", "B")
        assert result.abc == pytest.approx((46 + 27 + 18) / (50 + 30 + 20))

    def test_larger_fraction_takes_more_units(self) -> None:
        result = achievable_benchmark(UNITS, X, N, fraction=0.25)
        # cumulative n in AFP order: 50, 80, 100, 103, 203 >= 173.75
        assert result.benchmark_units == ("C", "E", "B", "A", "D")

    def test_zero_denominators_are_excluded(self) -> None:
        result = achievable_benchmark([*UNITS, "Z"], [*X, 0], [*N, 0])
        assert result.excluded == ("Z",)
        assert result.abc == pytest.approx(0.9125)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"fraction": 0.0}, "fraction"),
            ({"min_units": 0}, "min_units"),
            ({"min_units": 9}, "exceeds"),
        ],
    )
    def test_bad_options(self, kwargs: dict, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            achievable_benchmark(UNITS, X, N, **kwargs)

    def test_bad_data(self) -> None:
        with pytest.raises(ValueError, match="exceeds"):
            achievable_benchmark(["a"], [3], [2])
        with pytest.raises(ValueError, match="distinct"):
            achievable_benchmark(["a", "a"], [1, 1], [2, 2])
        with pytest.raises(ValueError, match="non-negative"):
            achievable_benchmark(["a"], [-1], [2])
        with pytest.raises(ValueError, match="positive"):
            achievable_benchmark(["a"], [0], [0])

    def test_frame_has_one_row_per_unit(self) -> None:
        frame = achievable_benchmark(UNITS, np.array(X), np.array(N)).to_frame()
        assert frame.shape[0] == 8
        assert frame["in_benchmark"].sum() == 2


class TestBenchmarkGaps:
    """ "Reaches the benchmark" and "how far short", judged once in the measure's direction."""

    def test_higher_is_better(self) -> None:
        gaps = benchmark_gaps([0.95, 0.9125, 0.7, np.nan], 0.9125, lower_is_better=False)
        assert gaps.known.tolist() == [True, True, True, False]
        assert gaps.reaches.tolist() == [True, True, False, False]
        assert gaps.gap[:3] == pytest.approx([0.0, 0.0, 0.2125])
        assert np.isnan(gaps.gap[3])
        assert gaps.distance[:3] == pytest.approx([0.0375, 0.0, -0.2125])
        assert gaps.relative_gap[2] == pytest.approx(0.2125 / 0.9125)

    def test_lower_is_better_mirrors_it(self) -> None:
        gaps = benchmark_gaps([0.05, 0.0875, 0.3], 0.0875, lower_is_better=True)
        assert gaps.reaches.tolist() == [True, True, False]
        assert gaps.gap == pytest.approx([0.0, 0.0, 0.2125])
        # the same value is short of a higher-is-better benchmark and beyond a lower one
        assert not benchmark_gaps([0.05], 0.0875, lower_is_better=False).reaches[0]

    def test_rounding_of_a_pooled_value_is_no_gap(self) -> None:
        # one member setting a pared mean of value x weight / weight
        value = 0.1 + 0.2
        pooled = (value * 7.0) / 7.0 * (1 + 1e-15)
        assert benchmark_gaps([value], pooled, lower_is_better=False).reaches[0]

    def test_no_benchmark_judges_nothing(self) -> None:
        gaps = benchmark_gaps([1.0, 2.0], None, lower_is_better=True)
        assert not gaps.known.any()
        assert not gaps.reaches.any()
        assert np.isnan(gaps.gap).all()

    def test_a_zero_benchmark_has_no_relative_gap(self) -> None:
        gaps = benchmark_gaps([0.0, 0.5], 0.0, lower_is_better=True)
        assert gaps.reaches.tolist() == [True, False]
        assert gaps.gap[1] == 0.5
        assert np.isnan(gaps.relative_gap).all()

    def test_abc_units_carry_the_same_judgement(self) -> None:
        result = achievable_benchmark(UNITS, X, N)
        judged = {u.unit: u.reaches for u in result.units}
        # C (46/50) is above the pared mean 0.9125, E (27/30) below it although it helps set it
        assert judged["C"]
        assert judged["A"]
        assert not judged["E"]
        assert judged == {u.unit: u.rate >= result.abc for u in result.units}
