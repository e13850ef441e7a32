"""Did a member's value change beyond chance between the first and the last year of a cycle?

"Improved" must mean more than "moved in the good direction": a difference of a tenth of a
minute is noise. Each comparison here is a two-sided test of "no change" between the first and
the last period (year) of the member's data, chosen for the kind of number:

* proportions (events out of cases): Fisher's exact test on the 2 x 2 table;
* counts against exposure or expected counts (rates, O/E of patient-level counts): the exact
  conditional test of equal rates: given O1 + O2 events, O1 ~ Binomial(O1 + O2, E1/(E1 + E2))
  (Przyborowski and Wilenski 1940; what R's ``poisson.test`` with two samples does);
* means (from monthly values): Welch's two-sample t test on the months of each year.

A change is "improved" or "worsened" (in the measure's direction) when p < alpha (default
0.05), else "no clear change"; "not assessed" when the data cannot support the test, with the
reason. Pure: arrays and numbers in, a frozen :class:`Change` out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy import stats

Verdict = Literal["improved", "worsened", "no clear change", "not assessed"]

PROPORTION_TEST = "Fisher's exact test, first vs last year"
RATE_TEST = "exact conditional test of equal rates (two-sample Poisson), first vs last year"
MEAN_TEST = "Welch's t test on monthly values, first vs last year"


@dataclass(frozen=True, slots=True)
class Change:
    """The test of a member's change and what it means."""

    verdict: Verdict
    test: str
    #: First and last values on the measure's scale (proportion, rate or ratio, mean).
    first: float | None = None
    last: float | None = None
    p_value: float | None = None
    reason: str | None = None

    @property
    def difference(self) -> float | None:
        """last - first on the measure's scale: how far the member moved (None when a year has
        no value)."""
        if self.first is None or self.last is None:
            return None
        return self.last - self.first

    def scaled(self, factor: float) -> Change:
        """The same change with its values multiplied by ``factor`` (e.g. O/E shown as a
        risk-adjusted rate: O/E x the collaborative's rate); the difference follows."""
        return replace(
            self,
            first=self.first * factor if self.first is not None else None,
            last=self.last * factor if self.last is not None else None,
        )


def _verdict(
    first: float, last: float, p_value: float, *, higher_is_better: bool, alpha: float
) -> Verdict:
    if not math.isfinite(p_value) or p_value >= alpha or first == last:
        return "no clear change"
    went_up = last > first
    return "improved" if went_up == higher_is_better else "worsened"


def compare_proportions(
    first: tuple[float, float],
    last: tuple[float, float],
    *,
    higher_is_better: bool,
    alpha: float = 0.05,
) -> Change:
    """(events, cases) in the first and the last year."""
    (x1, n1), (x2, n2) = first, last
    if n1 <= 0 or n2 <= 0:
        return Change("not assessed", PROPORTION_TEST, reason="a year without cases")
    table = [[round(x1), round(n1 - x1)], [round(x2), round(n2 - x2)]]
    p_value = float(stats.fisher_exact(table).pvalue)
    p1, p2 = x1 / n1, x2 / n2
    return Change(
        _verdict(p1, p2, p_value, higher_is_better=higher_is_better, alpha=alpha),
        PROPORTION_TEST,
        p1,
        p2,
        p_value,
    )


def compare_rates(
    first: tuple[float, float],
    last: tuple[float, float],
    *,
    higher_is_better: bool,
    alpha: float = 0.05,
) -> Change:
    """(events, exposure or expected events) in the first and the last year; the values
    compared are events / exposure."""
    (o1, e1), (o2, e2) = first, last
    if e1 <= 0 or e2 <= 0:
        return Change("not assessed", RATE_TEST, reason="a year without exposure")
    events = round(o1 + o2)
    r1, r2 = o1 / e1, o2 / e2
    if events == 0:
        return Change("no clear change", RATE_TEST, r1, r2, 1.0)
    p_value = float(stats.binomtest(round(o1), events, e1 / (e1 + e2)).pvalue)
    return Change(
        _verdict(r1, r2, p_value, higher_is_better=higher_is_better, alpha=alpha),
        RATE_TEST,
        r1,
        r2,
        p_value,
    )


def compare_means(
    first: Sequence[float],
    last: Sequence[float],
    *,
    higher_is_better: bool,
    alpha: float = 0.05,
) -> Change:
    """The monthly values of the first and of the last year."""
    a = np.asarray([v for v in first if math.isfinite(v)], dtype=float)
    b = np.asarray([v for v in last if math.isfinite(v)], dtype=float)
    if len(a) < 2 or len(b) < 2:
        return Change("not assessed", MEAN_TEST, reason="fewer than two values in a year")
    m1, m2 = float(a.mean()), float(b.mean())
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        if m1 == m2:
            return Change("no clear change", MEAN_TEST, m1, m2, 1.0)
        return Change("not assessed", MEAN_TEST, m1, m2, reason="no variation within a year")
    p_value = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return Change(
        _verdict(m1, m2, p_value, higher_is_better=higher_is_better, alpha=alpha),
        MEAN_TEST,
        m1,
        m2,
        p_value,
    )
