"""Exact discrete tails for funnel outlier decisions: Poisson, binomial and their mixtures.

Why: counts are discrete, and a member with few expected events cannot be judged by a normal
approximation or by a continuous limit. A continuous lower limit is above 0 for every E > 0, so
O = 0 would be "low" however small E is, although P(O = 0 | E = 1) = 0.37. Spiegelhalter's
exact limits (Stat Med 2005; 24:1185-1202, section 3) judge each member by its own tail
probability instead:

    low at level a   only if  P(O <= o) < a/2
    high at level a  only if  P(O >= o) < a/2

under the null distribution of the member's count:

====================  ==========================================  ==========================
data type             null (no between-member variation)          predictive (random effects)
====================  ==========================================  ==========================
ratio (O vs E)        Poisson(target E)                           gamma-Poisson (negative
                                                                  binomial), mean target E,
                                                                  Var = mu + tau2 mu^2
proportion (x of n)   binomial(n, target)                         beta-binomial, mean n p0,
                                                                  intraclass correlation rho
====================  ==========================================  ==========================

Every decision is expressed as a pair of limits on the indicator's scale (O/E or x/n), so that
a chart can draw exactly what decided a status: with q_lo the smallest count whose CDF reaches
a/2 and q_hi the smallest count whose upper tail P(O > q_hi) is at most a/2, the lower limit is
q_lo / E and the upper q_hi / E; a value strictly below the lower limit has P(O <= o) < a/2 and
one strictly above the upper has P(O >= o) <= a/2 (funnel limits are inclusive, as elsewhere).
The limits are step functions of E or n.

Binomial denominators are rounded to whole numbers for the distribution (a count of cases);
the limits are divided by the denominator as given.

Beta-binomial tails are summed in log space over each member's window of counts (mean +/- 15
SD, widened until the window holds all but 1e-9 of the mass, far below the smallest tail
judged, 0.001), so large denominators need no dense table and nothing overflows.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import special, stats

DataType = Literal["ratio", "proportion"]
NO_DISPERSION = 1e-10
"""Between-member dispersion at or below this is treated as none (plain Poisson/binomial)."""
_MASS_TOLERANCE = 1e-9
_CELLS_PER_CHUNK = 2_000_000


def _alpha(level: float) -> float:
    if not 0.0 < level < 1.0:
        msg = f"level must be between 0 and 1, got {level!r}"
        raise ValueError(msg)
    return 1.0 - level


def _beta_shapes(p0: float, rho: float) -> tuple[float, float]:
    """Beta(a, b) with mean p0 and intraclass correlation rho = 1 / (a + b + 1)."""
    total = 1.0 / rho - 1.0
    return p0 * total, (1.0 - p0) * total


def _betabinom_windows(
    n: np.ndarray, p0: float, rho: float, width: float
) -> tuple[np.ndarray, np.ndarray]:
    mean = n * p0
    sd = np.sqrt(n * p0 * (1 - p0) * (1 + (n - 1) * rho))
    low = np.clip(np.floor(mean - width * sd) - 50, 0, n)
    high = np.clip(np.ceil(mean + width * sd) + 50, 0, n)
    return low.astype(np.int64), high.astype(np.int64)


def _betabinom_tables(
    n: np.ndarray, p0: float, rho: float
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For each chunk of members: (member index, counts k, log pmf) over each member's window.

    Windows start at mean +/- 15 SD and double until each holds all but 1e-9 of the mass.
    """
    a, b = _beta_shapes(p0, rho)
    log_norm = special.betaln(a, b)
    width = 15.0
    todo = np.arange(n.size)
    tables: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    while todo.size:
        low, high = _betabinom_windows(n[todo], p0, rho, width)
        sizes = high - low + 1
        short: list[np.ndarray] = []
        start = 0
        while start < todo.size:
            stop = start + 1
            cells = int(sizes[start])
            while stop < todo.size and cells + int(sizes[stop]) <= _CELLS_PER_CHUNK:
                cells += int(sizes[stop])
                stop += 1
            members = todo[start:stop]
            repeat = sizes[start:stop]
            which = np.repeat(members, repeat)
            offsets = np.repeat(np.cumsum(repeat) - repeat, repeat)
            k = np.repeat(low[start:stop], repeat) + (np.arange(which.size) - offsets)
            nn = n[which]
            logpmf = (
                special.gammaln(nn + 1)
                - special.gammaln(k + 1)
                - special.gammaln(nn - k + 1)
                + special.betaln(k + a, nn - k + b)
                - log_norm
            )
            mass = np.bincount(np.repeat(np.arange(stop - start), repeat), weights=np.exp(logpmf))
            full = (low[start:stop] == 0) & (high[start:stop] == n[members])
            enough = (mass >= 1.0 - _MASS_TOLERANCE) | full
            keep = enough[np.repeat(np.arange(stop - start), repeat)]
            if keep.any():
                tables.append((which[keep], k[keep], logpmf[keep]))
            short.append(members[~enough])
            start = stop
        todo = np.concatenate(short) if short else np.zeros(0, dtype=np.int64)
        width *= 2.0
    return tables


def _betabinom_quantiles(
    n: np.ndarray, p0: float, rho: float, tail: float
) -> tuple[np.ndarray, np.ndarray]:
    """(q_lo, q_hi) of the beta-binomial for each n: smallest k with CDF(k) >= tail, smallest
    k with P(X > k) <= tail."""
    q_lo = np.zeros(n.size)
    q_hi = np.zeros(n.size)
    for which, k, logpmf in _betabinom_tables(n, p0, rho):
        pmf = np.exp(logpmf)
        # Segments are contiguous per member and ordered by k.
        starts = np.flatnonzero(np.r_[True, which[1:] != which[:-1]])
        members = which[starts]
        cdf = np.cumsum(pmf)
        base = np.repeat(cdf[starts] - pmf[starts], np.diff(np.r_[starts, which.size]))
        cdf = cdf - base
        ends = np.r_[starts[1:], which.size] - 1
        total = np.repeat(cdf[ends], np.diff(np.r_[starts, which.size]))
        above = total - cdf  # P(X > k) within the window
        segment = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, which.size]))
        below_lo = np.bincount(segment, weights=(cdf < tail).astype(float), minlength=starts.size)
        above_hi = np.bincount(segment, weights=(above > tail).astype(float), minlength=starts.size)
        first_k = k[starts]
        q_lo[members] = first_k + below_lo
        q_hi[members] = first_k + above_hi
    return q_lo, q_hi


def count_quantiles(
    precision: npt.ArrayLike,
    *,
    data_type: DataType,
    target: float,
    level: float,
    dispersion: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(q_lo, q_hi) counts per member: low iff O < q_lo, high iff O > q_hi.

    ``dispersion`` is tau2 (variance of the relative risk, gamma-Poisson) for ratios and the
    intraclass correlation rho (beta-binomial) for proportions; 0 gives Poisson / binomial.
    """
    tail = _alpha(level) / 2.0
    e = np.asarray(precision, dtype=float)
    valid = np.isfinite(e) & (e > 0)
    q_lo = np.full(e.shape, np.nan)
    q_hi = np.full(e.shape, np.nan)
    ev = e[valid]
    if data_type == "ratio":
        mu = target * ev
        if dispersion <= NO_DISPERSION:
            lo, hi = stats.poisson.ppf(tail, mu), stats.poisson.isf(tail, mu)
        else:
            size = 1.0 / dispersion
            p = size / (size + mu)
            lo, hi = stats.nbinom.ppf(tail, size, p), stats.nbinom.isf(tail, size, p)
    elif data_type == "proportion":
        n = np.round(ev)
        if dispersion <= NO_DISPERSION:
            lo, hi = stats.binom.ppf(tail, n, target), stats.binom.isf(tail, n, target)
        else:
            lo, hi = _betabinom_quantiles(n, target, min(dispersion, 1.0 - 1e-9), tail)
    else:
        msg = f"data_type must be 'ratio' or 'proportion', got {data_type!r}"
        raise ValueError(msg)
    q_lo[valid] = lo
    q_hi[valid] = hi
    return q_lo, q_hi


def count_limits(
    precision: npt.ArrayLike,
    *,
    data_type: DataType,
    target: float,
    level: float,
    dispersion: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact decision limits on the indicator's scale (O/E or x/n); nan without precision.

    A value strictly below the lower limit is "low" and strictly above the upper "high" (see the
    module docstring); the limits are q_lo / E and q_hi / E.
    """
    e = np.asarray(precision, dtype=float)
    q_lo, q_hi = count_quantiles(
        e, data_type=data_type, target=target, level=level, dispersion=dispersion
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        return q_lo / e, q_hi / e


def tail_probabilities(
    observed: npt.ArrayLike,
    precision: npt.ArrayLike,
    *,
    data_type: DataType,
    target: float,
    dispersion: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(P(O <= o), P(O >= o)) per member under the null or predictive distribution.

    For reports and tests: a member is low at level a when the first is below a/2 and high
    when the second is (integer counts; :func:`count_limits` is the same decision as limits).
    """
    o = np.floor(np.asarray(observed, dtype=float))
    e = np.asarray(precision, dtype=float)
    lower = np.full(e.shape, np.nan)
    upper = np.full(e.shape, np.nan)
    valid = np.isfinite(e) & (e > 0) & np.isfinite(o)
    ov, ev = o[valid], e[valid]
    if data_type == "ratio":
        mu = target * ev
        if dispersion <= NO_DISPERSION:
            lower[valid] = stats.poisson.cdf(ov, mu)
            upper[valid] = stats.poisson.sf(ov - 1, mu)
        else:
            size = 1.0 / dispersion
            p = size / (size + mu)
            lower[valid] = stats.nbinom.cdf(ov, size, p)
            upper[valid] = stats.nbinom.sf(ov - 1, size, p)
    else:
        n = np.round(ev)
        if dispersion <= NO_DISPERSION:
            lower[valid] = stats.binom.cdf(ov, n, target)
            upper[valid] = stats.binom.sf(ov - 1, n, target)
        else:
            a, b = _beta_shapes(target, min(dispersion, 1.0 - 1e-9))
            lower[valid] = stats.betabinom.cdf(ov, n, a, b)
            upper[valid] = stats.betabinom.sf(ov - 1, n, a, b)
    return lower, upper


def widest(
    first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Per side, the wider of two pairs of limits: an adjustment may only widen a funnel.

    Where one pair is nan (no precision) the result is nan.
    """
    return np.minimum(first[0], second[0]), np.maximum(first[1], second[1])


def gamma_poisson_loglik(tau2: float, observed: np.ndarray, mean: np.ndarray) -> float:
    """Log-likelihood of counts under gamma-Poisson with means mu and Var = mu + tau2 mu^2."""
    if tau2 <= NO_DISPERSION:
        return float(stats.poisson.logpmf(observed, mean).sum())
    size = 1.0 / tau2
    return float(stats.nbinom.logpmf(observed, size, size / (size + mean)).sum())


def beta_binomial_loglik(rho: float, x: np.ndarray, n: np.ndarray, p0: float) -> float:
    """Log-likelihood (up to the binomial coefficients) of x of n under a beta-binomial with
    mean p0 and intraclass correlation rho (binomial at rho = 0)."""
    if rho <= NO_DISPERSION:
        return float(np.sum(x * math.log(p0) + (n - x) * math.log1p(-p0)))
    a, b = _beta_shapes(p0, rho)
    return float(np.sum(special.betaln(x + a, n - x + b)) - x.size * special.betaln(a, b))


__all__ = [
    "NO_DISPERSION",
    "beta_binomial_loglik",
    "count_limits",
    "count_quantiles",
    "gamma_poisson_loglik",
    "tail_probabilities",
    "widest",
]
