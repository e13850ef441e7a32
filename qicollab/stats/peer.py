"""Peer benchmark summaries: the distribution of unit rates and each unit's decile rank.

A member's report places its (risk-adjusted) rate within the collaborative and within each peer
group it belongs to (e.g. "teaching hospitals", "rural"): mean, median, quartiles and deciles of
the unit rates (each unit counts once, unweighted), and the unit's decile rank.

Decile ranks are direction-aware and **decile 1 is always the best tenth**: with improvement
``"decrease"`` (e.g. mortality) the lowest rates are in decile 1, with ``"increase"`` (e.g.
process compliance) the highest are. A unit's decile is ceil(10 r / N), where r is its rank from
the best (ties share the best rank) among the N units with a value; this is the NSQIP-style
decile (1 = best) of Huffman (2012).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

Improvement = Literal["increase", "decrease"]


@dataclass(frozen=True, slots=True)
class DistributionSummary:
    """Distribution of unit values (each unit once, unweighted).

    Parameters
    ----------
    n_units : int
        Units with a value.
    mean, median, q1, q3, minimum, maximum : float
        Summary statistics (quantiles by numpy's linear method, R type 7); ``nan`` when empty.
    deciles : tuple of float
        10th, 20th, ..., 90th percentiles.
    """

    n_units: int
    mean: float
    median: float
    q1: float
    q3: float
    deciles: tuple[float, ...]
    minimum: float
    maximum: float


@dataclass(frozen=True, slots=True)
class UnitRank:
    """One unit's place in the collaborative and in its peer groups.

    Parameters
    ----------
    unit : Hashable
        Unit identifier.
    value : float
        The unit's rate (``nan`` when it has none).
    rank : int or None
        1 = best in the collaborative (ties share the best rank).
    decile : int or None
        1-10, decile 1 = best tenth.
    percentile : float or None
        Share of other units it does at least as well as, 0-100.
    group_deciles : tuple of (str, int) pairs
        Decile within each peer group the unit belongs to.
    """

    unit: Hashable
    value: float
    rank: int | None
    decile: int | None
    percentile: float | None
    group_deciles: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class PeerBenchmark:
    """Collaborative and peer-group summaries with every unit's decile rank.

    Why: benchmarking reports show each member where it stands among all members and among
    similar members; deciles are coarse enough to be stable and are what NSQIP reports use.

    Parameters
    ----------
    method : str
        ``"unweighted distribution of unit values; decile = ceil(10 rank / N), 1 = best"``.
    improvement : {"increase", "decrease"}
        Direction of improvement used for the ranks.
    decile_one : str
        Always ``"best"``.
    collaborative : DistributionSummary
        All units.
    groups : tuple of (str, DistributionSummary) pairs
        One summary per peer group, in order of first appearance.
    units : tuple of UnitRank
        In input order.

    References
    ----------
    Huffman KM (2012), Deciphering the statistical reports, ACS NSQIP; Hyndman RJ, Fan Y
    (1996), Am Stat 50:361-365 (quantile type 7).
    """

    method: str
    improvement: str
    decile_one: str
    collaborative: DistributionSummary
    groups: tuple[tuple[str, DistributionSummary], ...]
    units: tuple[UnitRank, ...]

    def group(self, name: str) -> DistributionSummary:
        """The summary of one peer group."""
        for key, summary in self.groups:
            if key == name:
                return summary
        raise KeyError(name)

    def to_frame(self) -> pd.DataFrame:
        """One row per unit: value, rank, decile, percentile."""
        return pd.DataFrame(
            [
                {
                    "unit": u.unit,
                    "value": u.value,
                    "rank": u.rank,
                    "decile": u.decile,
                    "percentile": u.percentile,
                }
                for u in self.units
            ]
        )


def summarise(values: Iterable[float]) -> DistributionSummary:
    """Mean, median, quartiles, deciles, min and max of the finite values."""
    array = np.asarray(list(values), dtype=float)
    array = array[np.isfinite(array)]
    if array.size == 0:
        nan = math.nan
        return DistributionSummary(0, nan, nan, nan, nan, (nan,) * 9, nan, nan)
    q = np.quantile(array, [0.25, 0.5, 0.75])
    deciles = np.quantile(array, np.arange(1, 10) / 10)
    return DistributionSummary(
        n_units=int(array.size),
        mean=float(array.mean()),
        median=float(q[1]),
        q1=float(q[0]),
        q3=float(q[2]),
        deciles=tuple(float(d) for d in deciles),
        minimum=float(array.min()),
        maximum=float(array.max()),
    )


def decile_ranks(
    values: Iterable[float], *, improvement: Improvement
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank from the best (min method), decile 1-10 and percentile for each finite value.

    Non-finite values get rank/decile 0 and percentile ``nan`` (callers map them to None).
    """
    if improvement not in ("increase", "decrease"):
        msg = f"improvement must be 'increase' or 'decrease', got {improvement!r}"
        raise ValueError(msg)
    array = np.asarray(list(values), dtype=float)
    ok = np.isfinite(array)
    rank = np.zeros(array.size, dtype=int)
    decile = np.zeros(array.size, dtype=int)
    percentile = np.full(array.size, np.nan)
    count = int(ok.sum())
    if count:
        key = -array[ok] if improvement == "increase" else array[ok]
        r = stats.rankdata(key, method="min").astype(int)
        worse_or_equal = count - stats.rankdata(key, method="min") + 1  # units it matches or beats
        rank[ok] = r
        decile[ok] = np.ceil(10 * r / count).astype(int)
        percentile[ok] = 100.0 * (worse_or_equal - 1) / max(count - 1, 1)
    return rank, decile, percentile


def peer_benchmark(
    values: Mapping[Hashable, float] | pd.Series,
    *,
    improvement: Improvement,
    groups: Mapping[Hashable, Iterable[str]] | None = None,
) -> PeerBenchmark:
    """Summaries and decile ranks of per-unit values.

    Parameters
    ----------
    values : mapping or Series
        Unit -> rate (risk-adjusted or crude); ``nan`` for units without a value.
    improvement : {"increase", "decrease"}
        Which direction is better.
    groups : mapping, optional
        Unit -> the peer groups it belongs to (a unit may be in several or none).
    """
    series = pd.Series(values, dtype=float) if not isinstance(values, pd.Series) else values
    units = [u.item() if isinstance(u, np.generic) else u for u in series.index]
    data = series.to_numpy(dtype=float)
    rank, decile, percentile = decile_ranks(data, improvement=improvement)

    membership: dict[str, list[int]] = {}
    for position, unit in enumerate(units):
        for name in (groups or {}).get(unit, ()):
            membership.setdefault(str(name), []).append(position)
    group_summaries = tuple((name, summarise(data[idx])) for name, idx in membership.items())
    unit_groups: dict[int, list[tuple[str, int]]] = {}
    for name, idx in membership.items():
        _, group_decile, _ = decile_ranks(data[idx], improvement=improvement)
        for position, d in zip(idx, group_decile, strict=True):
            if d:
                unit_groups.setdefault(position, []).append((name, int(d)))

    rows = tuple(
        UnitRank(
            unit=units[i],
            value=float(data[i]),
            rank=int(rank[i]) if rank[i] else None,
            decile=int(decile[i]) if decile[i] else None,
            percentile=None if np.isnan(percentile[i]) else float(percentile[i]),
            group_deciles=tuple(unit_groups.get(i, ())),
        )
        for i in range(len(units))
    )
    return PeerBenchmark(
        method="unweighted distribution of unit values; decile = ceil(10 rank / N), 1 = best",
        improvement=improvement,
        decile_one="best",
        collaborative=summarise(data),
        groups=group_summaries,
        units=rows,
    )
