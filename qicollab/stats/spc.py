"""Control charts and run charts for quality improvement: limits, phases, rules and icons.

Two named **modes** set the defaults (design/METHODS.md part B; every default can be overridden
by keyword, see :class:`SpcSettings`):

``qic`` (qicharts2 v0.8.1)
    I-chart limits at 3 sigma with sigma = AMR/1.128 (3/1.128 = 2.659574 AMR), moving-range
    screening on (ranges >= 3.267 AMR dropped once), rules: points outside the 3-sigma limits
    and the Anhøj runs rules (longest run, crossings) per phase.
``mdc`` (NHS Making Data Count, as NHSRplotthedots 0.2.2 computes it)
    I-chart limits at 2.66 AMR, screening on (NHSRplotthedots' default; the MDC Excel tool does
    not screen: ``screen_mr=False``), rules: outside the limits, a 7-point trend, two of three
    beyond the 2-sigma lines under the November 2023 definition (every point beyond 2 sigma
    counts, beyond 3 sigma included; all three on one side of the mean; only the beyond points
    flagged; ``two_in_three="nhsr"`` restores NHSRplotthedots' "between 2 and 3 sigma"), and 7
    points on one side of the mean; when improvement and concern both fire on a point the
    point shows improvement (the MDC tool's choice).

In both modes every chart has per-point ``point_type`` (common cause, improvement, concern, or
neutral high/low when no direction is set), a **variation icon** (the last non-missing point's
type, NHSRplotthedots' names ``improvement_high``, ``concern_low``, ...) and an **assurance
icon** comparing the target with the last point's limits (strict: a target above the UCL of an
"increase" measure is ``consistent_fail``; MDC's own text says ">=", NHSRplotthedots uses ">").
Western Electric and Nelson rule sets (qcc semantics) can be added with
``rules=(..., "western_electric")`` / ``"nelson"``.

Semantics shared by both modes, following qicharts2:

* **Phases** (``part``): a new phase *after* each 1-based position (qicharts2), or at the first
  point whose x is on or after each of ``phase_starts`` (NHSRplotthedots' rebase by date or
  label). Each phase has its own centre line, limits, rules and runs analysis.
* **Baseline** (``freeze=k``): the limits of the phase containing point k come from its points
  up to k and extend over the rest of that phase; other phases use all their points
  (qicharts2 ignores ``freeze`` when ``part`` is given; we honour both).
* **Exclusions**: excluded points leave the centre line, limits (moving ranges span them) and
  every sequence rule (runs, trends, shifts and k-of-m windows skip them), but are still plotted
  and still flagged by the outside-limits rule.
* **Missing periods** are NaN values, never zeros: they are gaps in the plot; a moving range
  next to a missing value is missing (qicharts2 computes ``diff`` over the baseline values with
  ``na.rm``), so a gap breaks two ranges rather than spanning; sequence rules skip missing
  points, as qicharts2's runs analysis drops them.
* **Trial limits**: a phase with fewer than ``trial_below`` (12) baseline values has trial
  limits; the chart says so (``trial_limits`` and a warning).
* Comparisons with limits are strict: a point on a limit is inside; a point on the centre line
  is ignored by the Anhøj rules and breaks a shift.

Bulk runs use :func:`control_charts` (a 2-D array of series, one vectorised pass for all of
them: 1-2 s for 20,000 series of 36 points with every rule family, ``benchmarks/bench_spc.py``;
``ControlChartBatch.dict_at`` gives each series' stored JSON); :func:`control_chart` is the same
engine on one series (1-3 ms) and :func:`chart_from_frame` builds one from a pandas frame of
periods.

References: Anhøj J, Olesen AV (2014) PLoS ONE 9(11):e113825; Anhøj J (2015) PLoS ONE
10(3):e0121349; Montgomery DC, Introduction to Statistical Quality Control (6th ed.); Laney DB
(2002) Quality Engineering 14(4):531-537; NHS England, Making Data Count (2019, rules updated
November 2023); qicharts2 0.8.1, NHSRplotthedots 0.2.2, PowerBI-SPC, qcc 3.0.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from qicollab.stats import spc_rules as rules_
from qicollab.stats.spc_limits import CHARTS, SegmentInput, segment_limits
from qicollab.stats.spc_results import (
    MODES,
    POINT_TYPES,
    RULE_BITS,
    RULE_FAMILIES,
    RULE_NAMES,
    ChartChoice,
    ChartPoint,
    ControlChart,
    ControlChartBatch,
    PhaseRuns,
    SpcSettings,
    Subgroups,
    XValue,
    make_settings,
    signal_names,
)

LARGE_DENOMINATOR = 1000
"""Median denominator from which :func:`choose_chart` considers Laney's P'/U' charts."""

__all__ = [
    "CHARTS",
    "LARGE_DENOMINATOR",
    "MODES",
    "POINT_TYPES",
    "RULE_BITS",
    "RULE_FAMILIES",
    "RULE_NAMES",
    "ChartChoice",
    "ChartPoint",
    "ControlChart",
    "ControlChartBatch",
    "PhaseRuns",
    "SpcSettings",
    "Subgroups",
    "aggregate_subgroups",
    "chart_from_frame",
    "choose_chart",
    "control_chart",
    "control_charts",
    "make_settings",
    "phase_positions",
    "signal_names",
]
# --- input helpers ---------------------------------------------------------------------------


def _x_value(value: Any) -> XValue:
    """A JSON-safe x: dates as ISO strings, numpy scalars as Python numbers."""
    if isinstance(value, pd.Timestamp | np.datetime64):
        stamp = pd.Timestamp(value)
        return stamp.date().isoformat() if stamp == stamp.normalize() else stamp.isoformat()
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return int(number) if number.is_integer() else number
    return str(value)


def _rows(a: npt.ArrayLike | None, shape: tuple[int, int] | None = None) -> np.ndarray | None:
    if a is None:
        return None
    arr = np.asarray(a, dtype=float)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if shape is not None and arr.shape != shape:
        arr = np.broadcast_to(arr, shape)
    return arr


def aggregate_subgroups(
    x: Sequence[Any] | npt.ArrayLike, y: npt.ArrayLike, n: npt.ArrayLike | None = None
) -> Subgroups:
    """Aggregate several rows per x into subgroups, sorted by x (qicharts2 ``qic.agg``).

    ``y_sum`` sums the non-missing y, ``y_length`` counts them, ``y_mean``/``y_sd`` are their
    mean and sample SD; with a denominator, rows where y or n is missing are dropped first and
    ``n_sum`` sums n (without one it is NaN). A subgroup whose values are all missing stays,
    with ``y_length`` 0 and NaN mean: a gap, not a zero.
    """
    frame = pd.DataFrame({"x": list(x) if not isinstance(x, pd.Series) else x.to_numpy()})
    frame["y"] = np.asarray(y, dtype=float)
    frame["n"] = np.nan if n is None else np.asarray(n, dtype=float)
    if n is not None:
        incomplete = frame["y"].isna() | frame["n"].isna()
        frame.loc[incomplete, ["y", "n"]] = np.nan
    frame = frame[frame["x"].notna()]
    grouped = frame.groupby("x", sort=True)["y"]
    y_sum = grouped.sum(min_count=0).to_numpy(dtype=float)
    y_length = grouped.count().to_numpy(dtype=float)
    y_mean = grouped.mean().to_numpy(dtype=float)
    y_sd = grouped.std(ddof=1).to_numpy(dtype=float)
    n_sum = (
        frame.groupby("x", sort=True)["n"].sum(min_count=1).to_numpy(dtype=float)
        if n is not None
        else np.full(len(y_sum), np.nan)
    )
    keys = tuple(grouped.sum(min_count=0).index)
    return Subgroups(keys, y_sum, y_length, y_mean, y_sd, n_sum)


# --- chart choice ----------------------------------------------------------------------------


_TYPE_ALIASES = {
    "proportion": "proportion",
    "percentage": "proportion",
    "rate": "rate",
    "ratio": "ratio",
    "count": "count",
    "mean": "mean",
    "time-between-events": "time-between-events",
    "time_between_events": "time-between-events",
    "cases-between-events": "cases-between-events",
    "opportunities-between-events": "cases-between-events",
}


def choose_chart(
    measure_type: str,
    *,
    numerators: npt.ArrayLike | None = None,
    denominators: npt.ArrayLike | None = None,
    subgroup_sizes: npt.ArrayLike | None = None,
    override: str | None = None,
    large_denominator: float = LARGE_DENOMINATOR,
    laney_sigma_z: float = 1.5,
) -> ChartChoice:
    """The control chart for a measure type (qicharts2 vignette, Laney 2002), or ``override``.

    * proportion -> ``p``; ``pp`` (Laney P') when the median denominator is at least
      ``large_denominator`` (1,000) *and*, if numerators are given, Laney's sigma_z of the data
      is at least ``laney_sigma_z`` (1.5): clear overdispersion, where P limits are too narrow
      and flag nearly every point (qicharts2 vignette case 5). Without overdispersion sigma_z
      is 1 up to sampling noise (about +/-0.15 for 24 points), and the P chart is kept.
    * rate (events per exposure) and ratio (O with E as exposure) -> ``u``, ``up`` by the same
      rule; count without denominator -> ``c``.
    * mean -> ``xbar`` when subgroup sizes are given and some exceed 1, else ``i`` (XmR).
    * time-between-events -> ``t``; cases- or opportunities-between-events -> ``g``.
    """
    if override:
        if override not in CHARTS:
            msg = f"chart override must be one of {CHARTS}, not {override!r}"
            raise ValueError(msg)
        return ChartChoice(override, "override")
    kind = _TYPE_ALIASES.get(str(measure_type).strip().lower())
    if kind is None:
        msg = f"unknown measure type {measure_type!r}; expected one of {sorted(_TYPE_ALIASES)}"
        raise ValueError(msg)
    if kind in {"proportion", "rate", "ratio"}:
        base = "p" if kind == "proportion" else "u"
        if denominators is None:
            if kind == "proportion":
                msg = "a proportion needs denominators"
                raise ValueError(msg)
            return ChartChoice("c", "counts without exposure")
        den = np.asarray(denominators, dtype=float)
        den = den[np.isfinite(den) & (den > 0)]
        median = float(np.median(den)) if den.size else 0.0
        if median < large_denominator:
            return ChartChoice(base, f"median denominator {median:g} < {large_denominator:g}")
        if numerators is not None:
            probe = control_chart(numerators, denominators, chart=base + "p")
            sigma_z = _sigma_z_of(probe, base)
            if not sigma_z >= laney_sigma_z:
                return ChartChoice(
                    base,
                    f"median denominator {median:g} but sigma_z {sigma_z:.3g} "
                    f"< {laney_sigma_z:g}: no clear overdispersion",
                )
            return ChartChoice(
                base + "p",
                f"median denominator {median:g}, sigma_z {sigma_z:.3g} >= {laney_sigma_z:g} "
                "(Laney)",
            )
        return ChartChoice(base + "p", f"median denominator {median:g} >= {large_denominator:g}")
    if kind == "count":
        return ChartChoice("c", "counts without exposure")
    if kind == "mean":
        if subgroup_sizes is not None and np.nanmax(np.asarray(subgroup_sizes, float)) > 1:
            return ChartChoice("xbar", "subgroups of several values")
        return ChartChoice("i", "one value per period")
    if kind == "time-between-events":
        return ChartChoice("t", "time between events")
    return ChartChoice("g", "cases between events")


def _sigma_z_of(chart: ControlChart, base: str) -> float:
    """Laney's sigma_z of a P'/U' chart, recovered from its first usable point."""
    for p in chart.points:
        if math.isfinite(p.ucl) and math.isfinite(p.n) and p.n > 0 and 0 < p.cl < 1:
            spread = p.cl * (1 - p.cl) if base == "p" else p.cl
            sigma = math.sqrt(spread / p.n)
            if p.ucl < 1:
                return (p.ucl - p.cl) / (3 * sigma)
    return math.nan


# --- the engine ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Segments:
    seg: npt.NDArray[np.int64]
    pos: npt.NDArray[np.int64]
    starts: npt.NDArray[np.int64]
    count: int
    width: int

    def to_seg(self, values: np.ndarray, fill: Any) -> np.ndarray:
        out = np.full((self.count, self.width), fill, dtype=values.dtype)
        out[self.seg, self.pos] = values.ravel()
        return out

    def back(self, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        return values[self.seg, self.pos].reshape(shape)


def _segments(phase: npt.NDArray[np.int64]) -> _Segments:
    rows = phase.shape[0]
    key = (np.arange(rows, dtype=np.int64)[:, np.newaxis] * (int(phase.max()) + 1) + phase).ravel()
    change = np.ones(key.size, dtype=bool)
    change[1:] = key[1:] != key[:-1]
    seg = np.cumsum(change) - 1
    starts = np.flatnonzero(change)
    pos = np.arange(key.size) - starts[seg]
    lengths = np.diff(np.append(starts, key.size))
    return _Segments(seg, pos, starts, len(starts), int(lengths.max(initial=1)))


_DIRECTION_SIGN = {"increase": 1, "decrease": -1, "neutral": 0, None: 0, "": 0}


def _direction_signs(direction: Any, rows: int) -> tuple[npt.NDArray[np.int64], tuple]:
    values = (
        [direction] * rows if direction is None or isinstance(direction, str) else list(direction)
    )
    if len(values) != rows:
        msg = f"direction needs one entry per series ({rows}), got {len(values)}"
        raise ValueError(msg)
    signs = []
    for value in values:
        if value not in _DIRECTION_SIGN:
            msg = f"direction must be 'increase', 'decrease' or 'neutral', not {value!r}"
            raise ValueError(msg)
        signs.append(_DIRECTION_SIGN[value])
    return np.asarray(signs, dtype=np.int64), tuple(v or None for v in values)


def _targets(target: Any, rows: int) -> tuple[float | None, ...]:
    scalar = target is None or isinstance(target, numbers.Real)
    values = [target] * rows if scalar else list(target)
    if len(values) != rows:
        msg = f"target needs one entry per series ({rows}), got {len(values)}"
        raise ValueError(msg)
    out: list[float | None] = []
    for v in values:
        number = None if v is None else float(v)
        out.append(number if number is not None and math.isfinite(number) else None)
    return tuple(out)


def _baseline(phase: npt.NDArray[np.int64], freeze: Any) -> npt.NDArray[np.bool_]:
    rows, cols = phase.shape
    if freeze is None:
        return np.ones(phase.shape, dtype=bool)
    k = np.broadcast_to(np.asarray(freeze, dtype=float), (rows,))
    k = np.where(np.isfinite(k) & (k > 0), k, 0).astype(np.int64)
    if (k > cols).any():
        msg = f"freeze position {int(k.max())} is beyond the {cols} points"
        raise ValueError(msg)
    position = np.arange(1, cols + 1)[np.newaxis, :]
    frozen_phase = np.take_along_axis(phase, np.maximum(k - 1, 0)[:, np.newaxis], axis=1)
    later = (phase == frozen_phase) & (position > k[:, np.newaxis]) & (k[:, np.newaxis] > 0)
    return ~later


def _values_for(
    chart: str, y: np.ndarray, n: np.ndarray | None, sd: np.ndarray | None
) -> dict[str, np.ndarray]:
    shape = y.shape
    nan = np.full(shape, np.nan)
    if chart in {"p", "pp", "u", "up"}:
        if n is None:
            msg = f"a {chart} chart needs denominators (n)"
            raise ValueError(msg)
        bad = (np.isfinite(y) & (y < 0)) | (np.isfinite(n) & (n < 0))
        if chart in {"p", "pp"}:
            bad |= np.isfinite(y) & np.isfinite(n) & (y > n)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            msg = (
                f"series {r + 1}, point {c + 1}: numerator {y[r, c]:g} and denominator "
                f"{n[r, c]:g} are not a valid {'proportion' if chart[0] == 'p' else 'rate'}"
            )
            raise ValueError(msg)
        missing = ~(np.isfinite(y) & np.isfinite(n)) | (n == 0)
        num = np.where(missing, np.nan, y)
        den = np.where(missing, np.nan, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = num / den
        return {"y": value, "num": num, "den": den, "sd": nan, "size": den}
    if chart in {"xbar", "s"}:
        if n is None or sd is None:
            msg = f"a {chart} chart needs subgroup sizes (n) and standard deviations (sd)"
            raise ValueError(msg)
        return {"y": y, "num": nan, "den": nan, "sd": sd, "size": n}
    if chart in {"i", "run"} and n is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(np.isfinite(n) & (n != 0), y / n, np.nan)
        return {"y": value, "num": y, "den": n, "sd": nan, "size": n}
    if chart == "t":
        bad = np.isfinite(y) & (y <= 0)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            msg = f"series {r + 1}, point {c + 1}: time between events must be > 0"
            raise ValueError(msg)
    if chart == "c" and (np.isfinite(y) & (y < 0)).any():
        msg = "a c chart needs non-negative counts"
        raise ValueError(msg)
    return {"y": y, "num": y, "den": nan, "sd": nan, "size": nan}


class _Firing:
    """Accumulates rule bits and the point type inputs, rule by rule in precedence order."""

    def __init__(self, shape: tuple[int, int], improvement: np.ndarray) -> None:
        self.bits = np.zeros(shape, dtype=np.uint32)
        self.first = np.zeros(shape, dtype=np.int64)
        self.improve = np.zeros(shape, dtype=bool)
        self.g = improvement[:, np.newaxis]

    def fire(self, name: str, mask: np.ndarray, direction: np.ndarray) -> None:
        if not mask.any():
            return
        self.bits |= mask.astype(np.uint32) << np.uint32(RULE_BITS[name])
        fresh = mask & (self.first == 0)
        self.first = np.where(fresh, direction, self.first)
        self.improve |= mask & (direction * self.g > 0)

    def point_types(self, resolution: str) -> npt.NDArray[np.int8]:
        fired = (self.bits != 0) & (self.first != 0)
        improve = self.improve if resolution == "improvement" else self.first * self.g > 0
        g = np.broadcast_to(self.g, self.first.shape)
        neutral = np.where(self.first > 0, 3, 4)
        directed = np.where(improve, 1, 2)
        out = np.where(fired, np.where(g == 0, neutral, directed), 0)
        return out.astype(np.int8)


def _apply_rules(
    chart: str,
    lim: Any,
    *,
    valid: np.ndarray,
    included: np.ndarray,
    improvement: np.ndarray,
    settings: SpcSettings,
) -> tuple[np.ndarray, np.ndarray, rules_.AnhoejArrays]:
    shape = valid.shape
    fire = _Firing(shape, improvement)
    rv = lim.rule_value
    finite = valid & np.isfinite(rv)
    chosen = set(settings.rules)
    has_limits = chart != "run"
    if "outside_limits" in chosen and has_limits:
        out = rules_.outside(np.where(finite, rv, np.nan), lim.rule_ucl, lim.rule_lcl)
        fire.fire("outside_limits", out != 0, out)
    sequence = finite & included
    pack = rules_.compact(sequence)
    ok = pack.valid
    crv = pack.take(rv)
    ccl = pack.take(lim.rule_cl)
    side_c = np.where(ok, rules_.sides(crv, ccl), 0)
    side = pack.put(side_c)
    runs = rules_.anhoej(crv, ccl, ok)
    if chart == "mr" or "anhoej" not in chosen:
        # the statistics are reported; only a rule in use (and never on an MR chart) signals
        runs = replace(runs, signal=np.zeros_like(runs.signal))
    if "anhoej" in chosen and chart != "mr":
        long_run = pack.put(runs.in_long_run, fill=False)
        fire.fire("anhoej_longest_run", long_run, side)
        few = (runs.crossings < runs.crossings_min) & (runs.n_useful > 0)
        crossing_points = few[:, np.newaxis] & (side != 0)
        fire.fire("anhoej_crossings", crossing_points, side)
    if "trend" in chosen:
        t = pack.put(rules_.trend(crv, settings.trend_points, ok))
        fire.fire("trend", t != 0, t)
    if "two_of_three" in chosen and has_limits:
        two = rules_.two_in_three(
            crv,
            ccl,
            upper2=pack.take(lim.rule_ucl2),
            lower2=pack.take(lim.rule_lcl2),
            upper3=pack.take(lim.rule_ucl),
            lower3=pack.take(lim.rule_lcl),
            variant=settings.two_in_three,  # type: ignore[arg-type]
            valid=ok,
        )
        two = pack.put(two)
        fire.fire("two_of_three", two != 0, two)
    if "shift" in chosen:
        s = pack.put(rules_.shift(side_c, settings.shift_points, ok))
        fire.fire("shift", s != 0, s)
    zone_sets = [name for name in ("western_electric", "nelson") if name in chosen]
    if zone_sets and has_limits:
        with np.errstate(invalid="ignore", divide="ignore"):
            z_all = (rv - lim.zone_centre) / lim.sigma
        z_all = np.where(finite, z_all, np.nan)
        z = pack.take(z_all)
        z_side = np.where(finite, rules_.sides(z_all, 0.0), 0)
        trend_dir = pack.put(rules_.diff_signs(z, ok))
        with np.errstate(invalid="ignore"):
            beyond3 = np.abs(z_all) > 3
        for family in zone_sets:
            found = (
                rules_.western_electric(z, ok)
                if family == "western_electric"
                else rules_.nelson(z, ok)
            )
            prefix = "we" if family == "western_electric" else "nelson"
            for number in sorted(found):
                mask = beyond3 if number == 1 else pack.put(found[number], fill=False)
                direction = trend_dir if (prefix == "nelson" and number == 3) else z_side
                fire.fire(f"{prefix}{number}", mask, direction)
    return fire.bits, fire.point_types(settings.resolution), runs


_VARIATION = np.array(
    [
        # g < 0 (decrease)      g = 0 (neutral)     g > 0 (increase)
        ["common_cause", "common_cause", "common_cause"],
        ["improvement_low", "neutral_high", "improvement_high"],
        ["concern_high", "neutral_low", "concern_low"],
        ["neutral_high", "neutral_high", "neutral_high"],
        ["neutral_low", "neutral_low", "neutral_low"],
    ],
    dtype=object,
)


def _icons(
    has_value: np.ndarray,
    last_type: np.ndarray,
    *,
    g: np.ndarray,
    targets: tuple[float | None, ...],
    upper: np.ndarray,
    lower: np.ndarray,
) -> tuple[tuple[str | None, ...], tuple[str | None, ...]]:
    """Variation icon (the last point's type) and assurance icon (target vs its limits) per
    series; strict comparisons (NHSRplotthedots)."""
    variation = np.where(has_value, _VARIATION[last_type.astype(np.int64), g + 1], None)
    target = np.array([math.nan if t is None else t for t in targets], dtype=float)
    usable = has_value & (g != 0) & np.isfinite(target) & np.isfinite(upper) & np.isfinite(lower)
    above, below = target > upper, target < lower
    good_high = g > 0
    assurance = np.where(
        above,
        np.where(good_high, "consistent_fail", "consistent_pass"),
        np.where(below, np.where(good_high, "consistent_pass", "consistent_fail"), "inconsistent"),
    ).astype(object)
    assurance[~usable] = None
    return tuple(variation.tolist()), tuple(assurance.tolist())


def control_charts(
    y: npt.ArrayLike,
    n: npt.ArrayLike | None = None,
    *,
    chart: str,
    sd: npt.ArrayLike | None = None,
    x: Sequence[Any] | None = None,
    mode: str = "qic",
    phase: npt.ArrayLike | None = None,
    excluded: npt.ArrayLike | None = None,
    freeze: int | npt.ArrayLike | None = None,
    direction: str | Sequence[str | None] | None = None,
    target: float | Sequence[float | None] | None = None,
    multiply: float = 1.0,
    settings: SpcSettings | None = None,
    **overrides: Any,
) -> ControlChartBatch:
    """Charts of many series at once: one row per series, one column per period.

    Parameters
    ----------
    y : array (series, periods)
        Numerators (p, pp, u, up), counts (c), subgroup means (xbar, s) or values (run, i,
        mr, g, t). NaN marks a missing period.
    n : array, optional
        Denominators (p, pp, u, up; with run or i the plotted value is y/n, as qicharts2) or
        subgroup sizes (xbar, s).
    sd : array, optional
        Subgroup standard deviations (xbar, s).
    x : sequence, optional
        Period labels shared by all series (default 1..periods).
    phase : int array (series, periods), optional
        1-based phase number of each point, non-decreasing along each row.
    excluded : bool array (series, periods), optional
        Points left out of limits and sequence rules.
    freeze : int or array (series,), optional
        Baseline end (1-based position) per series; 0 or None for none.
    direction, target : scalar or one per series
        Improvement direction and target (display scale) for point types and icons.
    multiply : float
        Display scale (100 for percent); values and lines are multiplied after computing.
    settings : SpcSettings, optional
        Overrides ``mode`` and keyword overrides when given.
    """
    if chart not in CHARTS:
        msg = f"chart must be one of {CHARTS}, not {chart!r}"
        raise ValueError(msg)
    if not (math.isfinite(multiply) and multiply > 0):
        msg = "multiply must be a positive number"
        raise ValueError(msg)
    settings = settings or make_settings(mode, **overrides)
    values = _rows(y)
    assert values is not None
    if values.ndim != 2 or values.shape[1] == 0:
        msg = "y must be a non-empty 1-D or 2-D array"
        raise ValueError(msg)
    shape = (int(values.shape[0]), int(values.shape[1]))
    rows, cols = shape
    den = _rows(n, shape)
    sds = _rows(sd, shape)
    labels = tuple(_x_value(v) for v in (range(1, cols + 1) if x is None else x))
    if len(labels) != cols:
        msg = f"x has {len(labels)} labels for {cols} periods"
        raise ValueError(msg)
    phases = (
        np.ones(shape, dtype=np.int64)
        if phase is None
        else np.broadcast_to(np.asarray(phase, dtype=np.int64), shape).copy()
    )
    if (phases < 1).any() or (np.diff(phases, axis=1) < 0).any():
        msg = "phase numbers must be >= 1 and non-decreasing along each series"
        raise ValueError(msg)
    excl = (
        np.zeros(shape, dtype=bool)
        if excluded is None
        else np.broadcast_to(np.asarray(excluded, dtype=bool), shape).copy()
    )
    baseline = _baseline(phases, freeze)
    g, directions = _direction_signs(direction, rows)
    targets = _targets(target, rows)
    data = _values_for(chart, values, den, sds)

    segs = _segments(phases)
    seg_valid = segs.to_seg(np.ones(shape, dtype=bool), False)
    seg_incl = segs.to_seg(~excl, False)
    seg_base = segs.to_seg(baseline & ~excl, False)
    seg_input = SegmentInput(
        y=segs.to_seg(data["y"], np.nan),
        num=segs.to_seg(data["num"], np.nan),
        den=segs.to_seg(data["den"], np.nan),
        sd=segs.to_seg(data["sd"], np.nan),
        size=segs.to_seg(data["size"], np.nan),
        valid=seg_valid,
        base=seg_base,
    )
    lim = segment_limits(
        chart,
        seg_input,
        xmr_constant=settings.xmr_constant,
        screen_mr=settings.screen_mr,
        empty_subgroup_quirk=settings.empty_subgroup_quirk,
    )
    seg_row = segs.starts // cols
    bits, types, runs = _apply_rules(
        chart, lim, valid=seg_valid, included=seg_incl, improvement=g[seg_row], settings=settings
    )

    def back(a: np.ndarray) -> np.ndarray:
        return segs.back(a, shape)

    value = back(lim.value)
    cl, ucl, lcl = back(lim.cl), back(lim.ucl), back(lim.lcl)
    ucl2, lcl2 = back(lim.ucl2), back(lim.lcl2)
    if settings.clamp_lcl and chart in {"i", "xbar"}:
        nonneg = ~(np.isfinite(value) & (value < 0)).any(axis=1, keepdims=True)
        lcl = np.where(nonneg & (lcl < 0), 0.0, lcl)
        lcl2 = np.where(nonneg & (lcl2 < 0), 0.0, lcl2)
    value, cl, ucl, lcl, ucl2, lcl2 = (a * multiply for a in (value, cl, ucl, lcl, ucl2, lcl2))
    signals = back(bits)
    point_type = back(types)

    base_values = (seg_base & np.isfinite(lim.value)).sum(axis=1)
    phase_trial = (
        (base_values < settings.trial_below) if chart != "run" else np.zeros(segs.count, dtype=bool)
    )
    n_obs = seg_incl.sum(axis=1).astype(np.int64)
    seg_lengths = np.diff(np.append(segs.starts, rows * cols))
    phase_start = segs.starts % cols
    phase_end = phase_start + seg_lengths - 1
    phase_number = phases.ravel()[segs.starts]
    phase_cl = lim.cl[:, 0] * multiply

    finite = np.isfinite(value)
    has_value = finite.any(axis=1)
    last = cols - 1 - np.argmax(finite[:, ::-1], axis=1)
    last_type = point_type[np.arange(rows), last]
    last_ucl = ucl[np.arange(rows), last]
    last_lcl = lcl[np.arange(rows), last]
    variation, assurance = _icons(
        has_value, last_type, g=g, targets=targets, upper=last_ucl, lower=last_lcl
    )

    notes: list[list[str]] = [[] for _ in range(rows)]
    for k in np.flatnonzero(phase_trial):
        notes[int(seg_row[k])].append(
            f"phase {int(phase_number[k])}: {int(base_values[k])} baseline values "
            f"(< {settings.trial_below}); trial limits"
        )
    for k, text in lim.notes:
        if chart != "run":
            notes[int(seg_row[k])].append(f"phase {int(phase_number[k])}: {text}")
    seg_trial_by_row = np.zeros(rows, dtype=bool)
    np.logical_or.at(seg_trial_by_row, seg_row, phase_trial)
    phase_rows = np.split(np.arange(segs.count), np.flatnonzero(np.diff(seg_row)) + 1)

    return ControlChartBatch(
        chart=chart,
        settings=settings,
        x=labels,
        value=value,
        n=np.array(data["den"] if chart not in {"xbar", "s"} else data["size"], dtype=float),
        cl=cl,
        ucl=ucl,
        lcl=lcl,
        ucl_2sigma=ucl2,
        lcl_2sigma=lcl2,
        phase=phases,
        excluded=excl,
        baseline=baseline,
        signals=signals,
        point_type=point_type,
        phase_series=seg_row.astype(np.int64),
        phase_number=phase_number.astype(np.int64),
        phase_start=phase_start.astype(np.int64),
        phase_end=phase_end.astype(np.int64),
        n_obs=n_obs,
        n_useful=runs.n_useful,
        longest_run=runs.longest_run,
        longest_run_max=runs.longest_run_max,
        crossings=runs.crossings,
        crossings_min=runs.crossings_min,
        runs_signal=runs.signal,
        phase_trial=phase_trial,
        phase_cl=phase_cl,
        variation_icon=tuple(variation),
        assurance_icon=tuple(assurance),
        trial_limits=seg_trial_by_row,
        warnings=tuple(tuple(w) for w in notes),
        direction=directions,
        target=targets,
        multiply=float(multiply),
        _phase_rows=tuple(phase_rows),
    )


# --- one series ------------------------------------------------------------------------------


def _is_datelike(values: Sequence[Any]) -> bool:
    return bool(values) and all(
        isinstance(v, dt.date | pd.Timestamp | np.datetime64) for v in values
    )


def phase_positions(x: Sequence[Any], starts: Sequence[Any]) -> list[int]:
    """1-based ``part`` positions (a new phase after each) for phases starting at x values.

    A phase starts at the first point whose x is on or after the start (dates, numbers, or ISO
    date strings against date x), as NHSRplotthedots' rebase does; other labels must match an x
    exactly. Starts at or before the first point are ignored (the first phase starts there).
    """
    xs = list(x)
    out: set[int] = set()
    if not starts:
        return []
    if _is_datelike(xs) or all(isinstance(v, numbers.Real) for v in xs):
        datelike = _is_datelike(xs)
        keys = pd.to_datetime(pd.Series(xs)).to_numpy() if datelike else np.asarray(xs, dtype=float)
        order_ok = bool(np.all(keys[1:] >= keys[:-1]))
        if not order_ok:
            msg = "x must be sorted to place phase starts"
            raise ValueError(msg)
        for start in starts:
            key = pd.Timestamp(start).to_datetime64() if datelike else float(start)
            index = int(np.searchsorted(keys, key, side="left"))
            if 0 < index < len(xs):
                out.add(index)
        return sorted(out)
    text = [str(v) for v in xs]
    for start in starts:
        label = str(_x_value(start))
        if label not in text:
            msg = f"phase start {label!r} is not one of the x values"
            raise ValueError(msg)
        index = text.index(label)
        if index > 0:
            out.add(index)
    return sorted(out)


def _phase_array(count: int, part: Sequence[int]) -> npt.NDArray[np.int64]:
    phase = np.ones(count, dtype=np.int64)
    for after in sorted({int(p) for p in part}):
        if 0 < after < count:
            phase[after:] += 1
    return phase


def _positions_mask(count: int, positions: Sequence[int], what: str) -> npt.NDArray[np.bool_]:
    mask = np.zeros(count, dtype=bool)
    for position in positions:
        p = int(position)
        if not 1 <= p <= count:
            msg = f"{what} position {p} is outside 1..{count}"
            raise ValueError(msg)
        mask[p - 1] = True
    return mask


def control_chart(
    y: npt.ArrayLike,
    n: npt.ArrayLike | None = None,
    *,
    chart: str = "run",
    sd: npt.ArrayLike | None = None,
    x: Sequence[Any] | None = None,
    mode: str = "qic",
    part: Sequence[int] = (),
    phase_starts: Sequence[Any] = (),
    exclude: Sequence[int] = (),
    freeze: int | None = None,
    direction: str | None = None,
    target: float | None = None,
    multiply: float = 1.0,
    settings: SpcSettings | None = None,
    **overrides: Any,
) -> ControlChart:
    """One series' control or run chart (the engine of :func:`control_charts` on one row).

    ``y``/``n``/``sd`` are as in :func:`control_charts` (1-D, in x order); ``part`` lists
    1-based positions after which a new phase starts, ``phase_starts`` x values (dates or
    labels) at which one starts; ``exclude`` and ``freeze`` are 1-based positions.
    """
    values = np.asarray(y, dtype=float)
    if values.ndim != 1:
        msg = "y must be 1-D for one series (use control_charts for many)"
        raise ValueError(msg)
    count = len(values)
    labels = list(range(1, count + 1)) if x is None else list(x)
    positions = list(part) + phase_positions(labels, phase_starts)
    return control_charts(
        values,
        n,
        chart=chart,
        sd=sd,
        x=labels,
        mode=mode,
        phase=_phase_array(count, positions),
        excluded=_positions_mask(count, exclude, "exclude"),
        freeze=freeze,
        direction=direction,
        target=target,
        multiply=multiply,
        settings=settings,
        **overrides,
    ).chart_at(0)


def chart_from_frame(
    frame: pd.DataFrame,
    *,
    x: str,
    value: str | None = None,
    numerator: str | None = None,
    denominator: str | None = None,
    chart: str | None = None,
    measure_type: str | None = None,
    exclude: str | Sequence[Any] = (),
    phase_starts: Sequence[Any] = (),
    freeze: Any = None,
    **options: Any,
) -> ControlChart:
    """A chart of one series from a frame of periods (several rows per period are aggregated).

    Parameters
    ----------
    frame : DataFrame
        One row per period (or per observation: rows sharing an x are summed for numerators
        and denominators, and become a subgroup for xbar/s).
    x : str
        Period column (dates, numbers or labels); points are sorted by it.
    value, numerator, denominator : str
        Columns: ``value`` for run/i/mr/g/t/xbar/s; ``numerator`` and ``denominator`` for
        p/pp/u/up (and ``numerator`` alone for c).
    chart : str, optional
        Chart type; else :func:`choose_chart` decides from ``measure_type``.
    exclude : str or sequence
        A boolean column, or the x values of excluded periods.
    phase_starts : sequence
        x values (dates or labels) at which new phases start.
    freeze : x value or int, optional
        Last baseline period: an x value, or a 1-based position if x has no such value.
    **options
        Passed to :func:`control_chart` (mode, direction, target, multiply, settings ...).
    """
    for column in (x, value, numerator, denominator):
        if column is not None and column not in frame.columns:
            msg = f"column {column!r} is not in the frame"
            raise KeyError(msg)
    if value is None and numerator is None:
        msg = "give a value column or a numerator column"
        raise ValueError(msg)
    source = value if value is not None else numerator
    assert source is not None
    subgroups = aggregate_subgroups(
        frame[x], frame[source], None if denominator is None else frame[denominator]
    )
    if chart is None:
        if measure_type is None:
            msg = "give a chart type or a measure type"
            raise ValueError(msg)
        chart = choose_chart(
            measure_type,
            numerators=subgroups.y_sum if denominator is not None else None,
            denominators=subgroups.n_sum if denominator is not None else None,
            subgroup_sizes=subgroups.y_length if value is not None else None,
        ).chart
    labels = list(subgroups.x)
    if chart in {"xbar", "s"}:
        y, n, sd = subgroups.y_mean, subgroups.y_length, subgroups.y_sd
    elif denominator is not None:
        y, n, sd = _sum_or_nan(subgroups), subgroups.n_sum, None
    elif chart in {"c"}:
        y, n, sd = _sum_or_nan(subgroups), None, None
    else:
        y, n, sd = subgroups.y_mean, None, None
    if isinstance(exclude, str):
        flags = frame.groupby(x, sort=True)[exclude].any()
        positions = [i + 1 for i, flag in enumerate(flags.to_numpy()) if bool(flag)]
    else:
        wanted = {_x_value(v) for v in exclude}
        positions = [i + 1 for i, label in enumerate(labels) if _x_value(label) in wanted]
        if len(positions) != len(wanted):
            msg = "some excluded x values are not in the frame"
            raise ValueError(msg)
    freeze_position = None
    if freeze is not None:
        keys = [_x_value(v) for v in labels]
        freeze_position = (
            keys.index(_x_value(freeze)) + 1 if _x_value(freeze) in keys else int(freeze)
        )
    return control_chart(
        y,
        n,
        chart=chart,
        sd=sd,
        x=labels,
        exclude=positions,
        phase_starts=phase_starts,
        freeze=freeze_position,
        **options,
    )


def _sum_or_nan(subgroups: Subgroups) -> npt.NDArray[np.float64]:
    """Subgroup sums with all-missing subgroups as NaN (a gap, never a zero)."""
    return np.where(subgroups.y_length > 0, subgroups.y_sum, np.nan)
