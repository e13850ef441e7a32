"""Result and settings classes of the SPC engine (:mod:`qicollab.stats.spc`).

Small frozen dataclasses that the platform stores as JSON: :class:`ControlChart` (one series,
``to_dict``/``from_dict`` round-trip with NaN as ``None``), :class:`ControlChartBatch` (many
series as arrays, for bulk runs), and :class:`SpcSettings` with the two named modes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from qicollab.stats import spc_rules as rules_
from qicollab.stats.spc_limits import MDC_XMR, QIC_XMR

Mode = Literal["qic", "mdc"]
Direction = Literal["increase", "decrease", "neutral"]
XValue = str | int | float

MODES: tuple[str, ...] = ("qic", "mdc")
RULE_FAMILIES: tuple[str, ...] = (
    "outside_limits",
    "anhoej",
    "trend",
    "two_of_three",
    "shift",
    "western_electric",
    "nelson",
)
#: Per-point rule names in precedence order (the bit of each in :attr:`ControlChartBatch.signals`).
RULE_NAMES: tuple[str, ...] = (
    "outside_limits",
    "anhoej_longest_run",
    "anhoej_crossings",
    "trend",
    "two_of_three",
    "shift",
    "we1",
    "we2",
    "we3",
    "we4",
    "nelson1",
    "nelson2",
    "nelson3",
    "nelson4",
    "nelson5",
    "nelson6",
    "nelson7",
    "nelson8",
)
RULE_BITS = {name: i for i, name in enumerate(RULE_NAMES)}
POINT_TYPES: tuple[str, ...] = (
    "common_cause",
    "special_cause_improvement",
    "special_cause_concern",
    "special_cause_neutral_high",
    "special_cause_neutral_low",
)
TRIAL_BELOW = 12


# --- settings --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpcSettings:
    """Method options of a chart; :func:`make_settings` fills them from a mode.

    Parameters
    ----------
    mode : {"qic", "mdc"}
        The named default set (module docstring).
    xmr_constant : float
        AMR multiplier for the 3-sigma limits of I and T charts (3/1.128 or 2.66).
    screen_mr : bool
        Drop moving ranges >= 3.267 AMR once before computing AMR (I, T, P', U').
    rules : tuple of str
        Rule families evaluated, from :data:`RULE_FAMILIES`.
    trend_points, shift_points : int
        Points needed for a trend / a shift (MDC 7; PowerBI-SPC uses 5 and 7).
    two_in_three : {"mdc2023", "nhsr", "powerbi"}
        Which two-in-three definition (:func:`qicollab.stats.spc_rules.two_in_three`).
    resolution : {"precedence", "improvement"}
        A point's type when rules disagree: the first rule in :data:`RULE_NAMES` order decides,
        or improvement wins (the MDC tool).
    trial_below : int
        Phases with fewer baseline values than this have trial limits.
    empty_subgroup_quirk : bool
        Reproduce qicharts2's pooled-SD denominator for empty subgroups (spc_limits).
    clamp_lcl : bool
        qicharts2 ``y.neg = FALSE``: raise negative I/Xbar lower limits to 0 when all values
        are >= 0 (display only; no value can fall below them).
    """

    mode: str = "qic"
    xmr_constant: float = QIC_XMR
    screen_mr: bool = True
    rules: tuple[str, ...] = ("outside_limits", "anhoej")
    trend_points: int = 7
    shift_points: int = 7
    two_in_three: str = "mdc2023"
    resolution: str = "precedence"
    trial_below: int = TRIAL_BELOW
    empty_subgroup_quirk: bool = False
    clamp_lcl: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["rules"] = list(self.rules)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpcSettings:
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "rules" in kwargs:
            kwargs["rules"] = tuple(kwargs["rules"])
        return cls(**kwargs)


_MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "qic": {
        "xmr_constant": QIC_XMR,
        "screen_mr": True,
        "rules": ("outside_limits", "anhoej"),
        "resolution": "precedence",
    },
    "mdc": {
        "xmr_constant": MDC_XMR,
        "screen_mr": True,
        "rules": ("outside_limits", "trend", "two_of_three", "shift"),
        "two_in_three": "mdc2023",
        "resolution": "improvement",
    },
}


def make_settings(mode: str = "qic", **overrides: Any) -> SpcSettings:
    """The settings of a mode, with keyword overrides (names of :class:`SpcSettings`)."""
    if mode not in MODES:
        msg = f"mode must be one of {MODES}, not {mode!r}"
        raise ValueError(msg)
    unknown = set(overrides) - {f.name for f in fields(SpcSettings)}
    if unknown:
        msg = f"unknown SPC settings: {', '.join(sorted(unknown))}"
        raise TypeError(msg)
    values = {"mode": mode, **_MODE_DEFAULTS[mode], **overrides}
    if "rules" in values:
        values["rules"] = tuple(values["rules"])
    settings = SpcSettings(**values)
    bad = [r for r in settings.rules if r not in RULE_FAMILIES]
    if bad:
        msg = f"unknown rules {bad}; choose from {RULE_FAMILIES}"
        raise ValueError(msg)
    if settings.two_in_three not in rules_.TWO_IN_THREE_VARIANTS:
        msg = f"two_in_three must be one of {rules_.TWO_IN_THREE_VARIANTS}"
        raise ValueError(msg)
    if settings.resolution not in {"precedence", "improvement"}:
        msg = "resolution must be 'precedence' or 'improvement'"
        raise ValueError(msg)
    return settings


# --- results ---------------------------------------------------------------------------------


def _f(value: Any) -> float:
    return math.nan if value is None else float(value)


def _json(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class ChartPoint:
    """One plotted point. Missing values and lines are NaN (``None`` in JSON).

    ``value`` and the lines are on the display scale (after ``multiply``); ``n`` is the
    denominator (p, u, ...) or subgroup size (xbar, s); ``signals`` names the rules that fired
    here, in :data:`RULE_NAMES` order; ``point_type`` is one of :data:`POINT_TYPES`.
    """

    x: XValue
    value: float
    n: float
    cl: float
    ucl: float
    lcl: float
    ucl_2sigma: float
    lcl_2sigma: float
    phase: int
    excluded: bool
    baseline: bool
    signals: tuple[str, ...]
    point_type: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (NaN -> None)."""
        return {
            "x": self.x,
            "value": _json(self.value),
            "n": _json(self.n),
            "cl": _json(self.cl),
            "ucl": _json(self.ucl),
            "lcl": _json(self.lcl),
            "ucl_2sigma": _json(self.ucl_2sigma),
            "lcl_2sigma": _json(self.lcl_2sigma),
            "phase": self.phase,
            "excluded": self.excluded,
            "baseline": self.baseline,
            "signals": list(self.signals),
            "point_type": self.point_type,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChartPoint:
        """Inverse of :meth:`to_dict`."""
        return cls(
            x=data["x"],
            value=_f(data.get("value")),
            n=_f(data.get("n")),
            cl=_f(data.get("cl")),
            ucl=_f(data.get("ucl")),
            lcl=_f(data.get("lcl")),
            ucl_2sigma=_f(data.get("ucl_2sigma")),
            lcl_2sigma=_f(data.get("lcl_2sigma")),
            phase=int(data.get("phase", 1)),
            excluded=bool(data.get("excluded", False)),
            baseline=bool(data.get("baseline", True)),
            signals=tuple(data.get("signals") or ()),
            point_type=str(data.get("point_type", "common_cause")),
        )


@dataclass(frozen=True, slots=True)
class PhaseRuns:
    """Anhøj runs analysis and limits status of one phase (qicharts2's per-part columns).

    ``n_obs`` counts the phase's included points (missing values too), ``n_useful`` those not
    missing and not on the centre line. Without useful points the run statistics are None.
    The statistics are reported in every mode; ``signal`` is set only when the Anhøj rules are
    in use (``qic`` mode, or ``"anhoej"`` in the rules) and never on MR charts (qicharts2).
    """

    phase: int
    start: XValue
    end: XValue
    n_obs: int
    n_useful: int
    longest_run: int | None
    longest_run_max: int | None
    crossings: int | None
    crossings_min: int | None
    signal: bool
    trial_limits: bool
    cl: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["cl"] = _json(self.cl)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PhaseRuns:
        """Inverse of :meth:`to_dict`; tolerant of older payloads that lack some keys."""
        return cls(
            phase=int(data.get("phase", 1)),
            start=data.get("start", ""),
            end=data.get("end", ""),
            n_obs=int(data.get("n_obs") or data.get("n_useful") or 0),
            n_useful=int(data.get("n_useful") or 0),
            longest_run=data.get("longest_run"),
            longest_run_max=data.get("longest_run_max"),
            crossings=data.get("crossings"),
            crossings_min=data.get("crossings_min"),
            signal=bool(data.get("signal", False)),
            trial_limits=bool(data.get("trial_limits", False)),
            cl=_f(data.get("cl")),
        )


@dataclass(frozen=True, slots=True)
class ControlChart:
    """A control or run chart of one series, as stored with a benchmark run.

    Parameters
    ----------
    chart : str
        Chart type, one of :data:`CHARTS`.
    mode : str
        ``"qic"`` or ``"mdc"``.
    points : tuple of ChartPoint
        In x order.
    runs : tuple of PhaseRuns
        One per phase.
    variation_icon, assurance_icon : str or None
        NHSRplotthedots icon names (module docstring); None without a usable last point, or
        (assurance) without a target, a direction or limits.
    trial_limits : bool
        Some phase has fewer than ``settings.trial_below`` baseline values.
    warnings : tuple of str
        Human-readable notes (trial limits, too few moving ranges, ...).
    settings : SpcSettings
        The options that produced the chart.
    direction : str or None
        ``"increase"``, ``"decrease"`` or ``"neutral"`` (None is neutral).
    target : float or None
        On the display scale.
    multiply : float
        Display scale factor applied to values and lines (e.g. 100 for percent).

    Notes
    -----
    ``to_dict()`` gives the JSON stored in the database (NaN -> None) and ``from_dict()`` reads
    it back; ``ControlChart.from_dict(c.to_dict()).to_dict() == c.to_dict()``.
    """

    chart: str
    mode: str
    points: tuple[ChartPoint, ...]
    runs: tuple[PhaseRuns, ...]
    variation_icon: str | None
    assurance_icon: str | None
    trial_limits: bool
    warnings: tuple[str, ...]
    settings: SpcSettings
    direction: str | None = None
    target: float | None = None
    multiply: float = 1.0

    @property
    def runs_signal(self) -> bool:
        """Any phase's Anhøj rules signalled."""
        return any(r.signal for r in self.runs)

    def signalled(self) -> tuple[ChartPoint, ...]:
        """The points where some rule fired."""
        return tuple(p for p in self.points if p.signals)

    def to_frame(self) -> pd.DataFrame:
        """One row per point (notebook use)."""
        rows = [p.to_dict() for p in self.points]
        return pd.DataFrame(rows).astype({"value": float, "cl": float, "ucl": float, "lcl": float})

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary for storage (NaN -> None)."""
        return {
            "engine": "qicollab.stats.spc",
            "chart": self.chart,
            "mode": self.mode,
            "direction": self.direction,
            "target": None if self.target is None else _json(float(self.target)),
            "multiply": self.multiply,
            "points": [p.to_dict() for p in self.points],
            "runs": [r.to_dict() for r in self.runs],
            "variation_icon": self.variation_icon,
            "assurance_icon": self.assurance_icon,
            "trial_limits": self.trial_limits,
            "warnings": list(self.warnings),
            "settings": self.settings.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ControlChart:
        """Read a stored chart back (keys added by callers are ignored)."""
        target = data.get("target")
        return cls(
            chart=str(data["chart"]),
            mode=str(data.get("mode", "qic")),
            points=tuple(ChartPoint.from_dict(p) for p in data.get("points", ())),
            runs=tuple(PhaseRuns.from_dict(r) for r in data.get("runs", ())),
            variation_icon=data.get("variation_icon"),
            assurance_icon=data.get("assurance_icon"),
            trial_limits=bool(data.get("trial_limits", False)),
            warnings=tuple(data.get("warnings") or ()),
            settings=SpcSettings.from_dict(data.get("settings") or {}),
            direction=data.get("direction"),
            target=None if target is None else float(target),
            multiply=float(data.get("multiply", 1.0)),
        )


def signal_names(bits: int) -> tuple[str, ...]:
    """Rule names of a :attr:`ControlChartBatch.signals` bit mask, in precedence order."""
    return tuple(name for i, name in enumerate(RULE_NAMES) if bits >> i & 1)


@dataclass(frozen=True, slots=True)
class ControlChartBatch:
    """Many series of one chart type, as arrays (rows = series, columns = periods).

    Point arrays have shape (series, periods) on the display scale; ``signals`` is a bit mask
    over :data:`RULE_NAMES`; ``point_type`` indexes :data:`POINT_TYPES`. Phase arrays (one
    entry per series x phase, ``phase_series``/``phase_number`` say which) carry the runs
    analysis. :meth:`chart` gives one series as a :class:`ControlChart`.
    """

    chart: str
    settings: SpcSettings
    x: tuple[XValue, ...]
    value: npt.NDArray[np.float64]
    n: npt.NDArray[np.float64]
    cl: npt.NDArray[np.float64]
    ucl: npt.NDArray[np.float64]
    lcl: npt.NDArray[np.float64]
    ucl_2sigma: npt.NDArray[np.float64]
    lcl_2sigma: npt.NDArray[np.float64]
    phase: npt.NDArray[np.int64]
    excluded: npt.NDArray[np.bool_]
    baseline: npt.NDArray[np.bool_]
    signals: npt.NDArray[np.uint32]
    point_type: npt.NDArray[np.int8]
    phase_series: npt.NDArray[np.int64]
    phase_number: npt.NDArray[np.int64]
    phase_start: npt.NDArray[np.int64]
    phase_end: npt.NDArray[np.int64]
    n_obs: npt.NDArray[np.int64]
    n_useful: npt.NDArray[np.int64]
    longest_run: npt.NDArray[np.int64]
    longest_run_max: npt.NDArray[np.int64]
    crossings: npt.NDArray[np.int64]
    crossings_min: npt.NDArray[np.int64]
    runs_signal: npt.NDArray[np.bool_]
    phase_trial: npt.NDArray[np.bool_]
    phase_cl: npt.NDArray[np.float64]
    variation_icon: tuple[str | None, ...]
    assurance_icon: tuple[str | None, ...]
    trial_limits: npt.NDArray[np.bool_]
    warnings: tuple[tuple[str, ...], ...]
    direction: tuple[str | None, ...]
    target: tuple[float | None, ...]
    multiply: float = 1.0
    _phase_rows: tuple[npt.NDArray[np.int64], ...] = field(default=(), repr=False)

    def __len__(self) -> int:
        return int(self.value.shape[0])

    def chart_at(self, i: int) -> ControlChart:
        """Series ``i`` as a :class:`ControlChart` (builds Python objects: for storage)."""
        names = {int(b): signal_names(int(b)) for b in np.unique(self.signals[i])}
        cols = (
            self.value[i],
            self.n[i],
            self.cl[i],
            self.ucl[i],
            self.lcl[i],
            self.ucl_2sigma[i],
            self.lcl_2sigma[i],
        )
        lists = [c.tolist() for c in cols]
        phase = self.phase[i].tolist()
        excluded = self.excluded[i].tolist()
        baseline = self.baseline[i].tolist()
        bits = self.signals[i].tolist()
        types = self.point_type[i].tolist()
        points = tuple(
            ChartPoint(
                x=self.x[j],
                value=lists[0][j],
                n=lists[1][j],
                cl=lists[2][j],
                ucl=lists[3][j],
                lcl=lists[4][j],
                ucl_2sigma=lists[5][j],
                lcl_2sigma=lists[6][j],
                phase=phase[j],
                excluded=excluded[j],
                baseline=baseline[j],
                signals=names[bits[j]],
                point_type=POINT_TYPES[types[j]],
            )
            for j in range(len(self.x))
        )
        return ControlChart(
            chart=self.chart,
            mode=self.settings.mode,
            points=points,
            runs=self._runs_at(i),
            variation_icon=self.variation_icon[i],
            assurance_icon=self.assurance_icon[i],
            trial_limits=bool(self.trial_limits[i]),
            warnings=self.warnings[i],
            settings=self.settings,
            direction=self.direction[i],
            target=self.target[i],
            multiply=self.multiply,
        )

    def _runs_at(self, i: int) -> tuple[PhaseRuns, ...]:
        runs = []
        for k in (
            self._phase_rows[i] if self._phase_rows else np.flatnonzero(self.phase_series == i)
        ):
            useful = int(self.n_useful[k]) > 0
            runs.append(
                PhaseRuns(
                    phase=int(self.phase_number[k]),
                    start=self.x[int(self.phase_start[k])],
                    end=self.x[int(self.phase_end[k])],
                    n_obs=int(self.n_obs[k]),
                    n_useful=int(self.n_useful[k]),
                    longest_run=int(self.longest_run[k]) if useful else None,
                    longest_run_max=int(self.longest_run_max[k]) if useful else None,
                    crossings=int(self.crossings[k]) if useful else None,
                    crossings_min=int(self.crossings_min[k]) if useful else None,
                    signal=bool(self.runs_signal[k]),
                    trial_limits=bool(self.phase_trial[k]),
                    cl=float(self.phase_cl[k]),
                )
            )
        return tuple(runs)

    def dict_at(self, i: int) -> dict[str, Any]:
        """``chart_at(i).to_dict()`` built straight from the arrays (about twice as fast, for
        storing a bulk run)."""

        def column(a: npt.NDArray[np.float64]) -> list[float | None]:
            return np.where(np.isfinite(a), a, None).tolist()

        names = {int(b): list(signal_names(int(b))) for b in np.unique(self.signals[i])}
        keys = ("value", "n", "cl", "ucl", "lcl", "ucl_2sigma", "lcl_2sigma")
        values = [column(getattr(self, key)[i]) for key in keys]
        points = [
            {
                "x": x,
                "value": v,
                "n": n,
                "cl": cl,
                "ucl": ucl,
                "lcl": lcl,
                "ucl_2sigma": ucl2,
                "lcl_2sigma": lcl2,
                "phase": phase,
                "excluded": excluded,
                "baseline": baseline,
                "signals": list(names[bits]),
                "point_type": POINT_TYPES[kind],
            }
            for x, v, n, cl, ucl, lcl, ucl2, lcl2, phase, excluded, baseline, bits, kind in zip(
                self.x,
                *values,
                self.phase[i].tolist(),
                self.excluded[i].tolist(),
                self.baseline[i].tolist(),
                self.signals[i].tolist(),
                self.point_type[i].tolist(),
                strict=True,
            )
        ]
        target = self.target[i]
        return {
            "engine": "qicollab.stats.spc",
            "chart": self.chart,
            "mode": self.settings.mode,
            "direction": self.direction[i],
            "target": None if target is None else _json(float(target)),
            "multiply": self.multiply,
            "points": points,
            "runs": [r.to_dict() for r in self._runs_at(i)],
            "variation_icon": self.variation_icon[i],
            "assurance_icon": self.assurance_icon[i],
            "trial_limits": bool(self.trial_limits[i]),
            "warnings": list(self.warnings[i]),
            "settings": self.settings.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class ChartChoice:
    """The chart :func:`choose_chart` picked and the rule that picked it."""

    chart: str
    reason: str


@dataclass(frozen=True, slots=True)
class Subgroups:
    """Rows aggregated per x (qicharts2 ``qic.agg``): sums, counts, means and SDs."""

    x: tuple[Any, ...]
    y_sum: npt.NDArray[np.float64]
    y_length: npt.NDArray[np.float64]
    y_mean: npt.NDArray[np.float64]
    y_sd: npt.NDArray[np.float64]
    n_sum: npt.NDArray[np.float64]
