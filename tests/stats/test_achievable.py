"""Achievable Benchmark of Care: the hand-checkable example of METHODS 4.6 and the options."""

from __future__ import annotations

import numpy as np
import pytest

from qicollab.stats.achievable import achievable_benchmark

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
