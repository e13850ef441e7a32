"""Funnels for indicators whose standard error is given: means, and O/E of outcomes that are
not event counts (length of stay, scores).

Why: the count funnels of :mod:`qicollab.stats.funnel` assume Var(O) = E (Poisson) or a
binomial. A mean's precision comes from its own spread, and an O/E of length of stay from the
risk model's Var(O); both are judged on a normal scale with the member's own standard error s:

==========================  ===============  ======================  =========================
function                    y                s                       dispersion
==========================  ===============  ======================  =========================
:func:`normal_funnel`       the mean         its standard error      z winsorised at ``trim``
:func:`ratio_se_funnel`     ln(O/E)          sqrt(Var O) / E         SHMI truncation (``shmi``)
                            sqrt(O/E)        sqrt(Var O) / (2 E)     z winsorised (``cqc``)
==========================  ===============  ======================  =========================

z = (y - y0) / s; phi = mean(z^2) over the damped z and the DerSimonian-Laird tau^2 around the
fixed target (:func:`qicollab.stats.funnel.dispersion`, the same formulas as the count
funnels). Limits are y0 -/+ z_p s unadjusted and y0 -/+ z_p sqrt(s^2 + tau^2) adjusted, back on
the indicator's scale; tau^2 >= 0, so the adjustment only widens. Without overdispersion
(phi <= 1 or tau^2 = 0) the adjusted limits are the unadjusted ones (``fallback``).

On the log scale a zero O has no logarithm: its z-score and the value judged against the
limits use half an event, 0.5 / E (FunnelPlotR issue #17), so a zero is low only when half an
event would be. Flags are inclusive as elsewhere (a value on a limit is not an outlier).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from qicollab.stats.funnel import (
    ZERO_COUNT_CONTINUITY,
    Status,
    dispersion,
    outlier_status,
    shmi_truncation,
    winsorise,
)
from qicollab.stats.intervals import LEVELS, level_key, z_value

Scale = Literal["identity", "log", "sqrt"]


@dataclass(frozen=True, slots=True)
class SeFunnelResult:
    """A funnel judged with each member's own standard error.

    Parameters
    ----------
    method : str
        ``"normal"`` (means), ``"shmi"`` or ``"cqc"`` (O/E with the model's variance).
    scale : {"identity", "log", "sqrt"}
        Scale of z and the limits before back-transformation.
    target : float
        Centre line on the indicator's scale.
    judged : numpy.ndarray
        The value compared with the limits (O/E, 0.5/E for a zero on the log scale, or the mean).
    se : numpy.ndarray
        s on the method's scale (nan where there is none).
    z, z_adjusted : numpy.ndarray
        (y - y0) / s and (y - y0) / sqrt(s^2 + tau^2).
    phi, tau2 : float
        Dispersion after damping and the additive between-member variance (scale of y).
    n_used : int
        Members in the dispersion estimate.
    fallback : bool
        True when the adjusted limits are the unadjusted ones (no overdispersion).
    lower, upper, adjusted_lower, adjusted_upper : dict
        Per-member limits on the indicator's scale, keyed ``"95"`` and ``"99.8"``.
    flags, adjusted_flags : dict
        ``"high"``, ``"low"`` or None per member, keyed like the limits.
    note : str
        Plain-language statement of the method, for reports.
    """

    method: str
    scale: Scale
    target: float
    trim: float
    judged: np.ndarray
    se: np.ndarray
    z: np.ndarray
    z_adjusted: np.ndarray
    phi: float
    tau2: float
    n_used: int
    fallback: bool
    lower: dict[str, np.ndarray]
    upper: dict[str, np.ndarray]
    adjusted_lower: dict[str, np.ndarray]
    adjusted_upper: dict[str, np.ndarray]
    flags: dict[str, tuple[Status, ...]]
    adjusted_flags: dict[str, tuple[Status, ...]]
    note: str

    def limits_for_se(
        self, se: npt.ArrayLike, *, level: float, adjusted: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Limits at any standard error on the method's scale (for drawing curves)."""
        tau2 = self.tau2 if adjusted and not self.fallback else 0.0
        return _limits(self.scale, self.target, np.asarray(se, dtype=float), tau2, level)


def _centre(scale: Scale, target: float) -> float:
    return {"identity": target, "log": math.log(target), "sqrt": math.sqrt(target)}[scale]


def _limits(
    scale: Scale, target: float, se: np.ndarray, tau2: float, level: float
) -> tuple[np.ndarray, np.ndarray]:
    spread = z_value(level) * np.sqrt(se**2 + tau2)
    y0 = _centre(scale, target)
    if scale == "log":
        return np.exp(y0 - spread), np.exp(y0 + spread)
    if scale == "sqrt":
        return np.maximum(y0 - spread, 0.0) ** 2, (y0 + spread) ** 2
    return y0 - spread, y0 + spread


def _analyse(  # noqa: PLR0917 - private: the shared body of both funnels
    method: str,
    scale: Scale,
    target: float,
    y: np.ndarray,
    s: np.ndarray,
    judged: np.ndarray,
    trim: float,
) -> SeFunnelResult:
    if not 0.0 <= trim < 0.5:
        msg = f"trim must be in [0, 0.5), got {trim!r}"
        raise ValueError(msg)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (y - _centre(scale, target)) / s
    ok = np.isfinite(z) & np.isfinite(s) & (s > 0)
    zv, sv = z[ok], s[ok]
    if zv.size < 2:
        phi, tau2, used = 1.0, 0.0, int(zv.size)
    else:
        if method == "shmi":
            keep = shmi_truncation(zv, trim)
            if keep.sum() >= 2:
                zv, sv = zv[keep], sv[keep]
        else:
            zv = winsorise(zv, trim)
        phi, tau2 = dispersion(zv, sv)
        used = int(zv.size)
    fallback = not (phi > 1.0 and tau2 > 0.0)
    effective = 0.0 if fallback else tau2
    with np.errstate(divide="ignore", invalid="ignore"):
        z_adjusted = (y - _centre(scale, target)) / np.sqrt(s**2 + effective)
    lower, upper, adj_lower, adj_upper, flags, adj_flags = {}, {}, {}, {}, {}, {}
    for level in LEVELS:
        key = level_key(level)
        lower[key], upper[key] = _limits(scale, target, s, 0.0, level)
        adj_lower[key], adj_upper[key] = _limits(scale, target, s, effective, level)
        flags[key] = outlier_status(judged, lower[key], upper[key])
        adj_flags[key] = outlier_status(judged, adj_lower[key], adj_upper[key])
    where = {"identity": "identity", "log": "log", "sqrt": "square-root"}[scale]
    damping = "SHMI truncation of" if method == "shmi" else "z winsorised at"
    note = (
        f"Standard errors from each member's own data; {where} scale, {damping} {trim:.0%}; "
        f"phi = {phi:.4f}, tau^2 = {tau2:.6g} from {used} members."
    )
    if fallback:
        note += " No overdispersion: the adjusted limits are the unadjusted ones."
    return SeFunnelResult(
        method=method,
        scale=scale,
        target=float(target),
        trim=float(trim),
        judged=judged,
        se=s,
        z=z,
        z_adjusted=z_adjusted,
        phi=float(phi),
        tau2=float(tau2),
        n_used=used,
        fallback=fallback,
        lower=lower,
        upper=upper,
        adjusted_lower=adj_lower,
        adjusted_upper=adj_upper,
        flags=flags,
        adjusted_flags=adj_flags,
        note=note,
    )


def normal_funnel(
    value: npt.ArrayLike, se: npt.ArrayLike, target: float, *, trim: float = 0.1
) -> SeFunnelResult:
    """Funnel of means with their standard errors around ``target`` (identity scale)."""
    y = np.asarray(value, dtype=float)
    s = np.asarray(se, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        msg = "value and se must be 1-d arrays of the same length"
        raise ValueError(msg)
    return _analyse("normal", "identity", float(target), y, s, y, trim)


def ratio_se_funnel(
    observed: npt.ArrayLike,
    expected: npt.ArrayLike,
    variance: npt.ArrayLike,
    *,
    method: Literal["shmi", "cqc"] = "shmi",
    trim: float = 0.1,
) -> SeFunnelResult:
    """Funnel of O/E with Var(O) from the risk model (outcomes that are not event counts)."""
    o = np.asarray(observed, dtype=float)
    e = np.asarray(expected, dtype=float)
    v = np.asarray(variance, dtype=float)
    if not (o.shape == e.shape == v.shape) or o.ndim != 1:
        msg = "observed, expected and variance must be 1-d arrays of the same length"
        raise ValueError(msg)
    if method not in ("shmi", "cqc"):
        msg = f"method must be 'shmi' or 'cqc', got {method!r}"
        raise ValueError(msg)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(e > 0, o / e, np.nan)
        if method == "shmi":
            judged = np.where(o > 0, ratio, ZERO_COUNT_CONTINUITY / e)
            return _analyse("shmi", "log", 1.0, np.log(judged), np.sqrt(v) / e, judged, trim)
        return _analyse("cqc", "sqrt", 1.0, np.sqrt(ratio), np.sqrt(v) / (2 * e), ratio, trim)


@dataclass(frozen=True, slots=True)
class FunnelCurve:
    """Limits of an :class:`SeFunnelResult` along a precision axis, for drawing.

    Parameters
    ----------
    x : numpy.ndarray
        The axis (expected events for O/E, cases for means), geometric from the smallest
        member to the largest.
    lower, upper, adjusted_lower, adjusted_upper : dict
        Limits on the indicator's scale, keyed ``"95"`` and ``"99.8"``.
    """

    x: np.ndarray
    lower: dict[str, np.ndarray]
    upper: dict[str, np.ndarray]
    adjusted_lower: dict[str, np.ndarray]
    adjusted_upper: dict[str, np.ndarray]


#: Points of a drawn curve.
CURVE_POINTS = 60


def curve_axis(precision: npt.ArrayLike) -> np.ndarray:
    """The drawn axis: CURVE_POINTS geometric steps over the members' positive precisions
    (empty without one)."""
    values = np.asarray(precision, dtype=float)
    finite = values[np.isfinite(values) & (values > 0)]
    if not finite.size:
        return np.zeros(0)
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        high = low * 1.01 + 1e-9
    return np.geomspace(low, high, CURVE_POINTS)


def _curve(result: SeFunnelResult, x: np.ndarray, se: np.ndarray) -> FunnelCurve:
    lower, upper, adj_lower, adj_upper = {}, {}, {}, {}
    for level in LEVELS:
        key = level_key(level)
        lower[key], upper[key] = result.limits_for_se(se, level=level, adjusted=False)
        adj_lower[key], adj_upper[key] = result.limits_for_se(se, level=level, adjusted=True)
    return FunnelCurve(x, lower, upper, adj_lower, adj_upper)


def ratio_curve(
    result: SeFunnelResult, expected: npt.ArrayLike, variance: npt.ArrayLike
) -> FunnelCurve | None:
    """Limits of a :func:`ratio_se_funnel` against E. The spread per unit of E is
    interpolated from the members' own sqrt(Var O) / E (halved on the square-root scale), so
    at a member's E the curve passes through that member's own limits."""
    e = np.asarray(expected, dtype=float)
    v = np.asarray(variance, dtype=float)
    x = curve_axis(e)
    ok = np.isfinite(e) & (e > 0) & np.isfinite(v) & (v >= 0)
    if not x.size or not ok.any():
        return None
    order = np.argsort(e[ok])
    per = np.interp(x, e[ok][order], (np.sqrt(v[ok]) / e[ok])[order])
    return _curve(result, x, per / 2 if result.scale == "sqrt" else per)


def normal_curve(result: SeFunnelResult, precision: npt.ArrayLike) -> FunnelCurve | None:
    """Limits of a :func:`normal_funnel` against the members' cases n: a mean's standard error
    falls as c / sqrt(n), c being the median of the members' s sqrt(n). None with fewer than
    two members that have both."""
    n = np.asarray(precision, dtype=float)
    s = result.se
    x = curve_axis(n)
    ok = np.isfinite(s) & (s > 0) & np.isfinite(n) & (n > 0)
    if not x.size or ok.sum() < 2:
        return None
    c = float(np.median(s[ok] * np.sqrt(n[ok])))
    return _curve(result, x, c / np.sqrt(x))


__all__ = [
    "FunnelCurve",
    "SeFunnelResult",
    "curve_axis",
    "normal_curve",
    "normal_funnel",
    "ratio_curve",
    "ratio_se_funnel",
]
