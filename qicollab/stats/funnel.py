"""Funnel plots for standardised ratios (O vs E) and proportions (x of n), with overdispersion.

A funnel plot shows each unit's indicator against its precision (E for a ratio, n for a
proportion) with control limits around the target that narrow as precision grows. Two sets of
limits are computed for every unit, each at 95% (a "warning") and 99.8% (an "alarm"):

**Unadjusted limits** assume only sampling variation. Ratios: the Poisson/chi-square limits of
FunnelPlotR, ``qchisq(alpha/2, 2E) / 2E`` and ``qchisq(1 - alpha/2, 2E + 2) / 2E`` (E treated
as a continuous Poisson mean). Proportions: PHE's inverted-Wilson limits
``t -/+ z sqrt(t (1 - t) / n)``, the proportions whose Wilson interval just touches the target t.

**Overdispersion-adjusted limits** (Spiegelhalter 2005) widen the funnel when units differ by
more than chance. Each unit gets a z-score on a variance-stabilising scale:

====================  ===============  ===============  ===================================
method                y                s                dispersion
====================  ===============  ===============  ===================================
``"shmi"`` (ratio)    ln(O/E)          1 / sqrt(E)      additive tau^2, SHMI truncation
``"cqc"`` (ratio)     sqrt(O/E)        1 / (2 sqrt E)   additive tau^2, winsorising
``"cqc"`` (prop.)     asin sqrt(x/n)   1 / (2 sqrt n)   additive tau^2, winsorising
``"spiegelhalter"``   as ``"cqc"``     as ``"cqc"``     multiplicative phi, winsorising
====================  ===============  ===============  ===================================

and ``z = (y - y0) / s`` with y0 the transformed target. Outliers are damped before estimating
the dispersion: SHMI drops the top and bottom ``trim`` fraction by rank (FunnelPlotR's rule);
the others winsorise z at the ``trim`` and ``1 - trim`` quantiles (numpy's linear quantile,
R's type 7). Then ``phi = mean(z^2)`` over the I units used and, with w = 1/s^2,
``tau2 = max(0, (I phi - (I - 1)) / (sum w - sum w^2 / sum w))`` (DerSimonian-Laird moments
around the fixed target). Additive limits are ``y0 -/+ z_p sqrt(s^2 + tau2)``, multiplicative
ones ``y0 -/+ z_p sqrt(phi) s``, back-transformed to the indicator's scale: exp for SHMI,
squaring for the square-root scale (unlike FunnelPlotR 0.6.0, whose CQC limits are not squared
back, issue #33), sin^2 for the arcsine scale, clipped to its range. If phi <= 1 there is no
overdispersion to adjust for and the adjusted limits fall back to the unadjusted ones; the
result says so (``fallback``). ``overdispersion_pvalue`` tests ``I phi ~ chi2_I``.

Zero counts: ln(0) is -inf, so on the SHMI scale a unit with O = 0 gets y = ln(0.5 / E) (half
an event, FunnelPlotR issue #17) for its z-score and the dispersion estimate; its plotted value
stays O/E = 0 and is compared with the limits as is. Units with E = 0 (or n = 0) have no
precision: their rows are kept with ``nan`` values and they take no part in the estimates.

Outlier status at a limit is ``"high"``, ``"low"`` or ``None``; limits are inclusive (a value on
a limit is not an outlier), as in FunnelPlotR's ``outliers_func``.

**Decisions are exact** (:mod:`qicollab.stats.exact_tails`). The formulas above are the
published ones and stay available (:func:`unadjusted_limits`, :func:`adjusted_limits`), but the
limits stored on each row, drawn by :meth:`FunnelResult.curves` and used for its flags are
decision limits: unadjusted, the exact Poisson (ratios) or binomial (proportions) tails of
Spiegelhalter (2005), low only if P(O <= o) < alpha/2 and high only if P(O >= o) < alpha/2, so
that no member with O = 0 and E = 1 is ever an outlier; adjusted, per side the wider of those
exact limits and the method's overdispersion-adjusted limits. An adjustment therefore only ever
widens the funnel: a member flagged after adjustment is also flagged before it.

METHODS: the default method, ``"random-effects"``
-------------------------------------------------
Why not the published variants: SHMI truncation and 10% winsorisation bias phi low when many
members are small (their z-scores are far from normal). With real between-member variation that
is no signal (lognormal SD 0.2, 1,000 members, E from 0.5 to 200) SHMI's phi stayed below 1, its
adjustment switched itself off and 4.8% of members were flagged at 99.8%; the winsorised CQC
(additive) and Spiegelhalter (multiplicative) adjustments left 1.0% and 2.5% (``CALIBRATION`` in
:mod:`qicollab.stats.calibration`), against a nominal 0.2%. The default follows the
hierarchical-model screening of Ohlssen, Sharples and Spiegelhalter (J R Stat Soc A 2007;
170:865-890), Jones and Spiegelhalter (Am Stat 2011; 65:154-163) and Spiegelhalter et al. (J R
Stat Soc A 2012; 175:1-47): members' true ratios vary around the target by a random effect whose
variance is estimated robustly, and a member is judged against its predictive distribution.
Here:

* ratios: O_j ~ Poisson(theta_j target E_j), theta_j ~ Gamma(mean 1, variance tau2), so O_j is
  negative binomial with Var = mu + tau2 mu^2; proportions: x_j ~ Binomial(n_j, p_j),
  p_j ~ Beta(mean target, intraclass correlation rho), so x_j is beta-binomial.
* tau2 (rho) by maximum likelihood with the mean fixed at the target (E already carries the
  case mix), iterated: members flagged at adjusted 99.8% are left out and the likelihood is
  maximised again until the set of members left out does not change (at most 20 rounds). This
  is the "identify, remove, re-estimate" robustness of Jones and Spiegelhalter, done on the
  likelihood, so small members count for what they carry instead of being trimmed by rank.
* decisions: exact predictive tails, low only if P(O <= o) < alpha/2 and high only if
  P(O >= o) < alpha/2 under the negative binomial (beta-binomial); unadjusted, the same with
  tau2 = 0 (Poisson, binomial). With tau2 = 0 (no variation beyond chance) the two coincide.

Its false-alarm rates and power, from seeded simulations, are in ``CALIBRATION`` and tested.
For ``"random-effects"`` the result's ``tau2`` is the between-member variance on the indicator's
own scale (of theta_j for ratios, of p_j for proportions), ``phi`` the Pearson dispersion
mean(z^2) and z the Pearson residual (O - mu) / sqrt(Var O), before and after the random effect.

The PHE/Fingertips significance bands and limit tables are :func:`phe_proportion_funnel`,
:func:`phe_proportion_limits`, :func:`phe_ratio_significance` and :func:`phe_ratio_funnel_table`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize, stats

from qicollab.stats import exact_tails
from qicollab.stats.intervals import LEVELS, exact_poisson_interval, level_key, z_value

DataType = Literal["ratio", "proportion"]
FunnelMethod = Literal["random-effects", "shmi", "cqc", "spiegelhalter"]
Improvement = Literal["increase", "decrease"]
Status = Literal["high", "low"] | None

METHODS: tuple[str, ...] = ("random-effects", "shmi", "cqc", "spiegelhalter")
PUBLISHED_METHODS: tuple[str, ...] = ("shmi", "cqc", "spiegelhalter")
DEFAULT_METHOD: FunnelMethod = "random-effects"
"""The calibrated method a measure gets unless another is chosen (see METHODS above)."""
RANDOM_EFFECTS_ROUNDS = 20
DATA_TYPES: tuple[str, ...] = ("ratio", "proportion")
ZERO_COUNT_CONTINUITY = 0.5
"""Events added to a zero count on the SHMI log scale (ln 0 is undefined)."""

PHE_BANDS = ("High (0.001)", "High (0.025)", "Low (0.025)", "Low (0.001)", "Not significant")

_REFERENCES = (
    "Spiegelhalter DJ (2005), Funnel plots for comparing institutional performance, Stat Med "
    "24:1185-1202; Spiegelhalter DJ (2005), Handling over-dispersion of performance indicators, "
    "Qual Saf Health Care 14:347-351; FunnelPlotR 0.6.0 (nhs-r-community), R/od_adjustment.R "
    "and R/calculate_limits.R; PHEindicatormethods R/Funnels.R."
)


# --- small building blocks -------------------------------------------------------------------


def aggregate_units(
    units: Sequence[Hashable] | np.ndarray | pd.Series,
    numerator: npt.ArrayLike,
    denominator: npt.ArrayLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum numerator and denominator per unit (first-appearance order), as FunnelPlotR does.

    Returns
    -------
    (units, numerator, denominator) : tuple of numpy.ndarray
        One element per distinct unit.
    """
    frame = pd.DataFrame(
        {"unit": np.asarray(units, dtype=object), "num": numerator, "den": denominator}
    )
    summed = frame.groupby("unit", sort=False)[["num", "den"]].sum()
    return (
        summed.index.to_numpy(dtype=object),
        summed["num"].to_numpy(dtype=float),
        summed["den"].to_numpy(dtype=float),
    )


def outlier_status(
    value: npt.ArrayLike, lower: npt.ArrayLike, upper: npt.ArrayLike
) -> tuple[Status, ...]:
    """``"high"`` above the upper limit, ``"low"`` below the lower one, else ``None``.

    Limits are inclusive: a value exactly on a limit is not an outlier. ``nan`` values or
    limits give ``None``.
    """
    v, lo, hi = np.broadcast_arrays(
        np.asarray(value, float), np.asarray(lower, float), np.asarray(upper, float)
    )
    out: list[Status] = []
    for a, b, c in zip(v.ravel(), lo.ravel(), hi.ravel(), strict=True):
        if a > c:
            out.append("high")
        elif a < b:
            out.append("low")
        else:
            out.append(None)
    return tuple(out)


def performance_label(status: Status, improvement: Improvement | None) -> str | None:
    """Direction-aware reading of an outlier status.

    ``"worse"``, ``"better"`` or ``"as expected"`` when the measure's improvement direction is
    known (``"decrease"``: lower is better, e.g. mortality; ``"increase"``: higher is better);
    ``"higher"``, ``"lower"`` or ``"as expected"`` when it is not.
    """
    if status is None:
        return "as expected"
    if improvement is None:
        return "higher" if status == "high" else "lower"
    if improvement not in ("increase", "decrease"):
        msg = f"improvement must be 'increase' or 'decrease', got {improvement!r}"
        raise ValueError(msg)
    good = (status == "high") == (improvement == "increase")
    return "better" if good else "worse"


def _transform(
    data_type: DataType, method: FunnelMethod, value: np.ndarray, precision: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Transformed indicator y and its standard error s (nan where precision is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        s_sqrt = 1.0 / (2.0 * np.sqrt(precision))
        if data_type == "proportion":
            return np.arcsin(np.sqrt(np.clip(value, 0.0, 1.0))), np.where(
                precision > 0, s_sqrt, np.nan
            )
        if method == "shmi":
            y = np.log(np.where(value > 0, value, ZERO_COUNT_CONTINUITY / precision))
            return y, np.where(precision > 0, 1.0 / np.sqrt(precision), np.nan)
        return np.sqrt(value), np.where(precision > 0, s_sqrt, np.nan)


def _target_scale(data_type: DataType, method: FunnelMethod, target: float) -> float:
    if data_type == "proportion":
        return math.asin(math.sqrt(target))
    if method == "shmi":
        return math.log(target)
    return math.sqrt(target)


def _back_transform(data_type: DataType, method: FunnelMethod, y: np.ndarray) -> np.ndarray:
    if data_type == "proportion":
        return np.sin(np.clip(y, 0.0, math.pi / 2)) ** 2
    if method == "shmi":
        return np.exp(y)
    return np.maximum(y, 0.0) ** 2


def unadjusted_limits(
    precision: npt.ArrayLike,
    *,
    data_type: DataType = "ratio",
    target: float = 1.0,
    level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Funnel limits from sampling variation only.

    Ratios (precision = E): ``target qchisq(alpha/2, 2E)/(2E)`` and
    ``target qchisq(1 - alpha/2, 2E + 2)/(2E)`` (FunnelPlotR ``calculate_limits``).
    Proportions (precision = n): ``target -/+ z sqrt(target (1 - target) / n)`` clipped to
    [0, 1], PHE's inverted Wilson limits.
    """
    e = np.asarray(precision, dtype=float)
    alpha = 1.0 - level
    with np.errstate(divide="ignore", invalid="ignore"):
        if data_type == "ratio":
            safe = np.where(e > 0, e, 1.0)
            lower = target * stats.chi2.ppf(alpha / 2, 2 * safe) / (2 * safe)
            upper = target * stats.chi2.ppf(1 - alpha / 2, 2 * safe + 2) / (2 * safe)
        elif data_type == "proportion":
            half = z_value(level) * np.sqrt(target * (1.0 - target) / np.where(e > 0, e, 1.0))
            lower = np.clip(target - half, 0.0, 1.0)
            upper = np.clip(target + half, 0.0, 1.0)
        else:
            msg = f"data_type must be 'ratio' or 'proportion', got {data_type!r}"
            raise ValueError(msg)
    bad = ~(e > 0)
    return np.where(bad, np.nan, lower), np.where(bad, np.nan, upper)


def adjusted_limits(
    precision: npt.ArrayLike,
    *,
    data_type: DataType = "ratio",
    method: FunnelMethod = "shmi",
    target: float = 1.0,
    level: float = 0.95,
    phi: float = 1.0,
    tau2: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Overdispersion-adjusted funnel limits, back-transformed to the indicator's scale.

    Additive (``"shmi"``, ``"cqc"``): ``y0 -/+ z sqrt(s^2 + tau2)``; multiplicative
    (``"spiegelhalter"``): ``y0 -/+ z sqrt(phi) s``. The caller decides about the phi <= 1
    fallback (:func:`funnel_analysis` does).
    """
    _check_method(data_type, method)
    if method not in PUBLISHED_METHODS:
        msg = f"adjusted_limits is for the published methods ({', '.join(PUBLISHED_METHODS)})"
        raise ValueError(msg)
    e = np.asarray(precision, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        safe = np.where(e > 0, e, np.nan)
        s = (
            1.0 / np.sqrt(safe)
            if (data_type == "ratio" and method == "shmi")
            else (1.0 / (2.0 * np.sqrt(safe)))
        )
    z = z_value(level)
    spread = z * math.sqrt(phi) * s if method == "spiegelhalter" else z * np.sqrt(s**2 + tau2)
    y0 = _target_scale(data_type, method, target)
    lower = _back_transform(data_type, method, y0 - spread)
    upper = _back_transform(data_type, method, y0 + spread)
    return lower, upper


def _check_method(data_type: str, method: str) -> None:
    if data_type not in DATA_TYPES:
        msg = f"data_type must be 'ratio' or 'proportion', got {data_type!r}"
        raise ValueError(msg)
    if method not in METHODS:
        msg = f"method must be one of {', '.join(METHODS)}, got {method!r}"
        raise ValueError(msg)
    if data_type == "proportion" and method == "shmi":
        msg = "the SHMI method is for standardised ratios; use 'cqc' or 'spiegelhalter'"
        raise ValueError(msg)


def shmi_truncation(z: npt.ArrayLike, trim: float) -> np.ndarray:
    """Units kept by SHMI truncation (FunnelPlotR): rank z, drop the top and bottom ``trim``.

    With k = 1/trim and average ranks r of the I z-scores, sp = floor(r k / (I + 1)); a unit is
    kept when 0 < sp < k - 1. ``trim=0`` keeps every unit.
    """
    values = np.asarray(z, dtype=float)
    if trim <= 0:
        return np.ones(values.shape, dtype=bool)
    k = 1.0 / trim
    ranks = stats.rankdata(values, method="average")
    sp = np.floor(ranks * k / (values.size + 1))
    return (sp > 0) & (sp < k - 1)


def winsorise(z: npt.ArrayLike, trim: float) -> np.ndarray:
    """z clipped at its ``trim`` and ``1 - trim`` quantiles (numpy linear = R type 7)."""
    values = np.asarray(z, dtype=float)
    if trim <= 0 or values.size == 0:
        return values.copy()
    low, high = np.quantile(values, [trim, 1.0 - trim])
    return np.clip(values, low, high)


def damping_factor(method: FunnelMethod, trim: float) -> float:
    """E[z^2] after damping, for standard normal z: what damping alone does to phi.

    SHMI truncation keeps the central 1 - 2 trim: 1 - 2 c phi(c) / (1 - 2 trim); winsorising
    at the trim quantiles: (1 - 2 trim) - 2 c phi(c) + 2 trim c^2, with c = Phi^-1(1 - trim).
    At trim = 0.1 these are 0.438 and 0.679: without outliers, damping shrinks phi by that much.
    """
    if trim <= 0:
        return 1.0
    c = float(stats.norm.ppf(1.0 - trim))
    density = float(stats.norm.pdf(c))
    inner = 1.0 - 2.0 * trim
    if method == "shmi":
        return 1.0 - 2.0 * c * density / inner
    return inner - 2.0 * c * density + 2.0 * trim * c * c


def dispersion(z: npt.ArrayLike, s: npt.ArrayLike, *, factor: float = 1.0) -> tuple[float, float]:
    """phi = mean(z^2) / factor and the DerSimonian-Laird tau^2 around the fixed target.

    ``tau2 = max(0, (I phi - (I - 1)) / (sum w - sum w^2 / sum w))`` with w = 1/s^2.
    ``factor`` (1 unless a damping correction is asked for) divides mean(z^2).
    """
    zs = np.asarray(z, dtype=float)
    w = 1.0 / np.asarray(s, dtype=float) ** 2
    count = zs.size
    if count == 0:
        return math.nan, math.nan
    phi = float(np.mean(zs**2)) / factor
    denominator = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    numerator = count * phi - (count - 1)
    if numerator <= 0 or denominator <= 0:
        return phi, 0.0
    return phi, numerator / denominator


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FunnelUnit:
    """One unit on a funnel plot: its indicator, z-scores, limits and outlier status.

    Parameters
    ----------
    unit : Hashable
        Unit identifier.
    observed : float
        O (ratios) or x (proportions).
    precision : float
        E (ratios) or n (proportions): the funnel's x axis.
    value : float
        O/E or x/n.
    z, z_adjusted : float
        z-score on the method's scale, before and after the overdispersion adjustment.
    lower95, upper95, lower998, upper998 : float
        Unadjusted limits at the unit's precision.
    adjusted_lower95, adjusted_upper95, adjusted_lower998, adjusted_upper998 : float
        Overdispersion-adjusted limits (equal to the unadjusted ones after a fallback).
    outlier95, outlier998, adjusted_outlier95, adjusted_outlier998 : {"high", "low", None}
        Status against each pair of limits (inclusive limits).
    label95, label998 : str or None
        Direction-aware reading of the adjusted statuses ("worse", "as expected", "better").
    used_in_dispersion : bool
        False when SHMI truncation dropped the unit from phi and tau^2 (or it has no precision).
    winsorised : bool
        True when its z was clipped for the dispersion estimate.
    zero_count_adjusted : bool
        True when O = 0 and the SHMI scale used half an event for its z-score.

    References
    ----------
    Spiegelhalter (2005), Stat Med 24:1185-1202; FunnelPlotR 0.6.0 ``R/outliers_func.R``.
    """

    unit: Hashable
    observed: float
    precision: float
    value: float
    z: float
    z_adjusted: float
    lower95: float
    upper95: float
    lower998: float
    upper998: float
    adjusted_lower95: float
    adjusted_upper95: float
    adjusted_lower998: float
    adjusted_upper998: float
    outlier95: Status
    outlier998: Status
    adjusted_outlier95: Status
    adjusted_outlier998: Status
    label95: str | None
    label998: str | None
    used_in_dispersion: bool
    winsorised: bool
    zero_count_adjusted: bool

    def limits(self, level: float, *, adjusted: bool = False) -> tuple[float, float]:
        """(lower, upper) at 0.95 or 0.998, unadjusted or adjusted."""
        key = {0.95: "95", 0.998: "998"}.get(level)
        if key is None:
            msg = "funnel rows carry limits at 0.95 and 0.998 only"
            raise ValueError(msg)
        prefix = "adjusted_" if adjusted else ""
        return getattr(self, f"{prefix}lower{key}"), getattr(self, f"{prefix}upper{key}")

    def outlier(self, level: float, *, adjusted: bool = False) -> Status:
        """Outlier status at 0.95 or 0.998."""
        key = {0.95: "95", 0.998: "998"}[level]
        return getattr(self, f"{'adjusted_' if adjusted else ''}outlier{key}")


@dataclass(frozen=True, slots=True)
class FunnelCurves:
    """Limit curves over a grid of precision values, for drawing a funnel plot.

    Parameters
    ----------
    precision : numpy.ndarray
        Grid of E (ratios) or n (proportions).
    target : float
        Centre line.
    lower, upper, adjusted_lower, adjusted_upper : dict
        Limits on the grid, keyed ``"95"`` and ``"99.8"``.
    method : str
        The funnel method (the adjusted curves follow it).
    fallback : bool
        True when the adjusted curves equal the unadjusted ones (phi <= 1).

    References
    ----------
    Spiegelhalter (2005), Stat Med 24:1185-1202.
    """

    precision: np.ndarray
    target: float
    lower: dict[str, np.ndarray]
    upper: dict[str, np.ndarray]
    adjusted_lower: dict[str, np.ndarray]
    adjusted_upper: dict[str, np.ndarray]
    method: str
    fallback: bool


@dataclass(frozen=True, slots=True)
class FunnelResult:
    """A funnel analysis: dispersion estimates, the fallback decision and every unit's row.

    Why: regulators (CQC, NHS Digital's SHMI, PHE Fingertips) publish funnel plots with both
    sampling-only and overdispersion-adjusted limits; a report must say which method, trim,
    phi and tau^2 produced its outlier flags, and whether phi <= 1 forced unadjusted limits.

    Parameters
    ----------
    method : {"random-effects", "shmi", "cqc", "spiegelhalter"}
        Overdispersion method.
    data_type : {"ratio", "proportion"}
        Standardised ratio O/E or proportion x/n.
    adjustment : {"additive", "multiplicative", "predictive"}
        How the dispersion widens the limits (tau^2, phi, or the random-effects predictive
        distribution).
    trim : float
        Truncation (SHMI) or winsorising (others) fraction.
    target : float
        Centre line: 1 for ratios (unless given), sum x / sum n for proportions.
    phi : float
        Mean squared (winsorised or truncated) z-score.
    tau2 : float
        Published methods: additive between-unit variance on the transformed scale
        (DerSimonian-Laird moments). ``"random-effects"``: ML between-member variance of the
        true relative risk (ratios) or proportion (proportions).
    n_used : int
        Units used to estimate phi and tau^2.
    overdispersion_pvalue : float
        P(chi2_I >= I phi): small values indicate overdispersion.
    fallback : bool
        True when phi <= 1 and the adjusted limits are the unadjusted ones.
    shmi_rounding : bool
        True when E was rounded to 2 dp first (NHS Digital SHMI compatibility).
    improvement : {"increase", "decrease", None}
        Direction of improvement used for the labels.
    rows : tuple of FunnelUnit
        One row per unit, in input order.
    note : str
        Plain-language statement of the method and any fallback, for reports.
    damping_factor : float
        What mean(z^2) was divided by (1 unless ``damping_correction`` was asked for).

    References
    ----------
    Spiegelhalter DJ (2005), Stat Med 24:1185-1202 and Qual Saf Health Care 14:347-351;
    FunnelPlotR 0.6.0; NHS Digital SHMI methodology; PHEindicatormethods ``R/Funnels.R``.
    """

    method: str
    data_type: str
    adjustment: str
    trim: float
    target: float
    phi: float
    tau2: float
    n_used: int
    overdispersion_pvalue: float
    fallback: bool
    shmi_rounding: bool
    improvement: str | None
    rows: tuple[FunnelUnit, ...]
    note: str
    damping_factor: float = 1.0

    def to_frame(self) -> pd.DataFrame:
        """One row per unit, one column per field of :class:`FunnelUnit`."""
        names = FunnelUnit.__dataclass_fields__
        return pd.DataFrame([{n: getattr(r, n) for n in names} for r in self.rows])

    def limits_at(
        self, precision: npt.ArrayLike, *, level: float, adjusted: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decision limits of this funnel at any precision (E or n): what decided the flags."""
        return _decision_limits(
            np.asarray(precision, dtype=float),
            data_type="ratio" if self.data_type == "ratio" else "proportion",
            method=self.method,  # type: ignore[arg-type]
            target=self.target,
            level=level,
            adjusted=adjusted and not self.fallback,
            phi=self.phi,
            tau2=self.tau2,
        )

    def curves(
        self, precision: npt.ArrayLike | None = None, *, n_points: int = 200
    ) -> FunnelCurves:
        """Limit curves on a grid (default: log-spaced over the units' precision range)."""
        if precision is None:
            values = np.array([r.precision for r in self.rows if r.precision > 0], dtype=float)
            if values.size == 0:
                msg = "no unit has a positive precision"
                raise ValueError(msg)
            low = max(values.min() * 0.8, 1e-3 if self.data_type == "ratio" else 1.0)
            grid = np.geomspace(low, values.max() * 1.1, n_points)
        else:
            grid = np.asarray(precision, dtype=float)
        lower, upper, adj_lower, adj_upper = {}, {}, {}, {}
        for level in LEVELS:
            key = level_key(level)
            lower[key], upper[key] = self.limits_at(grid, level=level, adjusted=False)
            adj_lower[key], adj_upper[key] = self.limits_at(grid, level=level, adjusted=True)
        return FunnelCurves(
            grid, self.target, lower, upper, adj_lower, adj_upper, self.method, self.fallback
        )


def funnel_analysis(
    observed: npt.ArrayLike,
    precision: npt.ArrayLike,
    *,
    units: Sequence[Hashable] | np.ndarray | pd.Series | None = None,
    data_type: DataType = "ratio",
    method: FunnelMethod | None = None,
    trim: float = 0.1,
    target: float | None = None,
    shmi_rounding: bool = False,
    improvement: Improvement | None = None,
    damping_correction: bool = False,
) -> FunnelResult:
    """Funnel limits, overdispersion estimates and outlier flags for every unit.

    Parameters
    ----------
    observed : array_like
        O (ratios) or the numerator x (proportions), one per unit (aggregate first with
        :func:`aggregate_units` if the data have several rows per unit).
    precision : array_like
        E (ratios) or the denominator n (proportions).
    units : sequence, optional
        Unit identifiers (default 0..I-1).
    data_type : {"ratio", "proportion"}
        What the indicator is.
    method : {"random-effects", "shmi", "cqc", "spiegelhalter"}, optional
        Default ``"random-effects"`` (:data:`DEFAULT_METHOD`, calibrated; see METHODS above);
        the published variants stay selectable.
    trim : float
        SHMI truncation or winsorising fraction, in [0, 0.5) (published methods only).
    target : float, optional
        Ratios: 1 by default. Proportions: sum x / sum n by default.
    shmi_rounding : bool
        Round E to 2 dp before anything else, as NHS Digital's SHMI does (ratios only).
    improvement : {"increase", "decrease"}, optional
        Direction of improvement, for the worse/better labels.
    damping_correction : bool
        Divide phi by :func:`damping_factor` so that, without outliers, truncation or
        winsorising does not shrink phi and tau^2 (not in FunnelPlotR or the SHMI; off by
        default so that published values are reproduced).

    Returns
    -------
    FunnelResult
    """
    if method is None:
        method = DEFAULT_METHOD
    _check_method(data_type, method)
    if not 0.0 <= trim < 0.5:
        msg = f"trim must be in [0, 0.5), got {trim!r}"
        raise ValueError(msg)
    obs = np.asarray(observed, dtype=float)
    prec = np.asarray(precision, dtype=float)
    if obs.shape != prec.shape or obs.ndim != 1:
        msg = "observed and precision must be 1-d arrays of the same length"
        raise ValueError(msg)
    if np.any(~np.isfinite(obs)) or np.any(~np.isfinite(prec)):
        msg = "observed and precision must be finite numbers"
        raise ValueError(msg)
    if np.any(obs < 0) or np.any(prec < 0):
        msg = "observed and precision must be non-negative"
        raise ValueError(msg)
    if data_type == "proportion" and np.any(obs > prec):
        msg = "a numerator exceeds its denominator"
        raise ValueError(msg)
    if shmi_rounding and data_type == "ratio":
        prec = np.round(prec, 2)
    labels = np.arange(obs.size) if units is None else np.asarray(units, dtype=object)
    if labels.shape != obs.shape:
        msg = "units must have one label per value"
        raise ValueError(msg)

    valid = prec > 0
    if data_type == "proportion":
        tgt = float(obs[valid].sum() / prec[valid].sum()) if target is None else float(target)
        if not 0.0 < tgt < 1.0:
            msg = "the proportion target must be strictly between 0 and 1"
            raise ValueError(msg)
    else:
        tgt = 1.0 if target is None else float(target)
        if tgt <= 0:
            msg = "the ratio target must be positive"
            raise ValueError(msg)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(valid, obs / np.where(valid, prec, 1.0), np.nan)
    if method == "random-effects":
        fit = _random_effects(obs, prec, valid, data_type, tgt)
        z, z_adj, phi, tau2 = fit.z, fit.z_adjusted, fit.phi, fit.tau2
        keep_v, winsorised_v, factor = fit.used[valid], np.zeros(int(valid.sum()), bool), 1.0
        n_used = int(keep_v.sum())
        fallback = not tau2 > 0
    else:
        y, s = _transform(data_type, method, value, prec)
        y0 = _target_scale(data_type, method, tgt)
        z = np.where(valid, (y - y0) / s, np.nan)
        zv, sv = z[valid], s[valid]
        if method == "shmi":
            keep_v = shmi_truncation(zv, trim)
            z_used, s_used = zv[keep_v], sv[keep_v]
            winsorised_v = np.zeros(zv.shape, dtype=bool)
        else:
            keep_v = np.ones(zv.shape, dtype=bool)
            z_used = winsorise(zv, trim)
            winsorised_v = z_used != zv
            s_used = sv
        factor = damping_factor(method, trim) if damping_correction else 1.0
        phi, tau2 = dispersion(z_used, s_used, factor=factor)
        n_used = int(z_used.size)
        fallback = not (phi > 1.0)
        if fallback:
            z_adj = z.copy()
        elif method == "spiegelhalter":
            z_adj = z / math.sqrt(phi)
        else:
            z_adj = np.where(valid, (y - y0) / np.sqrt(s**2 + tau2), np.nan)
    n_tested = n_used if method != "random-effects" else int(valid.sum())
    pvalue = float(stats.chi2.sf(n_tested * phi, n_tested)) if n_tested else math.nan
    adjustment = {"spiegelhalter": "multiplicative", "random-effects": "predictive"}.get(
        method, "additive"
    )

    limits: dict[tuple[float, bool], tuple[np.ndarray, np.ndarray]] = {}
    for level in LEVELS:
        for adjusted in (False, True):
            limits[level, adjusted] = _decision_limits(
                prec,
                data_type=data_type,
                method=method,
                target=tgt,
                level=level,
                adjusted=adjusted and not fallback,
                phi=phi,
                tau2=tau2,
            )
    status = {key: outlier_status(value, low, high) for key, (low, high) in limits.items()}
    used = np.zeros(obs.shape, dtype=bool)
    used[valid] = keep_v
    winsorised = np.zeros(obs.shape, dtype=bool)
    winsorised[valid] = winsorised_v
    zero_adjusted = (data_type == "ratio") & (method == "shmi") & valid & (obs == 0)

    rows = tuple(
        FunnelUnit(
            unit=_plain(labels[i]),
            observed=float(obs[i]),
            precision=float(prec[i]),
            value=float(value[i]),
            z=float(z[i]),
            z_adjusted=float(z_adj[i]),
            lower95=float(limits[0.95, False][0][i]),
            upper95=float(limits[0.95, False][1][i]),
            lower998=float(limits[0.998, False][0][i]),
            upper998=float(limits[0.998, False][1][i]),
            adjusted_lower95=float(limits[0.95, True][0][i]),
            adjusted_upper95=float(limits[0.95, True][1][i]),
            adjusted_lower998=float(limits[0.998, True][0][i]),
            adjusted_upper998=float(limits[0.998, True][1][i]),
            outlier95=status[0.95, False][i],
            outlier998=status[0.998, False][i],
            adjusted_outlier95=status[0.95, True][i],
            adjusted_outlier998=status[0.998, True][i],
            label95=performance_label(status[0.95, True][i], improvement),
            label998=performance_label(status[0.998, True][i], improvement),
            used_in_dispersion=bool(used[i]),
            winsorised=bool(winsorised[i]),
            zero_count_adjusted=bool(zero_adjusted[i]),
        )
        for i in range(obs.size)
    )
    return FunnelResult(
        method=method,
        data_type=data_type,
        adjustment=adjustment,
        trim=0.0 if method == "random-effects" else float(trim),
        target=tgt,
        phi=phi,
        tau2=tau2,
        n_used=n_used,
        overdispersion_pvalue=pvalue,
        fallback=fallback,
        shmi_rounding=bool(shmi_rounding and data_type == "ratio"),
        improvement=improvement,
        rows=rows,
        note=_note(method, data_type, trim, phi, tau2, n_used, fallback)
        + (f" phi corrected for damping (divided by {factor:.4f})." if factor != 1.0 else ""),
        damping_factor=factor,
    )


def _decision_limits(
    precision: np.ndarray,
    *,
    data_type: DataType,
    method: FunnelMethod,
    target: float,
    level: float,
    adjusted: bool,
    phi: float,
    tau2: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The limits that decide a flag: exact tails, widened (never narrowed) by an adjustment."""
    exact = exact_tails.count_limits(precision, data_type=data_type, target=target, level=level)
    if not adjusted:
        return exact
    if method == "random-effects":
        predictive = exact_tails.count_limits(
            precision,
            data_type=data_type,
            target=target,
            level=level,
            dispersion=_predictive_dispersion(data_type, target, tau2),
        )
        return exact_tails.widest(exact, predictive)
    published = adjusted_limits(
        precision,
        data_type=data_type,
        method=method,
        target=target,
        level=level,
        phi=phi,
        tau2=tau2,
    )
    return exact_tails.widest(exact, published)


def _predictive_dispersion(data_type: str, target: float, tau2: float) -> float:
    """tau2 (variance of theta) for ratios; rho = Var(p) / (p0 (1 - p0)) for proportions."""
    if data_type == "ratio":
        return tau2
    return tau2 / (target * (1.0 - target))


@dataclass(frozen=True, slots=True)
class _RandomEffectsFit:
    tau2: float
    phi: float
    z: np.ndarray
    z_adjusted: np.ndarray
    used: np.ndarray


def _ml_dispersion(
    observed: np.ndarray, precision: np.ndarray, data_type: str, target: float
) -> float:
    """ML of tau2 (ratios, gamma-Poisson) or rho (proportions, beta-binomial), mean fixed."""
    if observed.size < 2:
        return 0.0
    if data_type == "ratio":
        mean = target * precision

        def loglik(log_d: float) -> float:
            return exact_tails.gamma_poisson_loglik(math.exp(log_d), observed, mean)

        zero = exact_tails.gamma_poisson_loglik(0.0, observed, mean)
    else:
        n = np.round(precision)

        def loglik(log_d: float) -> float:
            return exact_tails.beta_binomial_loglik(math.exp(log_d), observed, n, target)

        zero = exact_tails.beta_binomial_loglik(0.0, observed, n, target)
    bounds = (math.log(1e-8), math.log(10.0 if data_type == "ratio" else 0.99))
    found = optimize.minimize_scalar(
        lambda v: -loglik(v), bounds=bounds, method="bounded", options={"xatol": 1e-6}
    )
    if not found.success or -found.fun <= zero:
        return 0.0
    estimate = math.exp(float(found.x))
    return estimate if estimate > 1e-7 else 0.0


def _random_effects(
    observed: np.ndarray, precision: np.ndarray, valid: np.ndarray, data_type: str, target: float
) -> _RandomEffectsFit:
    """Between-member dispersion by ML, iterated with the members flagged at 99.8% left out."""
    dtype: DataType = "ratio" if data_type == "ratio" else "proportion"
    used = valid.copy()
    dispersion_ = 0.0
    for _ in range(RANDOM_EFFECTS_ROUNDS):
        dispersion_ = _ml_dispersion(observed[used], precision[used], dtype, target)
        low, high = exact_tails.count_quantiles(
            precision, data_type=dtype, target=target, level=0.998, dispersion=dispersion_
        )
        flagged = valid & ((observed < low) | (observed > high))
        if np.array_equal(~flagged & valid, used):
            break
        used = ~flagged & valid
    if dtype == "ratio":
        mean = target * precision
        variance = mean
        tau2 = dispersion_
        predictive = mean + tau2 * mean**2
    else:
        n = np.round(precision)
        mean = n * target
        variance = n * target * (1 - target)
        tau2 = dispersion_ * target * (1 - target)
        predictive = variance * (1 + (n - 1) * dispersion_)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(valid & (variance > 0), (observed - mean) / np.sqrt(variance), np.nan)
        z_adjusted = np.where(
            valid & (predictive > 0), (observed - mean) / np.sqrt(predictive), np.nan
        )
    finite = z[np.isfinite(z)]
    phi = float(np.mean(finite**2)) if finite.size else math.nan
    return _RandomEffectsFit(tau2, phi, z, z_adjusted, used)


def _plain(label: object) -> Hashable:
    """NumPy scalars as Python scalars, so results serialise cleanly."""
    return label.item() if isinstance(label, np.generic) else label  # type: ignore[return-value]


def _note(  # noqa: PLR0917 - private, one call
    method: str, data_type: str, trim: float, phi: float, tau2: float, used: int, fallback: bool
) -> str:
    if method == "random-effects":
        model = "gamma-Poisson" if data_type == "ratio" else "beta-binomial"
        what = "relative risk" if data_type == "ratio" else "proportion"
        text = (
            f"Overdispersion: random-effects ({model}) predictive limits; between-member "
            f"variance of the true {what} {tau2:.6f} (SD {math.sqrt(tau2):.4f}) by maximum "
            f"likelihood from {used} members (members flagged at 99.8% left out); flags by "
            f"exact tails; Pearson phi = {phi:.4f}."
        )
        if fallback:
            text += " No variation beyond chance: the adjusted limits are the unadjusted ones."
        return text
    scale = {
        ("ratio", "shmi"): "log scale, SHMI truncation of the top and bottom",
        ("ratio", "cqc"): "square-root scale, z winsorised at",
        ("ratio", "spiegelhalter"): "square-root scale, z winsorised at",
        ("proportion", "cqc"): "arcsine scale, z winsorised at",
        ("proportion", "spiegelhalter"): "arcsine scale, z winsorised at",
    }[data_type, method]
    how = "multiplicative (phi)" if method == "spiegelhalter" else "additive (tau^2)"
    text = (
        f"Overdispersion: {how} adjustment on the {scale} {trim:.0%}; "
        f"phi = {phi:.4f}, tau^2 = {tau2:.6f} from {used} units."
    )
    if fallback:
        text += " phi <= 1: no overdispersion, so the adjusted limits are the unadjusted ones."
    return text


# --- PHE / Fingertips funnels ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignificanceBands:
    """PHE Fingertips significance bands for each unit of a funnel.

    Parameters
    ----------
    method : str
        ``"phe-proportion-wilson"`` or ``"phe-ratio-exact-poisson"``.
    baseline : float
        Target: sum x / sum n for proportions, 1 for ratios.
    value : numpy.ndarray
        x/n or O/E per unit.
    bands : tuple of str
        ``"High (0.001)"``, ``"High (0.025)"``, ``"Low (0.025)"``, ``"Low (0.001)"`` or
        ``"Not significant"``.
    lower95, upper95, lower998, upper998 : numpy.ndarray
        Proportions: the funnel limits at each unit's n. Ratios: the unit's exact Poisson
        interval for O/E (significant when it excludes 1).

    References
    ----------
    PHEindicatormethods ``R/Funnels.R`` (``phe_funnel_significance``, ``sigma_adjustment``).
    """

    method: str
    baseline: float
    value: np.ndarray
    bands: tuple[str, ...]
    lower95: np.ndarray
    upper95: np.ndarray
    lower998: np.ndarray
    upper998: np.ndarray


def _bands(
    high3: np.ndarray, high2: np.ndarray, low3: np.ndarray, low2: np.ndarray
) -> tuple[str, ...]:
    out = np.select(
        [high3, high2, low3, low2],
        ["High (0.001)", "High (0.025)", "Low (0.001)", "Low (0.025)"],
        default="Not significant",
    )
    return tuple(str(b) for b in out)


def phe_proportion_limits(
    population: npt.ArrayLike, baseline: float, *, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """PHE's proportion funnel limits at each population size (proportion scale).

    The limit at n is the proportion whose Wilson score interval at n just touches the
    baseline a, which is ``a -/+ z sqrt(a (1 - a) / n)``, clipped to [0, 1].
    """
    return unadjusted_limits(population, data_type="proportion", target=baseline, level=level)


def phe_proportion_funnel(
    numerator: npt.ArrayLike, denominator: npt.ArrayLike
) -> SignificanceBands:
    """PHE significance bands for proportions against the pooled baseline sum x / sum n."""
    x = np.asarray(numerator, dtype=float)
    n = np.asarray(denominator, dtype=float)
    if np.any(n <= 0):
        msg = "every denominator must be positive"
        raise ValueError(msg)
    baseline = float(x.sum() / n.sum())
    p = x / n
    l2, u2 = phe_proportion_limits(n, baseline, level=0.95)
    l3, u3 = phe_proportion_limits(n, baseline, level=0.998)
    bands = _bands(p > u3, p > u2, p < l3, p < l2)
    return SignificanceBands("phe-proportion-wilson", baseline, p, bands, l2, u2, l3, u3)


def phe_ratio_significance(observed: npt.ArrayLike, expected: npt.ArrayLike) -> SignificanceBands:
    """PHE significance bands for O/E: exact Poisson intervals of O/E compared with 1.

    High (0.001) when the 99.8% lower limit exceeds 1, High (0.025) when the 95% lower limit
    does; Low (0.001) / Low (0.025) when the upper limit is below 1.
    """
    o = np.asarray(observed, dtype=float)
    e = np.asarray(expected, dtype=float)
    l2, u2 = exact_poisson_interval(o, e, level=0.95)
    l3, u3 = exact_poisson_interval(o, e, level=0.998)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(e > 0, o / np.where(e > 0, e, 1.0), np.nan)
    bands = _bands(l3 > 1, l2 > 1, u3 < 1, u2 < 1)
    return SignificanceBands("phe-ratio-exact-poisson", 1.0, value, bands, l2, u2, l3, u3)


@dataclass(frozen=True, slots=True)
class PheRatioFunnelTable:
    """The expected counts at which each observed count sits on PHE's ratio funnel limits.

    For an observed count O, ``lower_expected[level]`` is the E at which O/E is on the lower
    limit (E = chi2_{1-alpha/2}(2(O+1))/2) and ``upper_expected[level]`` the E at which it is on
    the upper limit (E = chi2_{alpha/2}(2O)/2). The limit itself is O/E; PHE's "count" form is
    O/E - 1 and its "isr" form 100 O/E.

    Parameters
    ----------
    method : str
        ``"phe-ratio-exact-poisson"``.
    observed : numpy.ndarray
        Observed counts.
    lower_expected, upper_expected : dict
        Keyed ``"95"`` and ``"99.8"``.

    References
    ----------
    PHEindicatormethods ``R/Funnels.R`` (``phe_funnel_convert_to_plot``, ratio type).
    """

    method: str
    observed: np.ndarray
    lower_expected: dict[str, np.ndarray]
    upper_expected: dict[str, np.ndarray]

    def limit(self, level: float, side: Literal["lower", "upper"]) -> np.ndarray:
        """O/E on the given limit at each observed count."""
        table = self.lower_expected if side == "lower" else self.upper_expected
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.observed / table[level_key(level)]


def phe_ratio_funnel_table(observed: npt.ArrayLike) -> PheRatioFunnelTable:
    """PHE's ratio funnel limit table for a sequence of observed counts (see the class)."""
    o = np.asarray(observed, dtype=float)
    lower: dict[str, np.ndarray] = {}
    upper: dict[str, np.ndarray] = {}
    for level in LEVELS:
        alpha = 1.0 - level
        lower[level_key(level)] = stats.chi2.ppf(1 - alpha / 2, 2 * (o + 1)) / 2
        upper[level_key(level)] = np.where(
            o > 0, stats.chi2.ppf(alpha / 2, 2 * np.where(o > 0, o, 1.0)) / 2, 0.0
        )
    return PheRatioFunnelTable("phe-ratio-exact-poisson", o, lower, upper)


__all__ = [
    "PHE_BANDS",
    "FunnelCurves",
    "FunnelResult",
    "FunnelUnit",
    "PheRatioFunnelTable",
    "SignificanceBands",
    "adjusted_limits",
    "aggregate_units",
    "dispersion",
    "funnel_analysis",
    "outlier_status",
    "performance_label",
    "phe_proportion_funnel",
    "phe_proportion_limits",
    "phe_ratio_funnel_table",
    "phe_ratio_significance",
    "shmi_truncation",
    "unadjusted_limits",
    "winsorise",
]
