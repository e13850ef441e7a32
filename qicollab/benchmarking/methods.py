"""The statistical methods a benchmark run calls, behind one small array-in/array-out surface.

Every number a run stores comes from a function here, so the run code does not depend on how
the statistics core (``qicollab.stats``) spells its API: where the core has the method, the
function here is a thin adapter over it; where it does not (yet), the method is implemented
here, vectorised over members, from the formulas in design/METHODS.md part A.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from qicollab.measures.spec import CovariateType, OutcomeFamily, RiskModelSpec

LEVELS = (0.95, 0.998)


class MeasureNotComputableError(ValueError):
    """The data of a measure cannot support the method (too few events, one level, ...)."""


def z_of(level: float) -> float:
    """Two-sided normal quantile: 1.959964 for 95%, 3.090232 for 99.8%."""
    return float(stats.norm.ppf(1 - (1 - level) / 2))


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


def design_matrix(frame: pd.DataFrame, spec: RiskModelSpec) -> tuple[np.ndarray, list[str]]:
    """Intercept, numeric/binary columns, and one dummy per non-reference categorical level."""
    columns: list[np.ndarray] = [np.ones(len(frame))]
    names = ["intercept"]
    for covariate in spec.covariates:
        values = frame[covariate.name]
        if covariate.type is CovariateType.CATEGORICAL:
            codes = pd.Categorical(values, categories=list(covariate.levels)).codes
            for index, level in enumerate(covariate.levels):
                if level == covariate.reference:
                    continue
                dummy = (codes == index).astype(float)
                dummy[codes < 0] = np.nan
                columns.append(dummy)
                names.append(f"{covariate.name}[{level}]")
        else:
            columns.append(values.to_numpy(dtype=float))
            names.append(covariate.name)
    return np.column_stack(columns), names


def _check_design(x: np.ndarray, names: list[str], y: np.ndarray, family: str) -> None:
    """Refuse (with the reason) what cannot give a trustworthy fit: fewer than 10 events (or
    non-events), or a covariate term that takes a single value."""
    if family == OutcomeFamily.BINOMIAL:
        events = float(y.sum())
        if min(events, len(y) - events) < 10:
            msg = f"too few events to fit the risk model ({events:g} events in {len(y):,} cases)"
            raise MeasureNotComputableError(msg)
    constant = [name for index, name in enumerate(names[1:], start=1) if np.ptp(x[:, index]) == 0]
    if constant:
        msg = f"covariate term(s) with a single value in the data: {', '.join(constant)}"
        raise MeasureNotComputableError(msg)


def fit_risk_model(frame: pd.DataFrame, spec: RiskModelSpec) -> RiskFit:
    """Fit the measure's model on the pooled snapshot data (fixed effects, no member terms)."""
    import statsmodels.api as sm  # noqa: PLC0415 - heavy import, only for patient measures

    x, names = design_matrix(frame, spec)
    y = frame["outcome"].to_numpy(dtype=float)
    used = np.isfinite(y) & np.isfinite(x).all(axis=1)
    x_used, y_used = x[used], y[used]
    family = spec.family.value
    if len(y_used) == 0:
        msg = "no complete cases to fit the risk model"
        raise MeasureNotComputableError(msg)
    _check_design(x_used, names, y_used, family)
    expected = np.full(len(frame), np.nan)
    variance = np.full(len(frame), np.nan)
    extra: dict[str, Any] = {}
    if family == OutcomeFamily.BINOMIAL:
        model = sm.Logit(y_used, x_used)
        try:
            result = model.fit(method="newton", maxiter=50, disp=False, warn_convergence=False)
        except np.linalg.LinAlgError as error:
            msg = f"the risk model cannot be fitted (separation or collinearity): {error}"
            raise MeasureNotComputableError(msg) from error
        mean = result.predict(x_used)
        var = mean * (1 - mean)
        ratio_name = "odds_ratio"
    elif family == OutcomeFamily.POISSON:
        result = sm.Poisson(y_used, x_used).fit(method="newton", maxiter=50, disp=False)
        mean = result.predict(x_used)
        var = mean
        ratio_name = "rate_ratio"
    elif family == OutcomeFamily.NEGBIN:
        result = sm.NegativeBinomial(y_used, x_used, loglike_method="nb2").fit(
            method="newton", maxiter=100, disp=False
        )
        alpha = float(result.params[-1])
        exog_params = result.params[:-1]
        mean = np.exp(x_used @ exog_params)
        var = mean + alpha * mean**2
        extra["alpha"] = alpha
        ratio_name = "rate_ratio"
    else:
        result = sm.OLS(y_used, x_used).fit()
        mean = result.predict(x_used)
        var = np.full(len(mean), float(result.scale))
        ratio_name = None
    expected[used] = mean
    variance[used] = var
    params = np.asarray(result.params)[: len(names)]
    errors = np.asarray(result.bse)[: len(names)]
    z = z_of(0.95)
    coefficients = []
    for name, beta, se in zip(names, params, errors, strict=True):
        low, high = float(beta - z * se), float(beta + z * se)
        row: dict[str, Any] = {
            "term": name,
            "estimate": float(beta),
            "std_error": float(se),
            "ci_low": low,
            "ci_high": high,
            "p_value": float(2 * stats.norm.sf(abs(beta / se))) if se > 0 else None,
        }
        if ratio_name and name != "intercept":
            row |= {
                "exp_estimate": float(np.exp(beta)),
                "exp_ci_low": float(np.exp(low)),
                "exp_ci_high": float(np.exp(high)),
                "ratio_kind": ratio_name,
            }
            if ratio_name == "odds_ratio":
                row |= {
                    "odds_ratio": row["exp_estimate"],
                    "or_ci_low": row["exp_ci_low"],
                    "or_ci_high": row["exp_ci_high"],
                }
        coefficients.append(row)
    diagnostics = _diagnostics(family, y_used, mean, len(names) - 1)
    diagnostics.update(extra)
    diagnostics["converged"] = bool(getattr(result, "mle_retvals", {}).get("converged", True))
    diagnostics["complete_cases"] = int(used.sum())
    diagnostics["dropped_incomplete"] = int((~used).sum())
    return RiskFit(
        family=family,
        expected=expected,
        variance=variance,
        used=used,
        coefficients=coefficients,
        diagnostics=diagnostics,
        n=int(used.sum()),
        events=float(y_used.sum()),
    )


def c_statistic(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Area under the ROC curve (Mann-Whitney, ties averaged) and its Hanley-McNeil SE."""
    ranks = stats.rankdata(p)
    n1 = float(y.sum())
    n0 = float(len(y) - n1)
    auc = (ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    se = math.sqrt(
        max(0.0, (auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n0 - 1) * (q2 - auc**2)))
        / (n1 * n0)
    )
    return float(auc), float(se)


def _diagnostics(family: str, y: np.ndarray, mean: np.ndarray, terms: int) -> dict[str, Any]:
    order = np.argsort(mean, kind="stable")
    groups = np.array_split(order, 10)
    calibration = [
        {
            "decile": index + 1,
            "n": len(group),
            "observed": float(y[group].sum()),
            "expected": float(mean[group].sum()),
        }
        for index, group in enumerate(groups)
    ]
    result: dict[str, Any] = {"calibration": calibration, "n": len(y)}
    if family == OutcomeFamily.BINOMIAL:
        auc, se = c_statistic(y, mean)
        z = z_of(0.95)
        hl = sum(
            (row["observed"] - row["expected"]) ** 2
            / (row["expected"] * (1 - row["expected"] / row["n"]))
            for row in calibration
            if 0 < row["expected"] < row["n"]
        )
        result |= {
            "c_statistic": auc,
            "c_statistic_ci95": [auc - z * se, auc + z * se],
            "hosmer_lemeshow": float(hl),
            "hosmer_lemeshow_df": 8,
            "hosmer_lemeshow_p": float(stats.chi2.sf(hl, 8)),
            "brier": float(np.mean((y - mean) ** 2)),
            "events": float(y.sum()),
            "events_per_variable": float(min(y.sum(), len(y) - y.sum()) / max(terms, 1)),
        }
    else:
        result |= {
            "rmse": float(np.sqrt(np.mean((y - mean) ** 2))),
            "observed_mean": float(y.mean()),
            "expected_mean": float(mean.mean()),
        }
    return result


# --- intervals --------------------------------------------------------------------------------


def oe_interval(observed: np.ndarray, expected: np.ndarray, level: float) -> tuple[np.ndarray, ...]:
    """Exact Poisson limits below 10 events, Byar's approximation from 10 on, divided by E."""
    o = np.asarray(observed, dtype=float)
    e = np.asarray(expected, dtype=float)
    alpha = 1 - level
    z = z_of(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        exact_low = np.where(o > 0, stats.chi2.ppf(alpha / 2, 2 * o) / 2, 0.0)
        exact_high = stats.chi2.ppf(1 - alpha / 2, 2 * o + 2) / 2
        safe = np.maximum(o, 1.0)
        byar_low = o * (1 - 1 / (9 * safe) - z / (3 * np.sqrt(safe))) ** 3
        byar_high = (o + 1) * (1 - 1 / (9 * (o + 1)) + z / (3 * np.sqrt(o + 1))) ** 3
        low = np.where(o < 10, exact_low, byar_low)
        high = np.where(o < 10, exact_high, byar_high)
        return np.where(e > 0, low / e, np.nan), np.where(e > 0, high / e, np.nan)


def normal_ratio_interval(
    observed: np.ndarray, expected: np.ndarray, variance: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """O/E +- z sqrt(Var O)/E: for outcomes that are not counts of events (LOS, scores)."""
    z = z_of(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = observed / expected
        half = z * np.sqrt(variance) / expected
        return np.maximum(ratio - half, 0.0), ratio + half


def wilson(x: np.ndarray, n: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for x of n (clipped to [0, 1]; NaN where n = 0)."""
    x = np.asarray(x, dtype=float)
    n = np.asarray(n, dtype=float)
    z = z_of(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        centre = 2 * x + z**2
        spread = z * np.sqrt(z**2 + 4 * x * (1 - x / n))
        denominator = 2 * (n + z**2)
        low = np.clip((centre - spread) / denominator, 0, 1)
        high = np.clip((centre + spread) / denominator, 0, 1)
    return np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)


def poisson_rate_interval(
    events: np.ndarray, exposure: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Garwood) interval of events / exposure."""
    return oe_interval_exact(events, exposure, level)


def oe_interval_exact(
    observed: np.ndarray, denominator: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exact Poisson limits of O divided by a fixed denominator."""
    o = np.asarray(observed, dtype=float)
    d = np.asarray(denominator, dtype=float)
    alpha = 1 - level
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.where(o > 0, stats.chi2.ppf(alpha / 2, 2 * o) / 2, 0.0)
        high = stats.chi2.ppf(1 - alpha / 2, 2 * o + 2) / 2
        return np.where(d > 0, low / d, np.nan), np.where(d > 0, high / d, np.nan)


def mean_interval(
    mean: np.ndarray, se: np.ndarray, df: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Student-t interval of a mean (normal where df is missing)."""
    with np.errstate(invalid="ignore"):
        q = np.where(df > 0, stats.t.ppf(1 - (1 - level) / 2, np.maximum(df, 1)), z_of(level))
    return mean - q * se, mean + q * se


# --- empirical-Bayes shrinkage ----------------------------------------------------------------


@dataclass(frozen=True)
class Shrinkage:
    """Shrunk estimates and the fitted prior."""

    method: str
    estimate: np.ndarray
    params: dict[str, float]


def eb_gamma_poisson(observed: np.ndarray, expected: np.ndarray) -> Shrinkage:
    """O_j ~ Poisson(theta_j E_j), theta_j ~ Gamma(a, a) (mean 1); a by marginal ML.

    The shrunk ratio is (O_j + a) / (E_j + a): small members move toward 1.
    """
    o = np.asarray(observed, dtype=float)
    e = np.asarray(expected, dtype=float)
    ok = e > 0

    def negative_loglik(log_a: float) -> float:
        a = math.exp(log_a)
        oo, ee = o[ok], e[ok]
        value = (
            special.gammaln(oo + a)
            - special.gammaln(a)
            + a * math.log(a)
            + oo * np.log(ee)
            - (oo + a) * np.log(ee + a)
        )
        return -float(value.sum())

    if ok.sum() < 3:
        a = math.inf
    else:
        found = optimize.minimize_scalar(negative_loglik, bounds=(-6, 12), method="bounded")
        a = math.exp(found.x)
        if found.x > 11.9:  # no detectable spread between members: everyone at the mean
            a = math.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        shrunk = np.ones_like(o) if math.isinf(a) else (o + a) / (e + a)
    shrunk = np.where(ok, shrunk, np.nan)
    sd = 0.0 if math.isinf(a) else 1 / math.sqrt(a)
    return Shrinkage("gamma-poisson", shrunk, {"shape": a if math.isfinite(a) else None, "sd": sd})


def eb_beta_binomial(x: np.ndarray, n: np.ndarray) -> Shrinkage:
    """x_j ~ Binomial(n_j, p_j), p_j ~ Beta(a, b); (a, b) by marginal ML; shrunk p_j =
    (x_j + a) / (n_j + a + b)."""
    x = np.asarray(x, dtype=float)
    n = np.asarray(n, dtype=float)
    ok = n > 0
    xx, nn = x[ok], n[ok]
    pooled = xx.sum() / nn.sum() if nn.sum() > 0 else np.nan

    def negative_loglik(theta: np.ndarray) -> float:
        mu = special.expit(theta[0])
        size = math.exp(theta[1])
        a, b = mu * size, (1 - mu) * size
        value = special.betaln(xx + a, nn - xx + b) - special.betaln(a, b)
        return -float(value.sum())

    if ok.sum() < 3 or not 0 < pooled < 1:
        return Shrinkage("beta-binomial", np.where(ok, pooled, np.nan), {"a": None, "b": None})
    start = np.array([special.logit(pooled), math.log(50.0)])
    found = optimize.minimize(
        negative_loglik, start, method="L-BFGS-B", bounds=[(-15, 15), (-5, 16)]
    )
    mu, size = special.expit(found.x[0]), math.exp(found.x[1])
    a, b = mu * size, (1 - mu) * size
    shrunk = np.where(ok, (x + a) / (n + a + b), np.nan)
    return Shrinkage("beta-binomial", shrunk, {"a": float(a), "b": float(b), "mean": float(mu)})


def eb_normal(y: np.ndarray, se: np.ndarray, target: float) -> Shrinkage:
    """y_j ~ N(theta_j, se_j^2), theta_j ~ N(target, tau^2); tau^2 by moments (DerSimonian-
    Laird around the target); shrunk y_j = target + tau^2/(tau^2 + se_j^2) (y_j - target)."""
    y = np.asarray(y, dtype=float)
    se = np.asarray(se, dtype=float)
    ok = np.isfinite(y) & np.isfinite(se) & (se > 0)
    tau2 = _tau2(y[ok] - target, se[ok], np.mean(((y[ok] - target) / se[ok]) ** 2))
    weight = tau2 / (tau2 + se**2) if tau2 > 0 else np.zeros_like(y)
    shrunk = np.where(ok, target + weight * (y - target), np.nan)
    return Shrinkage("normal-normal", shrunk, {"tau2": float(tau2), "target": float(target)})


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


def _tau2(y: np.ndarray, s: np.ndarray, phi: float) -> float:
    """Additive between-unit variance around the fixed target (DerSimonian-Laird moments)."""
    count = len(y)
    if count < 2:
        return 0.0
    w = 1 / s**2
    if count * phi < count - 1:
        return 0.0
    return max(0.0, float((count * phi - (count - 1)) / (w.sum() - (w**2).sum() / w.sum())))


def _dispersion(z: np.ndarray, s: np.ndarray, method: str, trim: float) -> tuple[float, float, int]:
    """phi and tau^2 after SHMI truncation or Spiegelhalter/CQC winsorisation of z."""
    ok = np.isfinite(z) & np.isfinite(s) & (s > 0)
    z, s = z[ok], s[ok]
    count = len(z)
    if count < 2:
        return 1.0, 0.0, count
    if method == "shmi" and trim > 0:
        k = 1 / trim
        rank = stats.rankdata(z)
        band = np.floor(rank * k / (count + 1))
        keep = (band > 0) & (band < k - 1)
        if keep.sum() >= 2:
            z, s = z[keep], s[keep]
    elif trim > 0:
        low, high = np.quantile(z, [trim, 1 - trim])
        z = np.clip(z, low, high)
    phi = float(np.mean(z**2))
    # tau^2 from the (winsorised/kept) z: y - target = z * s.
    return phi, _tau2(z * s, s, phi), len(z)


def _flags(value: np.ndarray, low: np.ndarray, high: np.ndarray) -> list[str | None]:
    """ "high"/"low" when strictly outside the limits (on a limit is not an outlier)."""
    result: list[str | None] = []
    for v, lo, hi in zip(value, low, high, strict=True):
        if not np.isfinite(v):
            result.append(None)
        elif np.isfinite(hi) and v > hi:
            result.append("high")
        elif np.isfinite(lo) and v < lo:
            result.append("low")
        else:
            result.append(None)
    return result


def funnel_ratio(
    observed: np.ndarray,
    expected: np.ndarray,
    *,
    method: str = "shmi",
    trim: float = 0.1,
    variance: np.ndarray | None = None,
    levels: Sequence[float] = LEVELS,
) -> Funnel:
    """Funnel of O/E against E with overdispersion (SHMI log scale or Spiegelhalter/CQC
    square-root scale). ``variance`` (Var O) replaces the Poisson Var O = E for outcomes that
    are not event counts (e.g. length of stay), so z-scores and limits use the right spread."""
    o = np.asarray(observed, dtype=float)
    e = np.asarray(expected, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(e > 0, o / e, np.nan)
        poisson = variance is None
        var = e if poisson else np.asarray(variance, dtype=float)
        if method == "shmi":
            scale = "log"
            y = np.log(np.where(o > 0, ratio, np.nan))
            # Zero counts: no log; use the half-event continuity value for the z-score only.
            y = np.where(o > 0, y, np.log(0.5 / e))
            s = np.sqrt(var) / e
            target_y = 0.0
        else:
            scale = "sqrt"
            y = np.sqrt(ratio)
            s = np.sqrt(var) / (2 * e)
            target_y = 1.0
        z = (y - target_y) / s
    phi, tau2, used = _dispersion(z, s, method, trim)
    count = int(np.isfinite(z).sum())
    threshold = 1 + 2 * math.sqrt(2 / count) if count else math.inf
    overdispersed = phi > threshold
    adjusted = phi > 1 and tau2 > 0
    note = (
        f"phi = {phi:.3f} <= 1: adjusted limits are the unadjusted ones"
        if not adjusted
        else f"overdispersion phi = {phi:.3f}, tau2 = {tau2:.5f}: limits widened"
    )

    def bounds(spread: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        z_level = z_of(level)
        if scale == "log":
            return np.exp(-z_level * spread), np.exp(z_level * spread)
        low = np.clip(target_y - z_level * spread, 0, None) ** 2
        return low, (target_y + z_level * spread) ** 2

    limits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    adjusted_limits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for level in levels:
        key = level_key(level)
        if poisson:
            # Unadjusted: exact Poisson limits with E as a continuous mean (FunnelPlotR).
            with np.errstate(divide="ignore", invalid="ignore"):
                alpha = 1 - level
                low = stats.chi2.ppf(alpha / 2, 2 * e) / (2 * e)
                high = stats.chi2.ppf(1 - alpha / 2, 2 * e + 2) / (2 * e)
            limits[key] = (low, high)
        else:
            limits[key] = bounds(s, level)
        adjusted_limits[key] = bounds(np.sqrt(s**2 + tau2), level) if adjusted else limits[key]
    # On the log scale a zero count is -infinity, below every limit however wide; flag it by
    # its continuity-corrected value (0.5 events), as its z-score does.
    flagged = np.where(o > 0, ratio, 0.5 / e) if scale == "log" else ratio
    flags = {key: _flags(flagged, *limits[key]) for key in limits}
    adjusted_flags = {key: _flags(flagged, *adjusted_limits[key]) for key in adjusted_limits}
    curve = _ratio_curve(e, var, scale, target_y, tau2 if adjusted else 0.0, levels, poisson)
    return Funnel(
        method=method,
        scale=scale,
        target=1.0,
        z=z,
        phi=phi,
        tau2=tau2,
        overdispersed=overdispersed,
        adjusted=adjusted,
        note=note,
        limits=limits,
        adjusted_limits=adjusted_limits,
        flags=flags,
        adjusted_flags=adjusted_flags,
        units_used=used,
        curve=curve,
    )


def _grid(precision: np.ndarray) -> np.ndarray:
    finite = precision[np.isfinite(precision) & (precision > 0)]
    if not len(finite):
        return np.zeros(0)
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        high = low * 1.01 + 1e-9
    return np.geomspace(low, high, 60)


def _ratio_curve(  # noqa: PLR0917 - private helper
    e: np.ndarray,
    var: np.ndarray,
    scale: str,
    target_y: float,
    tau2: float,
    levels: Sequence[float],
    poisson: bool,
) -> dict[str, Any]:
    grid = _grid(e)
    if not len(grid):
        return {}
    # Spread per unit of E, interpolated from the members (Poisson: Var O = E exactly).
    if poisson:
        per = np.sqrt(grid) / grid
    else:
        ratio = np.sqrt(var) / e
        order = np.argsort(e)
        per = np.interp(grid, e[order], ratio[order])
    curve: dict[str, Any] = {"x": grid.tolist(), "x_label": "expected"}
    for level in levels:
        key = level_key(level)
        z_level = z_of(level)
        for name, spread in (("", per), ("adjusted_", np.sqrt(per**2 + tau2))):
            if scale == "log":
                low, high = np.exp(-z_level * spread), np.exp(z_level * spread)
            else:
                s = spread / 2
                low = np.clip(target_y - z_level * s, 0, None) ** 2
                high = (target_y + z_level * s) ** 2
            if poisson and not name:
                alpha = 1 - level
                low = stats.chi2.ppf(alpha / 2, 2 * grid) / (2 * grid)
                high = stats.chi2.ppf(1 - alpha / 2, 2 * grid + 2) / (2 * grid)
            curve[f"{name}{key}"] = [low.tolist(), high.tolist()]
    return curve


def funnel_proportion(
    x: np.ndarray,
    n: np.ndarray,
    *,
    trim: float = 0.1,
    levels: Sequence[float] = LEVELS,
) -> Funnel:
    """Spiegelhalter funnel for proportions on the arcsine scale, winsorised z, additive tau^2;
    limits back-transformed with sin^2 and clipped to [0, 1]; target = pooled proportion."""
    x = np.asarray(x, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, x / n, np.nan)
        target = float(x[n > 0].sum() / n[n > 0].sum()) if (n > 0).any() else math.nan
        y = np.arcsin(np.sqrt(p))
        y0 = math.asin(math.sqrt(target)) if 0 <= target <= 1 else math.nan
        s = 1 / (2 * np.sqrt(n))
        z = (y - y0) / s
    phi, tau2, used = _dispersion(z, s, "spiegelhalter", trim)
    count = int(np.isfinite(z).sum())
    threshold = 1 + 2 * math.sqrt(2 / count) if count else math.inf
    adjusted = phi > 1 and tau2 > 0

    def bounds(spread: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        z_level = z_of(level)
        low = np.sin(np.clip(y0 - z_level * spread, 0, math.pi / 2)) ** 2
        high = np.sin(np.clip(y0 + z_level * spread, 0, math.pi / 2)) ** 2
        return low, high

    limits = {level_key(level): bounds(s, level) for level in levels}
    adjusted_limits = {
        level_key(level): bounds(np.sqrt(s**2 + tau2), level)
        if adjusted
        else limits[level_key(level)]
        for level in levels
    }
    grid = _grid(n)
    curve: dict[str, Any] = {}
    if len(grid):
        spread = 1 / (2 * np.sqrt(grid))
        curve = {"x": grid.tolist(), "x_label": "denominator"}
        for level in levels:
            key = level_key(level)
            curve[key] = [part.tolist() for part in bounds(spread, level)]
            adjusted_spread = np.sqrt(spread**2 + tau2) if adjusted else spread
            curve[f"adjusted_{key}"] = [part.tolist() for part in bounds(adjusted_spread, level)]
    return Funnel(
        method="spiegelhalter",
        scale="arcsine",
        target=target,
        z=z,
        phi=phi,
        tau2=tau2,
        overdispersed=phi > threshold,
        adjusted=adjusted,
        note=(
            f"overdispersion phi = {phi:.3f}, tau2 = {tau2:.6f}: limits widened"
            if adjusted
            else f"phi = {phi:.3f} <= 1: adjusted limits are the unadjusted ones"
        ),
        limits=limits,
        adjusted_limits=adjusted_limits,
        flags={key: _flags(p, *value) for key, value in limits.items()},
        adjusted_flags={key: _flags(p, *value) for key, value in adjusted_limits.items()},
        units_used=used,
        curve=curve,
    )


def funnel_normal(
    value: np.ndarray,
    se: np.ndarray,
    target: float,
    *,
    trim: float = 0.1,
    levels: Sequence[float] = LEVELS,
    precision: np.ndarray | None = None,
) -> Funnel:
    """Funnel for means: z = (y - target)/se, winsorised phi, additive tau^2 on the identity
    scale."""
    y = np.asarray(value, dtype=float)
    s = np.asarray(se, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (y - target) / s
    phi, tau2, used = _dispersion(z, s, "spiegelhalter", trim)
    count = int(np.isfinite(z).sum())
    threshold = 1 + 2 * math.sqrt(2 / count) if count else math.inf
    adjusted = phi > 1 and tau2 > 0
    limits = {
        level_key(level): (target - z_of(level) * s, target + z_of(level) * s) for level in levels
    }
    wide = np.sqrt(s**2 + tau2)
    adjusted_limits = {
        level_key(level): (
            (target - z_of(level) * wide, target + z_of(level) * wide)
            if adjusted
            else limits[level_key(level)]
        )
        for level in levels
    }
    curve: dict[str, Any] = {}
    if precision is not None:
        grid = _grid(np.asarray(precision, dtype=float))
        ok = np.isfinite(s) & (s > 0) & np.isfinite(precision)
        if len(grid) and ok.sum() >= 2:
            # se ~ c / sqrt(n): fit c on the members, draw the limits against n.
            c = float(np.median(s[ok] * np.sqrt(np.asarray(precision)[ok])))
            spread = c / np.sqrt(grid)
            curve = {"x": grid.tolist(), "x_label": "denominator"}
            for level in levels:
                key = level_key(level)
                zl = z_of(level)
                curve[key] = [(target - zl * spread).tolist(), (target + zl * spread).tolist()]
                wide_curve = np.sqrt(spread**2 + tau2) if adjusted else spread
                curve[f"adjusted_{key}"] = [
                    (target - zl * wide_curve).tolist(),
                    (target + zl * wide_curve).tolist(),
                ]
    return Funnel(
        method="normal",
        scale="identity",
        target=float(target),
        z=z,
        phi=phi,
        tau2=tau2,
        overdispersed=phi > threshold,
        adjusted=adjusted,
        note=(
            f"overdispersion phi = {phi:.3f}, tau2 = {tau2:.5g}: limits widened"
            if adjusted
            else f"phi = {phi:.3f} <= 1: adjusted limits are the unadjusted ones"
        ),
        limits=limits,
        adjusted_limits=adjusted_limits,
        flags={key: _flags(y, *value) for key, value in limits.items()},
        adjusted_flags={key: _flags(y, *value) for key, value in adjusted_limits.items()},
        units_used=used,
        curve=curve,
    )


# --- peer benchmarks --------------------------------------------------------------------------


def distribution(values: np.ndarray) -> dict[str, Any]:
    """Mean, median, quartiles and deciles (10th..90th) of the members' values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"n": 0}
    deciles = np.quantile(v, np.arange(1, 10) / 10)
    return {
        "n": len(v),
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "q1": float(np.quantile(v, 0.25)),
        "q3": float(np.quantile(v, 0.75)),
        "min": float(v.min()),
        "max": float(v.max()),
        "deciles": [float(d) for d in deciles],
    }


def decile_rank(values: np.ndarray, *, higher_is_better: bool) -> np.ndarray:
    """1 = the best 10% of members, 10 = the worst 10% (direction-aware); NaN values get 0."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    result = np.zeros(len(v), dtype=int)
    count = int(ok.sum())
    if not count:
        return result
    score = -v[ok] if higher_is_better else v[ok]
    ranks = stats.rankdata(score, method="average")
    result[ok] = np.minimum(10, np.ceil(ranks / count * 10 - 1e-9).astype(int))
    result[ok] = np.maximum(result[ok], 1)
    return result


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
    """Pared-mean ABC: rank by the adjusted performance fraction (x+1)/(n+2) (or ``rank_by``,
    e.g. shrunk rates), best first; take members until their denominator reaches ``fraction``
    of the total, including every member tied with the last one taken; ABC = sum x / sum n."""
    x = np.asarray(numerator, dtype=float)
    n = np.asarray(denominator, dtype=float)
    ok = np.isfinite(x) & np.isfinite(n) & (n > 0)
    selected = np.zeros(len(x), dtype=bool)
    if not ok.any():
        return Benchmark(math.nan, selected, "pared-mean")
    score = (x + 1) / (n + 2) if rank_by is None else np.asarray(rank_by, dtype=float)
    score = np.where(ok & np.isfinite(score), score, np.nan)
    keyed = -score if higher_is_better else score
    order = np.argsort(np.where(np.isfinite(keyed), keyed, np.inf), kind="stable")
    order = order[ok[order] & np.isfinite(keyed[order])]
    need = fraction * n[ok].sum()
    total = 0.0
    cut = None
    for index in order:
        selected[index] = True
        total += n[index]
        if total >= need:
            cut = keyed[index]
            break
    if cut is not None:
        selected |= ok & np.isclose(keyed, cut, rtol=0, atol=1e-12)
    value = float(x[selected].sum() / n[selected].sum())
    return Benchmark(value, selected, "pared-mean" if rank_by is None else "pared-mean (ranked)")
