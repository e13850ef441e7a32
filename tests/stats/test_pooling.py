"""Pooled values per group, checked against R.

References (R 4.x, base stats):
    prop.test(30, 100, correct = FALSE)$conf.int   # Wilson: 0.218948852949 0.395848546333
    poisson.test(7, 250)$conf.int                  # exact:  0.0112574522061 0.0576907014468
    poisson.test(4)$conf.int / 5.5                 # exact O/E: 0.198157340659 1.862107031892
"""

from __future__ import annotations

import numpy as np
import pytest

from qicollab.stats.pooling import pool


def test_proportions_pool_their_counts_with_a_wilson_interval() -> None:
    (year,) = pool(["A", "B"], [2024, 2024], [10, 20], [40, 60], kind="proportion")
    # not the mean of 0.25 and 0.333: the sums
    assert year.value == pytest.approx(0.3)
    assert (year.lower, year.upper) == pytest.approx((0.218948852949, 0.395848546333), rel=1e-9)
    assert (year.numerator, year.denominator, year.members) == (30.0, 100.0, 2)


def test_rates_pool_events_over_exposure_with_an_exact_interval() -> None:
    (year,) = pool(["A", "B"], [2025, 2025], [3, 4], [100, 150], kind="rate")
    assert year.value == pytest.approx(7 / 250)
    assert (year.lower, year.upper) == pytest.approx((0.0112574522061, 0.0576907014468), rel=1e-9)


def test_ratios_pool_observed_over_expected() -> None:
    (year,) = pool(["A", "B"], [2025, 2025], [1, 3], [2.5, 3.0], kind="ratio")
    assert year.value == pytest.approx(4 / 5.5)
    assert (year.lower, year.upper) == pytest.approx((0.198157340659, 1.862107031892), rel=1e-9)


def test_means_are_weighted_and_have_no_interval() -> None:
    (year,) = pool(["A", "B"], ["2024", "2024"], [2.0, 4.0], [1.0, 3.0], kind="mean")
    assert year.value == pytest.approx(3.5)
    assert year.lower is None
    assert year.upper is None


def test_groups_are_sorted_and_unusable_rows_left_out() -> None:
    pooled = pool(
        ["A", "A", "B", "B", "C"],
        [2025, 2024, 2024, 2025, 2025],
        [1, 2, np.nan, 3, 5],
        [10, 10, 10, 10, 0],
        kind="rate",
    )
    assert [p.group for p in pooled] == [2024, 2025]
    assert [p.members for p in pooled] == [1, 2]
    assert pooled[1].value == pytest.approx(4 / 20)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="equal length"):
        pool(["A"], [2024, 2025], [1, 2], [3, 4], kind="rate")
    with pytest.raises(ValueError, match="kind"):
        pool(["A"], [2024], [1], [3], kind="median")  # type: ignore[arg-type]
