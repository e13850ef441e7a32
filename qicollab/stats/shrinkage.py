"""Empirical-Bayes shrinkage of unit ratios, proportions and means.

Small units have noisy O/E; shrinkage pulls each towards the collaborative in proportion to its
unreliability, so that display and ranking are not dominated by chance (METHODS 6.5; PERFORMANCE
section 2: fixed effects + gamma-Poisson EB ranks as well as a random-intercept model at a
fraction of its cost).

- :func:`gamma_poisson_shrinkage`: O_j ~ Poisson(theta_j E_j), theta_j ~ Gamma(a, b) (shape a,
  rate b), either with prior mean 1 (b = a, the default: the risk model already calibrates E to
  the collaborative) or free. a and b maximise the marginal negative-binomial likelihood. The
  posterior is Gamma(O_j + a, E_j + b): shrunk SMR (O_j + a) / (E_j + b) with equal-tailed
  posterior intervals.
- :func:`beta_binomial_shrinkage`: x_j ~ Bin(n_j, p_j), p_j ~ Beta(alpha, beta), marginal
  (beta-binomial) maximum likelihood; posterior Beta(x_j + alpha, n_j - x_j + beta).
- :func:`normal_normal_shrinkage`: means and log O/E of outcomes that are not counts.

Binary patient-level outcomes shrink with the random-intercept logistic model of
:mod:`qicollab.stats.glmm` (CMS-style predicted/expected), whose variance fits a binary outcome.

No overdispersion: when the units vary no more than chance, the marginal likelihood is maximal at
a -> infinity (the Poisson or binomial limit). The result then says ``overdispersed=False``, the
prior has infinite precision, and every unit is shrunk all the way to the prior mean, with a
zero-width posterior interval. That is the empirical-Bayes answer; it does not crash.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize, special, stats

from qicollab.stats.funnel import dispersion

Prior = Literal["mean-one", "free"]
_LOG_A_BOUNDS = (math.log(1e-4), math.log(1e9))
INFINITE_PRECISION = 1e8
"""Prior shape/precision at or above this is reported as infinite (no overdispersion)."""


@dataclass(frozen=True, slots=True)
class ShrunkEstimate:
    """One unit's raw and shrunk estimate with its posterior interval.

    Parameters
    ----------
    unit : Hashable
        Unit identifier.
    observed : float
        O (ratios) or x (proportions).
    exposure : float
        E (ratios) or n (proportions).
    raw : float
        O/E or x/n.
    shrunk : float
        Posterior mean.
    lower, upper : float
        Equal-tailed posterior interval at the result's level.
    weight : float
        Weight on the unit's own data: E/(E + b) or n/(n + alpha + beta); 0 without
        overdispersion.
    """

    unit: Hashable
    observed: float
    exposure: float
    raw: float
    shrunk: float
    lower: float
    upper: float
    weight: float


@dataclass(frozen=True, slots=True)
class GammaPoissonResult:
    """Gamma-Poisson empirical-Bayes shrinkage of standardised ratios.

    Why: O/E from a small unit is noisy; the posterior mean under a gamma prior fitted to the
    collaborative is a better estimate of its true ratio and keeps small units from the extremes
    of a ranking.

    Parameters
    ----------
    method : str
        ``"gamma-Poisson empirical Bayes (marginal negative-binomial ML)"``.
    prior : {"mean-one", "free"}
        Gamma(a, a) or Gamma(a, b).
    shape, rate : float
        a and b (``inf`` without overdispersion).
    prior_mean, prior_sd : float
        a/b and sqrt(a)/b (the between-unit SD of the true ratios).
    log_likelihood : float
        Marginal log-likelihood at the estimate (without the log O! constant).
    overdispersed : bool
        False when the data are no more variable than Poisson: every unit shrinks to the mean.
    level : float
        Level of the posterior intervals.
    estimates : tuple of ShrunkEstimate
        One per unit.
    note : str
        Plain-language statement, for reports.

    References
    ----------
    Clayton D, Kaldor J (1987), Biometrics 43:671-681; Greenland S, Robins JM (1991), Stat Med
    10:1011-1025; Morris CN (1983), JASA 78:47-55.
    """

    method: str
    prior: str
    shape: float
    rate: float
    prior_mean: float
    prior_sd: float
    log_likelihood: float
    overdispersed: bool
    level: float
    estimates: tuple[ShrunkEstimate, ...]
    note: str

    def to_frame(self) -> pd.DataFrame:
        """One row per unit."""
        names = ShrunkEstimate.__dataclass_fields__
        return pd.DataFrame([{k: getattr(e, k) for k in names} for e in self.estimates])


@dataclass(frozen=True, slots=True)
class BetaBinomialResult:
    """Beta-binomial empirical-Bayes shrinkage of proportions.

    Parameters
    ----------
    method : str
        ``"beta-binomial empirical Bayes (marginal ML)"``.
    alpha, beta : float
        Prior parameters (``inf`` without overdispersion).
    prior_mean : float
        alpha / (alpha + beta).
    precision : float
        alpha + beta.
    intraclass_correlation : float
        1 / (alpha + beta + 1): the share of variance between units.
    log_likelihood : float
        Marginal log-likelihood (without the binomial coefficients).
    overdispersed : bool
        False when the proportions vary no more than binomially.
    level : float
        Level of the posterior intervals.
    estimates : tuple of ShrunkEstimate
        One per unit.
    note : str
        Plain-language statement.

    References
    ----------
    Skellam JG (1948), JRSS-B 10:257-261; Kahn MJ, Raftery AE (1996), Stat Med 15:1225.
    """

    method: str
    alpha: float
    beta: float
    prior_mean: float
    precision: float
    intraclass_correlation: float
    log_likelihood: float
    overdispersed: bool
    level: float
    estimates: tuple[ShrunkEstimate, ...]
    note: str

    def to_frame(self) -> pd.DataFrame:
        """One row per unit."""
        names = ShrunkEstimate.__dataclass_fields__
        return pd.DataFrame([{k: getattr(e, k) for k in names} for e in self.estimates])


def _labels(units: Sequence[Hashable] | np.ndarray | pd.Series | None, size: int) -> list:
    labels = list(range(size)) if units is None else list(np.asarray(units, dtype=object))
    if len(labels) != size:
        msg = "units must have one label per value"
        raise ValueError(msg)
    return [u.item() if isinstance(u, np.generic) else u for u in labels]


def _gamma_poisson_loglik(a: float, b: float, o: np.ndarray, e: np.ndarray) -> float:
    return float(
        np.sum(
            special.gammaln(o + a)
            - special.gammaln(a)
            + a * (np.log(b) - np.log(b + e))
            + special.xlogy(o, e)
            - special.xlogy(o, b + e)
        )
    )


def _poisson_limit(m: float, o: np.ndarray, e: np.ndarray) -> float:
    return float(np.sum(special.xlogy(o, m * e) - m * e))


def gamma_poisson_shrinkage(
    observed: npt.ArrayLike,
    expected: npt.ArrayLike,
    *,
    units: Sequence[Hashable] | np.ndarray | pd.Series | None = None,
    prior: Prior = "mean-one",
    level: float = 0.95,
) -> GammaPoissonResult:
    """Shrink O/E by a gamma prior estimated by marginal maximum likelihood.

    Parameters
    ----------
    observed, expected : array_like
        O_j >= 0 and E_j > 0 per unit.
    units : sequence, optional
        Unit identifiers.
    prior : {"mean-one", "free"}
        ``"mean-one"``: theta ~ Gamma(a, a), prior mean 1 (E calibrated to the collaborative).
        ``"free"``: theta ~ Gamma(a, b).
    level : float
        Posterior interval level.
    """
    o = np.asarray(observed, dtype=float)
    e = np.asarray(expected, dtype=float)
    if o.shape != e.shape or o.ndim != 1 or o.size == 0:
        msg = "observed and expected must be non-empty 1-d arrays of equal length"
        raise ValueError(msg)
    if np.any(~np.isfinite(o)) or np.any(o < 0) or np.any(~np.isfinite(e)) or np.any(e <= 0):
        msg = "observed must be >= 0 and expected > 0 (drop units with E = 0)"
        raise ValueError(msg)
    if prior not in ("mean-one", "free"):
        msg = f"prior must be 'mean-one' or 'free', got {prior!r}"
        raise ValueError(msg)
    labels = _labels(units, o.size)

    m_limit = 1.0 if prior == "mean-one" else float(o.sum() / e.sum())
    limit_ll = _poisson_limit(m_limit, o, e)
    # Score of the variance 1/a at 0 (Poisson limit): positive iff extra-Poisson variation.
    score = float(np.sum((o - m_limit * e) ** 2 - o))
    a = b = math.inf
    ll = limit_ll
    if score > 0 and (prior == "mean-one" or m_limit > 0):
        if prior == "mean-one":
            opt = optimize.minimize_scalar(
                lambda t: -_gamma_poisson_loglik(math.exp(t), math.exp(t), o, e),
                bounds=_LOG_A_BOUNDS,
                method="bounded",
                options={"xatol": 1e-10},
            )
            a_hat, b_hat = math.exp(opt.x), math.exp(opt.x)
        else:
            start_a = max(m_limit**2 / max(score / e.size / np.mean(e**2), 1e-6), 1e-3)
            opt = optimize.minimize(
                lambda t: (
                    -_gamma_poisson_loglik(math.exp(t[0]), math.exp(t[0]) / math.exp(t[1]), o, e)
                ),
                x0=np.array([math.log(min(start_a, 1e6)), math.log(m_limit)]),
                method="L-BFGS-B",
                bounds=[_LOG_A_BOUNDS, (math.log(m_limit) - 10, math.log(m_limit) + 10)],
            )
            a_hat = math.exp(opt.x[0])
            b_hat = a_hat / math.exp(opt.x[1])
        ll_hat = _gamma_poisson_loglik(a_hat, b_hat, o, e)
        if a_hat < INFINITE_PRECISION and ll_hat > limit_ll + 1e-9:
            a, b, ll = a_hat, b_hat, ll_hat

    alpha = 1.0 - level
    raw = o / e
    if math.isinf(a):
        shrunk = np.full(o.size, m_limit)
        lower = upper = shrunk
        weight = np.zeros(o.size)
        prior_mean, prior_sd, overdispersed = m_limit, 0.0, False
        note = (
            "No overdispersion: the ratios vary no more than Poisson chance, so the estimated "
            f"prior has infinite precision and every unit is shrunk to the mean ({m_limit:.4g})."
        )
    else:
        shrunk = (o + a) / (e + b)
        lower = stats.gamma.ppf(alpha / 2, o + a, scale=1.0 / (e + b))
        upper = stats.gamma.ppf(1 - alpha / 2, o + a, scale=1.0 / (e + b))
        weight = e / (e + b)
        prior_mean, prior_sd, overdispersed = a / b, math.sqrt(a) / b, True
        note = (
            f"Gamma prior (shape {a:.4g}, rate {b:.4g}): true ratios have mean {a / b:.4g} "
            f"and SD {math.sqrt(a) / b:.4g} across units; each unit's O/E is weighted by "
            "E/(E + rate)."
        )
    estimates = tuple(
        ShrunkEstimate(
            labels[j],
            float(o[j]),
            float(e[j]),
            float(raw[j]),
            float(shrunk[j]),
            float(lower[j]),
            float(upper[j]),
            float(weight[j]),
        )
        for j in range(o.size)
    )
    return GammaPoissonResult(
        method="gamma-Poisson empirical Bayes (marginal negative-binomial ML)",
        prior=prior,
        shape=a,
        rate=b,
        prior_mean=prior_mean,
        prior_sd=prior_sd,
        log_likelihood=ll,
        overdispersed=overdispersed,
        level=level,
        estimates=estimates,
        note=note,
    )


def _beta_binomial_loglik(alpha: float, beta: float, x: np.ndarray, n: np.ndarray) -> float:
    return float(np.sum(special.betaln(x + alpha, n - x + beta) - special.betaln(alpha, beta)))


def beta_binomial_shrinkage(
    numerator: npt.ArrayLike,
    denominator: npt.ArrayLike,
    *,
    units: Sequence[Hashable] | np.ndarray | pd.Series | None = None,
    level: float = 0.95,
) -> BetaBinomialResult:
    """Shrink proportions by a beta prior estimated by marginal (beta-binomial) ML.

    Parameters
    ----------
    numerator, denominator : array_like
        x_j and n_j > 0 per unit.
    units : sequence, optional
        Unit identifiers.
    level : float
        Posterior interval level.
    """
    x = np.asarray(numerator, dtype=float)
    n = np.asarray(denominator, dtype=float)
    if x.shape != n.shape or x.ndim != 1 or x.size == 0:
        msg = "numerator and denominator must be non-empty 1-d arrays of equal length"
        raise ValueError(msg)
    if np.any(x < 0) or np.any(n <= 0) or np.any(x > n):
        msg = "need 0 <= x <= n and n > 0 for every unit"
        raise ValueError(msg)
    labels = _labels(units, x.size)
    p_hat = float(x.sum() / n.sum())
    binomial_ll = float(np.sum(special.xlogy(x, p_hat) + special.xlog1py(n - x, -p_hat)))
    # Tarone's statistic: positive iff the proportions vary more than binomially.
    tarone = (
        float(np.sum((x - n * p_hat) ** 2) / (p_hat * (1 - p_hat)) - n.sum())
        if 0 < p_hat < 1
        else -1.0
    )
    a = b = math.inf
    ll = binomial_ll
    if tarone > 0:
        start_m = math.log(max(min(n.sum() / max(tarone, 1e-9), 1e6), 1e-2))
        opt = optimize.minimize(
            lambda t: (
                -_beta_binomial_loglik(
                    special.expit(t[0]) * math.exp(t[1]),
                    special.expit(-t[0]) * math.exp(t[1]),
                    x,
                    n,
                )
            ),
            x0=np.array([special.logit(p_hat), start_m]),
            method="L-BFGS-B",
            bounds=[(-30, 30), _LOG_A_BOUNDS],
        )
        mu, precision = float(special.expit(opt.x[0])), math.exp(opt.x[1])
        a_hat, b_hat = mu * precision, (1 - mu) * precision
        ll_hat = _beta_binomial_loglik(a_hat, b_hat, x, n)
        if precision < INFINITE_PRECISION and ll_hat > binomial_ll + 1e-9:
            a, b, ll = a_hat, b_hat, ll_hat
    alpha_level = 1.0 - level
    raw = x / n
    if math.isinf(a):
        shrunk = np.full(x.size, p_hat)
        lower = upper = shrunk
        weight = np.zeros(x.size)
        mean, precision_out, icc, overdispersed = p_hat, math.inf, 0.0, False
        note = (
            "No overdispersion: the proportions vary no more than binomial chance, so every "
            f"unit is shrunk to the pooled proportion ({p_hat:.4g})."
        )
    else:
        shrunk = (x + a) / (n + a + b)
        lower = stats.beta.ppf(alpha_level / 2, x + a, n - x + b)
        upper = stats.beta.ppf(1 - alpha_level / 2, x + a, n - x + b)
        weight = n / (n + a + b)
        mean, precision_out = a / (a + b), a + b
        icc, overdispersed = 1.0 / (a + b + 1.0), True
        note = (
            f"Beta prior (alpha {a:.4g}, beta {b:.4g}): mean {mean:.4g}, intraclass "
            f"correlation {icc:.3g}; each unit's proportion is weighted by n/(n + {a + b:.4g})."
        )
    estimates = tuple(
        ShrunkEstimate(
            labels[j],
            float(x[j]),
            float(n[j]),
            float(raw[j]),
            float(shrunk[j]),
            float(lower[j]),
            float(upper[j]),
            float(weight[j]),
        )
        for j in range(x.size)
    )
    return BetaBinomialResult(
        method="beta-binomial empirical Bayes (marginal ML)",
        alpha=a,
        beta=b,
        prior_mean=mean,
        precision=precision_out,
        intraclass_correlation=icc,
        log_likelihood=ll,
        overdispersed=overdispersed,
        level=level,
        estimates=estimates,
        note=note,
    )


# --- normal-normal (means, log O/E of non-count outcomes) -------------------------------------


@dataclass(frozen=True, slots=True)
class NormalShrinkageResult:
    """Normal-normal empirical Bayes: y_j ~ N(theta_j, s_j^2), theta_j ~ N(target, tau^2).

    Why: means (and log O/E of outcomes that are not counts) have no Poisson or binomial
    variance to shrink with; their own standard errors play that part.

    Parameters
    ----------
    method : str
        ``"normal-normal"``.
    target : float
        Prior mean (the collaborative's value, fixed).
    tau2 : float
        Between-member variance by DerSimonian-Laird moments around the fixed target
        (:func:`qicollab.stats.funnel.dispersion`); 0 when members vary no more than chance.
    level : float
        Level of the posterior intervals.
    estimates : tuple of ShrunkEstimate
        Per member: observed = raw = y_j, exposure = 1 / s_j^2, shrunk = target + w (y - target)
        with w = tau^2 / (tau^2 + s_j^2), posterior interval shrunk -/+ z sqrt(w) s_j; nan
        where s_j is missing or not positive.
    """

    method: str
    target: float
    tau2: float
    level: float
    estimates: tuple[ShrunkEstimate, ...]

    def to_frame(self) -> pd.DataFrame:
        """One row per unit."""
        names = ShrunkEstimate.__dataclass_fields__
        return pd.DataFrame([{k: getattr(e, k) for k in names} for e in self.estimates])


def normal_normal_shrinkage(
    y: npt.ArrayLike,
    se: npt.ArrayLike,
    target: float,
    *,
    units: Sequence[Hashable] | np.ndarray | pd.Series | None = None,
    level: float = 0.95,
) -> NormalShrinkageResult:
    """Shrink each y_j towards ``target`` by tau^2 / (tau^2 + s_j^2) (see the result class)."""
    values = np.asarray(y, dtype=float)
    s = np.asarray(se, dtype=float)
    if values.shape != s.shape or values.ndim != 1:
        msg = "y and se must be 1-d arrays of the same length"
        raise ValueError(msg)
    ok = np.isfinite(values) & np.isfinite(s) & (s > 0)
    tau2 = 0.0
    if ok.sum() >= 2:
        tau2 = dispersion((values[ok] - target) / s[ok], s[ok])[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(ok, tau2 / (tau2 + s**2), np.nan)
        shrunk = np.where(ok, target + weight * (values - target), np.nan)
        half = stats.norm.ppf(1 - (1 - level) / 2) * np.sqrt(weight) * s
        precision = np.where(ok, 1.0 / s**2, np.nan)
    labels = _labels(units, values.size)
    rows = tuple(
        ShrunkEstimate(
            unit=labels[j],
            observed=float(values[j]),
            exposure=float(precision[j]),
            raw=float(values[j]),
            shrunk=float(shrunk[j]),
            lower=float(shrunk[j] - half[j]),
            upper=float(shrunk[j] + half[j]),
            weight=float(weight[j]),
        )
        for j in range(values.size)
    )
    return NormalShrinkageResult("normal-normal", float(target), float(tau2), level, rows)
