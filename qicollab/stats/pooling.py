"""One pooled value per group (e.g. the collaborative's value in each calendar year).

Why: a collaborative's yearly value is not the mean of its members' rates. Counts pool their
sums, so a large member weighs as much as its patients do:

==============  =====================  ===================  ===================================
kind            numerator              denominator          pooled value and its interval
==============  =====================  ===================  ===================================
``"ratio"``     observed events O      expected events E    sum O / sum E; exact below 10
                                                            events, Byar above (PHE's rule)
``"rate"``      events                 exposure             sum x / sum exposure; exact Poisson
``"proportion"`` events x              cases n              sum x / sum n; Wilson
``"mean"``      member values          weights (cases)      sum(w v) / sum w; no interval (the
                                                            members' spread is not given)
==============  =====================  ===================  ===================================

Rows with a missing numerator or a denominator that is not positive are left out; a group
without rows has no pooled value.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from qicollab.stats.intervals import exact_poisson_interval, ratio_interval, wilson_interval

PoolKind = Literal["ratio", "rate", "proportion", "mean"]


@dataclass(frozen=True, slots=True)
class PooledValue:
    """One group's pooled value.

    Parameters
    ----------
    group : Hashable
        The group's key (a year).
    value : float
        The pooled value (see the module table).
    lower, upper : float or None
        Its interval at the call's level (None for ``"mean"``).
    numerator, denominator : float
        The pooled sums (for ``"mean"``: sum w v and sum w).
    members : int
        Distinct units with a row in the group.
    """

    group: Hashable
    value: float
    lower: float | None
    upper: float | None
    numerator: float
    denominator: float
    members: int


def pool(
    units: Sequence[Hashable] | np.ndarray,
    groups: Sequence[Hashable] | np.ndarray,
    numerator: npt.ArrayLike,
    denominator: npt.ArrayLike,
    *,
    kind: PoolKind,
    level: float = 0.95,
) -> tuple[PooledValue, ...]:
    """Pool the rows of each group (see the module docstring); groups in sorted order."""
    x = np.asarray(numerator, dtype=float)
    n = np.asarray(denominator, dtype=float)
    labels = np.asarray(groups, dtype=object)
    owners = np.asarray(units, dtype=object)
    if not (x.shape == n.shape == labels.shape == owners.shape) or x.ndim != 1:
        msg = "units, groups, numerator and denominator must be 1-d and of equal length"
        raise ValueError(msg)
    if kind not in ("ratio", "rate", "proportion", "mean"):
        msg = f"kind must be ratio, rate, proportion or mean, got {kind!r}"
        raise ValueError(msg)
    usable = np.isfinite(x) & np.isfinite(n) & (n > 0)
    out = []
    for group in sorted(set(labels[usable].tolist())):
        rows = usable & (labels == group)
        weights = n[rows]
        top = float(np.sum(x[rows] * weights)) if kind == "mean" else float(np.sum(x[rows]))
        bottom = float(np.sum(weights))
        lower = upper = None
        if kind == "ratio":
            interval = ratio_interval(top, bottom, level=level, method="phe")
        elif kind == "rate":
            interval = exact_poisson_interval(top, bottom, level=level)
        elif kind == "proportion":
            interval = wilson_interval(min(top, bottom), bottom, level=level)
        if kind != "mean":
            lower, upper = float(interval.lower), float(interval.upper)
        out.append(
            PooledValue(
                group=group,
                value=top / bottom,
                lower=lower,
                upper=upper,
                numerator=top,
                denominator=bottom,
                members=len(set(owners[rows].tolist())),
            )
        )
    return tuple(out)


__all__ = ["PoolKind", "PooledValue", "pool"]
