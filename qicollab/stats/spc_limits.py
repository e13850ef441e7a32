"""Centre lines and control limits of every qicharts2 chart type, on many chart phases at once.

Each function works on 2-D arrays with one row per chart phase ("segment") and one column per
point, padded with ``valid = False`` after the phase's last point; ``base`` marks the points that
define the centre line and limits (baseline, not excluded). Formulas are those of qicharts2
v0.8.1 (design/METHODS.md part B, 1.1):

======  ============================  =========================================================
chart   centre line (base points)     sigma per point
======  ============================  =========================================================
run     median(y)                     none
i       mean(y)                       AMR x k / 3; AMR = mean |y_j - y_(j-1)| over consecutive
                                      base points (an excluded point is skipped, a missing one
                                      breaks two ranges); MR screening drops ranges >= 3.267 AMR
                                      once; k = 3/1.128 (qic) or 2.66 (mdc)
mr      mean(MR)                      UCL = 3.267 CL, 2-sigma UCL = 2 x 3.267 / 3 CL, LCL = 0
xbar    sum(n mean) / sum(n)          s_bar / (c4(n_i) sqrt(n_i)); s_bar = mean(s) for equal n,
                                      else pooled sqrt(sum((n-1) s^2) / sum(n-1))
s       s_bar                         s_bar c5(n_i) / c4(n_i) (LCL = max(0, B3) s_bar)
p       sum(y) / sum(n)               sqrt(CL (1 - CL) / n_i), limits clamped to [0, 1]
pp      as p                          p sigma x sigma_z (Laney); sigma_z = mean |diff z| / 1.128
c       mean(count)                   sqrt(CL), LCL >= 0
u       sum(y) / sum(n)               sqrt(CL / n_i), LCL >= 0
up      as u                          u sigma x sigma_z
g       median(y) shown; limits       sqrt(m (m + 1)) around m = mean(y), LCL >= 0
        around the mean
t       I chart of y^(1/3.6),         back-transformed with ^3.6; LCL < 0 -> 0
        back-transformed
======  ============================  =========================================================

Rules are evaluated in "rule space": the plotted values and lines, except for the T chart (the
transformed values and symmetric limits, which order points exactly as the back-transformed
limits do) and the G chart's zones (centred on the mean the limits come from).

Quirk (``empty_subgroup_quirk``): qicharts2's pooled SD sums ``n_i - 1`` over every base
subgroup, so an empty subgroup (n = 0) adds -1 to the denominator; the reference output
``NA_test`` needs it (1.4e-4 higher UCL). Off by default: empty subgroups are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

MR_UCL = 3.267
"""D4(2) as qicharts2 and NHSRplotthedots use it: MR screening limit and MR chart UCL."""
D2_XMR = 1.128
"""d2(2) rounded as in qicharts2 and PowerBI-SPC (exact 2/sqrt(pi) = 1.12838)."""
QIC_XMR = 3 / D2_XMR
"""AMR multiplier for 3-sigma I-chart limits in qicharts2: 3/1.128 = 2.659574."""
MDC_XMR = 2.66
"""AMR multiplier for natural process limits in Making Data Count / NHSRplotthedots / Wheeler."""
T_POWER = 3.6
"""T chart transform y^(1/3.6) (Nelson 1994), as qicharts2."""

CHARTS: tuple[str, ...] = ("run", "i", "mr", "xbar", "s", "p", "pp", "u", "up", "c", "g", "t")


# --- constants -------------------------------------------------------------------------------


def c4(n: npt.ArrayLike) -> FloatArray:
    """c4(n) = sqrt(2/(n-1)) Gamma(n/2) / Gamma((n-1)/2), exact via lgamma; NaN for n <= 1."""
    size = np.asarray(n, dtype=float)
    out = np.full(size.shape, np.nan)
    ok = np.isfinite(size) & (size > 1)
    if ok.any():
        lg = np.vectorize(math.lgamma, otypes=[float])
        m = size[ok]
        out[ok] = np.sqrt(2 / (m - 1)) * np.exp(lg(m / 2) - lg((m - 1) / 2))
    return out


def c5(n: npt.ArrayLike) -> FloatArray:
    """c5(n) = sqrt(1 - c4^2): the SD of s in units of sigma."""
    return np.sqrt(1 - c4(n) ** 2)


def a3(n: npt.ArrayLike) -> FloatArray:
    """A3 = 3 / (c4 sqrt(n)): Xbar-chart limits are CL +/- A3 s_bar."""
    return 3 / (c4(n) * np.sqrt(np.asarray(n, dtype=float)))


def b3(n: npt.ArrayLike) -> FloatArray:
    """B3 = max(0, 1 - 3 c5 / c4): S-chart LCL factor."""
    return np.maximum(0.0, 1 - 3 * c5(n) / c4(n))


def b4(n: npt.ArrayLike) -> FloatArray:
    """B4 = 1 + 3 c5 / c4: S-chart UCL factor."""
    return 1 + 3 * c5(n) / c4(n)


# --- masked row statistics (no warnings on empty rows) ---------------------------------------


def _row_sum(values: FloatArray) -> FloatArray:
    """Row sums added left to right, so padding a row with zeros never changes its sum (numpy's
    pairwise ``sum`` rounds differently for different row widths): a series gives bit-identical
    results alone or in a batch."""
    if values.shape[1] == 0:
        return np.zeros(values.shape[0])
    return np.cumsum(values, axis=1)[:, -1]


def _row_mean(values: FloatArray, mask: BoolArray) -> FloatArray:
    m = mask & np.isfinite(values)
    count = m.sum(axis=1)
    total = _row_sum(np.where(m, values, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _row_median(values: FloatArray, mask: BoolArray) -> FloatArray:
    m = mask & np.isfinite(values)
    count = m.sum(axis=1)
    ordered = np.sort(np.where(m, values, np.inf), axis=1)
    lo = np.clip((count - 1) // 2, 0, None)
    hi = np.clip(count // 2, 0, None)
    low = np.take_along_axis(ordered, lo[:, np.newaxis], axis=1)[:, 0]
    high = np.take_along_axis(ordered, hi[:, np.newaxis], axis=1)[:, 0]
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, (low + high) / 2, np.nan)


def _consecutive_ranges(values: FloatArray, mask: BoolArray) -> FloatArray:
    """|v_j - v_(j-1)| over consecutive ``mask`` points (masked-out points are skipped; NaN
    values give NaN ranges). Column j of the result belongs to the j-th masked point."""
    order = np.argsort(~mask, axis=1, kind="stable")
    packed = np.take_along_axis(values, order, axis=1)
    count = mask.sum(axis=1)
    width = values.shape[1]
    ranges = np.full(values.shape, np.nan)
    if width > 1:
        with np.errstate(invalid="ignore"):
            ranges[:, 1:] = np.abs(packed[:, 1:] - packed[:, :-1])
        ranges[np.arange(width)[np.newaxis, :] >= count[:, np.newaxis]] = np.nan
    return ranges


def average_moving_range(
    values: FloatArray, mask: BoolArray, *, screen: bool
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """(AMR, number of ranges used) per row; screening drops ranges >= 3.267 AMR once (strict
    <, Nelson 1982). If screening would drop every range (e.g. all ranges 0) the unscreened
    AMR is kept."""
    ranges = _consecutive_ranges(values, mask)
    ok = np.isfinite(ranges)
    everything = np.ones(ranges.shape, dtype=bool)
    amr = _row_mean(ranges, everything)
    used = ok.sum(axis=1)
    if screen:
        with np.errstate(invalid="ignore"):
            keep = ok & (ranges < MR_UCL * amr[:, np.newaxis])
        kept = keep.sum(axis=1)
        screened = _row_mean(np.where(keep, ranges, np.nan), everything)
        amr = np.where(kept > 0, screened, amr)
        used = np.where(kept > 0, kept, used)
    return amr, used


# --- the per-chart maths ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentInput:
    """One row per chart phase. ``y`` is the plotted value (numerator / denominator for p, u,
    and i or run charts with a denominator; subgroup mean for xbar); ``num``/``den`` are the
    summed numerators and denominators; ``sd``/``size`` the subgroup SDs and sizes."""

    y: FloatArray
    num: FloatArray
    den: FloatArray
    sd: FloatArray
    size: FloatArray
    valid: BoolArray
    base: BoolArray


@dataclass(frozen=True, slots=True)
class SegmentLimits:
    """Plotted lines (natural scale) and the rule-space arrays of each phase row."""

    value: FloatArray
    cl: FloatArray
    ucl: FloatArray
    lcl: FloatArray
    ucl2: FloatArray
    lcl2: FloatArray
    rule_value: FloatArray
    rule_cl: FloatArray
    rule_ucl: FloatArray
    rule_lcl: FloatArray
    rule_ucl2: FloatArray
    rule_lcl2: FloatArray
    zone_centre: FloatArray
    sigma: FloatArray
    notes: tuple[tuple[int, str], ...] = ()


def _col(a: FloatArray) -> FloatArray:
    return a[:, np.newaxis]


def _finite_or_nan(a: FloatArray) -> FloatArray:
    return np.where(np.isfinite(a), a, np.nan)


def _symmetric(
    value: FloatArray,
    cl: FloatArray,
    sigma: FloatArray,
    *,
    lower: float | None = None,
    upper: float | None = None,
    zone_centre: FloatArray | None = None,
    notes: tuple[tuple[int, str], ...] = (),
) -> SegmentLimits:
    shape = value.shape
    centre = np.broadcast_to(_col(cl), shape) if cl.ndim == 1 else cl
    sig = np.broadcast_to(sigma, shape)
    with np.errstate(invalid="ignore", over="ignore"):
        lines = [centre + k * sig for k in (3.0, -3.0, 2.0, -2.0)]
    ucl, lcl, ucl2, lcl2 = (_finite_or_nan(line) for line in lines)
    if lower is not None:
        lcl = np.where(lcl < lower, lower, lcl)
        lcl2 = np.where(lcl2 < lower, lower, lcl2)
    if upper is not None:
        ucl = np.where(ucl > upper, upper, ucl)
        ucl2 = np.where(ucl2 > upper, upper, ucl2)
    zc = centre if zone_centre is None else np.broadcast_to(_col(zone_centre), shape)
    return SegmentLimits(
        value=value,
        cl=np.array(centre, dtype=float),
        ucl=ucl,
        lcl=lcl,
        ucl2=ucl2,
        lcl2=lcl2,
        rule_value=value,
        rule_cl=np.array(centre, dtype=float),
        rule_ucl=ucl,
        rule_lcl=lcl,
        rule_ucl2=ucl2,
        rule_lcl2=lcl2,
        zone_centre=np.array(zc, dtype=float),
        sigma=np.array(sig, dtype=float),
        notes=notes,
    )


def _too_few_ranges(used: npt.NDArray[np.int64], what: str = "moving ranges") -> tuple:
    return tuple(
        (int(i), f"fewer than 2 usable {what}: limits may be missing or unstable")
        for i in np.flatnonzero(used < 2)
    )


def _individuals(seg: SegmentInput, y: FloatArray, k: float, screen: bool) -> SegmentLimits:
    cl = _row_mean(y, seg.base)
    amr, used = average_moving_range(y, seg.base, screen=screen)
    sigma = _col(amr * k / 3)
    return _symmetric(y, cl, sigma, notes=_too_few_ranges(used))


def _xbar_s_bar(seg: SegmentInput, quirk: bool) -> FloatArray:
    known = seg.valid & np.isfinite(seg.size)
    largest = np.where(known, seg.size, -np.inf).max(axis=1)
    smallest = np.where(known, seg.size, np.inf).min(axis=1)
    varying = known.any(axis=1) & (largest != smallest)
    sd_ok = seg.base & np.isfinite(seg.sd)
    pooled_num = _row_sum(np.where(sd_ok, (seg.size - 1) * seg.sd**2, 0.0))
    den_mask = (seg.base & np.isfinite(seg.size)) if quirk else (sd_ok & (seg.size > 1))
    pooled_den = _row_sum(np.where(den_mask, seg.size - 1, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.where(pooled_den > 0, np.sqrt(pooled_num / pooled_den), np.nan)
    return np.where(varying, pooled, _row_mean(seg.sd, seg.base))


def _laney(
    seg: SegmentInput, cl: FloatArray, sigma: FloatArray, screen: bool
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (seg.y - _col(cl)) / sigma
    amr, used = average_moving_range(z, seg.base, screen=screen)
    return amr / D2_XMR, used


def segment_limits(
    chart: str,
    seg: SegmentInput,
    *,
    xmr_constant: float,
    screen_mr: bool,
    empty_subgroup_quirk: bool = False,
) -> SegmentLimits:
    """Centre line, 2- and 3-sigma lines and rule-space arrays of every phase row."""
    y = np.where(seg.valid, seg.y, np.nan)
    shape = y.shape
    nan = np.full(shape, np.nan)
    if chart == "run":
        cl = _row_median(y, seg.base)
        return _symmetric(y, cl, nan)
    if chart == "i":
        return _individuals(seg, y, xmr_constant, screen_mr)
    if chart == "mr":
        mr = np.full(shape, np.nan)
        with np.errstate(invalid="ignore"):
            mr[:, 1:] = np.abs(y[:, 1:] - y[:, :-1])
        cl = _row_mean(mr, seg.base)
        centre = np.broadcast_to(_col(cl), shape)
        zero = np.where(np.isfinite(centre), 0.0, np.nan)
        ucl = MR_UCL * centre
        ucl2 = 2 * MR_UCL / 3 * centre
        return SegmentLimits(
            value=mr,
            cl=np.array(centre),
            ucl=ucl,
            lcl=zero,
            ucl2=ucl2,
            lcl2=zero,
            rule_value=mr,
            rule_cl=np.array(centre),
            rule_ucl=ucl,
            rule_lcl=zero,
            rule_ucl2=ucl2,
            rule_lcl2=zero,
            zone_centre=np.array(centre),
            sigma=(MR_UCL - 1) / 3 * centre,
        )
    if chart in {"xbar", "s"}:
        s_bar = _xbar_s_bar(seg, empty_subgroup_quirk)
        size = np.where(seg.valid, seg.size, np.nan)
        if chart == "xbar":
            ok = seg.base & np.isfinite(y) & np.isfinite(seg.size)
            weight = np.where(ok, seg.size, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                cl = _row_sum(np.where(ok, weight * y, 0.0)) / _row_sum(weight)
                sigma = _col(s_bar) / (c4(size) * np.sqrt(size))
            return _symmetric(y, cl, sigma)
        value = np.where(seg.valid, seg.sd, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            sigma = _col(s_bar) * c5(size) / c4(size)
        return _symmetric(value, s_bar, sigma, lower=0.0)
    if chart in {"p", "pp", "u", "up"}:
        ok = seg.base & np.isfinite(y)
        with np.errstate(invalid="ignore", divide="ignore"):
            cl = _row_sum(np.where(ok, seg.num, 0.0)) / _row_sum(np.where(ok, seg.den, 0.0))
            variance = _col(cl * (1 - cl)) if chart in {"p", "pp"} else _col(cl)
            sigma = np.sqrt(variance / np.where(seg.valid, seg.den, np.nan))
        notes: tuple[tuple[int, str], ...] = ()
        if chart in {"pp", "up"}:
            sigma_z, used = _laney(seg, cl, sigma, screen_mr)
            sigma = sigma * _col(sigma_z)
            notes = _too_few_ranges(used, "moving ranges of z-scores")
        upper = 1.0 if chart in {"p", "pp"} else None
        return _symmetric(y, cl, sigma, lower=0.0, upper=upper, notes=notes)
    if chart == "c":
        value = np.where(seg.valid, seg.num, np.nan)
        cl = _row_mean(value, seg.base)
        return _symmetric(value, cl, _col(np.sqrt(cl)), lower=0.0)
    if chart == "g":
        mean = _row_mean(y, seg.base)
        sigma = _col(np.sqrt(mean * (mean + 1)))
        median = _row_median(y, seg.base)
        centred = _symmetric(y, mean, sigma, lower=0.0)
        shown = np.broadcast_to(_col(median), shape).astype(float)
        return SegmentLimits(
            value=y,
            cl=shown,
            ucl=centred.ucl,
            lcl=centred.lcl,
            ucl2=centred.ucl2,
            lcl2=centred.lcl2,
            rule_value=y,
            rule_cl=shown,
            rule_ucl=centred.ucl,
            rule_lcl=centred.lcl,
            rule_ucl2=centred.ucl2,
            rule_lcl2=centred.lcl2,
            zone_centre=centred.cl,
            sigma=centred.sigma,
        )
    if chart == "t":
        with np.errstate(invalid="ignore"):
            transformed = np.where(y > 0, y, np.nan) ** (1 / T_POWER)
        inner = _individuals(seg, transformed, xmr_constant, screen_mr)

        def back(line: FloatArray) -> FloatArray:
            with np.errstate(invalid="ignore"):
                out = np.where(line > 0, line, 0.0) ** T_POWER
            return np.where(np.isfinite(line), out, np.nan)

        return SegmentLimits(
            value=y,
            cl=back(inner.cl),
            ucl=back(inner.ucl),
            lcl=back(inner.lcl),
            ucl2=back(inner.ucl2),
            lcl2=back(inner.lcl2),
            rule_value=transformed,
            rule_cl=inner.cl,
            rule_ucl=inner.ucl,
            rule_lcl=inner.lcl,
            rule_ucl2=inner.ucl2,
            rule_lcl2=inner.lcl2,
            zone_centre=inner.zone_centre,
            sigma=inner.sigma,
            notes=inner.notes,
        )
    msg = f"chart must be one of {CHARTS}, not {chart!r}"
    raise ValueError(msg)
