"""The pure best-practice comparison: counts by hand, withholding, and a simulation with a
known adoption rate per group."""

from __future__ import annotations

import numpy as np
import pytest

from qicollab.stats.practice import compare_practice


def test_counts_and_shares_by_hand():
    contributors = range(1, 16)  # 15 members
    best = {1, 2, 3, 4, 5}
    improved = {5, 6, 7, 8, 9}  # member 5 is in both groups
    tested = {1: {10}, 2: {10, 20}, 6: {20}, 12: {10}}
    adopted = {1: {10}, 2: {10}, 3: {10}, 6: {20}, 13: {20}}
    result = compare_practice(
        contributors, best, improved, tested=tested, adopted=adopted, ideas=[10, 20, 30]
    )
    assert (result.contributors, result.best, result.improved, result.rest) == (15, 5, 5, 6)
    by_idea = {row.idea: row for row in result.ideas}
    ten = by_idea[10]
    assert (ten.best.tested, ten.best.adopted) == (3, 3)  # adopted counts as tested
    assert (ten.rest.tested, ten.rest.adopted) == (1, 0)  # member 12
    assert ten.best.adopted_share == pytest.approx(0.6)
    assert ten.adopted_difference == pytest.approx(0.6)
    twenty = by_idea[20]
    assert (twenty.improved.tested, twenty.improved.adopted) == (1, 1)
    assert (twenty.rest.tested, twenty.rest.adopted) == (1, 1)  # member 13
    assert [row.idea for row in result.ideas] == [10, 30, 20]  # by adopted difference


def test_small_groups_and_small_collaboratives_are_withheld():
    result = compare_practice(
        range(1, 9), {1, 2}, {3, 4, 5, 6, 7}, tested={}, adopted={1: {9}}, ideas=[9]
    )
    row = result.ideas[0]
    assert row.best.withheld
    assert row.best.members == 2
    assert row.best.tested_share is None
    assert row.adopted_difference is None
    assert not row.improved.withheld
    assert row.rest.withheld  # one member left
    tiny = compare_practice(range(1, 5), {1}, set(), tested={}, adopted={}, ideas=[9])
    assert tiny.withheld
    assert tiny.ideas == ()
    with pytest.raises(ValueError, match="at least 1"):
        compare_practice(
            range(3), set(), set(), tested={}, adopted={}, ideas=[1], min_contributors=0
        )


def test_simulated_adoption_rates_are_recovered():
    """400 members; best performers adopt idea 1 with probability 0.7, the rest with 0.2."""
    rng = np.random.default_rng(20261205)
    members = np.arange(400)
    best = set(members[:120].tolist())
    adopted = {int(m): {1} for m in members if rng.random() < (0.7 if m in best else 0.2)}
    result = compare_practice(
        members.tolist(), best, set(), tested={}, adopted=adopted, ideas=[1, 2]
    )
    row = next(r for r in result.ideas if r.idea == 1)
    # Binomial standard errors: sqrt(.7*.3/120) = 0.042, sqrt(.2*.8/280) = 0.024; 3 SE bounds.
    assert row.best.adopted_share == pytest.approx(0.7, abs=0.13)
    assert row.rest.adopted_share == pytest.approx(0.2, abs=0.072)
    assert row.adopted_difference == pytest.approx(0.5, abs=0.15)
    assert result.ideas[0].idea == 1
