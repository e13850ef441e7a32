"""Change beyond chance between the first and the last year: p-values against R, verdicts by
direction, and the false-alarm rate of "improved"/"worsened" on data with no change."""

from __future__ import annotations

import numpy as np
import pytest

from qicollab.stats.change import compare_means, compare_proportions, compare_rates

# R 4.x reference values:
#   poisson.test(c(12, 3), c(40.5, 38.2))$p.value                              0.0362967071361394
#   poisson.test(c(7, 9), c(30, 31))$p.value                                   0.804041198251101
#   fisher.test(matrix(c(30, 70, 12, 88), 2, byrow=TRUE))$p.value              0.00286656076328444
#   fisher.test(matrix(c(5, 15, 6, 14), 2, byrow=TRUE))$p.value                1
#   t.test(c(31.2, 29.8, 33.1, 30.4, 32.0, 30.9),
#          c(27.1, 26.4, 28.9, 27.7, 26.0, 28.2))$p.value                      0.000163132279116666


def test_rates_match_r_poisson_test():
    fell = compare_rates((12, 40.5), (3, 38.2), higher_is_better=False)
    assert fell.p_value == pytest.approx(0.0362967071361394, rel=1e-9)
    assert fell.verdict == "improved"  # infections fell
    same = compare_rates((7, 30), (9, 31), higher_is_better=False)
    assert same.p_value == pytest.approx(0.804041198251101, rel=1e-9)
    assert same.verdict == "no clear change"


def test_proportions_match_r_fisher_test():
    fell = compare_proportions((30, 100), (12, 100), higher_is_better=True)
    assert fell.p_value == pytest.approx(0.00286656076328444, rel=1e-9)
    assert fell.verdict == "worsened"  # compliance fell
    assert compare_proportions((5, 20), (6, 20), higher_is_better=True).p_value == pytest.approx(1)


def test_means_match_r_welch_t_test():
    change = compare_means(
        [31.2, 29.8, 33.1, 30.4, 32.0, 30.9],
        [27.1, 26.4, 28.9, 27.7, 26.0, 28.2],
        higher_is_better=False,
    )
    assert change.p_value == pytest.approx(0.000163132279116666, rel=1e-7)
    assert change.verdict == "improved"  # door-to-needle minutes fell


def test_a_tiny_move_in_the_good_direction_is_no_clear_change():
    """The issue's example: D2P down by a tenth of a minute was called "improved"."""
    rng = np.random.default_rng(5)
    first = rng.normal(30.0, 3.0, 12)
    change = compare_means(first, first - 0.1, higher_is_better=False)
    assert change.verdict == "no clear change"


def test_what_cannot_be_tested_says_why():
    assert compare_means([3.0], [2.0, 2.5], higher_is_better=False).reason
    assert compare_rates((1, 0), (2, 5), higher_is_better=False).verdict == "not assessed"
    assert compare_proportions((0, 0), (2, 5), higher_is_better=True).verdict == "not assessed"


def test_unchanged_members_are_rarely_called_changed():
    """Known truth: 2,000 members with the same rate in both years (E from 1 to 100, and
    proportions with n from 5 to 500). The exact tests are conservative, so at alpha 0.05
    at most 5% (plus simulation error) are called improved or worsened."""
    rng = np.random.default_rng(11)
    exposure = rng.uniform(1, 100, (2000, 2))
    counts = rng.poisson(exposure * 0.8)
    called = sum(
        compare_rates(
            (counts[i, 0], exposure[i, 0]), (counts[i, 1], exposure[i, 1]), higher_is_better=False
        ).verdict
        in {"improved", "worsened"}
        for i in range(2000)
    )
    assert called / 2000 <= 0.06
    n = rng.integers(5, 500, (2000, 2))
    x = rng.binomial(n, 0.3)
    called = sum(
        compare_proportions((x[i, 0], n[i, 0]), (x[i, 1], n[i, 1]), higher_is_better=True).verdict
        in {"improved", "worsened"}
        for i in range(2000)
    )
    assert called / 2000 <= 0.06


def test_a_real_change_is_found():
    """Known truth: the rate halves with 200 expected events a year: found nearly always."""
    rng = np.random.default_rng(12)
    found = sum(
        compare_rates(
            (rng.poisson(200), 100.0), (rng.poisson(100), 100.0), higher_is_better=False
        ).verdict
        == "improved"
        for _ in range(200)
    )
    assert found >= 195


def test_the_difference_is_last_minus_first_on_the_shown_scale():
    # 12/40.5 to 3/38.2 events per expected event, shown as rates at 0.08 per patient.
    fell = compare_rates((12, 40.5), (3, 38.2), higher_is_better=False)
    assert fell.difference == pytest.approx(3 / 38.2 - 12 / 40.5, rel=1e-12)
    shown = fell.scaled(0.08)
    assert (shown.first, shown.last) == (fell.first * 0.08, fell.last * 0.08)
    assert shown.difference == shown.last - shown.first
    assert shown.difference == pytest.approx(0.08 * (3 / 38.2 - 12 / 40.5), rel=1e-12)
    assert (shown.verdict, shown.p_value, shown.test) == (fell.verdict, fell.p_value, fell.test)
    rose = compare_proportions((30, 100), (42, 100), higher_is_better=True)
    assert rose.difference == pytest.approx(0.12, rel=1e-12)


def test_no_difference_without_both_years():
    untested = compare_means([3.0], [4.0, 5.0], higher_is_better=True)
    assert untested.difference is None
    assert untested.scaled(2.0).difference is None
