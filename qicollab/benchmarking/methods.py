"""The statistical methods a benchmark run calls, behind one small array-in/array-out surface.

Every number a run stores comes from :mod:`qicollab.stats`; the functions here adapt its API
to the run's arrays: intervals (Wilson, exact/Byar and normal O/E, exact Poisson rates, t
intervals of means: :mod:`qicollab.stats.intervals`), funnels for event counts and proportions
(:mod:`qicollab.stats.funnel`) and for outcomes judged with their own standard errors, with the
curves drawn from them (:mod:`qicollab.stats.se_funnel`), the risk models, the shrinkage
models, distributions and deciles, and the ABC (:mod:`qicollab.stats.achievable`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qicollab.measures.spec import CovariateType, OutcomeFamily, RiskModelSpec
from qicollab.stats import achievable as stats_achievable
from qicollab.stats import funnel as stats_funnel
from qicollab.stats import glmm as stats_glmm
from qicollab.stats import intervals as stats_intervals
from qicollab.stats import peer as stats_peer
from qicollab.stats import risk_models as stats_risk
from qicollab.stats import se_funnel as stats_se_funnel
from qicollab.stats import shrinkage as stats_shrinkage

LEVELS = stats_intervals.LEVELS


class MeasureNotComputableError(ValueError):
    """The data of a measure cannot support the method (too few events, one level, ...)."""


def level_key(level: float) -> str:
    """ "95" or "99.8": how limits are keyed in stored payloads."""
    return f"{level * 100:g}"


# --- risk models ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskFit:
    """A fitted risk model: expected value per row, coefficients, diagnostics."""

    family: str
    expected: np.ndarray
    #: Var(y_i) under the model, per row (for O/E intervals of non-Poisson outcomes).
    variance: np.ndarray
    used: np.ndarray  # boolean mask of rows used (complete cases)
    coefficients: list[dict[str, Any]]
    diagnostics: dict[str, Any]
    n: int
    events: float
    #: The core's fit and its complete-case rows (the random-intercept shrinkage refits them).
    model: stats_risk.RiskModelFit | None = field(default=None, repr=False, compare=False)
    complete: pd.DataFrame | None = field(default=None, repr=False, compare=False)


def _coefficient_json(row: Any, ratio_name: str | None) -> dict[str, Any]:
    """A coefficient as stored (the keys the reports read)."""
    data: dict[str, Any] = {
        "term": row.term,
        "estimate": row.estimate,
        "std_error": row.std_error,
        "statistic": row.statistic,
        "p_value": row.p_value,
        "ci_low": row.ci_lower,
        "ci_high": row.ci_upper,
    }
    if ratio_name is not None and row.term != "intercept":
        data |= {
            "exp_estimate": row.ratio,
            "exp_ci_low": row.ratio_lower,
            "exp_ci_high": row.ratio_upper,
            "ratio_kind": ratio_name,
        }
        if ratio_name == "odds ratio":
            data |= {
                "odds_ratio": row.ratio,
                "or_ci_low": row.ratio_lower,
                "or_ci_high": row.ratio_upper,
            }
    return data


def _diagnostics_json(fit: Any) -> dict[str, Any]:
    diagnostics = fit.diagnostics
    data: dict[str, Any] = {
        "method": fit.method,
        "iterations": fit.iterations,
        "dispersion": fit.dispersion,
        "n": fit.n,
        "events": fit.events,
    }
    if fit.separation is not None:
        data["separation"] = {
            "separated": fit.separation.separated,
            "rows_checked": fit.separation.rows_checked,
            "method": fit.separation.method,
        }
    if diagnostics is None:
        return data
    data |= {
        "c_statistic": diagnostics.c_statistic,
        "c_statistic_ci": list(diagnostics.c_statistic_ci) if diagnostics.c_statistic_ci else None,
        "c_statistic_method": diagnostics.c_statistic_method,
        "brier": diagnostics.brier_score,
        "events_per_variable": diagnostics.events_per_variable,
        "log_likelihood": diagnostics.log_likelihood,
        "aic": diagnostics.aic,
        "observed_total": diagnostics.observed_total,
        "expected_total": diagnostics.expected_total,
        "calibration": [
            {
                "decile": group.group,
                "n": group.n,
                "observed": group.observed,
                "expected": group.expected,
                "mean_predicted": group.mean_predicted,
                "observed_rate": group.observed_rate,
            }
            for group in diagnostics.calibration
        ],
    }
    if diagnostics.hosmer_lemeshow is not None:
        data["hosmer_lemeshow"] = {
            "statistic": diagnostics.hosmer_lemeshow,
            "df": diagnostics.hosmer_lemeshow_df,
            "p_value": diagnostics.hosmer_lemeshow_p,
        }
    return data


def fit_risk_model(frame: pd.DataFrame, spec: RiskModelSpec) -> RiskFit:
    """Fit the measure's model on the pooled snapshot data (fixed effects, no member terms)
    with :func:`qicollab.stats.risk_models.fit_risk_model`.

    Rows with a missing outcome or covariate are left out (complete cases; the count is in the
    diagnostics) rather than refusing the measure; the core's refusals (too few events per
    variable, separation, a single level, non-convergence) become
    :class:`MeasureNotComputableError` with the core's reason.
    """
    columns = [covariate.name for covariate in spec.covariates]
    used = frame[["outcome", *columns]].notna().all(axis=1).to_numpy(dtype=bool, copy=True)
    if not used.any():
        msg = "no complete cases to fit the risk model"
        raise MeasureNotComputableError(msg)
    complete = frame.loc[used, ["outcome", *columns]]
    complete = complete.rename(columns={"outcome": spec.outcome})
    for covariate in spec.covariates:
        if covariate.type is CovariateType.CATEGORICAL:
            complete[covariate.name] = complete[covariate.name].astype(str)
    try:
        fit = stats_risk.fit_risk_model(complete, spec)
    except stats_risk.RiskModelError as error:
        raise MeasureNotComputableError(str(error)) from error
    mean = np.asarray(fit.fitted, dtype=float)
    family = fit.family
    if family == OutcomeFamily.BINOMIAL:
        var = mean * (1 - mean)
    elif family == OutcomeFamily.POISSON:
        var = mean
    elif family == OutcomeFamily.NEGBIN:
        var = mean + float(fit.dispersion or 0.0) * mean**2
    else:
        var = np.full(len(mean), float(fit.dispersion or 0.0))
    expected = np.full(len(frame), np.nan)
    variance = np.full(len(frame), np.nan)
    expected[used] = mean
    variance[used] = var
    diagnostics = _diagnostics_json(fit)
    diagnostics["complete_cases"] = int(used.sum())
    diagnostics["dropped_incomplete"] = int((~used).sum())
    return RiskFit(
        family=family,
        expected=expected,
        variance=variance,
        used=used,
        coefficients=[_coefficient_json(row, fit.ratio_name) for row in fit.coefficients],
        diagnostics=diagnostics,
        n=int(fit.n),
        events=float(fit.events),
        model=fit,
        complete=complete,
    )


# --- intervals --------------------------------------------------------------------------------


def oe_interval(observed: np.ndarray, expected: np.ndarray, level: float) -> tuple[np.ndarray, ...]:
    """O/E interval by PHE's rule: exact Poisson below 10 events, Byar from 10 on."""
    interval = stats_intervals.ratio_interval(observed, expected, level=level, method="phe")
    return interval.lower, interval.upper


def normal_ratio_interval(
    observed: np.ndarray, expected: np.ndarray, variance: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Normal interval of O/E for outcomes that are not event counts (LOS, scores)."""
    interval = stats_intervals.normal_ratio_interval(observed, expected, variance, level=level)
    return interval.lower, interval.upper


def wilson(x: np.ndarray, n: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for x of n (NaN where n = 0)."""
    interval = stats_intervals.wilson_interval(x, n, level=level)
    return interval.lower, interval.upper


def poisson_rate_interval(
    events: np.ndarray, exposure: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Garwood) interval of events / exposure."""
    interval = stats_intervals.exact_poisson_interval(events, exposure, level=level)
    return interval.lower, interval.upper


def mean_interval(
    mean: np.ndarray, se: np.ndarray, df: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Student t interval of a mean from its standard error and degrees of freedom."""
    interval = stats_intervals.t_interval(mean, se, df, level=level)
    return interval.lower, interval.upper


# --- empirical-Bayes shrinkage ----------------------------------------------------------------


@dataclass(frozen=True)
class Shrinkage:
    """Shrunk estimates and the fitted prior."""

    method: str
    estimate: np.ndarray
    params: dict[str, float]
    #: The estimates' 95% intervals (the model's posterior intervals); None without shrinkage.
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None


def eb_gamma_poisson(observed: np.ndarray, expected: np.ndarray) -> Shrinkage:
    """Gamma-Poisson EB of O/E (prior mean 1): :func:`qicollab.stats.shrinkage.
    gamma_poisson_shrinkage` over the members with E > 0 (others get NaN)."""
    o = np.asarray(observed, dtype=float)
    e = np.asarray(expected, dtype=float)
    ok = np.isfinite(o) & np.isfinite(e) & (e > 0)
    shrunk = np.full(len(o), np.nan)
    if not ok.any():
        return Shrinkage("gamma-poisson", shrunk, {})
    result = stats_shrinkage.gamma_poisson_shrinkage(o[ok], e[ok])
    shrunk[ok] = [estimate.shrunk for estimate in result.estimates]
    lower, upper = np.full(len(o), np.nan), np.full(len(o), np.nan)
    lower[ok] = [estimate.lower for estimate in result.estimates]
    upper[ok] = [estimate.upper for estimate in result.estimates]
    return Shrinkage(
        result.method,
        shrunk,
        {
            "shape": result.shape,
            "rate": result.rate,
            "prior_sd": result.prior_sd,
            "overdispersed": result.overdispersed,
            "note": result.note,
        },
        lower,
        upper,
    )


def eb_beta_binomial(x: np.ndarray, n: np.ndarray) -> Shrinkage:
    """Beta-binomial EB of proportions: :func:`qicollab.stats.shrinkage.
    beta_binomial_shrinkage` over the members with n > 0."""
    x = np.asarray(x, dtype=float)
    n = np.asarray(n, dtype=float)
    ok = np.isfinite(x) & np.isfinite(n) & (n > 0)
    shrunk = np.full(len(x), np.nan)
    if not ok.any():
        return Shrinkage("beta-binomial", shrunk, {})
    result = stats_shrinkage.beta_binomial_shrinkage(np.minimum(x[ok], n[ok]), n[ok])
    shrunk[ok] = [estimate.shrunk for estimate in result.estimates]
    lower, upper = np.full(len(x), np.nan), np.full(len(x), np.nan)
    lower[ok] = [estimate.lower for estimate in result.estimates]
    upper[ok] = [estimate.upper for estimate in result.estimates]
    return Shrinkage(
        result.method,
        shrunk,
        {
            "alpha": result.alpha,
            "beta": result.beta,
            "prior_mean": result.prior_mean,
            "intraclass_correlation": result.intraclass_correlation,
            "overdispersed": result.overdispersed,
            "note": result.note,
        },
        lower,
        upper,
    )


def eb_random_intercept(fit: RiskFit, y: np.ndarray, member: np.ndarray) -> Shrinkage:
    """Binary outcomes: CMS-style P/E from the random-intercept logistic model
    (:func:`qicollab.stats.glmm.random_intercept_logistic`, the risk model's coefficients
    re-estimated jointly with the between-member SD), one per member in sorted order, as
    ``qicollab analyze risk`` reports it."""
    assert fit.model is not None
    assert fit.complete is not None
    result = stats_glmm.random_intercept_logistic(
        y,
        member,
        design=stats_risk.build_design(fit.complete, fit.model.spec),
        start=fit.model.params,
        terms=fit.model.terms,
    )
    by_member = {u.unit: u for u in result.units}
    order = [by_member[m] for m in np.unique(member).tolist()]
    estimate = np.array([u.ratio for u in order])
    params = {
        "between_member_sd": result.sigma,
        "log_likelihood": result.log_likelihood,
        "quadrature_points": result.quadrature_points,
        "note": "P/E at each member's conditional mode; between-member SD on the logit scale",
    }
    return Shrinkage(
        result.method,
        estimate,
        params,
        np.array([u.lower for u in order]),
        np.array([u.upper for u in order]),
    )


def eb_normal(y: np.ndarray, se: np.ndarray, target: float) -> Shrinkage:
    """Normal-normal EB towards ``target``: :func:`qicollab.stats.shrinkage.
    normal_normal_shrinkage`."""
    result = stats_shrinkage.normal_normal_shrinkage(y, se, target)
    shrunk = np.array([estimate.shrunk for estimate in result.estimates])
    return Shrinkage(
        result.method,
        shrunk,
        {"tau2": result.tau2, "target": result.target},
        np.array([estimate.lower for estimate in result.estimates]),
        np.array([estimate.upper for estimate in result.estimates]),
    )


# --- funnels ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Funnel:
    """Funnel-plot statistics of one indicator across members."""

    method: str
    scale: str  # "log" | "sqrt" | "arcsine" | "identity"
    target: float
    z: np.ndarray
    phi: float
    tau2: float
    overdispersed: bool
    adjusted: bool
    note: str
    #: level key -> (low, high) arrays per member; unadjusted and adjusted.
    limits: dict[str, tuple[np.ndarray, np.ndarray]]
    adjusted_limits: dict[str, tuple[np.ndarray, np.ndarray]]
    #: level key -> "high" / "low" / None per member.
    flags: dict[str, list[str | None]]
    adjusted_flags: dict[str, list[str | None]]
    units_used: int
    curve: dict[str, Any] = field(default_factory=dict)
    adjustment: str = "additive"
    pvalue: float | None = None


def funnel_ratio(
    observed: np.ndarray,
    expected: np.ndarray,
    *,
    method: str = stats_funnel.DEFAULT_METHOD,
    trim: float = 0.1,
    variance: np.ndarray | None = None,
    levels: Sequence[float] = LEVELS,
) -> Funnel:
    """Funnel of O/E against E with overdispersion.

    Event counts (``variance`` None): :func:`qicollab.stats.funnel.funnel_analysis` with any of
    its methods. Outcomes that are not event counts (length of stay, scores) pass Var O and go
    to :func:`qicollab.stats.se_funnel.ratio_se_funnel`, which judges each member with its own
    standard error: ``"shmi"`` there is the log scale with SHMI truncation, and every other
    method is its additive random effect (DerSimonian-Laird tau^2 on the square-root scale,
    z winsorised). The count default's negative-binomial predictive limits assume Poisson
    counts, which these outcomes are not; sums over many patients are close to normal, where
    winsorising does not bias tau^2 the way it does for small counts.
    """
    if variance is None:
        result = stats_funnel.funnel_analysis(
            np.asarray(observed, dtype=float),
            np.asarray(expected, dtype=float),
            data_type="ratio",
            method=method,  # type: ignore[arg-type]
            trim=trim,
        )
        return _from_core(result, levels)
    return _funnel_ratio_variance(
        observed, expected, method=method, trim=trim, variance=variance, levels=levels
    )


#: (data type, core method) -> the scale its z-scores live on, as stored in payloads.
CORE_SCALES = {
    ("ratio", "random-effects"): "negative binomial",
    ("ratio", "shmi"): "log",
    ("ratio", "cqc"): "sqrt",
    ("ratio", "spiegelhalter"): "sqrt",
    ("proportion", "random-effects"): "beta-binomial",
    ("proportion", "cqc"): "arcsine",
    ("proportion", "spiegelhalter"): "arcsine",
}


def _from_core(result: Any, levels: Sequence[float]) -> Funnel:
    """Our Funnel from the core's FunnelResult (arrays per level, curves for plotting)."""
    rows = result.rows
    limits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    adjusted_limits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    flags: dict[str, list[str | None]] = {}
    adjusted_flags: dict[str, list[str | None]] = {}
    for level in levels:
        key = level_key(level)
        limits[key] = (
            np.array([r.limits(level)[0] for r in rows]),
            np.array([r.limits(level)[1] for r in rows]),
        )
        adjusted_limits[key] = (
            np.array([r.limits(level, adjusted=True)[0] for r in rows]),
            np.array([r.limits(level, adjusted=True)[1] for r in rows]),
        )
        flags[key] = [r.outlier(level) for r in rows]
        adjusted_flags[key] = [r.outlier(level, adjusted=True) for r in rows]
    precision = np.array([r.precision for r in rows])
    grid = stats_se_funnel.curve_axis(precision)
    curve: dict[str, Any] = {}
    if len(grid):
        curves = result.curves(grid)
        curve = {"x": grid.tolist()}
        for level in levels:
            key = level_key(level)
            curve[key] = [curves.lower[key].tolist(), curves.upper[key].tolist()]
            curve[f"adjusted_{key}"] = [
                curves.adjusted_lower[key].tolist(),
                curves.adjusted_upper[key].tolist(),
            ]
    return Funnel(
        method=result.method,
        scale=CORE_SCALES[result.data_type, result.method],
        target=result.target,
        z=np.array([r.z for r in rows]),
        phi=result.phi,
        tau2=result.tau2,
        overdispersed=not result.fallback,
        adjusted=not result.fallback,
        note=result.note,
        limits=limits,
        adjusted_limits=adjusted_limits,
        flags=flags,
        adjusted_flags=adjusted_flags,
        units_used=result.n_used,
        curve=curve,
        adjustment=result.adjustment,
        pvalue=result.overdispersion_pvalue,
    )


def _funnel_ratio_variance(
    observed: np.ndarray,
    expected: np.ndarray,
    *,
    method: str,
    trim: float,
    variance: np.ndarray,
    levels: Sequence[float],
) -> Funnel:
    """The ratio funnel with Var O given: :func:`qicollab.stats.se_funnel.ratio_se_funnel`."""
    e = np.asarray(expected, dtype=float)
    var = np.asarray(variance, dtype=float)
    result = stats_se_funnel.ratio_se_funnel(
        observed,
        e,
        var,
        method="shmi" if method == "shmi" else "cqc",
        trim=trim,
    )
    curve = _curve_dict(stats_se_funnel.ratio_curve(result, e, var), levels, "expected")
    return _from_se_funnel(result, levels, curve)


def _from_se_funnel(
    result: stats_se_funnel.SeFunnelResult, levels: Sequence[float], curve: dict[str, Any]
) -> Funnel:
    keys = [level_key(level) for level in levels]
    return Funnel(
        method=result.method,
        scale=result.scale,
        target=result.target,
        z=result.z,
        phi=result.phi,
        tau2=result.tau2,
        overdispersed=not result.fallback,
        adjusted=not result.fallback,
        note=result.note,
        limits={key: (result.lower[key], result.upper[key]) for key in keys},
        adjusted_limits={
            key: (result.adjusted_lower[key], result.adjusted_upper[key]) for key in keys
        },
        flags={key: list(result.flags[key]) for key in keys},
        adjusted_flags={key: list(result.adjusted_flags[key]) for key in keys},
        units_used=result.n_used,
        curve=curve,
    )


def _curve_dict(
    curve: stats_se_funnel.FunnelCurve | None, levels: Sequence[float], x_label: str
) -> dict[str, Any]:
    """A core curve in the run's ``{"x": ..., key: [low, high], "adjusted_" + key: ...}``."""
    if curve is None:
        return {}
    out: dict[str, Any] = {"x": curve.x.tolist(), "x_label": x_label}
    for level in levels:
        key = level_key(level)
        out[key] = [curve.lower[key].tolist(), curve.upper[key].tolist()]
        out[f"adjusted_{key}"] = [
            curve.adjusted_lower[key].tolist(),
            curve.adjusted_upper[key].tolist(),
        ]
    return out


def funnel_proportion(
    x: np.ndarray,
    n: np.ndarray,
    *,
    method: str = stats_funnel.DEFAULT_METHOD,
    trim: float = 0.1,
    levels: Sequence[float] = LEVELS,
) -> Funnel:
    """Funnel of x/n: :func:`qicollab.stats.funnel.funnel_analysis` with any of its proportion
    methods (the beta-binomial random effect by default; ``"cqc"`` additive tau^2 and
    ``"spiegelhalter"`` multiplicative phi on the arcsine scale); target = the pooled
    proportion."""
    result = stats_funnel.funnel_analysis(
        np.asarray(x, dtype=float),
        np.asarray(n, dtype=float),
        data_type="proportion",
        method=method,  # type: ignore[arg-type]
        trim=trim,
    )
    return _from_core(result, levels)


def funnel_normal(
    value: np.ndarray,
    se: np.ndarray,
    target: float,
    *,
    trim: float = 0.1,
    levels: Sequence[float] = LEVELS,
    precision: np.ndarray | None = None,
) -> Funnel:
    """Funnel for means: :func:`qicollab.stats.se_funnel.normal_funnel`."""
    result = stats_se_funnel.normal_funnel(value, se, target, trim=trim)
    curve = (
        _curve_dict(stats_se_funnel.normal_curve(result, precision), levels, "denominator")
        if precision is not None
        else {}
    )
    return _from_se_funnel(result, levels, curve)


# --- peer benchmarks --------------------------------------------------------------------------


def distribution(values: np.ndarray) -> dict[str, Any]:
    """Mean, median, quartiles and deciles (10th..90th) of the members' values (each member
    once): :func:`qicollab.stats.peer.summarise`."""
    summary = stats_peer.summarise(np.asarray(values, dtype=float))
    if not summary.n_units:
        return {"n": 0}
    return {
        "n": summary.n_units,
        "mean": summary.mean,
        "median": summary.median,
        "q1": summary.q1,
        "q3": summary.q3,
        "min": summary.minimum,
        "max": summary.maximum,
        "deciles": list(summary.deciles),
    }


def decile_rank(values: np.ndarray, *, higher_is_better: bool) -> np.ndarray:
    """1 = the best tenth of members, 10 = the worst (direction-aware); 0 where there is no
    value: :func:`qicollab.stats.peer.decile_ranks`."""
    _, deciles, _ = stats_peer.decile_ranks(
        np.asarray(values, dtype=float),
        improvement="increase" if higher_is_better else "decrease",
    )
    return deciles


@dataclass(frozen=True)
class Benchmark:
    """Achievable Benchmark of Care and the members that set it."""

    value: float
    selected: np.ndarray  # boolean mask
    method: str


def abc(
    numerator: np.ndarray,
    denominator: np.ndarray,
    *,
    higher_is_better: bool,
    fraction: float = 0.1,
    rank_by: np.ndarray | None = None,
) -> Benchmark:
    """Pared-mean Achievable Benchmark of Care.

    Counts of successes or events (x <= n): :func:`qicollab.stats.achievable.achievable_benchmark`
    (AFP ranking, ties at the cut included). Other indicators (means, length of stay) rank on
    ``rank_by`` (their shrunk values, which do for them what AFP does for proportions) and pool
    numerator / denominator over the members taken the same way.
    """
    x = np.asarray(numerator, dtype=float)
    n = np.asarray(denominator, dtype=float)
    ok = np.isfinite(x) & np.isfinite(n) & (n > 0)
    selected = np.zeros(len(x), dtype=bool)
    if not ok.any():
        return Benchmark(math.nan, selected, "pared-mean")
    if rank_by is None:
        index = np.flatnonzero(ok)
        result = stats_achievable.achievable_benchmark(
            index,
            np.minimum(x[ok], n[ok]),
            n[ok],
            fraction=fraction,
            lower_is_better=not higher_is_better,
        )
        selected[list(result.benchmark_units)] = True
        return Benchmark(result.abc, selected, result.method)
    index = np.flatnonzero(ok)
    result = stats_achievable.achievable_benchmark(
        index,
        x[ok],
        n[ok],
        fraction=fraction,
        lower_is_better=not higher_is_better,
        rank_by=np.asarray(rank_by, dtype=float)[ok],
    )
    selected[list(result.benchmark_units)] = True
    return Benchmark(result.abc, selected, "pared mean, ranked by the shrunk value")
