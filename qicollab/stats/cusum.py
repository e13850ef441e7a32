"""CUSUM-type charts: risk-adjusted CUSUM, VLAD and E-O CUSUM, Bernoulli CUSUM, tabular CUSUM
and EWMA (design/METHODS.md part B, 1.6).

**Patient level, binary outcome** (case order, one row per patient):

* Risk model fitted on a stated phase-I period (:func:`fit_risk_model`, a statsmodels binomial
  GLM on the given covariates); every case then gets its predicted risk p_t.
* **RA-CUSUM** (Steiner, Cook, Farewell and Treasure 2000): for a change of the odds by RA,
  ``W_t = log[(1 - p_t + R0 p_t) RA^y_t / ((1 - p_t + RA p_t) R0^y_t)]`` (R0 = 1), the chart
  ``X_t = max(0, X_(t-1) + W_t)`` signals when X_t >= h (lhubig/cusum; vlad uses >) and, by
  default, restarts from 0 after a signal. The "upper" chart tests RA = 2 (deterioration),
  the "lower" one RA = 1/2 (improvement) and is shown below zero, as in the cusum package.
* **Control limit by a Markov chain, checked by simulation** (:func:`cusum_limit`). Limits
  chosen from a few hundred simulated paths missed the asked in-control ARL by up to +/-14%
  (issue 11), so h is now found by bisection on the Markov-chain ARL of Brook and Evans
  (Biometrika 1972; 59:539-549), as Steiner et al. (2000) did for the RA-CUSUM: the CUSUM is
  kept on a grid of ``states`` points 0, h/states, ...; each step's increment, over the
  phase-I risks (grouped into at most 400 equal-count groups) and y in {0, 1}, is split between
  the two grid points around it (keeping its mean, so the ARL is continuous in h); values below
  0 go to 0 and values at or above h signal. The ARL from 0 solves
  (I - R) a = 1; its grid error shrinks like 1/states, so the ARL used is the Richardson
  extrapolation 2 ARL(states) - ARL(states/2), and ``arl_se`` is |ARL(states) - ARL(states/2)|.
  The chosen h is then checked by an independent simulation (in-control paths
  draw patients from the phase-I risks, y ~ Bernoulli(p); the CUSUM before its first signal does
  not depend on h, so each path is simulated once, vectorised with Lindley's
  ``X_t = S_t - min(0, min_(s<=t) S_s)``): its ARL and standard error are stored
  (``check_arl``, ``check_arl_se``) beside the chain's.
* **VLAD** ``V_t = sum (p_i - y_i)`` ("lives gained") with the equivalent **E-O CUSUM** on
  z_t = p_t - y_t (Wittenberg, Gan and Knoth 2018): deterioration
  ``T_t = min(0, T_(t-1) + z_t + k)``, improvement ``S_t = max(0, S_(t-1) + z_t - k)``, with
  vlad's reference value ``k = p_bar (RA - 1 - ln RA) / ln RA`` (RA >= 1) or
  ``p_bar (1 - RA + ln RA) / ln RA`` (RA < 1), p_bar the mean phase-I risk (:func:`optimal_k`).
* **Bernoulli CUSUM** without risk adjustment (qicharts2 ``bchart``, Neuburger et al. 2017):
  p0 from a target risk or the first ``target`` cases; a signal at C_t >= limit, a restart only
  when C_t > limit (qicharts2's comparison), a mirrored chart for 1/OR.

**Continuous data** (luca-scr/qcc): tabular CUSUM in sd units (strict > h, no restart) and
EWMA with exact time-varying limits.

Stored statistics at a signal are the values that crossed the limit; the next case starts from
zero when the chart restarts (qicharts2 and the cusum package plot 0 there).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import linalg

FloatArray = npt.NDArray[np.float64]
Increment = Callable[[FloatArray, npt.NDArray[np.bool_]], FloatArray]


def _array(values: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        msg = f"{name} must be 1-D"
        raise ValueError(msg)
    return arr


def _outcomes(y: npt.ArrayLike) -> FloatArray:
    out = _array(y, "y")
    if not np.isin(out, (0.0, 1.0)).all():
        msg = "outcomes must be 0 or 1 (no missing values)"
        raise ValueError(msg)
    return out


def _risks(p: npt.ArrayLike) -> FloatArray:
    out = _array(p, "p")
    if not ((out > 0) & (out < 1)).all():
        msg = "risks must lie strictly between 0 and 1"
        raise ValueError(msg)
    return out


# --- risk model ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RiskModel:
    """A logistic risk model fitted on phase-I cases.

    Parameters
    ----------
    intercept : float
    coefficients : dict
        Covariate (or dummy column) -> log odds ratio.
    covariates : tuple of str
        The columns as given.
    n_phase_one, events_phase_one : int
        Cases and events the model was fitted on.
    converged : bool
    """

    intercept: float
    coefficients: dict[str, float]
    covariates: tuple[str, ...]
    n_phase_one: int
    events_phase_one: int
    converged: bool
    method: str = "statsmodels GLM, binomial family, logit link (maximum likelihood)"

    def design(self, frame: pd.DataFrame) -> FloatArray:
        """Covariate matrix in coefficient order (dummies for text columns)."""
        data = _design(frame, self.covariates)
        for column in self.coefficients:
            if column not in data.columns:
                data[column] = 0.0
        return data[list(self.coefficients)].to_numpy(dtype=float)

    def predict(self, frame: pd.DataFrame) -> FloatArray:
        """Predicted risks for the rows of ``frame``."""
        beta = np.array(list(self.coefficients.values()), dtype=float)
        eta = self.intercept + self.design(frame) @ beta
        return 1 / (1 + np.exp(-eta))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary."""
        return {
            "intercept": self.intercept,
            "coefficients": dict(self.coefficients),
            "covariates": list(self.covariates),
            "n_phase_one": self.n_phase_one,
            "events_phase_one": self.events_phase_one,
            "converged": self.converged,
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RiskModel:
        """Inverse of :meth:`to_dict`."""
        return cls(
            intercept=float(data["intercept"]),
            coefficients={str(k): float(v) for k, v in data["coefficients"].items()},
            covariates=tuple(data["covariates"]),
            n_phase_one=int(data["n_phase_one"]),
            events_phase_one=int(data["events_phase_one"]),
            converged=bool(data["converged"]),
            method=str(data.get("method", cls.method)),
        )


def _design(frame: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    missing = [c for c in covariates if c not in frame.columns]
    if missing:
        msg = f"covariates not in the data: {missing}"
        raise KeyError(msg)
    data = frame[list(covariates)]
    text = [c for c in covariates if not pd.api.types.is_numeric_dtype(data[c])]
    if text:
        data = pd.get_dummies(data, columns=text, drop_first=True, dtype=float)
    return data.astype(float)


def fit_risk_model(
    frame: pd.DataFrame,
    *,
    outcome: str,
    covariates: Sequence[str],
    phase_one: npt.ArrayLike,
) -> RiskModel:
    """Fit logit P(outcome) = b0 + x'b on the phase-I rows (``phase_one`` is a boolean mask).

    Text covariates become dummy columns (first level dropped). statsmodels is imported here
    only, so the rest of the module stays light.
    """
    import statsmodels.api as sm  # noqa: PLC0415 - heavy import, only needed to fit

    mask = np.asarray(phase_one, dtype=bool)
    if mask.shape != (len(frame),):
        msg = "phase_one must be one boolean per row"
        raise ValueError(msg)
    y = _outcomes(frame[outcome].to_numpy(dtype=float))
    design = _design(frame, covariates)
    train = design[mask]
    if train.empty or y[mask].sum() == 0 or y[mask].sum() == mask.sum():
        msg = "phase I needs cases with and without the outcome"
        raise ValueError(msg)
    exog = sm.add_constant(train.to_numpy(dtype=float), has_constant="add")
    result = sm.GLM(y[mask], exog, family=sm.families.Binomial()).fit()
    params = np.asarray(result.params, dtype=float)
    return RiskModel(
        intercept=float(params[0]),
        coefficients={c: float(b) for c, b in zip(design.columns, params[1:], strict=True)},
        covariates=tuple(covariates),
        n_phase_one=int(mask.sum()),
        events_phase_one=int(y[mask].sum()),
        converged=bool(result.converged),
    )


# --- risk-adjusted CUSUM ---------------------------------------------------------------------


def llr_weights(
    y: npt.ArrayLike, p: npt.ArrayLike, odds_ratio: float, *, r0: float = 1.0
) -> FloatArray:
    """Steiner's log-likelihood-ratio score W_t for odds ratio RA against R0."""
    outcome = _outcomes(y)
    risk = _risks(p)
    if odds_ratio <= 0 or r0 <= 0:
        msg = "odds ratios must be positive"
        raise ValueError(msg)
    return outcome * math.log(odds_ratio / r0) + np.log(
        (1 - risk + r0 * risk) / (1 - risk + odds_ratio * risk)
    )


def _cusum_path(
    increments: FloatArray, h: float, *, reset: bool, reset_above: bool = False
) -> tuple[FloatArray, tuple[int, ...]]:
    """max(0, X + w) with signals at X >= h (0-based indices); restart after a signal."""
    if not reset or not math.isfinite(h):
        s = np.cumsum(increments)
        path = s - np.minimum(np.minimum.accumulate(s), 0.0)
        return path, tuple(int(i) for i in np.flatnonzero(path >= h))
    path = np.empty(len(increments))
    signals: list[int] = []
    x = 0.0
    for i, w in enumerate(increments.tolist()):
        x = max(0.0, x + w)
        path[i] = x
        if x >= h:
            signals.append(i)
            if x > h or not reset_above:
                x = 0.0
    return path, tuple(signals)


@dataclass(frozen=True, slots=True)
class CusumLimit:
    """A control limit chosen for an in-control average run length, and its check.

    ``arl`` is the in-control ARL at ``h`` by ``method``: ``"markov-chain"`` on ``states``
    grid points, extrapolated (``arl_se``: the grid's error, |ARL - ARL at half the states|),
    or ``"simulation"`` (limits stored before the Markov chain; ``arl_se`` its standard error).
    ``check_arl`` and ``check_arl_se`` are an independent simulation's ARL and standard error
    at ``h``, from ``n_paths`` paths of at most ``max_cases`` cases each (seed ``seed``);
    ``censored`` is the share of those paths that had not signalled by then (their run length
    counts as ``max_cases``).
    """

    h: float
    arl0: float
    arl: float
    arl_se: float
    n_paths: int
    max_cases: int
    censored: float
    seed: int
    method: str = "simulation"
    states: int = 0
    check_arl: float = math.nan
    check_arl_se: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (a missing check is None)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("check_arl", "check_arl_se"):
            if not math.isfinite(data[name]):
                data[name] = None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CusumLimit:
        """Inverse of :meth:`to_dict`; limits stored before the Markov chain read as
        ``method="simulation"`` without a check."""
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        for name in ("check_arl", "check_arl_se"):
            if values.get(name) is None:
                values[name] = math.nan
        return cls(**values)


@dataclass(frozen=True, slots=True)
class _Records:
    """New maxima of simulated CUSUM paths: for each path, increasing values and their times."""

    path: npt.NDArray[np.int64]
    time: npt.NDArray[np.int64]
    value: FloatArray
    n_paths: int
    max_cases: int

    def run_lengths(self, h: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Run length to the first value >= h per path (``max_cases`` if none) and whether it
        was censored."""
        if len(self.time) == 0:
            return np.full(self.n_paths, self.max_cases, dtype=np.int64), np.ones(
                self.n_paths, dtype=bool
            )
        span = float(self.value.max()) + 1.0
        keys = self.path * span + self.value
        wanted = np.arange(self.n_paths) * span + h
        index = np.searchsorted(keys, wanted, side="left")
        ends = np.searchsorted(self.path, np.arange(self.n_paths), side="right")
        found = index < ends
        times = np.where(found, self.time[np.minimum(index, len(self.time) - 1)], self.max_cases)
        return times.astype(np.int64), ~found


def _simulate_records(
    risks: FloatArray,
    increments: Sequence[Increment],
    *,
    n_paths: int,
    max_cases: int,
    seed: int,
    block: int = 512,
) -> list[_Records]:
    """Simulate in-control cases once and track the running maximum of each chart's CUSUM.

    All charts see the same patients and outcomes (common random numbers), so one pass serves
    the upper and lower RA-CUSUM and both E-O CUSUMs.
    """
    rng = np.random.default_rng(seed)
    charts = len(increments)
    total = np.zeros((charts, n_paths))
    lowest = np.zeros((charts, n_paths))
    highest = np.zeros((charts, n_paths))
    found: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in increments]
    done = 0
    while done < max_cases:
        width = min(block, max_cases - done)
        p = risks[rng.integers(0, len(risks), size=(n_paths, width))]
        y = rng.random((n_paths, width)) < p
        for c, increment in enumerate(increments):
            s = total[c][:, np.newaxis] + np.cumsum(increment(p, y), axis=1)
            low = np.minimum(lowest[c][:, np.newaxis], np.minimum.accumulate(s, axis=1))
            top = np.maximum(highest[c][:, np.newaxis], np.maximum.accumulate(s - low, axis=1))
            previous = np.concatenate([highest[c][:, np.newaxis], top[:, :-1]], axis=1)
            path, col = np.nonzero(top > previous)
            found[c].append((path, done + col + 1, top[path, col]))
            total[c], lowest[c], highest[c] = s[:, -1], low[:, -1], top[:, -1]
        done += width
    out = []
    for parts in found:
        path = np.concatenate([part[0] for part in parts])
        time = np.concatenate([part[1] for part in parts])
        value = np.concatenate([part[2] for part in parts])
        order = np.lexsort((time, path))
        out.append(
            _Records(
                path=path[order].astype(np.int64),
                time=time[order].astype(np.int64),
                value=value[order],
                n_paths=n_paths,
                max_cases=max_cases,
            )
        )
    return out


def racusum_increment(odds_ratio: float) -> Increment:
    """Steiner's weight for simulated (risk, outcome) pairs."""
    log_ra = math.log(odds_ratio)

    def increment(p: FloatArray, y: npt.NDArray[np.bool_]) -> FloatArray:
        return y * log_ra - np.log1p((odds_ratio - 1) * p)

    return increment


def eocusum_increment(odds_ratio: float, k: float) -> Increment:
    """E-O CUSUM increment as a max(0, .) chart: y - p - k (deterioration, RA > 1) or
    p - y - k (improvement, RA < 1)."""
    sign = 1.0 if odds_ratio > 1 else -1.0

    def increment(p: FloatArray, y: npt.NDArray[np.bool_]) -> FloatArray:
        return sign * (y - p) - k

    return increment


MARKOV_STATES = 600
"""Grid points of the Markov chain: the ARL moves by well under 1% between 250 and 2,000."""
_RISK_GROUPS = 400


def increment_distribution(
    risks: npt.ArrayLike, increment: Increment, *, groups: int = _RISK_GROUPS
) -> tuple[FloatArray, FloatArray]:
    """(values, probabilities) of one in-control step: a patient drawn from ``risks``, y ~
    Bernoulli(p). More than ``groups`` distinct risks are grouped by equal counts (group mean)."""
    ordered = np.sort(_risks(risks))
    distinct, counts = np.unique(ordered, return_counts=True)
    if distinct.size > groups:
        parts = np.array_split(ordered, groups)
        distinct = np.array([part.mean() for part in parts])
        counts = np.array([part.size for part in parts])
    weight = counts / ordered.size
    values = np.concatenate(
        [
            increment(distinct, np.zeros(distinct.size, dtype=bool)),
            increment(distinct, np.ones(distinct.size, dtype=bool)),
        ]
    )
    return values, np.concatenate([weight * (1 - distinct), weight * distinct])


def markov_chain_arl(
    values: FloatArray, probabilities: FloatArray, h: float, *, states: int = MARKOV_STATES
) -> float:
    """In-control ARL from 0 of max(0, X + W) with a signal at X >= h (Brook-Evans chain)."""
    if h <= 0:
        return 1.0
    # Each step is split between the two grid points around it, in proportion to nearness, so
    # the step's mean is kept and the ARL moves continuously with h (bisection needs that).
    scaled = values * states / h
    floor = np.floor(scaled)
    grid = np.arange(states)
    transition = np.zeros(states * states)
    for shift, share in ((floor, 1.0 - (scaled - floor)), (floor + 1.0, scaled - floor)):
        target = grid[:, np.newaxis] + shift.astype(np.int64)[np.newaxis, :]
        inside = target < states
        rows = np.broadcast_to(grid[:, np.newaxis], target.shape)[inside]
        cols = np.maximum(target, 0)[inside]
        weights = np.broadcast_to((probabilities * share)[np.newaxis, :], target.shape)[inside]
        transition += np.bincount(rows * states + cols, weights=weights, minlength=states * states)
    system = np.eye(states) - transition.reshape(states, states)
    return float(linalg.solve(system, np.ones(states), check_finite=False)[0])


def _extrapolated_arl(
    values: FloatArray, probabilities: FloatArray, h: float, states: int
) -> tuple[float, float]:
    """(ARL, its grid error): the chain's error shrinks like 1/states, so 2 ARL(states) -
    ARL(states / 2) removes most of it (Richardson); the error is |ARL(states) - ARL(states/2)|."""
    fine = markov_chain_arl(values, probabilities, h, states=states)
    coarse = markov_chain_arl(values, probabilities, h, states=states // 2)
    return 2 * fine - coarse, abs(fine - coarse)


def _bisect_chain(values: FloatArray, probabilities: FloatArray, arl0: float, states: int) -> float:
    def arl(h: float) -> float:
        return _extrapolated_arl(values, probabilities, h, states)[0]

    lo, hi = 0.0, 1.0
    while arl(hi) < arl0 and hi < 1e3:
        lo, hi = hi, hi * 2
    while hi - lo > 1e-4 * hi:
        mid = (lo + hi) / 2
        if arl(mid) < arl0:
            lo = mid
        else:
            hi = mid
    return hi


def cusum_limits(
    risks: npt.ArrayLike,
    *,
    arl0: float,
    increments: Sequence[Increment],
    n_paths: int = 1000,
    seed: int = 20250101,
    max_cases: int | None = None,
    states: int = MARKOV_STATES,
) -> list[CusumLimit]:
    """Control limits h with in-control ARL ``arl0``: Markov chain, then a simulation check.

    ``increments[i](p, y)`` gives chart i's step for arrays of risks and outcomes
    (:func:`racusum_increment`, :func:`eocusum_increment`). h is the bisection root of the
    chain's ARL; the check simulates ``n_paths`` paths drawing patients from ``risks`` with
    replacement (one pass serves every chart), censored at ``max_cases`` (default 8 ARL0, where
    a geometric-like run length survives with probability ~e^-8; the share is reported).
    """
    pool = _risks(risks)
    if arl0 <= 1:
        msg = "arl0 must exceed 1"
        raise ValueError(msg)
    cases = int(max_cases or max(8 * arl0, 200))
    chosen = []
    for increment in increments:
        values, probabilities = increment_distribution(pool, increment)
        h = _bisect_chain(values, probabilities, arl0, states)
        chosen.append((h, *_extrapolated_arl(values, probabilities, h, states)))
    records = _simulate_records(pool, increments, n_paths=n_paths, max_cases=cases, seed=seed)
    limits = []
    for (h, arl, grid_error), chart in zip(chosen, records, strict=True):
        lengths, censored = chart.run_lengths(h)
        limits.append(
            CusumLimit(
                h=h,
                arl0=float(arl0),
                arl=arl,
                arl_se=grid_error,
                n_paths=n_paths,
                max_cases=cases,
                censored=float(censored.mean()),
                seed=seed,
                method="markov-chain",
                states=states,
                check_arl=float(lengths.mean()),
                check_arl_se=float(lengths.std(ddof=1) / math.sqrt(n_paths)),
            )
        )
    return limits


def cusum_limit(
    risks: npt.ArrayLike,
    *,
    arl0: float,
    increment: Increment,
    n_paths: int = 1000,
    seed: int = 20250101,
    max_cases: int | None = None,
) -> CusumLimit:
    """:func:`cusum_limits` for one chart."""
    return cusum_limits(
        risks, arl0=arl0, increments=[increment], n_paths=n_paths, seed=seed, max_cases=max_cases
    )[0]


def simulated_arl(
    risks: npt.ArrayLike,
    h: float,
    *,
    increment: Increment,
    n_paths: int = 1000,
    seed: int = 1,
    max_cases: int = 100_000,
) -> tuple[float, float, float]:
    """(ARL, standard error, censored share) of a chart with limit h on in-control paths."""
    (records,) = _simulate_records(
        _risks(risks), [increment], n_paths=n_paths, max_cases=max_cases, seed=seed
    )
    lengths, censored = records.run_lengths(h)
    return (
        float(lengths.mean()),
        float(lengths.std(ddof=1) / math.sqrt(n_paths)),
        float(censored.mean()),
    )


@dataclass(frozen=True, slots=True)
class RaCusum:
    """Two-sided risk-adjusted CUSUM of a sequence of cases.

    ``upper`` (>= 0) tests ``odds_up`` (deterioration), ``lower`` (<= 0, plotted below zero)
    tests ``odds_down`` (improvement); ``signals_*`` are 0-based case indices.
    """

    y: FloatArray
    p: FloatArray
    upper: FloatArray
    lower: FloatArray
    h_up: float
    h_down: float
    odds_up: float
    odds_down: float
    signals_up: tuple[int, ...]
    signals_down: tuple[int, ...]
    reset: bool


def ra_cusum(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    *,
    h_up: float,
    h_down: float | None = None,
    odds_up: float = 2.0,
    odds_down: float = 0.5,
    reset: bool = True,
) -> RaCusum:
    """Steiner's RA-CUSUM, upper (odds x ``odds_up``) and lower (x ``odds_down``) charts."""
    outcome = _outcomes(y)
    risk = _risks(p)
    if len(outcome) != len(risk):
        msg = "y and p must have the same length"
        raise ValueError(msg)
    down = h_up if h_down is None else h_down
    upper, sig_up = _cusum_path(llr_weights(outcome, risk, odds_up), h_up, reset=reset)
    lower, sig_down = _cusum_path(llr_weights(outcome, risk, odds_down), down, reset=reset)
    return RaCusum(
        y=outcome,
        p=risk,
        upper=upper,
        lower=0.0 - lower,  # no negative zeros
        h_up=float(h_up),
        h_down=float(down),
        odds_up=float(odds_up),
        odds_down=float(odds_down),
        signals_up=sig_up,
        signals_down=sig_down,
        reset=reset,
    )


# --- VLAD and E-O CUSUM ----------------------------------------------------------------------


def vlad(y: npt.ArrayLike, p: npt.ArrayLike) -> FloatArray:
    """Variable life-adjusted display: cumulative expected minus observed, sum(p - y)."""
    return np.cumsum(_risks(p) - _outcomes(y))


def optimal_k(p: npt.ArrayLike, odds_ratio: float) -> float:
    """vlad's E-O CUSUM reference value for a change of the odds by ``odds_ratio``."""
    p_bar = float(np.mean(_risks(p)))
    log_ra = math.log(odds_ratio)
    if odds_ratio == 1:
        msg = "odds_ratio must differ from 1"
        raise ValueError(msg)
    if odds_ratio > 1:
        return p_bar * (odds_ratio - 1 - log_ra) / log_ra
    return p_bar * (1 - odds_ratio + log_ra) / log_ra


@dataclass(frozen=True, slots=True)
class EoCusum:
    """E-O CUSUM: ``path`` <= 0 for deterioration (RA > 1), >= 0 for improvement (RA < 1)."""

    path: FloatArray
    k: float
    h: float
    odds_ratio: float
    signals: tuple[int, ...]


def eo_cusum(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    *,
    odds_ratio: float,
    h: float,
    k: float | None = None,
    k_risks: npt.ArrayLike | None = None,
    reset: bool = False,
) -> EoCusum:
    """E-O CUSUM on z = p - y with reference value ``k`` (default :func:`optimal_k` of
    ``k_risks``, else of ``p``); signals when |path| >= h."""
    outcome = _outcomes(y)
    risk = _risks(p)
    kk = optimal_k(risk if k_risks is None else k_risks, odds_ratio) if k is None else float(k)
    step = eocusum_increment(odds_ratio, kk)(risk, outcome.astype(bool))
    path, signals = _cusum_path(step, h, reset=reset)
    sign = -1.0 if odds_ratio > 1 else 1.0
    return EoCusum(sign * path + 0.0, kk, float(h), float(odds_ratio), signals)


# --- Bernoulli CUSUM (qicharts2 bchart) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BernoulliCusum:
    """qicharts2 ``bchart``: upper chart for OR, lower (<= 0) for 1/OR, limits +/- ``limit``."""

    y: FloatArray
    p0: float
    p1: float
    p2: float
    odds_ratio: float
    limit: float
    upper: FloatArray
    lower: FloatArray
    signals_up: tuple[int, ...]
    signals_down: tuple[int, ...]
    baseline_cases: int | None


def _odds_shift(p0: float, odds_ratio: float) -> float:
    odds = odds_ratio * p0 / (1 - p0)
    return odds / (1 + odds)


def bernoulli_cusum(
    y: npt.ArrayLike, *, target: float, odds_ratio: float = 2.0, limit: float = 3.5
) -> BernoulliCusum:
    """Bernoulli CUSUM. ``target`` < 1 is the baseline risk p0; ``target`` >= 1 is the number of
    first cases whose mean is p0 (qicharts2: "> 1")."""
    outcome = _outcomes(y)
    baseline: int | None = None
    if target >= 1:
        baseline = int(target)
        p0 = float(outcome[:baseline].mean())
    else:
        p0 = float(target)
    if not 0 < p0 < 1:
        msg = f"baseline risk p0 = {p0:g} must lie strictly between 0 and 1"
        raise ValueError(msg)
    p1, p2 = _odds_shift(p0, odds_ratio), _odds_shift(p0, 1 / odds_ratio)
    s1 = outcome * math.log(p1 / p0) + (1 - outcome) * math.log((1 - p1) / (1 - p0))
    s2 = outcome * math.log(p2 / p0) + (1 - outcome) * math.log((1 - p2) / (1 - p0))
    upper, sig_up = _cusum_path(s1, limit, reset=True, reset_above=True)
    # min(0, z - s2) is minus max(0, u + s2): the mirror chart accumulates s2
    lower, sig_down = _cusum_path(s2, limit, reset=True, reset_above=True)
    return BernoulliCusum(
        y=outcome,
        p0=p0,
        p1=p1,
        p2=p2,
        odds_ratio=float(odds_ratio),
        limit=float(limit),
        upper=upper,
        lower=0.0 - lower,  # no negative zeros
        signals_up=sig_up,
        signals_down=sig_down,
        baseline_cases=baseline,
    )


# --- continuous data: tabular CUSUM and EWMA (qcc) -------------------------------------------


@dataclass(frozen=True, slots=True)
class TabularCusum:
    """qcc's tabular CUSUM in sd units: ``pos`` >= 0, ``neg`` <= 0; signals (0-based) where
    pos > h or neg < -h (strict)."""

    pos: FloatArray
    neg: FloatArray
    k: float
    h: float
    signals_up: tuple[int, ...]
    signals_down: tuple[int, ...]


def tabular_cusum(
    x: npt.ArrayLike,
    *,
    center: float,
    sigma: float,
    k: float = 0.5,
    h: float = 5.0,
    head_start: float = 0.0,
) -> TabularCusum:
    """C+_t = max(0, C+_(t-1) + z_t - k), C-_t = min(0, C-_(t-1) + z_t + k), z = (x - center)
    / sigma; no restart after a signal (qcc, Montgomery section 9.1)."""
    z = (_array(x, "x") - center) / sigma
    pos = np.empty(len(z))
    neg = np.empty(len(z))
    up, down = head_start, -head_start
    for i, value in enumerate(z.tolist()):
        up = max(0.0, up + value - k)
        down = min(0.0, down + value + k)
        pos[i], neg[i] = up, down
    return TabularCusum(
        pos=pos,
        neg=neg,
        k=float(k),
        h=float(h),
        signals_up=tuple(int(i) for i in np.flatnonzero(pos > h)),
        signals_down=tuple(int(i) for i in np.flatnonzero(neg < -h)),
    )


@dataclass(frozen=True, slots=True)
class Ewma:
    """EWMA statistics with their exact standard errors and limits; signals are 0-based."""

    ewma: FloatArray
    sigma: FloatArray
    lcl: FloatArray
    ucl: FloatArray
    signals: tuple[int, ...] = field(default=())


def ewma(
    x: npt.ArrayLike,
    *,
    center: float,
    sigma: float,
    lambda_: float = 0.2,
    nsigmas: float = 3.0,
    start: float | None = None,
) -> Ewma:
    """w_t = lambda x_t + (1 - lambda) w_(t-1), w_0 = ``start`` (default the centre);
    sigma_t = sigma sqrt(lambda / (2 - lambda) (1 - (1 - lambda)^(2t)))."""
    values = _array(x, "x")
    if not 0 < lambda_ <= 1:
        msg = "lambda_ must lie in (0, 1]"
        raise ValueError(msg)
    w = np.empty(len(values))
    previous = center if start is None else start
    for i, value in enumerate(values.tolist()):
        previous = lambda_ * value + (1 - lambda_) * previous
        w[i] = previous
    t = np.arange(1, len(values) + 1)
    sd = sigma * np.sqrt(lambda_ / (2 - lambda_) * (1 - (1 - lambda_) ** (2 * t)))
    lcl, ucl = center - nsigmas * sd, center + nsigmas * sd
    signals = tuple(int(i) for i in np.flatnonzero((w > ucl) | (w < lcl)))
    return Ewma(w, sd, lcl, ucl, signals)


# --- the patient-level chart the platform stores ---------------------------------------------


def _list(a: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in a.tolist()]


@dataclass(frozen=True, slots=True)
class RiskAdjustedChart:
    """RA-CUSUM, VLAD and E-O CUSUM of one member's cases, with the model and limits used.

    ``phase_one`` records which cases the risk model (and the limits' risk pool) came from.
    """

    case: tuple[Any, ...]
    y: FloatArray
    p: FloatArray
    phase_one: npt.NDArray[np.bool_]
    racusum: RaCusum
    vlad: FloatArray
    eo_deterioration: EoCusum
    eo_improvement: EoCusum
    limit_up: CusumLimit | None
    limit_down: CusumLimit | None
    model: RiskModel | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary for storage."""
        ra = self.racusum
        return {
            "engine": "qicollab.stats.cusum",
            "chart": "racusum",
            "case": list(self.case),
            "y": [int(v) for v in self.y.tolist()],
            "p": _list(self.p),
            "phase_one": [bool(v) for v in self.phase_one.tolist()],
            "upper": _list(ra.upper),
            "lower": _list(ra.lower),
            "h_up": ra.h_up,
            "h_down": ra.h_down,
            "odds_up": ra.odds_up,
            "odds_down": ra.odds_down,
            "signals_up": list(ra.signals_up),
            "signals_down": list(ra.signals_down),
            "reset": ra.reset,
            "vlad": _list(self.vlad),
            "eo": {
                name: {
                    "path": _list(eo.path),
                    "k": eo.k,
                    "h": eo.h,
                    "odds_ratio": eo.odds_ratio,
                    "signals": list(eo.signals),
                }
                for name, eo in (
                    ("deterioration", self.eo_deterioration),
                    ("improvement", self.eo_improvement),
                )
            },
            "limit_up": None if self.limit_up is None else self.limit_up.to_dict(),
            "limit_down": None if self.limit_down is None else self.limit_down.to_dict(),
            "model": None if self.model is None else self.model.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RiskAdjustedChart:
        """Inverse of :meth:`to_dict`."""

        def arr(key: str, source: Mapping[str, Any] = data) -> FloatArray:
            return np.array([math.nan if v is None else v for v in source[key]], dtype=float)

        y, p = arr("y"), arr("p")
        ra = RaCusum(
            y=y,
            p=p,
            upper=arr("upper"),
            lower=arr("lower"),
            h_up=float(data["h_up"]),
            h_down=float(data["h_down"]),
            odds_up=float(data["odds_up"]),
            odds_down=float(data["odds_down"]),
            signals_up=tuple(data["signals_up"]),
            signals_down=tuple(data["signals_down"]),
            reset=bool(data["reset"]),
        )
        eo = {
            name: EoCusum(
                arr("path", part),
                float(part["k"]),
                float(part["h"]),
                float(part["odds_ratio"]),
                tuple(part["signals"]),
            )
            for name, part in data["eo"].items()
        }
        return cls(
            case=tuple(data["case"]),
            y=y,
            p=p,
            phase_one=np.array(data["phase_one"], dtype=bool),
            racusum=ra,
            vlad=arr("vlad"),
            eo_deterioration=eo["deterioration"],
            eo_improvement=eo["improvement"],
            limit_up=None if data["limit_up"] is None else CusumLimit.from_dict(data["limit_up"]),
            limit_down=None
            if data["limit_down"] is None
            else CusumLimit.from_dict(data["limit_down"]),
            model=None if data["model"] is None else RiskModel.from_dict(data["model"]),
        )


def risk_adjusted_chart(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    *,
    phase_one: npt.ArrayLike,
    case: Sequence[Any] | None = None,
    odds_up: float = 2.0,
    odds_down: float = 0.5,
    arl0: float = 5000.0,
    h_up: float | None = None,
    h_down: float | None = None,
    reset: bool = True,
    n_paths: int = 1000,
    seed: int = 20250101,
    model: RiskModel | None = None,
) -> RiskAdjustedChart:
    """RA-CUSUM (limits by simulation from the phase-I risks unless given), VLAD and E-O
    CUSUMs (k from the phase-I mean risk, limits for the same ARL0) of a case sequence."""
    outcome = _outcomes(y)
    risk = _risks(p)
    phase = np.asarray(phase_one, dtype=bool)
    if not (len(outcome) == len(risk) == len(phase)):
        msg = "y, p and phase_one must have the same length"
        raise ValueError(msg)
    if not phase.any():
        msg = "phase I must contain cases"
        raise ValueError(msg)
    pool = risk[phase]
    k_up, k_down = optimal_k(pool, odds_up), optimal_k(pool, odds_down)
    needed = {
        "up": racusum_increment(odds_up) if h_up is None else None,
        "down": racusum_increment(odds_down) if h_down is None else None,
        "eo_up": eocusum_increment(odds_up, k_up),
        "eo_down": eocusum_increment(odds_down, k_down),
    }
    names = [name for name, inc in needed.items() if inc is not None]
    found = dict(
        zip(
            names,
            cusum_limits(
                pool,
                arl0=arl0,
                increments=[needed[name] for name in names],  # type: ignore[misc]
                n_paths=n_paths,
                seed=seed,
            ),
            strict=True,
        )
    )
    limit_up, limit_down = found.get("up"), found.get("down")
    chart = ra_cusum(
        outcome,
        risk,
        h_up=limit_up.h if limit_up is not None else float(h_up),  # type: ignore[arg-type]
        h_down=limit_down.h if limit_down is not None else float(h_down),  # type: ignore[arg-type]
        odds_up=odds_up,
        odds_down=odds_down,
        reset=reset,
    )
    eo_charts = [
        eo_cusum(outcome, risk, odds_ratio=odds, h=found[name].h, k=k, reset=reset)
        for odds, name, k in ((odds_up, "eo_up", k_up), (odds_down, "eo_down", k_down))
    ]
    labels = tuple(range(1, len(outcome) + 1)) if case is None else tuple(case)
    return RiskAdjustedChart(
        case=labels,
        y=outcome,
        p=risk,
        phase_one=phase,
        racusum=chart,
        vlad=vlad(outcome, risk),
        eo_deterioration=eo_charts[0],
        eo_improvement=eo_charts[1],
        limit_up=limit_up,
        limit_down=limit_down,
        model=model,
    )
