"""False-alarm rates of the rules on in-control data (seeded simulations, a second each).

Expected bands and where they come from:

* Anhøj rules, 24 points, centre known (signs independent, p = 1/2): exactly 6.62 %, computed
  below by dynamic programming over (run length, crossings); Anhøj (2015, PLoS ONE
  10(3):e0121349) reports false-positive rates of about 5-8 % for these rules over n = 10-100.
* Run chart, 24 points, centre = median of the same points (12 above, 12 below, every
  arrangement equally likely): exactly 3.06 % by the same kind of count. The median centre
  balances the two sides, which makes very long runs and very few crossings rarer.
* The 3-sigma rule with limits from a long stable baseline: 0.27 % per point (two-sided normal
  tail beyond 3 sigma). We freeze 176 points and score the next 24; the estimated limits add a
  little variance, so the band is 0.20-0.40 %.

Each simulated rate must fall within 4 standard errors of the exact value (or inside the band).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from qicollab.stats.spc import RULE_BITS, control_charts
from qicollab.stats.spc_rules import anhoej, anhoej_critical_values

N = 24


def _exact_iid(n: int) -> float:
    """P(longest run > limit or crossings < limit) for n independent fair signs."""
    longest_max, crossings_min = (int(v[0]) for v in anhoej_critical_values([n]))

    @cache
    def quiet(i: int, run: int, crossings: int, long_run: bool) -> float:
        if i == n:
            return 0.0 if (long_run or crossings < crossings_min) else 1.0
        same = quiet(i + 1, run + 1, crossings, long_run or run + 1 > longest_max)
        switch = quiet(i + 1, 1, crossings + 1, long_run)
        return (same + switch) / 2

    return 1 - quiet(1, 1, 0, False)


def _exact_median(n: int) -> float:
    """The same for a random arrangement of n/2 points above and n/2 below the centre."""
    half = n // 2
    longest_max, crossings_min = (int(v[0]) for v in anhoej_critical_values([n]))

    @cache
    def signalling(
        above: int, below: int, side: int, run: int, crossings: int, long_run: bool
    ) -> int:
        if above == half and below == half:
            return int(long_run or crossings < crossings_min)
        total = 0
        for s, a, b in ((1, above + 1, below), (-1, above, below + 1)):
            if a > half or b > half:
                continue
            if s == side:
                total += signalling(a, b, s, run + 1, crossings, long_run or run + 1 > longest_max)
            else:
                total += signalling(a, b, s, 1, crossings + 1, long_run)
        return total

    count = signalling(1, 0, 1, 1, 0, False) + signalling(0, 1, -1, 1, 0, False)
    return count / math.comb(n, half)


def _within(rate: float, expected: float, trials: int, k: float = 4.0) -> bool:
    se = math.sqrt(expected * (1 - expected) / trials)
    return abs(rate - expected) <= k * se


def test_exact_rates() -> None:
    assert round(_exact_iid(N), 4) == 0.0662
    assert round(_exact_median(N), 4) == 0.0306
    assert 0.05 <= _exact_iid(N) <= 0.08  # Anhøj (2015)


def test_anhoej_rules_with_a_known_centre() -> None:
    rng = np.random.default_rng(11)
    series = 20_000
    y = rng.normal(size=(series, N))
    rate = float(anhoej(y, 0.0).signal.mean())
    assert _within(rate, _exact_iid(N), series), rate


def test_run_chart_false_alarms() -> None:
    rng = np.random.default_rng(12)
    series = 20_000
    batch = control_charts(rng.normal(size=(series, N)), chart="run")
    rate = float(batch.runs_signal.mean())
    assert _within(rate, _exact_median(N), series), rate
    # ...and the per-point flags agree with the per-phase verdict
    flagged = (
        batch.signals
        & ((1 << RULE_BITS["anhoej_longest_run"]) | (1 << RULE_BITS["anhoej_crossings"]))
    ) != 0
    assert (flagged.any(axis=1) == batch.runs_signal).all()


def test_three_sigma_rule_per_point() -> None:
    rng = np.random.default_rng(13)
    series, baseline = 5_000, 176
    y = rng.normal(size=(series, baseline + N))
    batch = control_charts(y, chart="i", freeze=baseline, screen_mr=False)
    outside = (batch.signals[:, baseline:] & (1 << RULE_BITS["outside_limits"])) != 0
    rate = float(outside.mean())
    assert 0.0020 <= rate <= 0.0040, rate


def test_p_chart_three_sigma_rule_is_rare_on_binomial_data() -> None:
    """Discrete binomial counts (n 50-200, p = 0.1) with limits from 24 points: the exact tail
    is below the normal 0.27 %; stay within 0.1-0.5 % per point."""
    rng = np.random.default_rng(14)
    n = rng.integers(50, 200, size=(20_000, N))
    batch = control_charts(rng.binomial(n, 0.1), n, chart="p")
    rate = float(((batch.signals & 1) != 0).mean())
    assert 0.001 <= rate <= 0.005, rate
