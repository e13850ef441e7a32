"""A compact control-chart engine for stored charts, used until ``qicollab.stats`` has one.

Covers what benchmark runs store: run, I (XmR), P, P' (Laney), U, U' and C charts with phases,
trial limits (< 12 points), excluded points, Anhøj runs rules (``qic`` mode: 3 sigma, I chart
sigma = AMR/1.128, MR screening on) and the Making Data Count rules (``mdc`` mode: 2.66 AMR, no
screening, outside limits / 7-point trend / 2 of 3 beyond 2 sigma (November 2023) / 7 points on
one side, improvement vs concern by direction, variation and assurance icons), from the
formulas in design/METHODS.md part B. The JSON follows ``qicollab analyze spc`` (issue 4, 8):
``chart``, ``mode``, ``points`` (``x``, ``value``, ``n``, ``cl``, ``ucl``, ``lcl``,
``ucl_2sigma``, ``lcl_2sigma``, ``phase``, ``excluded``, ``signals``), ``runs`` per phase, and
in ``mdc`` mode ``variation_icon`` and ``assurance_icon``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

MIN_POINTS = 12


def _anhoej(values: np.ndarray, centre: np.ndarray) -> dict[str, Any]:
    signs = np.sign(values - centre)
    signs = signs[np.isfinite(signs) & (signs != 0)]
    useful = len(signs)
    if useful == 0:
        return {
            "n_useful": 0,
            "longest_run": 0,
            "longest_run_max": None,
            "crossings": 0,
            "crossings_min": None,
            "signal": False,
        }
    changes = np.flatnonzero(np.diff(signs) != 0)
    bounds = np.concatenate(([-1], changes, [useful - 1]))
    longest = int(np.max(np.diff(bounds)))
    crossings = len(changes)
    longest_max = round(math.log2(useful) + 3)
    crossings_min = int(stats.binom.ppf(0.05, useful - 1, 0.5)) if useful > 1 else 0
    return {
        "n_useful": useful,
        "longest_run": longest,
        "longest_run_max": longest_max,
        "crossings": crossings,
        "crossings_min": crossings_min,
        "signal": bool(longest > longest_max or crossings < crossings_min),
    }


def _longest_run_points(values: np.ndarray, centre: np.ndarray, limit: int) -> set[int]:
    """Indices of points in runs longer than ``limit`` on one side of the centre line."""
    flagged: set[int] = set()
    run: list[int] = []
    side = 0.0
    for index, (value, cl) in enumerate(zip(values, centre, strict=True)):
        if not (np.isfinite(value) and np.isfinite(cl)):
            continue
        sign = float(np.sign(value - cl))
        if sign == 0:
            continue
        if sign == side:
            run.append(index)
        else:
            if len(run) > limit:
                flagged.update(run)
            run, side = [index], sign
    if len(run) > limit:
        flagged.update(run)
    return flagged


def _mdc_rules(
    values: np.ndarray, cl: np.ndarray, ucl: np.ndarray, lcl: np.ndarray, sigma: np.ndarray
) -> list[list[str]]:
    count = len(values)
    signals: list[list[str]] = [[] for _ in range(count)]
    finite = np.isfinite(values)
    for i in range(count):
        if finite[i] and (values[i] > ucl[i] or values[i] < lcl[i]):
            signals[i].append("outside_limits")
    # 7-point trend: 6 consecutive strictly increasing (or decreasing) differences.
    diffs = np.sign(np.diff(values))
    for start in range(max(0, count - 6)):
        window = diffs[start : start + 6]
        if len(window) == 6 and (np.all(window > 0) or np.all(window < 0)):
            name = "trend_up" if window[0] > 0 else "trend_down"
            for j in range(start, start + 7):
                if name not in signals[j]:
                    signals[j].append(name)
    # 2 of 3 beyond 2 sigma (November 2023: beyond-3-sigma points count), same side.
    side = np.sign(values - cl)
    beyond = np.abs(values - cl) > 2 * sigma
    for start in range(max(0, count - 2)):
        idx = range(start, start + 3)
        sides = side[list(idx)]
        if not np.all(np.isfinite(sides)) or not (np.all(sides > 0) or np.all(sides < 0)):
            continue
        hits = [j for j in idx if beyond[j]]
        if len(hits) >= 2:
            for j in hits:
                if "two_of_three" not in signals[j]:
                    signals[j].append("two_of_three")
    # 7 points on one side of the mean.
    for j in _longest_run_points(values, cl, 6):
        signals[j].append("shift")
    return signals


def _sigma_z(z: np.ndarray, screen: bool) -> float:
    mr = np.abs(np.diff(z[np.isfinite(z)]))
    if not len(mr):
        return 1.0
    amr = mr.mean()
    if screen:
        kept = mr[mr < 3.267 * amr]
        amr = kept.mean() if len(kept) else amr
    return float(amr / 1.128)


def control_chart(
    x: Sequence[str],
    y: Sequence[float],
    n: Sequence[float] | None,
    chart: str,
    *,
    mode: str = "qic",
    phase_starts: Sequence[int] = (),
    exclude: Sequence[int] = (),
    direction: str | None = None,
    target: float | None = None,
) -> dict[str, Any]:
    """One chart. ``y`` is the numerator (p, u, c) or the value (run, i); ``n`` the
    denominator. ``phase_starts`` are 0-based indices where a new phase begins."""
    values_raw = np.asarray(y, dtype=float)
    denominators = None if n is None else np.asarray(n, dtype=float)
    count = len(values_raw)
    if chart in {"p", "pp", "u", "up"}:
        assert denominators is not None
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(denominators > 0, values_raw / denominators, np.nan)
    else:
        values = values_raw.copy()
    phase = np.zeros(count, dtype=int)
    for start in sorted(set(phase_starts)):
        if 0 < start < count:
            phase[start:] += 1
    excluded = np.zeros(count, dtype=bool)
    excluded[[i for i in exclude if 0 <= i < count]] = True
    cl = np.full(count, np.nan)
    sigma = np.full(count, np.nan)
    width = 3.0
    runs = []
    screen = mode == "qic"
    for part in np.unique(phase):
        idx = np.flatnonzero(phase == part)
        base = idx[~excluded[idx] & np.isfinite(values[idx])]
        if not len(base):
            runs.append({"phase": int(part), **_anhoej(np.array([]), np.array([]))})
            continue
        if chart == "run":
            cl[idx] = np.median(values[base])
        elif chart == "i":
            cl[idx] = values[base].mean()
            mr = np.abs(np.diff(values[base]))
            amr = mr.mean() if len(mr) else np.nan
            if screen and len(mr):
                kept = mr[mr < 3.267 * amr]
                amr = kept.mean() if len(kept) else amr
            factor = 2.66 / 3 if mode == "mdc" else 1 / 1.128
            sigma[idx] = amr * factor
        elif chart in {"p", "pp"}:
            assert denominators is not None
            centre = values_raw[base].sum() / denominators[base].sum()
            cl[idx] = centre
            with np.errstate(divide="ignore", invalid="ignore"):
                sigma[idx] = np.sqrt(centre * (1 - centre) / denominators[idx])
            if chart == "pp":
                z = (values[base] - centre) / sigma[base]
                sigma[idx] *= _sigma_z(z, screen)
        elif chart in {"u", "up"}:
            assert denominators is not None
            centre = values_raw[base].sum() / denominators[base].sum()
            cl[idx] = centre
            with np.errstate(divide="ignore", invalid="ignore"):
                sigma[idx] = np.sqrt(centre / denominators[idx])
            if chart == "up":
                z = (values[base] - centre) / sigma[base]
                sigma[idx] *= _sigma_z(z, screen)
        elif chart == "c":
            cl[idx] = values[base].mean()
            sigma[idx] = math.sqrt(max(cl[idx][0], 0.0))
        runs.append({"phase": int(part), **_anhoej(values[base], cl[base]), "points": len(idx)})
    ucl = cl + width * sigma
    lcl = cl - width * sigma
    ucl2 = cl + 2 * sigma
    lcl2 = cl - 2 * sigma
    if chart in {"p", "pp"}:
        ucl, ucl2 = np.minimum(ucl, 1.0), np.minimum(ucl2, 1.0)
    if chart in {"p", "pp", "u", "up", "c"} or (chart == "i" and np.nanmin(values, initial=0) >= 0):
        lcl, lcl2 = np.maximum(lcl, 0.0), np.maximum(lcl2, 0.0)
    signals: list[list[str]] = [[] for _ in range(count)]
    if chart != "run":
        if mode == "mdc":
            for part in np.unique(phase):
                idx = np.flatnonzero(phase == part)
                found = _mdc_rules(values[idx], cl[idx], ucl[idx], lcl[idx], sigma[idx])
                for local, names in zip(idx, found, strict=True):
                    signals[local] = names
        else:
            for i in range(count):
                if np.isfinite(values[i]) and (values[i] > ucl[i] or values[i] < lcl[i]):
                    signals[i].append("outside_limits")
    if mode != "mdc":
        for summary in runs:
            part = summary["phase"]
            idx = np.flatnonzero(phase == part)
            if summary.get("longest_run_max") is None:
                continue
            if summary["longest_run"] > summary["longest_run_max"]:
                keep = idx[~excluded[idx]]
                for j in _longest_run_points(values[keep], cl[keep], summary["longest_run_max"]):
                    signals[keep[j]].append("anhoej_longest_run")
            if summary["crossings"] < summary["crossings_min"]:
                for j in idx:
                    signals[j].append("anhoej_crossings")
    good = None if direction not in {"increase", "decrease"} else direction
    points = []
    for i in range(count):
        types = "common_cause"
        if signals[i] and chart != "run":
            above = values[i] > cl[i]
            if good is None:
                types = "special_cause_neutral"
            elif (good == "increase") == bool(above):
                types = "special_cause_improvement"
            else:
                types = "special_cause_concern"
        points.append(
            {
                "x": x[i],
                "value": values[i],
                "n": None if denominators is None else denominators[i],
                "cl": cl[i],
                "ucl": ucl[i] if chart != "run" else None,
                "lcl": lcl[i] if chart != "run" else None,
                "ucl_2sigma": ucl2[i] if chart != "run" else None,
                "lcl_2sigma": lcl2[i] if chart != "run" else None,
                "phase": int(phase[i]),
                "excluded": bool(excluded[i]),
                "signals": signals[i],
                "point_type": types,
            }
        )
    last_phase = phase[-1] if count else 0
    phase_points = int(np.sum(phase == last_phase))
    result: dict[str, Any] = {
        "chart": chart,
        "mode": mode,
        "engine": "qicollab.benchmarking.spc_fallback",
        "direction": direction,
        "target": target,
        "points": points,
        "runs": runs,
        "trial_limits": phase_points < MIN_POINTS,
        "sigma_multiplier": 2.66 if (mode == "mdc" and chart == "i") else 3.0,
    }
    if mode == "mdc" and count:
        result["variation_icon"] = points[-1]["point_type"]
        last = np.flatnonzero(phase == last_phase)
        upper = float(np.nanmean(ucl[last])) if chart != "run" else math.nan
        lower = float(np.nanmean(lcl[last])) if chart != "run" else math.nan
        icon = None
        if target is not None and good is not None and math.isfinite(upper):
            if target > upper:
                icon = "consistent_fail" if good == "increase" else "consistent_pass"
            elif target < lower:
                icon = "consistent_pass" if good == "increase" else "consistent_fail"
            else:
                icon = "inconsistent"
        result["assurance_icon"] = icon
    return result


# --- risk-adjusted CUSUM and VLAD (Steiner et al. 2000; Lovegrove et al. 1997) ----------------


def cusum_weights(y: np.ndarray, p: np.ndarray, odds_ratio: float) -> np.ndarray:
    """Log-likelihood-ratio scores of each case for a shift of the odds by ``odds_ratio``."""
    denominator = 1 - p + odds_ratio * p
    return np.where(y > 0, np.log(odds_ratio / denominator), np.log(1 / denominator))


def cusum_limit(
    p: np.ndarray, odds_ratio: float, arl: float, *, seed: int, paths: int = 200
) -> float:
    """The limit h whose in-control average run length is about ``arl`` cases, by simulating
    in-control paths (risks resampled from ``p``); run lengths beyond 3 x ``arl`` are censored
    there, which errs towards a higher (safer) limit."""
    rng = np.random.default_rng(seed)
    steps = int(3 * arl)
    risks = rng.choice(np.asarray(p, dtype=float), size=(steps, paths))
    outcomes = rng.random((steps, paths)) < risks
    # Log-likelihood ratios for the alternative; the CUSUM of a halving (odds ratio < 1) is
    # the same max(0, S + W) recursion, drawn below zero by ``ra_cusum``.
    scores = cusum_weights(outcomes, risks, odds_ratio)
    # Running CUSUM per path (reset at 0), then each path's running maximum, which is sorted,
    # so the first passage over any h is a binary search.
    path = np.zeros(paths)
    peak = np.empty((paths, steps))
    for t in range(steps):
        path = np.maximum(0.0, path + scores[t])
        peak[:, t] = path
    np.maximum.accumulate(peak, axis=1, out=peak)
    candidates = np.linspace(0.5, 12.0, 116)
    passage = np.stack([np.searchsorted(row, candidates, side="left") + 1 for row in peak])
    arls = np.minimum(passage, steps).mean(axis=0)
    reached = np.flatnonzero(arls >= arl)
    return float(candidates[reached[0]] if len(reached) else candidates[-1])


def ra_cusum(
    y: np.ndarray,
    p: np.ndarray,
    *,
    odds_ratio_up: float,
    odds_ratio_down: float,
    h_up: float,
    h_down: float,
) -> dict[str, Any]:
    """Upper (deterioration) and lower (improvement) RA-CUSUM, reset to 0 after a signal."""
    up_scores = cusum_weights(y, p, odds_ratio_up)
    down_scores = cusum_weights(y, p, odds_ratio_down)
    upper = np.zeros(len(y))
    lower = np.zeros(len(y))
    signals_up: list[int] = []
    signals_down: list[int] = []
    s_up = s_down = 0.0
    for i in range(len(y)):
        s_up = max(0.0, s_up + up_scores[i])
        s_down = min(0.0, s_down - down_scores[i])
        upper[i], lower[i] = s_up, s_down
        if s_up >= h_up:
            signals_up.append(i)
            s_up = 0.0
        if s_down <= -h_down:
            signals_down.append(i)
            s_down = 0.0
    return {
        "upper": upper,
        "lower": lower,
        "signals_upper": signals_up,
        "signals_lower": signals_down,
    }


def vlad(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Variable life-adjusted display: cumulative expected minus observed events."""
    return np.cumsum(np.asarray(p, dtype=float) - np.asarray(y, dtype=float))
