"""Confidence intervals for proportions and for observed/expected ratios.

Three intervals cover every benchmark the collaborative publishes:

- **Wilson score** for a proportion x of n (statsmodels ``proportion_confint``);
- **exact Poisson** (Garwood) for an observed count O with the expected count E treated as fixed,
  divided by E to give an interval for O/E;
- **Byar's** approximation to the exact Poisson interval, used by Public Health England above
  nine events.

:func:`ratio_interval` applies the PHE rule ("exact below 10 events, Byar otherwise", from
``calculate_ISRatio``). Outcomes that are not counts get a **normal** interval of O/E from the
risk model's variance (:func:`normal_ratio_interval`, length of stay, scores), and means a
**Student t** interval (:func:`t_interval` from a mean and its standard error,
:func:`sample_mean_interval` from the values). Every function is vectorised over NumPy arrays
and returns a :class:`ConfidenceInterval`, which unpacks as ``lower, upper = interval``.

The two levels the collaborative reports are 95% (z = 1.959964, a "warning") and 99.8%
(z = 3.090232, an "alarm"): :data:`LEVELS`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

LEVELS: tuple[float, float] = (0.95, 0.998)
"""The two confidence levels of every benchmark: 95% and 99.8%."""

ArrayLike = npt.ArrayLike
RatioMethod = Literal["exact", "byar", "phe"]


def z_value(level: float) -> float:
    """Two-sided standard normal quantile for a confidence level (1.959964 for 0.95)."""
    _check_level(level)
    return float(stats.norm.ppf(1.0 - (1.0 - level) / 2.0))


def level_key(level: float) -> str:
    """How a level is keyed in JSON payloads: ``"95"`` for 0.95, ``"99.8"`` for 0.998."""
    return f"{level * 100:g}"


@dataclass(frozen=True, slots=True)
class ConfidenceInterval:
    """Lower and upper confidence limits, with the method and level that produced them.

    Results carry their method so that a report can say which interval it shows; intervals are
    arrays so that one call covers every unit of a collaborative.

    Parameters
    ----------
    lower, upper : numpy.ndarray
        Limits, one per input element (0-d arrays for scalar input). ``nan`` where the interval
        is undefined (a proportion with n = 0, a ratio with E <= 0).
    level : float
        Confidence level, e.g. 0.95.
    method : str
        ``"wilson"``, ``"clopper-pearson"``, ``"exact"``, ``"byar"``, ``"phe"`` (exact below
        10 events, Byar otherwise), ``"normal"`` or ``"t"``.

    Notes
    -----
    Unpacks as ``lower, upper = interval``. Use :meth:`as_floats` for a scalar interval.

    References
    ----------
    Wilson EB (1927), JASA 22:209-212. Garwood F (1936), Biometrika 28:437-442. Breslow NE,
    Day NE (1987), Statistical Methods in Cancer Research vol. II, IARC, p. 69 (Byar).
    PHEindicatormethods ``R/ISRatio.R`` and ``R/utils.R`` (the exact-below-10 rule).
    """

    lower: np.ndarray
    upper: np.ndarray
    level: float
    method: str

    def __iter__(self) -> Iterator[np.ndarray]:
        yield self.lower
        yield self.upper

    def as_floats(self) -> tuple[float, float]:
        """The interval of a scalar input as two Python floats."""
        if self.lower.size != 1:
            msg = "as_floats() needs a scalar interval"
            raise ValueError(msg)
        return float(self.lower.reshape(())), float(self.upper.reshape(()))


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        msg = f"level must be strictly between 0 and 1, got {level!r}"
        raise ValueError(msg)


def _as_float(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if np.any(array < 0):
        msg = f"{name} must be non-negative"
        raise ValueError(msg)
    return array


def wilson_interval(x: ArrayLike, n: ArrayLike, *, level: float = 0.95) -> ConfidenceInterval:
    """Wilson score interval for the proportion x / n.

    Uses statsmodels ``proportion_confint(method="wilson")`` on the elements with n > 0; the
    limits are ``nan`` where n = 0. Non-integer x is accepted (PHE tests 0.445 of 1).

    Parameters
    ----------
    x, n : array_like
        Numerators and denominators, 0 <= x <= n.
    level : float
        Confidence level.
    """
    _check_level(level)
    xs, ns = np.broadcast_arrays(_as_float(x, "x"), _as_float(n, "n"))
    if np.any(xs > ns):
        msg = "x must not exceed n"
        raise ValueError(msg)
    lower = np.full(xs.shape, np.nan)
    upper = np.full(xs.shape, np.nan)
    ok = ns > 0
    if np.any(ok):
        low, high = proportion_confint(xs[ok], ns[ok], alpha=1.0 - level, method="wilson")
        lower[ok] = np.clip(low, 0.0, 1.0)
        upper[ok] = np.clip(high, 0.0, 1.0)
    return ConfidenceInterval(lower, upper, level, "wilson")


def clopper_pearson_interval(
    x: ArrayLike, n: ArrayLike, *, level: float = 0.95
) -> ConfidenceInterval:
    """Exact (Clopper-Pearson) interval for x / n: Beta quantiles, 0 and 1 at the edges."""
    _check_level(level)
    xs, ns = np.broadcast_arrays(_as_float(x, "x"), _as_float(n, "n"))
    alpha = 1.0 - level
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = np.where(xs > 0, stats.beta.ppf(alpha / 2, xs, ns - xs + 1), 0.0)
        upper = np.where(xs < ns, stats.beta.ppf(1 - alpha / 2, xs + 1, ns - xs), 1.0)
    lower = np.where(ns > 0, lower, np.nan)
    upper = np.where(ns > 0, upper, np.nan)
    return ConfidenceInterval(lower, upper, level, "clopper-pearson")


def _divide(limits: np.ndarray, expected: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected > 0, limits / np.where(expected > 0, expected, 1.0), np.nan)


def exact_poisson_interval(
    observed: ArrayLike, expected: ArrayLike = 1.0, *, level: float = 0.95
) -> ConfidenceInterval:
    """Exact (Garwood) Poisson interval for O, divided by E: an interval for O/E.

    lower = chi2_{alpha/2}(2 O) / 2 / E (0 when O = 0); upper = chi2_{1-alpha/2}(2 O + 2) / 2 / E.
    E is treated as fixed. With ``expected=1`` the interval is for the count itself.

    Parameters
    ----------
    observed : array_like
        Observed counts O >= 0 (non-integer values are accepted, as in PHE's functions).
    expected : array_like
        Expected counts E; the limits are ``nan`` where E <= 0.
    level : float
        Confidence level.
    """
    _check_level(level)
    obs, exp = np.broadcast_arrays(_as_float(observed, "observed"), np.asarray(expected, float))
    alpha = 1.0 - level
    safe = np.where(obs > 0, obs, 1.0)
    lower = np.where(obs > 0, stats.chi2.ppf(alpha / 2, 2 * safe) / 2, 0.0)
    upper = stats.chi2.ppf(1 - alpha / 2, 2 * obs + 2) / 2
    return ConfidenceInterval(_divide(lower, exp), _divide(upper, exp), level, "exact")


def byar_interval(
    observed: ArrayLike, expected: ArrayLike = 1.0, *, level: float = 0.95
) -> ConfidenceInterval:
    """Byar's approximation to the exact Poisson interval for O, divided by E.

    lower = O (1 - 1/(9 O) - z / (3 sqrt O))^3, upper = (O+1) (1 - 1/(9(O+1)) + z/(3 sqrt(O+1)))^3.
    The lower limit is 0 when O = 0 and, for very small O at high confidence, when the cubed
    term is negative (PHE returns NA there; its rule uses the exact interval at such counts).
    """
    _check_level(level)
    obs, exp = np.broadcast_arrays(_as_float(observed, "observed"), np.asarray(expected, float))
    z = z_value(level)
    safe = np.where(obs > 0, obs, 1.0)
    base = 1.0 - 1.0 / (9.0 * safe) - z / (3.0 * np.sqrt(safe))
    lower = np.where((obs > 0) & (base > 0), obs * base**3, 0.0)
    upper = (obs + 1) * (1.0 - 1.0 / (9.0 * (obs + 1)) + z / (3.0 * np.sqrt(obs + 1))) ** 3
    return ConfidenceInterval(_divide(lower, exp), _divide(upper, exp), level, "byar")


def ratio_interval(
    observed: ArrayLike,
    expected: ArrayLike = 1.0,
    *,
    level: float = 0.95,
    method: RatioMethod = "phe",
    exact_below: float = 10,
) -> ConfidenceInterval:
    """Interval for O/E: exact, Byar, or PHE's rule (exact when O < ``exact_below``, else Byar).

    Parameters
    ----------
    observed, expected : array_like
        Observed and expected counts.
    level : float
        Confidence level (0.95 and 0.998 are the reported pair).
    method : {"phe", "exact", "byar"}
        ``"phe"`` (default) follows PHEindicatormethods ``calculate_ISRatio``.
    exact_below : float
        Threshold of the PHE rule (10).
    """
    if method == "exact":
        return exact_poisson_interval(observed, expected, level=level)
    if method == "byar":
        return byar_interval(observed, expected, level=level)
    if method != "phe":
        msg = f"unknown ratio interval method {method!r}"
        raise ValueError(msg)
    exact = exact_poisson_interval(observed, expected, level=level)
    byar = byar_interval(observed, expected, level=level)
    use_exact = np.asarray(observed, float) < exact_below
    lower = np.where(use_exact, exact.lower, byar.lower)
    upper = np.where(use_exact, exact.upper, byar.upper)
    return ConfidenceInterval(lower, upper, level, "phe")


def ratio_interval_method(observed: ArrayLike, *, exact_below: float = 10) -> np.ndarray:
    """Which interval PHE's rule picks for each count: ``"exact"`` or ``"byar"``."""
    return np.where(np.asarray(observed, float) < exact_below, "exact", "byar")


def normal_ratio_interval(
    observed: ArrayLike, expected: ArrayLike, variance: ArrayLike, *, level: float = 0.95
) -> ConfidenceInterval:
    """Normal interval of O/E for outcomes that are not event counts (length of stay, scores).

    O/E +- z sqrt(Var O) / E with E fixed, the lower limit floored at 0; Var O is the sum of the
    risk model's per-patient variances. The limits are ``nan`` where E <= 0.
    """
    _check_level(level)
    obs, exp, var = np.broadcast_arrays(
        np.asarray(observed, float), np.asarray(expected, float), _as_float(variance, "variance")
    )
    z = z_value(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = obs / exp
        half = z * np.sqrt(var) / exp
        lower = np.where(exp > 0, np.maximum(ratio - half, 0.0), np.nan)
        upper = np.where(exp > 0, ratio + half, np.nan)
    return ConfidenceInterval(lower, upper, level, "normal")


def t_interval(
    mean: ArrayLike, se: ArrayLike, df: ArrayLike, *, level: float = 0.95
) -> ConfidenceInterval:
    """Student t interval of a mean from summary statistics: mean +- t_{df} se.

    ``df`` is usually n - 1; ``numpy.inf`` gives the normal interval. The limits are ``nan``
    where df <= 0 or is missing (one value has no spread to judge it by).
    """
    _check_level(level)
    m, s, d = np.broadcast_arrays(
        np.asarray(mean, float), _as_float(se, "se"), np.asarray(df, float)
    )
    ok = d > 0
    q = np.full(d.shape, np.nan)
    q[ok] = stats.t.ppf(1.0 - (1.0 - level) / 2.0, d[ok])
    return ConfidenceInterval(m - q * s, m + q * s, level, "t")


def sample_mean_interval(values: ArrayLike, *, level: float = 0.95) -> ConfidenceInterval:
    """Student t interval of the mean of ``values`` (R's ``t.test(x)$conf.int``): the sample
    mean +- t_{n-1} sd / sqrt(n); ``nan`` with fewer than two values or any missing one."""
    _check_level(level)
    x = np.asarray(values, dtype=float).ravel()
    n = x.size
    if n < 2:
        return ConfidenceInterval(np.array(np.nan), np.array(np.nan), level, "t")
    se = np.std(x, ddof=1) / math.sqrt(n)
    return t_interval(np.mean(x), se, n - 1, level=level)
