"""Indirect standardisation: O, E, O/E with intervals, risk-adjusted rates, AHRQ smoothing.

Every programme in METHODS.md part A shares one skeleton: per-patient expected values p_i from a
risk model, then per unit O = sum y_i, E = sum p_i, the standardised ratio O/E, and the
risk-adjusted (indirectly standardised) rate O/E x the reference rate. This module provides

- :func:`ratio_estimates` for counts already aggregated per unit (and period);
- :func:`indirect_standardisation` for patient-level rows with an expected column;
- :func:`isr_by_strata`, PHE's stratum-based ``calculate_ISRatio`` (E = sum_k n_jk X_k / N_k);
- :func:`ahrq_smoothed_rates` and :func:`ahrq_from_patients`, the AHRQ QI reliability-weighted
  (smoothed) rate, steps 1-7 of METHODS 2.1.

O/E intervals follow PHE's rule: exact Poisson below 10 events, Byar otherwise, at 95% and
99.8%, with E treated as fixed.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from qicollab.stats.intervals import ratio_interval, ratio_interval_method, z_value

_PHE_RULE = "exact Poisson when O < 10, Byar otherwise (PHEindicatormethods calculate_ISRatio)"


@dataclass(frozen=True, slots=True)
class RatioEstimate:
    """One unit's (or unit-period's) observed, expected and standardised ratio with intervals.

    Why: O/E is the common currency of risk-adjusted benchmarking; the exact/Byar intervals
    at 95% and 99.8% are the ones PHE publishes and the collaborative's warning/alarm levels.

    Parameters
    ----------
    unit : Hashable
        Unit identifier.
    period : Hashable or None
        Period identifier, when the estimates are per unit x period.
    observed, expected : float
        O and E.
    n : float or None
        Number of patients (or the denominator) behind O, when known.
    ratio : float
        O/E (``nan`` when E = 0).
    lower95, upper95, lower998, upper998 : float
        Interval for O/E at 95% and 99.8%.
    interval_method : {"exact", "byar"}
        Which interval PHE's rule used for this O.
    reference_rate : float or None
        Reference (collaborative) rate used for the risk-adjusted rate.
    rate, rate_lower95, rate_upper95, rate_lower998, rate_upper998 : float or None
        Risk-adjusted rate O/E x reference rate and its interval (``None`` without a
        reference rate).
    method : str
        ``"indirect standardisation"``.

    References
    ----------
    Breslow NE, Day NE (1987), Statistical Methods in Cancer Research II, IARC; PHEindicatormethods
    ``R/ISRatio.R``; NBOCA worked example of risk adjustment (nboca.org.uk FAQ).
    """

    unit: Hashable
    period: Hashable | None
    observed: float
    expected: float
    n: float | None
    ratio: float
    lower95: float
    upper95: float
    lower998: float
    upper998: float
    interval_method: str
    reference_rate: float | None
    rate: float | None
    rate_lower95: float | None
    rate_upper95: float | None
    rate_lower998: float | None
    rate_upper998: float | None
    method: str = "indirect standardisation"

    def interval(self, level: float) -> tuple[float, float]:
        """O/E interval at 0.95 or 0.998."""
        if level == 0.95:
            return self.lower95, self.upper95
        if level == 0.998:
            return self.lower998, self.upper998
        msg = "ratio estimates carry intervals at 0.95 and 0.998 only"
        raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class StandardisationResult:
    """Ratio estimates for every unit (or unit x period) of a collaborative.

    Parameters
    ----------
    method : str
        ``"indirect standardisation"`` (model-based) or ``"indirect standardisation by
        strata"`` (PHE ISR).
    interval_rule : str
        How the O/E intervals were chosen.
    reference_rate : float or None
        The reference rate the risk-adjusted rates use.
    estimates : tuple of RatioEstimate
        In order of first appearance of each unit (and period).

    References
    ----------
    PHEindicatormethods ``calculate_ISRatio``; METHODS.md part A section 1.1.
    """

    method: str
    interval_rule: str
    reference_rate: float | None
    estimates: tuple[RatioEstimate, ...]

    def to_frame(self) -> pd.DataFrame:
        """One row per estimate, one column per field."""
        names = RatioEstimate.__dataclass_fields__
        return pd.DataFrame([{n: getattr(e, n) for n in names} for e in self.estimates])

    def get(self, unit: Hashable, period: Hashable | None = None) -> RatioEstimate:
        """The estimate of one unit (and period)."""
        for estimate in self.estimates:
            if estimate.unit == unit and estimate.period == period:
                return estimate
        msg = f"no estimate for unit {unit!r}, period {period!r}"
        raise KeyError(msg)


def _opt(value: float, ok: bool) -> float | None:
    return float(value) if ok else None


def ratio_estimates(
    units: Sequence[Hashable] | np.ndarray | pd.Series,
    observed: npt.ArrayLike,
    expected: npt.ArrayLike,
    *,
    n: npt.ArrayLike | None = None,
    periods: Sequence[Hashable] | np.ndarray | pd.Series | None = None,
    reference_rate: float | None = None,
    exact_below: float = 10,
    method: str = "indirect standardisation",
) -> StandardisationResult:
    """O/E with PHE-rule intervals and risk-adjusted rates, from per-unit O and E.

    Parameters
    ----------
    units : sequence
        Unit identifiers, one per row.
    observed, expected : array_like
        O and E per row (E > 0 for a defined ratio).
    n : array_like, optional
        Patients (denominator) per row.
    periods : sequence, optional
        Period per row.
    reference_rate : float, optional
        Collaborative (reference) rate; the risk-adjusted rate is O/E x this rate.
    exact_below : float
        PHE rule threshold (exact Poisson interval when O is below it).
    """
    o = np.asarray(observed, dtype=float)
    e = np.asarray(expected, dtype=float)
    if o.shape != e.shape or o.ndim != 1:
        msg = "observed and expected must be 1-d arrays of equal length"
        raise ValueError(msg)
    if np.any(~np.isfinite(o)) or np.any(~np.isfinite(e)) or np.any(o < 0) or np.any(e < 0):
        msg = "observed and expected must be finite and non-negative"
        raise ValueError(msg)
    labels = np.asarray(units, dtype=object)
    per = None if periods is None else np.asarray(periods, dtype=object)
    counts = None if n is None else np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(e > 0, o / np.where(e > 0, e, 1.0), np.nan)
    l95, u95 = ratio_interval(o, e, level=0.95, exact_below=exact_below)
    l998, u998 = ratio_interval(o, e, level=0.998, exact_below=exact_below)
    which = ratio_interval_method(o, exact_below=exact_below)
    has_ref = reference_rate is not None
    ref = float(reference_rate) if reference_rate is not None else math.nan
    estimates = tuple(
        RatioEstimate(
            unit=_plain(labels[i]),
            period=None if per is None else _plain(per[i]),
            observed=float(o[i]),
            expected=float(e[i]),
            n=None if counts is None else float(counts[i]),
            ratio=float(ratio[i]),
            lower95=float(l95[i]),
            upper95=float(u95[i]),
            lower998=float(l998[i]),
            upper998=float(u998[i]),
            interval_method=str(which[i]),
            reference_rate=ref if has_ref else None,
            rate=_opt(ratio[i] * ref, has_ref),
            rate_lower95=_opt(l95[i] * ref, has_ref),
            rate_upper95=_opt(u95[i] * ref, has_ref),
            rate_lower998=_opt(l998[i] * ref, has_ref),
            rate_upper998=_opt(u998[i] * ref, has_ref),
            method=method,
        )
        for i in range(o.size)
    )
    return StandardisationResult(method, _PHE_RULE, ref if has_ref else None, estimates)


def _plain(label: object) -> Hashable:
    return label.item() if isinstance(label, np.generic) else label  # type: ignore[return-value]


def indirect_standardisation(
    frame: pd.DataFrame,
    *,
    unit: str,
    outcome: str,
    expected: str,
    period: str | None = None,
    reference_rate: float | None = None,
) -> StandardisationResult:
    """Model-based indirect standardisation of patient-level rows.

    O = sum of ``outcome``, E = sum of ``expected`` (the model's p_i), n = rows, per unit (and
    per unit x period when ``period`` is given). The reference rate defaults to the
    collaborative's crude rate over all rows, sum(outcome) / rows.
    """
    missing = [c for c in (unit, outcome, expected, period) if c and c not in frame.columns]
    if missing:
        msg = f"missing columns: {', '.join(missing)}"
        raise KeyError(msg)
    keys = [unit] if period is None else [unit, period]
    if frame[[*keys, outcome, expected]].isna().to_numpy().any():
        msg = "unit, period, outcome and expected must not have missing values"
        raise ValueError(msg)
    grouped = frame.groupby(keys, sort=False).agg(
        observed=(outcome, "sum"), expected=(expected, "sum"), n=(outcome, "size")
    )
    if reference_rate is None:
        reference_rate = float(frame[outcome].sum() / len(frame)) if len(frame) else math.nan
    index = grouped.index
    units = index.get_level_values(0) if period is not None else index
    periods = index.get_level_values(1) if period is not None else None
    return ratio_estimates(
        units.to_numpy(dtype=object),
        grouped["observed"].to_numpy(float),
        grouped["expected"].to_numpy(float),
        n=grouped["n"].to_numpy(float),
        periods=None if periods is None else periods.to_numpy(dtype=object),
        reference_rate=reference_rate,
    )


def isr_by_strata(
    frame: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    unit: str,
    stratum: str,
    count: str,
    population: str,
    ref_stratum: str | None = None,
    ref_count: str = "refcount",
    ref_population: str = "refpop",
    observed_totals: Mapping[Hashable, float] | None = None,
) -> StandardisationResult:
    """Stratum-based indirectly standardised ratio, as PHE's ``calculate_ISRatio``.

    E_j = sum_k n_jk X_k / N_k over the strata k, with the reference counts X_k and populations
    N_k; a missing reference count is 0 (PHE's convention), a missing reference population is
    an error. O_j = sum_k of the unit's counts, or ``observed_totals[unit]`` when given (PHE's
    ``observed_totals`` lookup). The reference rate is sum X_k / sum N_k, so
    ``rate`` = ISR x reference rate is PHE's indirectly standardised rate (per person; multiply
    by 100,000 for "per 100,000"); ``ratio`` x 100 is PHE's "ratio x 100".

    References
    ----------
    PHEindicatormethods ``R/ISRatio.R``; Breslow & Day (1987), vol. II ch. 2.
    """
    ref_key = ref_stratum or stratum
    ref = reference[[ref_key, ref_count, ref_population]].copy()
    if ref[ref_key].duplicated().any():
        msg = "the reference table has a stratum more than once"
        raise ValueError(msg)
    if ref[ref_population].isna().any() or (ref[ref_population] <= 0).any():
        msg = "every reference stratum needs a positive population"
        raise ValueError(msg)
    ref[ref_count] = ref[ref_count].fillna(0.0)
    rates = pd.Series(
        ref[ref_count].to_numpy(float) / ref[ref_population].to_numpy(float),
        index=ref[ref_key].to_numpy(),
    )
    unknown = set(frame[stratum].unique()) - set(rates.index)
    if unknown:
        msg = f"strata without a reference rate: {sorted(map(str, unknown))}"
        raise ValueError(msg)
    work = pd.DataFrame(
        {
            "unit": frame[unit].to_numpy(),
            "expected": frame[population].to_numpy(float)
            * rates.loc[frame[stratum].to_numpy()].to_numpy(),
            "observed": frame[count].fillna(0.0).to_numpy(float),
        }
    )
    grouped = work.groupby("unit", sort=False)[["observed", "expected"]].sum()
    observed = grouped["observed"]
    if observed_totals is not None:
        observed = pd.Series([float(observed_totals[u]) for u in grouped.index], grouped.index)
    reference_rate = float(ref[ref_count].sum() / ref[ref_population].sum())
    return ratio_estimates(
        grouped.index.to_numpy(dtype=object),
        observed.to_numpy(float),
        grouped["expected"].to_numpy(float),
        n=frame.groupby(unit, sort=False)[population].sum().to_numpy(float),
        reference_rate=reference_rate,
        method="indirect standardisation by strata",
    )


# --- AHRQ QI reliability-weighted rates --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AhrqEstimate:
    """One hospital's AHRQ QI risk-adjusted and smoothed rate (METHODS 2.1 steps 2-7).

    Parameters
    ----------
    unit : Hashable
        Unit identifier.
    n, observed : float
        Denominator N and observed events T.
    expected_sum, phat_sum : float
        sum EHAT and sum EHAT (1 - EHAT) over the unit's discharges.
    observed_rate, expected_rate : float
        T/N and sum EHAT / N.
    risk_adjusted_rate : float
        RAR = (O_r / E_r) P3.
    se, variance : float
        SE(RAR) = (P3 / E_r)(1/N) sqrt(sum PHAT) and its square V.
    lower, upper : float
        RAR -/+ z SE, the lower truncated at 0.
    reliability : float
        R = P2 / (P2 + V).
    smoothed_rate, smoothed_se : float
        S = R RAR + (1 - R) P3 and SE(S) = sqrt(P2 (1 - R)).

    References
    ----------
    AHRQ Quality Indicators SAS QI v2024, ``IQI/Programs/IQI_HOSP_RISKADJ.SAS``; AHRQ/Battelle,
    Quality Indicator Empirical Methods (2011).
    """

    unit: Hashable
    n: float
    observed: float
    expected_sum: float
    phat_sum: float
    observed_rate: float
    expected_rate: float
    risk_adjusted_rate: float
    se: float
    variance: float
    lower: float
    upper: float
    reliability: float
    smoothed_rate: float
    smoothed_se: float


@dataclass(frozen=True, slots=True)
class AhrqResult:
    """AHRQ-style reliability-weighted rates for every unit.

    Why: shrinking each hospital's risk-adjusted rate towards the reference rate in proportion
    to its unreliability keeps small hospitals from topping or tailing a league table by
    chance, the approach of the AHRQ Quality Indicators.

    Parameters
    ----------
    method : str
        ``"AHRQ QI reliability-weighted (smoothed) rate"``.
    reference_rate : float
        P3, the reference population rate.
    signal_variance : float
        P2, the between-hospital signal variance.
    signal_variance_source : {"given", "method of moments"}
        ``"method of moments"``: P2 = max(0, mean_j((RAR_j - P3)^2 - V_j)) over the units with
        N > 0 (unweighted moments around the reference rate).
    level : float
        Level of the RAR interval.
    calibration : str
        How EHAT was calibrated before aggregation (patient-level input only).
    estimates : tuple of AhrqEstimate
        One per unit.

    References
    ----------
    AHRQ QI SAS v2024 ``IQI_HOSP_RISKADJ.SAS`` and ``IQI_HOSP_Sigvar_Array_v2024.sas``.
    """

    method: str
    reference_rate: float
    signal_variance: float
    signal_variance_source: str
    level: float
    calibration: str
    estimates: tuple[AhrqEstimate, ...]

    def to_frame(self) -> pd.DataFrame:
        """One row per unit."""
        names = AhrqEstimate.__dataclass_fields__
        return pd.DataFrame([{k: getattr(e, k) for k in names} for e in self.estimates])


def ahrq_smoothed_rates(
    units: Sequence[Hashable] | np.ndarray | pd.Series,
    n: npt.ArrayLike,
    observed: npt.ArrayLike,
    expected_sum: npt.ArrayLike,
    phat_sum: npt.ArrayLike,
    *,
    reference_rate: float,
    signal_variance: float | None = None,
    level: float = 0.95,
    calibration: str = "as given",
) -> AhrqResult:
    """AHRQ QI steps 2-7 from per-unit sums (METHODS 2.1).

    Parameters
    ----------
    units : sequence
        Unit identifiers.
    n, observed, expected_sum, phat_sum : array_like
        N, T, sum EHAT and sum PHAT per unit.
    reference_rate : float
        P3 (e.g. 0.051869187161 for IQI 15 in v2024).
    signal_variance : float, optional
        P2 (e.g. 0.000113701961 for IQI 15). Estimated by the method of moments when omitted.
    level : float
        Interval level (AHRQ uses 1.96, i.e. 0.95).
    """
    big_n = np.asarray(n, dtype=float)
    t = np.asarray(observed, dtype=float)
    ehat = np.asarray(expected_sum, dtype=float)
    phat = np.asarray(phat_sum, dtype=float)
    if not (big_n.shape == t.shape == ehat.shape == phat.shape) or big_n.ndim != 1:
        msg = "n, observed, expected_sum and phat_sum must be 1-d arrays of equal length"
        raise ValueError(msg)
    p3 = float(reference_rate)
    ok = (big_n > 0) & (ehat > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        o_r = np.where(big_n > 0, t / big_n, np.nan)
        e_r = np.where(big_n > 0, ehat / big_n, np.nan)
        rar = np.where(ok, o_r / e_r * p3, np.nan)
        se = np.where(ok, (p3 / e_r) * (1.0 / big_n) * np.sqrt(phat), np.nan)
    variance = se**2
    if signal_variance is None:
        source = "method of moments"
        p2 = float(max(0.0, np.mean((rar[ok] - p3) ** 2 - variance[ok]))) if ok.any() else 0.0
    else:
        source = "given"
        p2 = float(signal_variance)
    z = z_value(level)
    lower = np.maximum(rar - z * se, 0.0)
    upper = rar + z * se
    with np.errstate(divide="ignore", invalid="ignore"):
        reliability = np.where(ok, p2 / (p2 + variance), np.nan)
    smoothed = reliability * rar + (1.0 - reliability) * p3
    smoothed_se = np.sqrt(p2 * (1.0 - reliability))
    labels = np.asarray(units, dtype=object)
    estimates = tuple(
        AhrqEstimate(
            unit=_plain(labels[i]),
            n=float(big_n[i]),
            observed=float(t[i]),
            expected_sum=float(ehat[i]),
            phat_sum=float(phat[i]),
            observed_rate=float(o_r[i]),
            expected_rate=float(e_r[i]),
            risk_adjusted_rate=float(rar[i]),
            se=float(se[i]),
            variance=float(variance[i]),
            lower=float(lower[i]),
            upper=float(upper[i]),
            reliability=float(reliability[i]),
            smoothed_rate=float(smoothed[i]),
            smoothed_se=float(smoothed_se[i]),
        )
        for i in range(big_n.size)
    )
    return AhrqResult(
        "AHRQ QI reliability-weighted (smoothed) rate",
        p3,
        p2,
        source,
        level,
        calibration,
        estimates,
    )


def ahrq_from_patients(
    frame: pd.DataFrame,
    *,
    unit: str,
    outcome: str,
    expected: str,
    reference_rate: float,
    signal_variance: float | None = None,
    calibration: Literal["data", "none"] | float = "data",
    cap: float = 0.99,
    level: float = 0.95,
) -> AhrqResult:
    """AHRQ QI steps 1-7 from patient-level rows with the model's EHAT in ``expected``.

    Step 1 calibrates EHAT: ``"data"`` multiplies by sum(O) / sum(EHAT) over the frame (the
    AHRQ flag ``Calibration_OE_to_ref_pop = 0``), a number multiplies by that published
    reference O/E (flag = 1), ``"none"`` leaves EHAT alone; EHAT is then capped at ``cap``
    (0.99) and PHAT = EHAT (1 - EHAT).
    """
    ehat = frame[expected].to_numpy(dtype=float)
    y = frame[outcome].to_numpy(dtype=float)
    if calibration == "data":
        factor = float(y.sum() / ehat.sum())
        label = f"EHAT x sum(O)/sum(EHAT) = {factor:.6f} (user data), capped at {cap}"
    elif calibration == "none":
        factor = 1.0
        label = f"EHAT as given, capped at {cap}"
    else:
        factor = float(calibration)
        label = f"EHAT x reference O/E {factor:.6f}, capped at {cap}"
    ehat = np.minimum(ehat * factor, cap)
    work = pd.DataFrame(
        {"unit": frame[unit].to_numpy(), "y": y, "ehat": ehat, "phat": ehat * (1.0 - ehat)}
    )
    grouped = work.groupby("unit", sort=False).agg(
        n=("y", "size"), t=("y", "sum"), ehat=("ehat", "sum"), phat=("phat", "sum")
    )
    return ahrq_smoothed_rates(
        grouped.index.to_numpy(dtype=object),
        grouped["n"].to_numpy(float),
        grouped["t"].to_numpy(float),
        grouped["ehat"].to_numpy(float),
        grouped["phat"].to_numpy(float),
        reference_rate=reference_rate,
        signal_variance=signal_variance,
        level=level,
        calibration=label,
    )
