"""Achievable Benchmark of Care (ABC): the pared-mean performance of the best providers.

Kiefe and Weissman's ABC is the performance already achieved by the top providers who together
cover at least 10% of all patients, so it is both excellent and demonstrably attainable:

1. adjusted performance fraction AFP_j = (x_j + 1) / (n_j + 2) (posterior mean under a
   uniform prior; used only for ranking, so that 3/3 cannot outrank 46/50);
2. sort by AFP, best first (descending when higher is better, ascending when lower is better);
3. take providers in that order until their cumulative denominator reaches ``fraction`` (10%)
   of the total; providers tied on AFP with the last one taken are all included, and at least
   ``min_units`` providers are taken when that option is set;
4. ABC = sum x_j / sum n_j over the selected providers (raw counts: the "pared mean").

Indicators that are not counts of successes (means, length of stay) have no AFP; they rank on
``rank_by``, their shrunk values (:func:`qicollab.stats.shrinkage.normal_normal_shrinkage` or
gamma-Poisson), which do for them what AFP does for proportions: keep a small member's lucky
value from setting the benchmark. The numerator is then the value times the denominator, the
pooled value over the selected providers is the ABC, and providers without a finite ranking
value are left out (``excluded``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd


@dataclass(frozen=True, slots=True)
class AbcUnit:
    """One provider in the ABC calculation.

    Parameters
    ----------
    unit : Hashable
        Provider identifier.
    numerator, denominator : float
        x and n.
    rate : float
        x / n.
    afp : float
        Adjusted performance fraction (x + 1) / (n + 2).
    rank : int
        1 = best AFP (ties share the order of the input).
    in_benchmark : bool
        True for the providers whose pooled rate is the ABC.
    distance : float
        rate - ABC (negative: below the benchmark).
    gap : float
        Improvement still needed to reach the benchmark in the measure's good direction (0 when
        at or beyond it).
    reaches : bool
        At or better than the benchmark (:func:`benchmark_gaps`).

    References
    ----------
    Kiefe CI et al. (1998), Int J Qual Health Care 10:443-447.
    """

    unit: Hashable
    numerator: float
    denominator: float
    rate: float
    afp: float
    rank: int
    in_benchmark: bool
    distance: float
    gap: float
    reaches: bool


@dataclass(frozen=True, slots=True)
class BenchmarkGaps:
    """Where each member's value stands against a benchmark, in the measure's good direction.

    Why here: "reaches the benchmark" and "how far short" are judged once, by the run, and
    every page, report and export shows what it stored (never its own comparison).

    Parameters
    ----------
    known : numpy.ndarray
        True where both the value and the benchmark are finite; elsewhere nothing is judged.
    reaches : numpy.ndarray
        At or better than the benchmark (False where not ``known``).
    distance : numpy.ndarray
        value - benchmark (nan where not ``known``).
    gap : numpy.ndarray
        Improvement still needed, >= 0 (0 when reached; nan where not ``known``).
    relative_gap : numpy.ndarray
        gap / |benchmark| (nan where not ``known`` or the benchmark is 0).
    """

    known: np.ndarray
    reaches: np.ndarray
    distance: np.ndarray
    gap: np.ndarray
    relative_gap: np.ndarray


#: Relative difference below which a value equals the benchmark (floating-point rounding).
ROUNDING = 1e-12


def benchmark_gaps(
    values: npt.ArrayLike, benchmark: float | None, *, lower_is_better: bool
) -> BenchmarkGaps:
    """Judge each value against the benchmark: lower-is-better measures reach it at or below
    it, higher-is-better ones at or above it; a missing value or benchmark is judged not at all.
    """
    v = np.atleast_1d(np.asarray(values, dtype=float))
    b = math.nan if benchmark is None else float(benchmark)
    known = np.isfinite(v) & math.isfinite(b)
    with np.errstate(invalid="ignore"):
        distance = np.where(known, v - b, np.nan)
        short = distance if lower_is_better else -distance
        # A benchmark member's own value equals the pooled value up to rounding: that is 0.
        short = np.where(np.abs(short) <= ROUNDING * abs(b), 0.0, short)
        gap = np.where(known, np.maximum(short, 0.0), np.nan)
    reaches = known & (gap <= 0.0)
    relative = gap / abs(b) if math.isfinite(b) and b != 0.0 else np.full(v.shape, np.nan)
    return BenchmarkGaps(known, reaches, distance, gap, relative)


@dataclass(frozen=True, slots=True)
class AbcResult:
    """The Achievable Benchmark of Care and the providers that set it.

    Why: an ABC is a target that the best providers already reach with real patients, less
    arbitrary than a fixed goal and less noisy than the single best raw rate.

    Parameters
    ----------
    method : str
        ``"Achievable Benchmark of Care (pared mean)"``.
    abc : float
        Pooled rate of the benchmark providers.
    overall : float
        Pooled rate of all providers, sum x / sum n.
    benchmark_units : tuple
        Identifiers of the providers in the benchmark, best first.
    fraction : float
        Share of the total denominator the benchmark providers must cover (0.10).
    lower_is_better : bool
        Ranking direction.
    min_units : int
        Minimum number of benchmark providers (1 = no minimum).
    covered : float
        Share of the total denominator the benchmark providers actually cover.
    units : tuple of AbcUnit
        Every provider with n > 0, best first.
    excluded : tuple
        Providers left out because their denominator is 0.

    References
    ----------
    Kiefe CI, Weissman NW, Allison JJ et al. (1998), Int J Qual Health Care 10(5):443-447;
    Weissman NW et al. (1999), J Eval Clin Pract 5(3):269-281; Allison JJ, Kiefe CI,
    Weissman NW (1999), Am J Public Health 89(1):61-65.
    """

    method: str
    abc: float
    overall: float
    benchmark_units: tuple[Hashable, ...]
    fraction: float
    lower_is_better: bool
    min_units: int
    covered: float
    units: tuple[AbcUnit, ...]
    excluded: tuple[Hashable, ...]

    def to_frame(self) -> pd.DataFrame:
        """One row per provider, best first."""
        names = AbcUnit.__dataclass_fields__
        return pd.DataFrame([{k: getattr(u, k) for k in names} for u in self.units])


def achievable_benchmark(
    units: Sequence[Hashable] | np.ndarray | pd.Series,
    numerator: npt.ArrayLike,
    denominator: npt.ArrayLike,
    *,
    fraction: float = 0.10,
    lower_is_better: bool = False,
    min_units: int = 1,
    rank_by: npt.ArrayLike | None = None,
) -> AbcResult:
    """Compute the ABC (see the module docstring for the steps).

    Parameters
    ----------
    units : sequence
        Provider identifiers (distinct).
    numerator, denominator : array_like
        x_j successes (or events) of n_j eligible patients.
    fraction : float
        Share of the total denominator the benchmark must cover, in (0, 1].
    lower_is_better : bool
        Rank by AFP ascending (e.g. complication rates).
    min_units : int
        Take at least this many providers.
    rank_by : array_like, optional
        Rank on these values (shrunk means or ratios) instead of AFP; then the numerator may
        exceed the denominator (value x denominator) and the ``afp`` field holds the value.
    """
    labels = np.asarray(units, dtype=object)
    x = np.asarray(numerator, dtype=float)
    n = np.asarray(denominator, dtype=float)
    if not (labels.shape == x.shape == n.shape) or x.ndim != 1:
        msg = "units, numerator and denominator must be 1-d and of equal length"
        raise ValueError(msg)
    if len(set(labels.tolist())) != labels.size:
        msg = "units must be distinct (aggregate rows per unit first)"
        raise ValueError(msg)
    if np.any(~np.isfinite(x)) or np.any(~np.isfinite(n)) or np.any(x < 0) or np.any(n < 0):
        msg = "numerator and denominator must be finite and non-negative"
        raise ValueError(msg)
    score = None if rank_by is None else np.asarray(rank_by, dtype=float)
    if score is None and np.any(x > n):
        msg = "a numerator exceeds its denominator"
        raise ValueError(msg)
    if score is not None and score.shape != x.shape:
        msg = "rank_by must have one value per unit"
        raise ValueError(msg)
    if not 0.0 < fraction <= 1.0:
        msg = f"fraction must be in (0, 1], got {fraction!r}"
        raise ValueError(msg)
    if min_units < 1:
        msg = "min_units must be at least 1"
        raise ValueError(msg)

    keep = (n > 0) if score is None else (n > 0) & np.isfinite(score)
    excluded = tuple(_plain(u) for u in labels[~keep])
    labels, x, n = labels[keep], x[keep], n[keep]
    if x.size == 0:
        msg = "no provider has a positive denominator"
        raise ValueError(msg)
    if min_units > x.size:
        msg = f"min_units = {min_units} exceeds the {x.size} providers with data"
        raise ValueError(msg)

    afp = (x + 1.0) / (n + 2.0) if score is None else score[keep]
    key = afp if lower_is_better else -afp
    order = np.argsort(key, kind="stable")
    cumulative = np.cumsum(n[order])
    needed = fraction * n.sum()
    last = int(np.searchsorted(cumulative, needed, side="left"))  # first index reaching it
    last = max(last, min_units - 1)
    cut_afp = afp[order[last]]
    while last + 1 < order.size and np.isclose(afp[order[last + 1]], cut_afp, rtol=1e-12):
        last += 1
    selected = order[: last + 1]
    abc = float(x[selected].sum() / n[selected].sum())
    overall = float(x.sum() / n.sum())
    in_benchmark = np.zeros(x.size, dtype=bool)
    in_benchmark[selected] = True
    rate = x / n
    judged = benchmark_gaps(rate, abc, lower_is_better=lower_is_better)
    rows = tuple(
        AbcUnit(
            unit=_plain(labels[j]),
            numerator=float(x[j]),
            denominator=float(n[j]),
            rate=float(rate[j]),
            afp=float(afp[j]),
            rank=rank,
            in_benchmark=bool(in_benchmark[j]),
            distance=float(judged.distance[j]),
            gap=float(judged.gap[j]),
            reaches=bool(judged.reaches[j]),
        )
        for rank, j in enumerate(order, start=1)
    )
    return AbcResult(
        method="Achievable Benchmark of Care (pared mean)"
        if score is None
        else "Achievable Benchmark of Care (pared mean, ranked by the shrunk value)",
        abc=abc,
        overall=overall,
        benchmark_units=tuple(_plain(labels[j]) for j in selected),
        fraction=float(fraction),
        lower_is_better=bool(lower_is_better),
        min_units=int(min_units),
        covered=float(n[selected].sum() / n.sum()),
        units=rows,
        excluded=excluded,
    )


def _plain(label: object) -> Hashable:
    return label.item() if isinstance(label, np.generic) else label  # type: ignore[return-value]
