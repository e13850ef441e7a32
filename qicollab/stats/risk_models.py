"""Patient-level risk models from a specification: fit, diagnose, refuse, and predict.

The expected value E of every risk-adjusted benchmark is a sum of per-patient predictions from a
model fitted on the reference population (METHODS.md part A, 1.1). This module

- builds the design matrix itself from a :class:`RiskModelSpec` (intercept, numeric and binary
  columns, one dummy per non-reference level of each categorical; no formula API, which costs
  15-20% at a million rows);
- refuses, with a typed :class:`RiskModelError`, the data a model cannot be trusted on: missing
  values, unknown categorical levels, a covariate with one level, linearly dependent
  covariates, too few events per variable (EPV < 10 or fewer than 10 events), perfect or
  quasi-complete separation (detected here, see :func:`detect_separation`; statsmodels 0.15
  only warns);
- fits with statsmodels: ``Logit`` (Newton, warm-started from a fit on a random subsample so the
  full-data iterations drop from ~7 to ~4) for binary outcomes, ``GLM`` for Poisson and Gaussian
  outcomes, ``NegativeBinomial`` (NB2) for overdispersed counts;
- returns a frozen :class:`RiskModelFit` with a coefficient table, diagnostics (c-statistic with a
  DeLong interval, Hosmer-Lemeshow, calibration by decile, Brier score, events per variable) and
  :meth:`RiskModelFit.predict` to reapply the stored coefficients to new rows.

No statsmodels object leaves this module.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize, stats
from scipy.special import expit

Family = Literal["binomial", "poisson", "negbin", "gaussian"]
CovariateKind = Literal["numeric", "binary", "categorical"]
FAMILIES: tuple[str, ...] = ("binomial", "poisson", "negbin", "gaussian")

#: Peduzzi et al. (1996): fewer than 10 events per variable biases logistic coefficients.
DEFAULT_MIN_EPV = 10.0
DEFAULT_MIN_EVENTS = 10
WARM_START_ROWS = 100_000
"""Above this many rows the binomial fit is warm-started from a subsample fit."""


# --- errors -----------------------------------------------------------------------------------


class RiskModelError(ValueError):
    """The data cannot support the risk model; the message says why and what to change."""


class SpecificationError(RiskModelError):
    """The specification does not fit the data (missing column, bad family, bad levels)."""


class MissingValuesError(RiskModelError):
    """Outcome, covariates or exposure have missing values (no silent complete-case fits)."""


class UnknownLevelError(RiskModelError):
    """A categorical or binary covariate has a value outside its declared levels."""


class SingleLevelError(RiskModelError):
    """A covariate takes one value only (or a declared level has no rows): not estimable."""


class TooFewEventsError(RiskModelError):
    """Fewer events per variable (or events) than the minimum."""


class SeparationError(RiskModelError):
    """Perfect or quasi-complete separation: some coefficients would be infinite."""


class CollinearityError(RiskModelError):
    """Covariates are linearly dependent (one is a combination of others)."""


class ConvergenceError(RiskModelError):
    """The optimiser did not converge."""


# --- specification ----------------------------------------------------------------------------


class CovariateLike(Protocol):
    """Anything with a covariate's attributes (``qicollab.measures.spec.Covariate`` fits)."""

    name: str
    type: Any
    levels: tuple[str, ...]
    reference: str | None


class SpecLike(Protocol):
    """Anything with a risk-model specification's attributes."""

    outcome: str
    family: Any
    covariates: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Covariate:
    """One risk factor.

    Parameters
    ----------
    name : str
        Column name.
    type : {"numeric", "binary", "categorical"}
        Numeric: used as is. Binary: 0/1, or two declared ``levels`` with the ``reference``
        coded 0. Categorical: one dummy per non-reference level.
    levels : tuple of str
        Allowed values (categorical values are compared as strings); inferred from the data
        (sorted) when empty.
    reference : str, optional
        Reference level (default: the first level).
    """

    name: str
    type: CovariateKind = "numeric"
    levels: tuple[str, ...] = ()
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class RiskModelSpec:
    """Outcome, family and covariates of a risk model.

    Parameters
    ----------
    outcome : str
        Outcome column (0/1 for binomial, counts for Poisson/negbin, numbers for Gaussian).
    family : {"binomial", "poisson", "negbin", "gaussian"}
        Outcome distribution.
    covariates : tuple of Covariate
        Risk factors in model order.
    exposure : str, optional
        Exposure column for count models (log offset), e.g. patient-days.
    """

    outcome: str
    family: Family = "binomial"
    covariates: tuple[Covariate, ...] = ()
    exposure: str | None = None


def _kind(value: Any) -> str:
    return str(getattr(value, "value", value))


def _as_spec(spec: SpecLike) -> RiskModelSpec:
    covariates = tuple(
        Covariate(
            name=c.name,
            type=_kind(c.type),  # type: ignore[arg-type]
            levels=tuple(str(v) for v in (getattr(c, "levels", ()) or ())),
            reference=None if getattr(c, "reference", None) is None else str(c.reference),
        )
        for c in spec.covariates
    )
    family = _kind(spec.family)
    if family not in FAMILIES:
        msg = f"family must be one of {', '.join(FAMILIES)}, got {family!r}"
        raise SpecificationError(msg)
    for c in covariates:
        if c.type not in ("numeric", "binary", "categorical"):
            msg = f"covariate {c.name!r} has unknown type {c.type!r}"
            raise SpecificationError(msg)
    names = [c.name for c in covariates]
    if len(set(names)) != len(names):
        msg = "covariate names must be unique"
        raise SpecificationError(msg)
    if spec.outcome in names:
        msg = "the outcome cannot also be a covariate"
        raise SpecificationError(msg)
    return RiskModelSpec(
        outcome=spec.outcome,
        family=family,  # type: ignore[arg-type]
        covariates=covariates,
        exposure=getattr(spec, "exposure", None),
    )


# --- design matrix ----------------------------------------------------------------------------


def _resolve_levels(spec: RiskModelSpec, frame: pd.DataFrame) -> RiskModelSpec:
    """Fill in levels and references from the data where the specification leaves them out."""
    resolved = []
    for c in spec.covariates:
        if c.type == "categorical" or (c.type == "binary" and c.levels):
            levels = c.levels
            if not levels:
                levels = tuple(sorted(frame[c.name].astype(str).unique()))
            reference = c.reference if c.reference is not None else levels[0]
            if reference not in levels:
                msg = f"reference level {reference!r} of {c.name!r} is not one of its levels"
                raise SpecificationError(msg)
            if c.type == "binary" and len(levels) != 2:
                msg = f"binary covariate {c.name!r} must declare exactly two levels"
                raise SpecificationError(msg)
            resolved.append(replace(c, levels=levels, reference=reference))
        else:
            resolved.append(c)
    return replace(spec, covariates=tuple(resolved))


def term_names(spec: RiskModelSpec) -> tuple[str, ...]:
    """Design-matrix column names: ``intercept``, ``x``, ``sex[M]``, ``asa[3]``, ..."""
    names = ["intercept"]
    for c in spec.covariates:
        if c.type == "categorical" or (c.type == "binary" and c.levels):
            names.extend(f"{c.name}[{lv}]" for lv in c.levels if lv != c.reference)
        else:
            names.append(c.name)
    return tuple(names)


def _check_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        msg = f"missing columns: {', '.join(missing)}"
        raise SpecificationError(msg)
    nulls = {c: int(frame[c].isna().sum()) for c in columns}
    bad = {c: k for c, k in nulls.items() if k}
    if bad:
        where = ", ".join(
            f"{c} ({k} rows, first at row {int(np.flatnonzero(frame[c].isna().to_numpy())[0]) + 1})"
            for c, k in bad.items()
        )
        msg = f"missing values in {where}; impute or drop those rows before fitting"
        raise MissingValuesError(msg)


def _numeric(frame: pd.DataFrame, name: str) -> np.ndarray:
    try:
        values = pd.to_numeric(frame[name], errors="raise").to_numpy(dtype=float)
    except (ValueError, TypeError) as error:
        msg = f"covariate {name!r} must be numeric"
        raise SpecificationError(msg) from error
    if not np.all(np.isfinite(values)):
        msg = f"covariate {name!r} has non-finite values"
        raise MissingValuesError(msg)
    return values


def build_design(
    frame: pd.DataFrame, spec: RiskModelSpec, *, check_levels: bool = True
) -> np.ndarray:
    """The design matrix of ``frame`` under a resolved specification (levels known).

    Raises
    ------
    MissingValuesError, UnknownLevelError, SpecificationError
    """
    columns = [c.name for c in spec.covariates]
    _check_columns(frame, columns)
    n = len(frame)
    names = term_names(spec)
    design = np.empty((n, len(names)), dtype=float, order="F")  # column writes are contiguous
    design[:, 0] = 1.0
    j = 1
    for c in spec.covariates:
        if c.type == "numeric" or (c.type == "binary" and not c.levels):
            values = _numeric(frame, c.name)
            if c.type == "binary" and not np.isin(values, (0.0, 1.0)).all():
                msg = (
                    f"binary covariate {c.name!r} must be 0/1 (or declare its two levels); "
                    f"found {sorted(set(np.unique(values).tolist()) - {0.0, 1.0})[:5]}"
                )
                raise UnknownLevelError(msg)
            design[:, j] = values
            j += 1
            continue
        raw_codes, uniques = pd.factorize(frame[c.name], sort=False)
        mapping = pd.Index(list(c.levels)).get_indexer(pd.Index(uniques).astype(str))
        codes = np.where(raw_codes < 0, -1, mapping[raw_codes])
        if check_levels and (codes < 0).any():
            unknown = sorted(set(frame[c.name].astype(str).to_numpy()[codes < 0].tolist()))[:5]
            msg = (
                f"covariate {c.name!r} has values outside its levels {list(c.levels)}: "
                f"{unknown} (first at row {int(np.flatnonzero(codes < 0)[0]) + 1})"
            )
            raise UnknownLevelError(msg)
        for index, level in enumerate(c.levels):
            if level == c.reference:
                continue
            design[:, j] = codes == index
            j += 1
    return design


def _outcome(frame: pd.DataFrame, spec: RiskModelSpec) -> np.ndarray:
    _check_columns(frame, [spec.outcome])
    try:
        y = pd.to_numeric(frame[spec.outcome], errors="raise").to_numpy(dtype=float)
    except (ValueError, TypeError) as error:
        msg = f"outcome {spec.outcome!r} must be numeric"
        raise SpecificationError(msg) from error
    if spec.family == "binomial" and not np.isin(y, (0.0, 1.0)).all():
        msg = f"a binomial outcome must be 0/1; {spec.outcome!r} has other values"
        raise SpecificationError(msg)
    if spec.family in ("poisson", "negbin") and (np.any(y < 0) or np.any(y != np.floor(y))):
        msg = f"a count outcome must be a non-negative integer; {spec.outcome!r} is not"
        raise SpecificationError(msg)
    if not np.all(np.isfinite(y)):
        msg = f"outcome {spec.outcome!r} has non-finite values"
        raise MissingValuesError(msg)
    return y


def _offset(frame: pd.DataFrame, spec: RiskModelSpec) -> np.ndarray | None:
    if spec.exposure is None:
        return None
    if spec.family not in ("poisson", "negbin"):
        msg = "an exposure applies to count models (poisson, negbin) only"
        raise SpecificationError(msg)
    _check_columns(frame, [spec.exposure])
    exposure = _numeric(frame, spec.exposure)
    if np.any(exposure <= 0):
        msg = f"exposure {spec.exposure!r} must be positive"
        raise SpecificationError(msg)
    return np.log(exposure)


def _check_levels_present(design: np.ndarray, spec: RiskModelSpec) -> None:
    names = term_names(spec)
    j = 1
    for c in spec.covariates:
        width = sum(1 for lv in c.levels if lv != c.reference) if c.levels else 1
        block = design[:, j : j + width]
        if c.levels:
            counts = block.sum(axis=0)
            reference_rows = design.shape[0] - counts.sum()
            if reference_rows == 0:
                msg = (
                    f"covariate {c.name!r}: its reference level {c.reference!r} has no rows; "
                    "choose a reference level present in the data"
                )
                raise SingleLevelError(msg)
            empty = [names[j + k] for k in range(width) if counts[k] == 0]
            if empty:
                msg = (
                    f"covariate {c.name!r} has levels with no rows: {empty}; drop or merge "
                    "them in the specification"
                )
                raise SingleLevelError(msg)
        elif np.ptp(block[:, 0]) == 0:
            msg = f"covariate {c.name!r} takes a single value ({block[0, 0]:g}); drop it"
            raise SingleLevelError(msg)
        j += width


# --- separation -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeparationCheck:
    """Outcome of the linear-programming separation check.

    Parameters
    ----------
    separated : bool
        True if a direction beta exists along which the outcome is (quasi-)separated.
    terms : tuple of str
        Design terms with a non-zero component in that direction.
    rows_checked : int
        Rows in the subset that settled the question (overlap in any subset implies overlap
        in the full data, so a subset suffices when it shows overlap).
    method : str
        ``"linear programme (Konis 2007)"``.

    References
    ----------
    Albert A, Anderson JA (1984), Biometrika 71:1-10; Konis K (2007), Linear programming
    algorithms for detecting separated data in binary logistic regression models, DPhil thesis,
    Oxford (the R package detectseparation).
    """

    separated: bool
    terms: tuple[str, ...]
    rows_checked: int
    method: str = "linear programme (Konis 2007)"


def _lp_direction(x: np.ndarray, y: np.ndarray, family: str) -> np.ndarray | None:
    """A separating direction of the rows (x, y), or None when the data overlap."""
    scale = np.max(np.abs(x), axis=0)
    scale[scale == 0] = 1.0
    xs = x / scale
    p = xs.shape[1]
    if family == "binomial":
        signs = 2.0 * y - 1.0
        a_ub = -(signs[:, None] * xs)
        objective = a_ub.sum(axis=0)  # minimise -sum s_i x_i'b
        result = optimize.linprog(
            objective, A_ub=a_ub, b_ub=np.zeros(len(y)), bounds=[(-1, 1)] * p, method="highs"
        )
        margins_all = -(a_ub @ result.x) if result.status == 0 else None
    else:  # counts: x'b <= 0 where y = 0, x'b = 0 where y > 0, some strict
        zero = y == 0
        if not zero.any():
            return None
        a_ub = xs[zero]
        a_eq = xs[~zero] if (~zero).any() else None
        result = optimize.linprog(
            a_ub.sum(axis=0),
            A_ub=a_ub,
            b_ub=np.zeros(int(zero.sum())),
            A_eq=a_eq,
            b_eq=None if a_eq is None else np.zeros(a_eq.shape[0]),
            bounds=[(-1, 1)] * p,
            method="highs",
        )
        margins_all = -(a_ub @ result.x) if result.status == 0 else None
    if margins_all is None or result.fun > -1e-7:
        return None
    if margins_all.min() < -1e-7 or margins_all.max() < 1e-6:
        return None
    return result.x / scale


def detect_separation(
    design: np.ndarray,
    y: np.ndarray,
    *,
    family: str = "binomial",
    terms: Sequence[str] | None = None,
    indicators: Sequence[bool] | None = None,
    seed: int = 20240901,
    first_subset: int = 5000,
) -> SeparationCheck:
    """Check for (quasi-)complete separation with a linear programme, on growing subsets.

    Binary outcomes: separation exists iff some beta != 0 has s_i x_i'beta >= 0 for every row
    (s = 2y - 1), with at least one strict inequality; the programme maximises sum s_i x_i'beta
    over the box [-1, 1]^p. Counts: the Poisson likelihood has no finite maximum iff some beta
    has x_i'beta <= 0 where y_i = 0 and x_i'beta = 0 where y_i > 0, with one strict. Overlap in
    a subset implies overlap in the whole data, so the check runs on a random subset of
    ``first_subset`` rows (enriched with up to 20 rows from every outcome x indicator cell, so
    that a rare indicator does not look separated by chance), then ten times more, up to all
    rows, and stops as soon as a subset overlaps.

    ``indicators`` marks the 0/1 design columns (default: columns whose first 2,000 values are
    0/1).
    """
    n, p = design.shape
    names = tuple(terms) if terms is not None else tuple(f"x{j}" for j in range(p))
    rng = np.random.default_rng(seed)
    if indicators is None:
        indicators = [
            j > 0 and bool(np.isin(design[: min(n, 2000), j], (0.0, 1.0)).all()) for j in range(p)
        ]
    indicator_columns = [j for j in range(1, p) if indicators[j]]
    event = y > 0
    size = first_subset
    while True:
        if size >= n:
            rows = np.arange(n)
        else:
            base = rng.choice(n, size=size, replace=False)
            extra = [base]
            probe = rng.integers(0, n, size=min(n, 4000))
            for j in indicator_columns:
                in_base = design[base, j] == 1.0
                cells = (in_base & event[base], in_base & ~event[base])
                if min(int(cells[0].sum()), int(cells[1].sum())) >= 20 and (
                    min(int((~in_base & event[base]).sum()), int((~in_base & ~event[base]).sum()))
                    >= 20
                ):
                    continue  # the random subset already has every cell of this indicator
                on = np.flatnonzero(design[:, j] == 1.0)
                off = probe[design[probe, j] == 0.0]
                for cell in (on, off):
                    for where in (cell[event[cell]], cell[~event[cell]]):
                        if where.size:
                            extra.append(rng.choice(where, size=min(20, where.size), replace=False))
            rows = np.unique(np.concatenate(extra))
        direction = _lp_direction(design[rows], y[rows], family)
        if direction is None:
            return SeparationCheck(False, (), int(rows.size))
        if rows.size >= n:
            big = np.abs(direction) > 1e-6 * np.max(np.abs(direction))
            implicated = tuple(names[j] for j in range(p) if big[j] and names[j] != "intercept")
            return SeparationCheck(True, implicated or ("intercept",), int(rows.size))
        size *= 10


def _univariate_separation(
    design: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    family: str,
    indicators: Sequence[bool],
) -> str | None:
    """Cheap full-data checks that name the culprit: indicator cells and numeric thresholds.

    Counts come from two matrix passes (column sums over all rows and over the event rows);
    a numeric threshold is found by counting non-events beyond the events' range.
    """
    event = y > 0
    event_rows = design[event]
    n_events = int(event.sum())
    on_counts = design.sum(axis=0)
    on_events = event_rows.sum(axis=0)
    n = design.shape[0]
    for j in range(1, design.shape[1]):
        if indicators[j]:
            on, events_on = int(on_counts[j]), int(on_events[j])
            if family == "binomial":
                if events_on in (0, on):
                    kind = "no events" if events_on == 0 else "only events"
                    return f"{names[j]}: the {on} rows with this indicator have {kind}"
                events_off = n_events - events_on
                if events_off in (0, n - on):
                    kind = "no events" if events_off == 0 else "only events"
                    return f"{names[j]}: the rows without this indicator have {kind}"
            elif events_on == 0:
                return f"{names[j]}: the {on} rows with this indicator have no events"
        elif family == "binomial":
            column, values = design[:, j], event_rows[:, j]
            lo1, hi1 = values.min(), values.max()
            above = np.count_nonzero(column > lo1) - np.count_nonzero(values > lo1)
            below = np.count_nonzero(column < hi1) - np.count_nonzero(values < hi1)
            if above == 0 or below == 0:
                return f"{names[j]}: a threshold on this covariate separates events from non-events"
    return None


def _indicator_mask(spec: RiskModelSpec) -> list[bool]:
    """Which design columns are 0/1 by construction (binary covariates and dummies)."""
    mask = [False]
    for c in spec.covariates:
        if c.levels:
            mask.extend(True for lv in c.levels if lv != c.reference)
        else:
            mask.append(c.type == "binary")
    return mask


def _check_rank(design: np.ndarray, names: Sequence[str], rows: np.ndarray | None) -> None:
    """Refuse linearly dependent columns, from X'X of a subset (full rank there suffices)."""
    for subset in (rows, None):
        x = design if subset is None else design[subset]
        scale = np.sqrt(np.einsum("ij,ij->j", x, x))
        scale[scale == 0] = 1.0
        gram = (x.T @ x) / np.outer(scale, scale)
        values, vectors = np.linalg.eigh(gram)
        if values[0] > 1e-10 * values[-1]:
            return
        if subset is None or subset.size >= design.shape[0]:
            loading = np.abs(vectors[:, 0])
            involved = [names[j] for j in range(len(names)) if loading[j] > 0.1]
            msg = (
                f"covariates are linearly dependent: {', '.join(involved)} (one is a combination "
                "of the others); drop one of them"
            )
            raise CollinearityError(msg)


# --- diagnostics ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CalibrationGroup:
    """Observed against expected within one risk group (decile of predicted risk).

    Parameters
    ----------
    group : int
        1 = lowest predicted risk.
    n : int
        Rows in the group.
    observed, expected : float
        Sum of outcomes and of predictions.
    mean_predicted, observed_rate : float
        expected / n and observed / n.
    """

    group: int
    n: int
    observed: float
    expected: float
    mean_predicted: float
    observed_rate: float


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """Discrimination and calibration of a fitted risk model.

    Parameters
    ----------
    c_statistic : float or None
        Area under the ROC curve (binomial only).
    c_statistic_ci : tuple of float or None
        95% interval by DeLong's method (normal approximation, clipped to [0, 1]).
    c_statistic_method : str
        ``"DeLong et al. (1988) variance, sorted-score counting (Sun & Xu 2014)"``.
    hosmer_lemeshow : float or None
        Hosmer-Lemeshow statistic over the risk groups (binomial only).
    hosmer_lemeshow_df : int or None
        groups - 2.
    hosmer_lemeshow_p : float or None
        Upper chi-square tail probability.
    calibration : tuple of CalibrationGroup
        Observed vs expected by decile of predicted value (quantile breaks, ties kept together,
        as R's ``cut(quantile(...))``).
    brier_score : float or None
        Mean squared error of the predicted probabilities (binomial only).
    events_per_variable : float
        Limiting events (binomial: min(events, non-events); counts: total count; Gaussian:
        rows) per estimated coefficient other than the intercept.
    log_likelihood, aic : float
        From the fit.
    observed_total, expected_total : float
        Calibration-in-the-large: sum y and sum of predictions.

    References
    ----------
    DeLong ER, DeLong DM, Clarke-Pearson DL (1988), Biometrics 44:837-845; Sun X, Xu W (2014),
    IEEE Signal Process Lett 21:1389-1393; Hosmer DW, Lemeshow S (1980), Commun Stat A9:1043;
    Brier GW (1950), Mon Weather Rev 78:1-3; Peduzzi P et al. (1996), J Clin Epidemiol
    49:1373-1379.
    """

    c_statistic: float | None
    c_statistic_ci: tuple[float, float] | None
    c_statistic_method: str
    hosmer_lemeshow: float | None
    hosmer_lemeshow_df: int | None
    hosmer_lemeshow_p: float | None
    calibration: tuple[CalibrationGroup, ...]
    brier_score: float | None
    events_per_variable: float
    log_likelihood: float
    aic: float
    observed_total: float
    expected_total: float


def c_statistic(
    y: npt.ArrayLike, score: npt.ArrayLike, *, level: float = 0.95
) -> tuple[float, float, float, float]:
    """AUC with DeLong's standard error and normal interval: (auc, lower, upper, se).

    DeLong's structural components: for each event, V10 = share of non-events with a lower
    score (ties count one half); for each non-event, V01 = share of events with a higher score;
    AUC = mean(V10) and var(AUC) = var(V10)/n1 + var(V01)/n0. The counts come from binary
    searches in the sorted scores of each class (the midrank idea of Sun & Xu 2014), so one
    million rows cost two sorts.
    """
    outcome = np.asarray(y, dtype=float) > 0
    s = np.asarray(score, dtype=float)
    n1 = int(outcome.sum())
    n0 = int(outcome.size - n1)
    if n1 < 2 or n0 < 2:
        msg = "the c-statistic needs at least two events and two non-events"
        raise ValueError(msg)
    events = np.sort(s[outcome])
    non_events = np.sort(s[~outcome])
    # V10_i: share of non-events scored below event i (ties count one half); V01_j: share of
    # events scored above non-event j. Counting by binary search avoids ranking all rows.
    v10 = (
        np.searchsorted(non_events, events, side="left")
        + np.searchsorted(non_events, events, side="right")
    ) / (2.0 * n0)
    v01 = 1.0 - (
        np.searchsorted(events, non_events, side="left")
        + np.searchsorted(events, non_events, side="right")
    ) / (2.0 * n1)
    auc = float(v10.mean())
    se = math.sqrt(float(np.var(v10, ddof=1) / n1 + np.var(v01, ddof=1) / n0))
    z = float(stats.norm.ppf(1 - (1 - level) / 2))
    return auc, max(0.0, auc - z * se), min(1.0, auc + z * se), se


def risk_groups(predicted: npt.ArrayLike, groups: int = 10) -> np.ndarray:
    """Group index 0..g-1 by quantile breaks of the predictions (right-closed, ties together)."""
    p = np.asarray(predicted, dtype=float)
    breaks = np.unique(np.quantile(p, np.linspace(0, 1, groups + 1)))
    if breaks.size < 2:
        return np.zeros(p.size, dtype=int)
    return np.searchsorted(breaks[1:-1], p, side="left")


def calibration_table(
    y: npt.ArrayLike, predicted: npt.ArrayLike, groups: int = 10
) -> tuple[CalibrationGroup, ...]:
    """Observed vs expected by group of predicted value."""
    yy = np.asarray(y, dtype=float)
    p = np.asarray(predicted, dtype=float)
    index = risk_groups(p, groups)
    k = int(index.max()) + 1 if index.size else 0
    n = np.bincount(index, minlength=k)
    observed = np.bincount(index, weights=yy, minlength=k)
    expected = np.bincount(index, weights=p, minlength=k)
    return tuple(
        CalibrationGroup(
            group=g + 1,
            n=int(n[g]),
            observed=float(observed[g]),
            expected=float(expected[g]),
            mean_predicted=float(expected[g] / n[g]),
            observed_rate=float(observed[g] / n[g]),
        )
        for g in range(k)
        if n[g] > 0
    )


def hosmer_lemeshow(
    y: npt.ArrayLike, predicted: npt.ArrayLike, groups: int = 10
) -> tuple[float, int, float]:
    """Hosmer-Lemeshow statistic, degrees of freedom (groups - 2) and p-value."""
    table = calibration_table(y, predicted, groups)
    statistic = 0.0
    for g in table:
        non_events_expected = g.n - g.expected
        statistic += (g.observed - g.expected) ** 2 / g.expected
        statistic += ((g.n - g.observed) - non_events_expected) ** 2 / non_events_expected
    df = len(table) - 2
    return statistic, df, float(stats.chi2.sf(statistic, df)) if df > 0 else math.nan


# --- fit --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Coefficient:
    """One row of the coefficient table.

    Parameters
    ----------
    term : str
        Design term (``intercept``, ``age``, ``asa[3]``).
    estimate, std_error, statistic, p_value : float
        Estimate on the link scale, its standard error, Wald z (t for Gaussian) and p-value.
    ci_lower, ci_upper : float
        95% Wald interval.
    ratio, ratio_lower, ratio_upper : float or None
        exp(estimate) and its interval: the odds ratio (binomial) or rate ratio (counts);
        ``None`` for Gaussian models.
    """

    term: str
    estimate: float
    std_error: float
    statistic: float
    p_value: float
    ci_lower: float
    ci_upper: float
    ratio: float | None
    ratio_lower: float | None
    ratio_upper: float | None


@dataclass(frozen=True, slots=True)
class RiskModelFit:
    """A fitted risk model: coefficients, diagnostics, and what is needed to reapply it.

    Why: the expected count of every unit is the sum of this model's predictions, so the model
    must be reported (coefficients, discrimination, calibration) and reapplied exactly, later,
    to new data, without keeping a statsmodels object alive.

    Parameters
    ----------
    spec : RiskModelSpec
        The specification with levels and references resolved from the fitting data.
    family : str
        Outcome family.
    method : str
        Estimator, e.g. ``"statsmodels Logit, Newton, warm-started from a 50,000-row
        subsample"``.
    terms : tuple of str
        Design terms.
    coefficients : tuple of Coefficient
        The coefficient table.
    ratio_name : str or None
        ``"odds ratio"``, ``"rate ratio"`` or ``None``.
    covariance : numpy.ndarray
        Covariance matrix of the estimates.
    n : int
        Rows used.
    events : float
        Sum of the outcome.
    dispersion : float or None
        NB2 alpha (negbin) or residual variance (Gaussian).
    iterations : int
        Full-data optimiser iterations.
    converged : bool
        Always True (non-convergence raises :class:`ConvergenceError`).
    separation : SeparationCheck or None
        The separation check that cleared the data (binomial, count families).
    diagnostics : Diagnostics
        Discrimination and calibration.
    fitted : numpy.ndarray
        Expected value for each fitting row (not compared or printed).

    References
    ----------
    statsmodels (Seabold & Perktold 2010); Steyerberg EW (2019), Clinical Prediction Models,
    2nd ed., Springer; METHODS.md part A sections 1.1 and 3.
    """

    spec: RiskModelSpec
    family: str
    method: str
    terms: tuple[str, ...]
    coefficients: tuple[Coefficient, ...]
    ratio_name: str | None
    covariance: np.ndarray = field(repr=False, compare=False)
    n: int = 0
    events: float = 0.0
    dispersion: float | None = None
    iterations: int = 0
    converged: bool = True
    separation: SeparationCheck | None = None
    diagnostics: Diagnostics | None = None
    fitted: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)

    @property
    def params(self) -> np.ndarray:
        """Estimates in design order."""
        return np.array([c.estimate for c in self.coefficients])

    def coefficient_frame(self) -> pd.DataFrame:
        """The coefficient table as a DataFrame."""
        names = Coefficient.__dataclass_fields__
        return pd.DataFrame([{k: getattr(c, k) for k in names} for c in self.coefficients])

    def linear_predictor(self, frame: pd.DataFrame) -> np.ndarray:
        """x'beta (+ log exposure) for new rows, with the stored levels and coefficients."""
        design = build_design(frame, self.spec)
        eta = design @ self.params
        offset = _offset(frame, self.spec)
        return eta if offset is None else eta + offset

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Expected value of each row of ``frame``: probability, count or mean.

        Raises :class:`MissingValuesError` or :class:`UnknownLevelError` for rows the model
        cannot score.
        """
        eta = self.linear_predictor(frame)
        if self.family == "binomial":
            return expit(eta)
        if self.family in ("poisson", "negbin"):
            return np.exp(eta)
        return eta


def _capture(record: list[warnings.WarningMessage]) -> None:
    """Turn statsmodels' warnings during a fit into typed errors (warnings are not ignored)."""
    from statsmodels.tools.sm_exceptions import (  # noqa: PLC0415
        ConvergenceWarning,
        HessianInversionWarning,
        PerfectSeparationWarning,
    )

    for item in record:
        if issubclass(item.category, PerfectSeparationWarning):
            msg = f"statsmodels reports perfect separation: {item.message}"
            raise SeparationError(msg)
        if issubclass(item.category, ConvergenceWarning | HessianInversionWarning):
            msg = f"the fit did not converge: {item.message}"
            raise ConvergenceError(msg)
    for item in record:  # anything else is unexpected: pass it on to the caller
        warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)


#: Rows per block of the Hessian X'WX: each block's weighted copy stays in the CPU cache.
_HESSIAN_BLOCK_ROWS = 32_768


def _weighted_gram(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """X' diag(w) X accumulated over blocks of rows (no n x p temporary)."""
    out = np.zeros((x.shape[1], x.shape[1]))
    for first in range(0, x.shape[0], _HESSIAN_BLOCK_ROWS):
        block = x[first : first + _HESSIAN_BLOCK_ROWS]
        out += block.T @ (block * weight[first : first + _HESSIAN_BLOCK_ROWS, None])
    return out


@functools.cache
def _logit_model() -> type:
    """statsmodels' ``Logit`` with its Hessian computed in row blocks.

    Why: ``Logit.hessian`` builds the weighted transpose of the whole design (n x p, 190 MB at
    1M x 24) at every Newton step and for the covariance. Blocked, the whole fit of the
    benchmark's 1M records took 2.8 s of CPU instead of 4.3 s, with the same 4 steps,
    coefficients within 3e-15 and covariances within 1e-10 (relative). The Newton path, its
    stopping rule and the covariance are statsmodels'.
    """
    from statsmodels.discrete.discrete_model import Logit  # noqa: PLC0415

    class BlockedLogit(Logit):
        def hessian(self, params: np.ndarray) -> np.ndarray:
            fitted = self.predict(params)
            return -_weighted_gram(self.exog, fitted * (1.0 - fitted))

    return BlockedLogit


def _fit_logit(
    y: np.ndarray, x: np.ndarray, *, warm_start: bool, seed: int
) -> tuple[np.ndarray, np.ndarray, float, int, str]:
    logit = _logit_model()
    n = len(y)
    start = None
    method = "statsmodels Logit (Newton)"
    if warm_start and n > WARM_START_ROWS:
        size = max(50_000, n // 20)
        rows = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            sub = logit(y[rows], x[rows], check_rank=False, hasconst=True).fit(
                method="newton", disp=0, maxiter=50
            )
        if not record and np.all(np.isfinite(sub.params)):
            start = sub.params
            method += f", warm-started from a {size:,}-row random subsample fit"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        # check_rank=False: statsmodels would QR-decompose the whole design (1 s per 1M rows);
        # fit_risk_model has already checked the rank on X'X; column 0 is the intercept.
        result = logit(y, x, check_rank=False, hasconst=True).fit(
            method="newton", start_params=start, disp=0, maxiter=100
        )
    _capture(record)
    if not result.mle_retvals.get("converged", False):
        msg = "Newton iterations did not converge"
        raise ConvergenceError(msg)
    return (
        np.asarray(result.params),
        np.asarray(result.cov_params()),
        float(result.llf),
        int(result.mle_retvals["iterations"]),
        method,
    )


def _fit_glm(
    y: np.ndarray, x: np.ndarray, family: str, offset: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, float, int, float | None, str]:
    import statsmodels.api as sm  # noqa: PLC0415

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        if family == "negbin":
            model = sm.NegativeBinomial(y, x, loglike_method="nb2", offset=offset)
            result = model.fit(method="newton", disp=0, maxiter=200)
            converged = bool(result.mle_retvals.get("converged", False))
            params = np.asarray(result.params)
            cov = np.asarray(result.cov_params())
            p = x.shape[1]
            out = (
                params[:p],
                cov[:p, :p],
                float(result.llf),
                int(result.mle_retvals.get("iterations", 0)),
                float(params[p]),
                "statsmodels NegativeBinomial (NB2, Newton)",
            )
        else:
            fam = sm.families.Poisson() if family == "poisson" else sm.families.Gaussian()
            result = sm.GLM(y, x, family=fam, offset=offset).fit()
            converged = bool(getattr(result, "converged", True))
            out = (
                np.asarray(result.params),
                np.asarray(result.cov_params()),
                float(result.llf),
                int(getattr(result, "fit_history", {}).get("iteration", 0)),
                float(result.scale) if family == "gaussian" else None,
                f"statsmodels GLM ({'Poisson, log link' if family == 'poisson' else 'Gaussian'}"
                ", IRLS)",
            )
    _capture(record)
    if not converged:
        msg = f"the {family} fit did not converge"
        raise ConvergenceError(msg)
    return out


def fit_risk_model(
    frame: pd.DataFrame,
    spec: SpecLike,
    *,
    min_epv: float = DEFAULT_MIN_EPV,
    min_events: int = DEFAULT_MIN_EVENTS,
    warm_start: bool = True,
    check_separation: bool = True,
    diagnostics: bool = True,
    seed: int = 20240901,
) -> RiskModelFit:
    """Fit a risk model after checking that the data can support it.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per patient (or episode), with the outcome, covariates and exposure columns.
    spec : RiskModelSpec or compatible
        Outcome, family and covariates.
    min_epv : float
        Refuse when limiting events per estimated coefficient (intercept excluded) are below
        this (10, Peduzzi et al. 1996). Binomial: limiting events = min(events, non-events);
        counts: the total count; Gaussian: the number of rows.
    min_events : int
        Refuse when the limiting events are below this, whatever the number of coefficients.
    warm_start : bool
        Start the binomial Newton iterations from a fit on a random subsample (above
        100,000 rows).
    check_separation : bool
        Run :func:`detect_separation` (binomial and count families).
    diagnostics : bool
        Compute the c-statistic, Hosmer-Lemeshow and calibration table.
    seed : int
        Seed of the subsampling (results do not depend on it beyond 1e-8).

    Raises
    ------
    SpecificationError, MissingValuesError, UnknownLevelError, SingleLevelError,
    CollinearityError, TooFewEventsError, SeparationError, ConvergenceError
    """
    resolved = _as_spec(spec)
    _check_columns(
        frame,
        [resolved.outcome, *(c.name for c in resolved.covariates)]
        + ([resolved.exposure] if resolved.exposure else []),
    )
    resolved = _resolve_levels(resolved, frame)
    y = _outcome(frame, resolved)
    offset = _offset(frame, resolved)
    design = build_design(frame, resolved)
    terms = term_names(resolved)
    _check_levels_present(design, resolved)
    indicators = _indicator_mask(resolved)
    subset = (
        np.random.default_rng(seed).choice(len(y), size=50_000, replace=False)
        if len(y) > WARM_START_ROWS
        else None
    )
    _check_rank(design, terms, subset)
    family = resolved.family
    n = len(y)
    k = len(terms) - 1
    events = float(y.sum())
    if family == "binomial":
        limiting = min(events, n - events)
        unit = "events (the rarer outcome)"
    elif family in ("poisson", "negbin"):
        limiting = events
        unit = "events (total count)"
    else:
        limiting = float(n)
        unit = "observations"
    epv = limiting / k if k else math.inf
    if limiting < min_events or epv < min_epv:
        msg = (
            f"too few {unit}: {limiting:g} for {k} coefficients ({epv:.1f} per variable); "
            f"the rule is at least {min_events} and at least {min_epv:g} per variable "
            "(Peduzzi et al. 1996). Merge categories, drop covariates or pool more data."
        )
        raise TooFewEventsError(msg)

    separation = None
    if family != "gaussian" and check_separation:
        culprit = _univariate_separation(design, y, terms, family, indicators)
        if culprit is not None:
            msg = f"quasi-complete separation: {culprit}. Merge or drop that level/covariate."
            raise SeparationError(msg)
        separation = detect_separation(
            design, y, family=family, terms=terms, indicators=indicators, seed=seed
        )
        if separation.separated:
            msg = (
                "perfect or quasi-complete separation: a combination of "
                f"{', '.join(separation.terms)} predicts the outcome exactly for some rows, so "
                "their coefficients would be infinite. Merge levels or drop covariates."
            )
            raise SeparationError(msg)

    dispersion: float | None = None
    if family == "binomial":
        params, cov, llf, iterations, method = _fit_logit(
            y, design, warm_start=warm_start, seed=seed
        )
    else:
        params, cov, llf, iterations, dispersion, method = _fit_glm(y, design, family, offset)
    eta = design @ params + (0.0 if offset is None else offset)
    if family == "binomial":
        fitted = expit(eta)
    elif family in ("poisson", "negbin"):
        fitted = np.exp(eta)
    else:
        fitted = eta

    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    z975 = float(stats.norm.ppf(0.975))
    if family == "gaussian":
        df_resid = max(n - len(params), 1)
        statistic = params / se
        p_values = 2 * stats.t.sf(np.abs(statistic), df_resid)
        crit = float(stats.t.ppf(0.975, df_resid))
    else:
        statistic = params / se
        p_values = 2 * stats.norm.sf(np.abs(statistic))
        crit = z975
    ratio_name = {"binomial": "odds ratio", "poisson": "rate ratio", "negbin": "rate ratio"}.get(
        family
    )
    coefficients = tuple(
        Coefficient(
            term=terms[j],
            estimate=float(params[j]),
            std_error=float(se[j]),
            statistic=float(statistic[j]),
            p_value=float(p_values[j]),
            ci_lower=float(params[j] - crit * se[j]),
            ci_upper=float(params[j] + crit * se[j]),
            ratio=None if ratio_name is None else float(np.exp(params[j])),
            ratio_lower=None if ratio_name is None else float(np.exp(params[j] - crit * se[j])),
            ratio_upper=None if ratio_name is None else float(np.exp(params[j] + crit * se[j])),
        )
        for j in range(len(terms))
    )
    n_params = len(params) + (1 if family in ("negbin", "gaussian") else 0)
    diag = _diagnostics(y, fitted, family, epv, llf, n_params, full=diagnostics)
    return RiskModelFit(
        spec=resolved,
        family=family,
        method=method,
        terms=terms,
        coefficients=coefficients,
        ratio_name=ratio_name,
        covariance=cov,
        n=n,
        events=events,
        dispersion=dispersion,
        iterations=iterations,
        converged=True,
        separation=separation,
        diagnostics=diag,
        fitted=fitted,
    )


def _diagnostics(  # noqa: PLR0917 - private, one call
    y: np.ndarray,
    fitted: np.ndarray,
    family: str,
    epv: float,
    llf: float,
    n_params: int,
    *,
    full: bool,
) -> Diagnostics:
    method = "DeLong et al. (1988) variance, sorted-score counting (Sun & Xu 2014)"
    auc = ci = hl = hl_df = hl_p = brier = None
    calibration: tuple[CalibrationGroup, ...] = ()
    if full:
        calibration = calibration_table(y, fitted)
        if family == "binomial":
            auc_value, low, high, _ = c_statistic(y, fitted)
            auc, ci = auc_value, (low, high)
            hl_stat, df, p = hosmer_lemeshow(y, fitted)
            hl, hl_df, hl_p = hl_stat, df, p
            brier = float(np.mean((y - fitted) ** 2))
    return Diagnostics(
        c_statistic=auc,
        c_statistic_ci=ci,
        c_statistic_method=method,
        hosmer_lemeshow=hl,
        hosmer_lemeshow_df=hl_df,
        hosmer_lemeshow_p=hl_p,
        calibration=calibration,
        brier_score=brier,
        events_per_variable=float(epv),
        log_likelihood=llf,
        aic=float(2 * n_params - 2 * llf),
        observed_total=float(y.sum()),
        expected_total=float(fitted.sum()),
    )


def predict_expected(fit: RiskModelFit, frame: pd.DataFrame) -> np.ndarray:
    """Expected values of new rows under a stored model (same as ``fit.predict(frame)``)."""
    return fit.predict(frame)
