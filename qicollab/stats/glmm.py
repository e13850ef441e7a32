"""Random-intercept logistic regression by adaptive Gauss-Hermite quadrature (AGQ).

Why: gamma-Poisson shrinkage assumes Var(O) = E, which over-shrinks a common binary outcome
(for p near 0.4 the binomial variance is about 0.6 E), and the normal-normal shrinkage of log O/E
leans on a normal approximation that fails for small members. A random-intercept logistic model
has the variance of a binary outcome built in. It gives CMS-style predicted/expected ratios
(Krumholz et al. 2006; Normand & Shahian 2007): P_j = sum_i expit(x_i'beta + b_j) with the
member's own intercept, E_j = sum_i expit(x_i'beta) with the average member's.

Model: logit P(y_ij = 1) = offset_i + x_i'beta + b_j, b_j ~ N(0, sigma^2), fitted by maximum
likelihood of the marginal likelihood, each member's integral by AGQ centred at its conditional
mode (Pinheiro & Bates 1995; what ``lme4::glmer(..., nAGQ = k)`` does).

- ``design=None``: the fixed part is the offset (the fitted risk model's linear predictor) plus
  one intercept, estimated with sigma: ``glmer(y ~ 1 + offset(eta) + (1 | member))``.
- ``design`` given: every coefficient is re-estimated jointly with sigma, as
  ``glmer(y ~ covariates + (1 | member))``; the risk model's coefficients are the start.

Speed: a member's conditional likelihood depends on its rows only through the linear predictor,
so rows are collapsed per member into narrow bins of the linear predictor (count, mean and the
sum of squared deviations, the last for a second-order correction): the quadrature then works on
tens of thousands of cells instead of a million rows. With coefficients re-estimated, each outer
step re-bins the rows, re-fits (intercept, sigma) on the cells, and takes one Newton step for
the coefficients whose gradient needs one pass over the rows (block coordinate ascent, stopped
when the step is below 1e-5 x (1 + the largest coefficient)).

Intervals: the equal-tailed posterior interval of b_j (given the estimates: empirical Bayes),
from the posterior CDF by quadrature on a grid of 161 points spanning +-8 conditional SDs around
the mode; P/E rises with b_j, so its interval is P/E at the two quantiles. The point estimate
uses the conditional mode of b_j (``lme4::ranef``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special

METHOD = "random-intercept logistic model (maximum likelihood, adaptive Gauss-Hermite quadrature)"
_LOG_SIGMA_BOUNDS = (math.log(1e-4), math.log(20.0))
_MODE_TOLERANCE = 1e-10
_GRID_POINTS = 161
_GRID_SPAN = 8.0
_BETA_TOLERANCE = 1e-5
_MAX_OUTER = 100
_MAX_NEWTON = 100
_THETA_TOLERANCE = 1e-8


@dataclass(frozen=True, slots=True)
class MemberRatio:
    """One member's predicted/expected ratio from the random-intercept model.

    Parameters
    ----------
    unit : Hashable
        Member identifier.
    n : int
        Rows (patients).
    observed : float
        Events O_j.
    predicted : float
        P_j = sum_i expit(eta_i + b_j) at the conditional mode of b_j.
    expected : float
        E_j = sum_i expit(eta_i): the same patients at an average member (b = 0).
    ratio : float
        P_j / E_j.
    lower, upper : float
        P/E at the equal-tailed posterior quantiles of b_j (result's ``level``).
    random_effect : float
        Conditional mode of b_j.
    random_effect_sd : float
        Posterior SD of b_j (quadrature).
    """

    unit: Hashable
    n: int
    observed: float
    predicted: float
    expected: float
    ratio: float
    lower: float
    upper: float
    random_effect: float
    random_effect_sd: float


@dataclass(frozen=True, slots=True)
class RandomInterceptFit:
    """Maximum-likelihood random-intercept logistic fit and each member's P/E.

    Parameters
    ----------
    method : str
        :data:`METHOD`.
    fixed_effects : str
        ``"offset"`` (offset + intercept) or ``"refit"`` (all coefficients re-estimated).
    terms : tuple of str
        Names of the estimated coefficients (``("intercept",)`` with an offset only).
    coefficients : tuple of float
        Their estimates.
    sigma : float
        Between-member SD of the intercepts (logit scale).
    log_likelihood : float
        Marginal log-likelihood by AGQ (comparable with ``logLik`` of ``glmer`` on 0/1 rows).
    quadrature_points : int
        AGQ nodes per member.
    iterations : int
        Outer iterations (1 with an offset only).
    converged : bool
        Whether the optimiser and, for ``"refit"``, the coefficient steps converged.
    level : float
        Level of the intervals.
    interval_method : str
        How the intervals were made.
    units : tuple of MemberRatio
        One per member, in order of first appearance.

    References
    ----------
    Pinheiro JC, Bates DM (1995), J Comput Graph Stat 4:12-35; Krumholz HM et al. (2006),
    Circulation 113:1683-1692; Normand S-LT, Shahian DM (2007), Stat Sci 22:206-226.
    """

    method: str
    fixed_effects: str
    terms: tuple[str, ...]
    coefficients: tuple[float, ...]
    sigma: float
    log_likelihood: float
    quadrature_points: int
    iterations: int
    converged: bool
    level: float
    interval_method: str
    units: tuple[MemberRatio, ...]

    def to_frame(self) -> pd.DataFrame:
        """One row per member."""
        names = MemberRatio.__dataclass_fields__
        return pd.DataFrame([{k: getattr(u, k) for k in names} for u in self.units])

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict (units as a list of dicts)."""
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "units"}
        data["terms"] = list(self.terms)
        data["coefficients"] = list(self.coefficients)
        data["units"] = [asdict(u) for u in self.units]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RandomInterceptFit:
        """Inverse of :meth:`to_json`."""
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k != "units"}
        fields["terms"] = tuple(fields["terms"])
        fields["coefficients"] = tuple(float(c) for c in fields["coefficients"])
        units = tuple(MemberRatio(**u) for u in data["units"])
        return cls(**fields, units=units)


@dataclass(frozen=True, slots=True)
class _Cells:
    """Rows collapsed per (member, bin of the linear predictor)."""

    member: np.ndarray  # member code of each cell
    count: np.ndarray
    mean: np.ndarray  # mean linear predictor in the cell
    spread: np.ndarray  # sum of squared deviations from the mean
    observed: np.ndarray  # O_j per member
    y_eta: float  # sum_i y_i eta_i (a constant of the log-likelihood)
    members: int


def _collapse(
    eta: np.ndarray, y: np.ndarray, codes: np.ndarray, members: int, width: float
) -> tuple[_Cells, np.ndarray]:
    """Cells of rows sharing a member and a bin of width ``width``; also each row's cell."""
    low = float(eta.min())
    bins = np.floor((eta - low) / width).astype(np.int64)
    n_bins = int(bins.max()) + 1
    key = codes.astype(np.int64) * n_bins + bins
    if members * n_bins <= 4_000_000:
        occupied = np.bincount(key, minlength=members * n_bins) > 0
        index = np.cumsum(occupied) - 1
        cell = index[key]
        keys = np.flatnonzero(occupied)
    else:
        keys, cell = np.unique(key, return_inverse=True)
    size = keys.size
    centre = low + ((keys % n_bins) + 0.5) * width
    dev = eta - centre[cell]
    count = np.bincount(cell, minlength=size).astype(float)
    sum_dev = np.bincount(cell, weights=dev, minlength=size)
    sum_sq = np.bincount(cell, weights=dev * dev, minlength=size)
    cells = _Cells(
        member=(keys // n_bins).astype(np.intp),
        count=count,
        mean=centre + sum_dev / count,
        spread=np.maximum(sum_sq - sum_dev**2 / count, 0.0),
        observed=np.bincount(codes, weights=y, minlength=members),
        y_eta=float(y @ eta),
        members=members,
    )
    return cells, cell


def _softplus_expit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(1 + exp(x)) and expit(x) from one exponential, stable for any x."""
    small = np.exp(-np.abs(x))
    softplus = np.maximum(x, 0.0) + np.log1p(small)
    prob = np.where(x >= 0.0, 1.0, small) / (1.0 + small)
    return softplus, prob


def _cell_terms(cells: _Cells, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-likelihood part, expected events and their slope in the shift, per cell."""
    softplus, p = _softplus_expit(cells.mean + shift)
    q = p * (1.0 - p)
    half_spread = 0.5 * cells.spread
    return (
        -(cells.count * softplus + half_spread * q),
        cells.count * p + half_spread * q * (1.0 - 2.0 * p),
        cells.count * q + half_spread * q * (1.0 - 6.0 * q),
    )


def _cell_events(cells: _Cells, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expected events and their derivative in the shift, per cell (second order in eta)."""
    p = special.expit(cells.mean + shift)
    q = p * (1.0 - p)
    half_spread = 0.5 * cells.spread
    events = cells.count * p + half_spread * q * (1.0 - 2.0 * p)
    slope = cells.count * q + half_spread * q * (1.0 - 6.0 * q)
    return events, slope


def _modes(
    cells: _Cells, mu: float, sigma: float, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Conditional modes of b_j and the curvature there (Newton, all members at once)."""
    b = start.copy()
    precision = 1.0 / sigma**2
    m = cells.members
    for _ in range(200):
        events, slope = _cell_events(cells, mu + b[cells.member])
        gradient = cells.observed - np.bincount(cells.member, events, m) - b * precision
        curvature = np.bincount(cells.member, slope, m) + precision
        step = np.clip(gradient / curvature, -1.0, 1.0)
        b += step
        if np.max(np.abs(step)) < _MODE_TOLERANCE:
            break
    _, slope = _cell_events(cells, mu + b[cells.member])
    return b, np.bincount(cells.member, slope, m) + precision


@dataclass(frozen=True, slots=True)
class _Quadrature:
    """AGQ at (mu, sigma): log-likelihood, its derivatives, nodes and posterior weights."""

    log_likelihood: float
    gradient: np.ndarray  # d/d(mu, log sigma)
    hessian: np.ndarray
    nodes: np.ndarray  # members x points: values of b_j
    weights: np.ndarray  # members x points: posterior probabilities
    modes: np.ndarray
    curvature: np.ndarray


def _quadrature(
    cells: _Cells, mu: float, sigma: float, start: np.ndarray, rule: tuple[np.ndarray, np.ndarray]
) -> _Quadrature:
    """Marginal log-likelihood by AGQ; its gradient and Hessian in (mu, log sigma) by the
    Fisher and Louis identities (posterior moments of the complete-data derivatives)."""
    t, w = rule
    modes, curvature = _modes(cells, mu, sigma, start)
    scale = math.sqrt(2.0) / np.sqrt(curvature)
    nodes = modes[:, None] + scale[:, None] * t[None, :]
    m = cells.members
    log_terms = np.empty_like(nodes)
    score_mu = np.empty_like(nodes)
    slope_mu = np.empty_like(nodes)
    for k in range(t.size):
        b = nodes[:, k]
        shift = mu + b[cells.member]
        loglik, events, slope = _cell_terms(cells, shift)
        log_terms[:, k] = cells.observed * (mu + b) + np.bincount(cells.member, loglik, m)
        score_mu[:, k] = cells.observed - np.bincount(cells.member, events, m)
        slope_mu[:, k] = np.bincount(cells.member, slope, m)
    z2 = (nodes / sigma) ** 2
    log_terms += -0.5 * z2 - math.log(sigma) - 0.5 * math.log(2.0 * math.pi)
    log_terms += np.log(w)[None, :] + (t**2)[None, :]
    per_member = special.logsumexp(log_terms, axis=1)
    weights = np.exp(log_terms - per_member[:, None])
    log_lik = float(np.sum(per_member + np.log(scale))) + cells.y_eta
    score_sigma = z2 - 1.0
    mean_mu = np.sum(weights * score_mu, axis=1)
    mean_sigma = np.sum(weights * score_sigma, axis=1)
    cov = np.array(
        [
            [
                np.sum(weights * score_mu**2) - np.sum(mean_mu**2),
                np.sum(weights * score_mu * score_sigma) - np.sum(mean_mu * mean_sigma),
            ],
            [0.0, np.sum(weights * score_sigma**2) - np.sum(mean_sigma**2)],
        ]
    )
    cov[1, 0] = cov[0, 1]
    second = np.diag([-np.sum(weights * slope_mu), -2.0 * np.sum(weights * z2)])
    gradient = np.array([float(np.sum(mean_mu)), float(np.sum(mean_sigma))])
    return _Quadrature(log_lik, gradient, second + cov, nodes, weights, modes, curvature)


def _fit_cells(
    cells: _Cells,
    start: tuple[float, float],
    modes: np.ndarray,
    rule: tuple[np.ndarray, np.ndarray],
) -> tuple[float, float, _Quadrature, bool]:
    """ML (mu, sigma) on the cells by Newton steps in (mu, log sigma) with step halving; a
    sigma at the lower bound (no between-member variation) is a converged answer."""
    low, high = _LOG_SIGMA_BOUNDS
    theta = np.array([start[0], min(max(math.log(start[1]), low), high)])
    current = _quadrature(cells, theta[0], math.exp(theta[1]), modes, rule)
    for _ in range(_MAX_NEWTON):
        gradient, hessian = current.gradient, current.hessian
        at_bound = theta[1] <= low and gradient[1] < 0
        if at_bound:
            gradient = np.array([gradient[0], 0.0])
            hessian = np.diag([hessian[0, 0], -1.0])
        if np.all(np.linalg.eigvalsh(hessian) < 0):
            step = -np.linalg.solve(hessian, gradient)
        else:  # away from the maximum: a scaled gradient step
            step = gradient / np.maximum(np.abs(np.diag(hessian)), 1.0)
        step = np.clip(step, -1.0, 1.0)
        for _ in range(40):
            trial = theta + step
            trial[1] = min(max(trial[1], low), high)
            candidate = _quadrature(cells, trial[0], math.exp(trial[1]), current.modes, rule)
            if candidate.log_likelihood >= current.log_likelihood - 1e-10 * abs(
                current.log_likelihood
            ):
                break
            step = step / 2.0
        theta, current = trial, candidate
        if np.max(np.abs(step)) < _THETA_TOLERANCE:
            return float(theta[0]), math.exp(theta[1]), current, True
    return float(theta[0]), math.exp(theta[1]), current, False


def _posterior_quantiles(
    cells: _Cells, mu: float, sigma: float, quad: _Quadrature, probabilities: Sequence[float]
) -> np.ndarray:
    """Posterior quantiles of b_j (members x probabilities) by quadrature on a grid."""
    m = cells.members
    t = np.linspace(-_GRID_SPAN, _GRID_SPAN, _GRID_POINTS)
    grid = quad.modes[:, None] + t[None, :] / np.sqrt(quad.curvature)[:, None]
    log_density = np.empty_like(grid)
    for k in range(t.size):
        b = grid[:, k]
        log_density[:, k] = (
            cells.observed * b
            + np.bincount(cells.member, _cell_terms(cells, mu + b[cells.member])[0], m)
            - 0.5 * (b / sigma) ** 2
        )
    density = np.exp(log_density - log_density.max(axis=1, keepdims=True))
    step = np.diff(grid, axis=1)
    cumulative = np.concatenate(
        [np.zeros((m, 1)), np.cumsum(0.5 * (density[:, 1:] + density[:, :-1]) * step, axis=1)],
        axis=1,
    )
    cumulative /= cumulative[:, -1:]
    out = np.empty((m, len(probabilities)))
    for j in range(m):
        out[j] = np.interp(probabilities, cumulative[j], grid[j])
    return out


def _weighted_cross_product(x: np.ndarray, weight: np.ndarray, stride: int = 1) -> np.ndarray:
    """X' diag(w) X over every ``stride``-th row (scaled up), in blocks of rows (no n x p
    temporary; PERFORMANCE.md section 1)."""
    rows = np.arange(0, x.shape[0], stride)
    out = np.zeros((x.shape[1], x.shape[1]))
    for first in range(0, rows.size, 32_768):
        take = rows[first : first + 32_768]
        block = x[take]
        out += block.T @ (block * weight[take, None])
    return out * stride


def _step_factor(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Cholesky factor of the information X'WX that scales the coefficient steps.

    It only sets the step (the score is exact, so the fixed point is the ML estimate). On large
    data the correlations come from every k-th row (at most 131,072 rows) and the diagonal from
    all rows, so a rare indicator keeps its true weight; all rows when the sample is singular.
    """
    stride = max(1, x.shape[0] // 131_072)
    if stride > 1:
        sampled = _weighted_cross_product(x, weight, stride)
        diagonal = np.einsum("ij,ij,i->j", x, x, weight)
        if np.all(np.diag(sampled) > 0):
            scale = np.sqrt(diagonal / np.diag(sampled))
            try:
                return np.linalg.cholesky(sampled * scale[:, None] * scale[None, :])
            except np.linalg.LinAlgError:
                pass
    return np.linalg.cholesky(_weighted_cross_product(x, weight))


def _member_sums(eta: np.ndarray, codes: np.ndarray, effect: np.ndarray, m: int) -> np.ndarray:
    return np.bincount(codes, special.expit(eta + effect[codes]), m)


def _check(
    y: np.ndarray, units_size: int, offset: np.ndarray | None, design: np.ndarray | None
) -> None:
    n = y.size
    if y.ndim != 1 or n == 0:
        msg = "y must be a non-empty 1-d array of 0/1 outcomes"
        raise ValueError(msg)
    if not np.isin(y, (0.0, 1.0)).all():
        row = int(np.flatnonzero(~np.isin(y, (0.0, 1.0)))[0])
        msg = f"y must be 0 or 1; row {row + 1} is {y[row]!r}"
        raise ValueError(msg)
    if units_size != n:
        msg = f"units has {units_size} values for {n} outcomes"
        raise ValueError(msg)
    if offset is not None and (offset.shape != (n,) or not np.isfinite(offset).all()):
        msg = "offset must be finite, one value per outcome"
        raise ValueError(msg)
    if design is not None:
        if design.ndim != 2 or design.shape[0] != n:
            msg = "design must be a matrix with one row per outcome"
            raise ValueError(msg)
        if not np.isfinite(design).all():
            msg = "design must be finite"
            raise ValueError(msg)
        if not np.all(design[:, 0] == 1.0):
            msg = "the first design column must be the intercept (all 1)"
            raise ValueError(msg)


def random_intercept_logistic(
    y: npt.ArrayLike,
    units: Sequence[Hashable] | np.ndarray | pd.Series,
    *,
    offset: npt.ArrayLike | None = None,
    design: npt.ArrayLike | None = None,
    start: npt.ArrayLike | None = None,
    terms: Sequence[str] | None = None,
    quadrature_points: int = 15,
    level: float = 0.95,
    bin_width: float = 0.1,
) -> RandomInterceptFit:
    """Fit logit P(y = 1) = offset + x'beta + b_member, b ~ N(0, sigma^2), and give P/E.

    Parameters
    ----------
    y : array_like
        0/1 outcome per row.
    units : sequence
        Member of each row.
    offset : array_like, optional
        Linear predictor of the fitted risk model (or any fixed offset); 0 if omitted.
    design : array_like, optional
        Design matrix (first column the intercept) whose coefficients are re-estimated jointly
        with sigma; without it only an intercept is estimated beside the offset.
    start : array_like, optional
        Starting coefficients for ``design`` (e.g. the risk model's); zeros otherwise.
    terms : sequence of str, optional
        Names of the design columns.
    quadrature_points : int
        AGQ nodes per member (``nAGQ`` of ``glmer``).
    level : float
        Interval level.
    bin_width : float
        Width of the linear-predictor bins that rows are collapsed into (see the module note).
    """
    outcome = np.asarray(y, dtype=float)
    labels = np.asarray(units)
    fixed = None if offset is None else np.asarray(offset, dtype=float)
    x = None if design is None else np.asarray(design, dtype=float)
    if x is not None and x.ndim == 1:
        x = x[:, None]
    _check(outcome, labels.size, fixed, x)
    if not 1 <= quadrature_points <= 50:
        msg = "quadrature_points must be between 1 and 50"
        raise ValueError(msg)
    if not 0 < level < 1 or not 0 < bin_width <= 0.5:
        msg = "level must be in (0, 1) and bin_width in (0, 0.5]"
        raise ValueError(msg)
    codes, uniques = pd.factorize(labels, sort=False)
    m = len(uniques)
    rule = np.polynomial.hermite.hermgauss(quadrature_points)
    base = np.zeros(outcome.size) if fixed is None else fixed
    total = float(outcome.sum())
    if total in {0.0, float(outcome.size)}:
        msg = "y has no events or no non-events: the model cannot be fitted"
        raise ValueError(msg)

    modes = np.zeros(m)
    iterations = 1
    if x is None:
        cells, _ = _collapse(base, outcome, codes, m, bin_width)
        mean_rate = total / outcome.size
        mu0 = special.logit(mean_rate) - special.logit(float(np.mean(special.expit(base))))
        mu, sigma, quad, converged = _fit_cells(cells, (float(mu0), 0.5), modes, rule)
        eta = base + mu
        names: tuple[str, ...] = ("intercept",)
        estimates: tuple[float, ...] = (mu,)
        mode_kind = "offset"
    else:
        p = x.shape[1]
        names = tuple(terms) if terms is not None else tuple(f"x{j}" for j in range(p))
        if len(names) != p:
            msg = f"terms has {len(names)} names for {p} design columns"
            raise ValueError(msg)
        beta = np.zeros(p) if start is None else np.asarray(start, dtype=float).copy()
        if beta.shape != (p,):
            msg = f"start must have {p} values"
            raise ValueError(msg)
        if start is None:
            beta[0] = special.logit(total / outcome.size)
        theta = (0.0, 0.5)
        hessian_factor = None
        converged = False
        for iterations in range(1, _MAX_OUTER + 1):
            eta = base + x @ beta
            cells, cell = _collapse(eta, outcome, codes, m, bin_width)
            mu, sigma, quad, fit_ok = _fit_cells(cells, theta, modes, rule)
            modes = quad.modes
            beta[0] += mu
            eta = eta + mu
            theta = (0.0, sigma)
            # Posterior-averaged fitted probability per cell, extended to its rows to second
            # order in the row's distance from the cell mean.
            mean_p = np.zeros(cells.mean.size)
            mean_q = np.zeros(cells.mean.size)
            mean_r = np.zeros(cells.mean.size)
            for k in range(quad.nodes.shape[1]):
                weight = quad.weights[cells.member, k]
                prob = special.expit(cells.mean + mu + quad.nodes[cells.member, k])
                var = prob * (1.0 - prob)
                mean_p += weight * prob
                mean_q += weight * var
                mean_r += weight * var * (1.0 - 2.0 * prob)
            dev = eta - (cells.mean[cell] + mu)
            fitted = mean_p[cell] + dev * (mean_q[cell] + 0.5 * dev * mean_r[cell])
            if hessian_factor is None:
                hessian_factor = _step_factor(x, mean_q[cell])
            score = x.T @ (outcome - fitted)
            step = np.linalg.solve(hessian_factor.T, np.linalg.solve(hessian_factor, score))
            small = np.max(np.abs(step)) < _BETA_TOLERANCE * (1.0 + np.max(np.abs(beta)))
            if small or iterations == _MAX_OUTER:
                # Stop on the fit just made: the remaining step is below the tolerance.
                converged = bool(small) and fit_ok
                break
            beta += step
        estimates = tuple(float(v) for v in beta)
        mode_kind = "refit"

    alpha = 1.0 - level
    quantiles = _posterior_quantiles(cells, mu, sigma, quad, (alpha / 2, 1 - alpha / 2))
    post_mean = np.sum(quad.weights * quad.nodes, axis=1)
    post_sd = np.sqrt(np.maximum(np.sum(quad.weights * quad.nodes**2, axis=1) - post_mean**2, 0.0))
    expected = _member_sums(eta, codes, np.zeros(m), m)
    predicted = _member_sums(eta, codes, quad.modes, m)
    lower = _member_sums(eta, codes, quantiles[:, 0], m) / expected
    upper = _member_sums(eta, codes, quantiles[:, 1], m) / expected
    counts = np.bincount(codes, minlength=m)
    members = tuple(
        MemberRatio(
            unit=uniques[j].item() if isinstance(uniques[j], np.generic) else uniques[j],
            n=int(counts[j]),
            observed=float(cells.observed[j]),
            predicted=float(predicted[j]),
            expected=float(expected[j]),
            ratio=float(predicted[j] / expected[j]),
            lower=float(lower[j]),
            upper=float(upper[j]),
            random_effect=float(quad.modes[j]),
            random_effect_sd=float(post_sd[j]),
        )
        for j in range(m)
    )
    return RandomInterceptFit(
        method=METHOD,
        fixed_effects=mode_kind,
        terms=names,
        coefficients=estimates,
        sigma=sigma,
        log_likelihood=quad.log_likelihood,
        quadrature_points=quadrature_points,
        iterations=iterations,
        converged=converged,
        level=level,
        interval_method=(
            "equal-tailed posterior interval of the member's intercept (quadrature on a "
            f"{_GRID_POINTS}-point grid, estimates taken as known), mapped to P/E"
        ),
        units=members,
    )


__all__ = ["METHOD", "MemberRatio", "RandomInterceptFit", "random_intercept_logistic"]
