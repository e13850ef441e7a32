"""Control charts (and RA-CUSUM / VLAD) of every member x measure, stored with the run.

Series come from the snapshot's accepted submissions: aggregate measures plot their monthly
numerator/denominator (P or U chart; P'/U' when the coordinator chose them) or value (XmR);
patient-level measures plot monthly O/E where the rows carry event months (limited data set
with a data use agreement), yearly otherwise. Months without data are gaps, never zeros.
Phases start at the period that contains an annotation flagged ``starts_phase``; the chart
mode (``qic`` or ``mdc``) comes from the run settings (the collaborative's ``spc_mode``), the
improvement direction and target from the measure.

Where case order is allowed (limited data set, event months, the member's DUA on file), binary
patient-level measures also get a risk-adjusted CUSUM (``racusum``; Steiner 2000, upper for a
doubling of the odds, lower for a halving, limits chosen by simulation for the run's in-control
ARL) and a VLAD (``vlad``), both from the run's pooled risk model (phase I = the cycle's pooled
data, stated in the payload).
"""

from __future__ import annotations

import datetime as dt
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qicollab.benchmarking import spc_fallback
from qicollab.benchmarking.compute import json_safe

if TYPE_CHECKING:
    from qicollab.benchmarking.inputs import (
        AnnotationInfo,
        MeasureInfo,
        MeasureOutput,
        PeriodInfo,
        RunInputs,
    )

CHARTS = {"run", "i", "p", "pp", "u", "up", "c"}


def chart_type(measure: MeasureInfo, *, ratio: bool = False, counts: bool = True) -> str:
    """The chart for a measure's type, unless the coordinator overrode it."""
    if measure.chart_override in CHARTS and not ratio:
        return str(measure.chart_override)
    if ratio:
        return "u" if counts else "i"
    return {"proportion": "p", "rate": "u", "ratio": "u"}.get(measure.measure_type, "i")


def _month_grid(inputs: RunInputs, first: dt.date, last: dt.date) -> list[PeriodInfo]:
    return sorted(
        (
            period
            for period in inputs.periods.values()
            if period.granularity == "month" and first <= period.start <= last
        ),
        key=lambda period: period.start,
    )


def _phase_starts(notes: list[AnnotationInfo], starts: list[dt.date]) -> list[int]:
    """0-based indices of the points whose period contains a phase-starting note's date."""
    indices = []
    for note in notes:
        if not note.starts_phase:
            continue
        position = (
            int(
                np.searchsorted(
                    np.array(starts, dtype="datetime64[D]"),
                    np.datetime64(note.occurred_on),
                    side="right",
                )
            )
            - 1
        )
        if 0 < position < len(starts):
            indices.append(position)
    return sorted(set(indices))


def _note_rows(notes: list[AnnotationInfo], periods: list[PeriodInfo]) -> list[dict[str, Any]]:
    rows = []
    for note in notes:
        label = next((p.label for p in periods if p.start <= note.occurred_on <= p.end), None)
        rows.append(
            {
                "id": note.id,
                "date": note.occurred_on.isoformat(),
                "x": label,
                "kind": note.kind,
                "label": note.label,
                "starts_phase": note.starts_phase,
            }
        )
    return rows


def _control(  # noqa: PLR0917 - private; the series arrives as aligned arrays
    measure: MeasureInfo,
    inputs: RunInputs,
    member_id: int,
    periods: list[PeriodInfo],
    y: np.ndarray,
    n: np.ndarray | None,
    chart: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    notes = inputs.annotations_for(member_id, measure.id)
    starts = [period.start for period in periods]
    result = spc_fallback.control_chart(
        [period.label for period in periods],
        y,
        n,
        chart,
        mode=str(inputs.settings.get("spc_mode", "qic")),
        phase_starts=_phase_starts(notes, starts),
        direction=measure.direction,
        target=measure.target if extra.get("target_applies", True) else None,
    )
    result |= {
        "measure": measure.code,
        "member_id": member_id,
        "member": inputs.member_codes.get(member_id),
        "multiplier": 1.0 if extra.get("ratio") else measure.multiplier,
        "unit": "O/E" if extra.get("ratio") else measure.unit,
        "annotations": _note_rows(notes, periods),
        **{k: v for k, v in extra.items() if k != "target_applies"},
    }
    return json_safe(result)


def measure_charts(
    measure: MeasureInfo, inputs: RunInputs, data: pd.DataFrame, output: MeasureOutput
) -> list[dict[str, Any]]:
    """Stored-chart rows (member_id, kind, payload) for one measure."""
    if data.empty or (output.fit is None and measure.level == "patient"):
        return []
    if measure.level == "patient":
        return _patient_charts(measure, inputs, data, output)
    return _aggregate_charts(measure, inputs, data)


def _aggregate_charts(
    measure: MeasureInfo, inputs: RunInputs, data: pd.DataFrame
) -> list[dict[str, Any]]:
    monthly = data[data["granularity"] == "month"]
    if monthly.empty:
        return []
    grid = _month_grid(
        inputs, monthly["period_start"].min().date(), monthly["period_start"].max().date()
    )
    position = {period.id: index for index, period in enumerate(grid)}
    chart = chart_type(measure)
    value_chart = chart in {"i", "run"}
    rows = []
    for member_id, frame in monthly.groupby("member_id", sort=True):
        y = np.full(len(grid), np.nan)
        n = np.full(len(grid), np.nan)
        for period_id, numerator, denominator, value in zip(
            frame["period_id"],
            frame["numerator"],
            frame["denominator"],
            frame["value"],
            strict=True,
        ):
            index = position.get(int(period_id))
            if index is None:
                continue
            y[index] = value if value_chart else numerator
            n[index] = denominator
        payload = _control(
            measure,
            inputs,
            int(member_id),
            grid,
            y,
            None if value_chart else n,
            chart,
            {"series": "monthly", "source": "aggregate submissions"},
        )
        rows.append({"member_id": int(member_id), "kind": "control", "payload": payload})
    return rows


def _patient_charts(
    measure: MeasureInfo, inputs: RunInputs, data: pd.DataFrame, output: MeasureOutput
) -> list[dict[str, Any]]:
    assert output.fit is not None
    family = output.fit["family"]
    counts = family in {"binomial", "poisson"}
    chart = chart_type(measure, ratio=True, counts=counts)
    usable = data[np.isfinite(data["_expected"].to_numpy())]
    years = {
        period.start.year: period
        for period in inputs.periods.values()
        if period.granularity == "year"
    }
    rows: list[dict[str, Any]] = []
    settings = inputs.settings
    cusum = family == "binomial"
    limits: tuple[float, float] | None = None
    for key, frame in usable.groupby("member_id", sort=True):
        member_id = int(key)
        has_months = bool(frame["event_month"].notna().all())
        if has_months:
            first = dt.date(int(frame["event_year"].min()), 1, 1)
            last = dt.date(int(frame["event_year"].max()), 12, 1)
            grid = _month_grid(inputs, first, last)
            keys = frame["event_year"].to_numpy() * 100 + frame["event_month"].to_numpy(dtype=int)
            grid_keys = [p.start.year * 100 + p.start.month for p in grid]
            series = "monthly"
        else:
            grid = sorted(
                (years[y] for y in sorted(set(frame["event_year"].tolist())) if y in years),
                key=lambda period: period.start,
            )
            keys = frame["event_year"].to_numpy()
            grid_keys = [p.start.year for p in grid]
            series = "yearly"
        if not grid:
            continue
        o = pd.Series(frame["outcome"].to_numpy()).groupby(keys).sum()
        e = pd.Series(frame["_expected"].to_numpy()).groupby(keys).sum()
        observed = o.reindex(grid_keys).to_numpy(dtype=float)
        expected = e.reindex(grid_keys).to_numpy(dtype=float)
        if counts:
            y, n = observed, expected
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                y, n = observed / expected, None
        payload = _control(
            measure,
            inputs,
            member_id,
            grid,
            y,
            n,
            chart,
            {
                "series": series,
                "source": "patient records; expected from the run's risk model",
                "ratio": True,
                "target_applies": False,
                "observed": observed,
                "expected": expected,
            },
        )
        rows.append({"member_id": member_id, "kind": "control", "payload": payload})
        if cusum and has_months and member_id in inputs.case_order_members:
            if limits is None:
                limits = _cusum_limits(measure, usable["_expected"].to_numpy(), settings)
            rows.extend(_sequential(measure, member_id, frame, limits, settings))
    return rows


def _cusum_limits(
    measure: MeasureInfo, p: np.ndarray, settings: dict[str, Any]
) -> tuple[float, float]:
    odds = float(settings.get("cusum_odds_ratio", 2.0))
    arl = float(settings.get("cusum_arl", 10_000))
    seed = zlib.crc32(f"{measure.code}:{odds}:{arl}".encode())
    return (
        spc_fallback.cusum_limit(p, odds, arl, seed=seed),
        spc_fallback.cusum_limit(p, 1 / odds, arl, seed=seed + 1),
    )


def _sequential(
    measure: MeasureInfo,
    member_id: int,
    frame: pd.DataFrame,
    limits: tuple[float, float],
    settings: dict[str, Any],
) -> list[dict[str, Any]]:
    ordered = frame.sort_values(["event_year", "event_month", "sequence"], kind="stable")
    y = ordered["outcome"].to_numpy(dtype=float)
    p = ordered["_expected"].to_numpy(dtype=float)
    labels = [
        f"{int(year)}-{int(month):02d}"
        for year, month in zip(ordered["event_year"], ordered["event_month"], strict=True)
    ]
    odds = float(settings.get("cusum_odds_ratio", 2.0))
    result = spc_fallback.ra_cusum(
        y, p, odds_ratio_up=odds, odds_ratio_down=1 / odds, h_up=limits[0], h_down=limits[1]
    )
    common = {
        "measure": measure.code,
        "member_id": member_id,
        "direction": measure.direction,
        "cases": len(y),
        "x": labels,
        "order": "event year, event month, case sequence",
        "model": "the run's pooled risk model (phase I: the cycle's pooled collaborative data)",
        "engine": "qicollab.benchmarking.spc_fallback",
    }
    racusum = {
        **common,
        "chart": "racusum",
        "odds_ratio_upper": odds,
        "odds_ratio_lower": 1 / odds,
        "h_upper": limits[0],
        "h_lower": limits[1],
        "arl": float(settings.get("cusum_arl", 10_000)),
        "upper": np.round(result["upper"], 4),
        "lower": np.round(result["lower"], 4),
        "signals_upper": result["signals_upper"],
        "signals_lower": result["signals_lower"],
        "upper_means": "deterioration" if measure.direction == "decrease" else "improvement",
    }
    track = spc_fallback.vlad(y, p)
    vlad = {
        **common,
        "chart": "vlad",
        "vlad": np.round(track, 4),
        "observed": float(y.sum()),
        "expected": float(p.sum()),
        "meaning": "cumulative expected minus observed events (above 0: fewer than expected)",
    }
    return [
        {"member_id": member_id, "kind": "racusum", "payload": json_safe(racusum)},
        {"member_id": member_id, "kind": "vlad", "payload": json_safe(vlad)},
    ]
