"""Control charts (and RA-CUSUM / VLAD) of every member x measure, stored with the run.

Series come from the snapshot's accepted submissions: aggregate measures plot their monthly
numerator/denominator (P or U chart, Laney's P'/U' for large denominators, or the
coordinator's override) or value (XmR); patient-level measures plot monthly O/E where the rows
carry event months (limited data set with a data use agreement), yearly otherwise (a U chart of
O with E as exposure for event counts, XmR of O/E for other outcomes). Months without data are
gaps, never zeros. Phases start at the period that contains an annotation flagged
``starts_phase``; the chart mode (``qic`` or ``mdc``) comes from the run settings (the
collaborative's ``spc_mode``), the improvement direction and the (data-scale) target from the
measure.

All members of a measure on the same periods are charted in one vectorised call of
:func:`qicollab.stats.spc.control_charts`; each chart is stored as the engine's JSON
(:meth:`~qicollab.stats.spc_results.ControlChart.to_dict`) plus the member, measure, series and
annotations.

Where case order is allowed (limited data set, event months, the member's DUA on file), binary
patient-level measures also get a risk-adjusted CUSUM (``racusum``; Steiner 2000, upper for the
odds x ``cusum_odds_ratio``, lower for the odds divided by it, limits by simulation for the
run's in-control ARL, :mod:`qicollab.stats.cusum`) and a VLAD (``vlad``), both from the run's
pooled risk model (phase I = the cycle's pooled data, as the payload states).
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qicollab.benchmarking.payloads import (
    ChartNote,
    ControlChartPayload,
    RaCusumPayload,
    VladPayload,
)
from qicollab.stats import cusum, spc

if TYPE_CHECKING:
    from qicollab.benchmarking.inputs import (
        AnnotationInfo,
        MeasureInfo,
        MeasureOutput,
        PeriodInfo,
        RunInputs,
    )
    from qicollab.benchmarking.settings import RunSettings


def chart_type(
    measure: MeasureInfo,
    denominators: np.ndarray | None,
    *,
    ratio: bool = False,
    counts: bool = True,
) -> tuple[str, str]:
    """(chart, reason): the engine's choice for the measure type and its denominators, or
    the coordinator's override. O/E series are U charts (E as exposure) for event counts."""
    if ratio:
        return ("u", "O with E as exposure") if counts else ("i", "O/E of a non-count outcome")
    kind = measure.measure_type
    choice = spc.choose_chart(
        kind,
        denominators=None if kind in {"mean", "time-between-events"} else denominators,
        override=measure.chart_override or None,
    )
    return choice.chart, choice.reason


def _month_grid(inputs: RunInputs, first: dt.date, last: dt.date) -> list[PeriodInfo]:
    return sorted(
        (
            period
            for period in inputs.periods.values()
            if period.granularity == "month" and first <= period.start <= last
        ),
        key=lambda period: period.start,
    )


def _phases(notes: list[AnnotationInfo], periods: Sequence[PeriodInfo]) -> np.ndarray:
    """1-based phase of each point: a new phase from the period containing each note's date."""
    phase = np.ones(len(periods), dtype=np.int64)
    for note in notes:
        if not note.starts_phase:
            continue
        for index, period in enumerate(periods):
            if period.start <= note.occurred_on <= period.end:
                if index > 0:
                    phase[index:] += 1
                break
    return phase


def _note_rows(notes: list[AnnotationInfo], periods: Sequence[PeriodInfo]) -> list[ChartNote]:
    rows = []
    for note in notes:
        label = next((p.label for p in periods if p.start <= note.occurred_on <= p.end), None)
        rows.append(
            ChartNote(
                id=note.id,
                date=note.occurred_on.isoformat(),
                x=label,
                kind=note.kind,
                label=note.label,
                starts_phase=note.starts_phase,
            )
        )
    return rows


def _batch(  # noqa: PLR0917 - private; the series arrive as aligned arrays
    measure: MeasureInfo,
    inputs: RunInputs,
    member_ids: list[int],
    periods: list[PeriodInfo],
    y: np.ndarray,
    n: np.ndarray | None,
    *,
    chart: str,
    reason: str,
    extra: list[dict[str, Any]],
    target: float | None,
) -> list[dict[str, Any]]:
    """One engine call for every member on these periods; one stored row per member.

    Values stay on the data scale (the engine's ``multiply`` is left at 1; pages scale by the
    stored ``multiplier``), so ``target`` must be on the data scale too: the engine compares it
    with the limits for the assurance icon, and a display-scale target (0.8 per 1,000 against
    0.0012 per line-day) would make every chart pass.
    """
    notes = [inputs.annotations_for(member, measure.id) for member in member_ids]
    phase = np.vstack([_phases(member_notes, periods) for member_notes in notes])
    batch = spc.control_charts(
        y,
        n,
        chart=chart,
        x=[period.label for period in periods],
        mode=inputs.settings.spc_mode,
        phase=phase,
        direction=measure.direction,
        target=target,
    )
    rows = []
    for index, member_id in enumerate(member_ids):
        payload = ControlChartPayload(
            chart=batch.chart_at(index),
            measure=measure.code,
            member_id=member_id,
            member=inputs.member_codes.get(member_id),
            chart_reason=reason,
            multiplier=1.0 if extra[index].get("ratio") else measure.multiplier,
            unit="O/E" if extra[index].get("ratio") else measure.unit,
            annotations=_note_rows(notes[index], periods),
            **extra[index],
        )
        rows.append({"member_id": member_id, "kind": "control", "payload": payload.to_json()})
    return rows


def measure_charts(
    measure: MeasureInfo, inputs: RunInputs, data: pd.DataFrame, output: MeasureOutput
) -> list[dict[str, Any]]:
    """Stored-chart rows (member_id, kind, payload) for one measure."""
    if data.empty or (measure.level == "patient" and output.fit is None):
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
    member_ids = sorted(int(m) for m in monthly["member_id"].unique())
    row_of = {member: index for index, member in enumerate(member_ids)}
    numerator = np.full((len(member_ids), len(grid)), np.nan)
    denominator = np.full((len(member_ids), len(grid)), np.nan)
    value = np.full((len(member_ids), len(grid)), np.nan)
    for member, period, x, n, v in zip(
        monthly["member_id"].tolist(),
        monthly["period_id"].tolist(),
        monthly["numerator"].tolist(),
        monthly["denominator"].tolist(),
        monthly["value"].tolist(),
        strict=True,
    ):
        column = position.get(int(period))
        if column is None:
            continue
        numerator[row_of[int(member)], column] = x
        denominator[row_of[int(member)], column] = n
        value[row_of[int(member)], column] = v
    chart, reason = chart_type(measure, denominator[np.isfinite(denominator)])
    by_value = chart in {"run", "i", "mr", "t", "g"} and measure.measure_type in {
        "mean",
        "time-between-events",
    }
    y, n = (value, None) if by_value else (numerator, denominator)
    extra = [{"series": "monthly", "source": "aggregate submissions"} for _ in member_ids]
    return _batch(
        measure,
        inputs,
        member_ids,
        grid,
        y,
        n,
        chart=chart,
        reason=reason,
        extra=extra,
        target=measure.target,
    )


def _patient_charts(
    measure: MeasureInfo, inputs: RunInputs, data: pd.DataFrame, output: MeasureOutput
) -> list[dict[str, Any]]:
    assert output.fit is not None
    family = output.fit["family"]
    counts = family in {"binomial", "poisson"}
    chart, reason = chart_type(measure, None, ratio=True, counts=counts)
    usable = data[np.isfinite(data["_expected"].to_numpy())]
    years = {
        period.start.year: period
        for period in inputs.periods.values()
        if period.granularity == "year"
    }
    monthly: dict[int, tuple[pd.Series, pd.Series]] = {}
    yearly: dict[int, tuple[pd.Series, pd.Series]] = {}
    frames: dict[int, pd.DataFrame] = {}
    for key, frame in usable.groupby("member_id", sort=True):
        member = int(key)
        frames[member] = frame
        if frame["event_month"].notna().all():
            keys = frame["event_year"].to_numpy() * 100 + frame["event_month"].to_numpy(dtype=int)
            target = monthly
        else:
            keys = frame["event_year"].to_numpy()
            target = yearly
        target[member] = (
            pd.Series(frame["outcome"].to_numpy()).groupby(keys).sum(),
            pd.Series(frame["_expected"].to_numpy()).groupby(keys).sum(),
        )
    rows: list[dict[str, Any]] = []
    for series, found in (("monthly", monthly), ("yearly", yearly)):
        if not found:
            continue
        if series == "monthly":
            first = min(int(k) for o, _ in found.values() for k in o.index)
            last = max(int(k) for o, _ in found.values() for k in o.index)
            grid = _month_grid(
                inputs,
                dt.date(first // 100, first % 100, 1),
                dt.date(last // 100, last % 100, 1),
            )
            grid_keys = [p.start.year * 100 + p.start.month for p in grid]
        else:
            grid = [
                years[y]
                for y in sorted({int(k) for o, _ in found.values() for k in o.index})
                if y in years
            ]
            grid_keys = [p.start.year for p in grid]
        if not grid:
            continue
        member_ids = sorted(found)
        observed = np.vstack(
            [found[m][0].reindex(grid_keys).to_numpy(dtype=float) for m in member_ids]
        )
        expected = np.vstack(
            [found[m][1].reindex(grid_keys).to_numpy(dtype=float) for m in member_ids]
        )
        if counts:
            y, n = observed, expected
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                y, n = observed / expected, None
        extra = [
            {
                "series": series,
                "source": "patient records; expected from the run's risk model",
                "ratio": True,
                "observed": observed[i],
                "expected": expected[i],
            }
            for i in range(len(member_ids))
        ]
        rows += _batch(
            measure,
            inputs,
            member_ids,
            grid,
            y,
            n,
            chart=chart,
            reason=reason,
            extra=extra,
            target=None,
        )
    if family == "binomial":
        ordered = [m for m in sorted(monthly) if m in inputs.case_order_members]
        if ordered:
            limits = cusum_limits(measure, usable["_expected"].to_numpy(), inputs.settings)
            for member in ordered:
                rows.extend(_sequential(measure, member, frames[member], limits, inputs.settings))
    return rows


def cusum_limits(
    measure: MeasureInfo, p: np.ndarray, settings: RunSettings
) -> tuple[cusum.CusumLimit, cusum.CusumLimit]:
    """Upper and lower limits for the run's in-control ARL, from the pooled risks (one
    simulation serves both charts; seeded by the measure and settings, so re-runs agree)."""
    odds, arl, paths = settings.cusum_odds_ratio, settings.cusum_arl, settings.cusum_paths
    seed = zlib.crc32(f"{measure.code}:{odds}:{arl}:{paths}".encode())
    upper, lower = cusum.cusum_limits(
        p,
        arl0=arl,
        increments=[cusum.racusum_increment(odds), cusum.racusum_increment(1 / odds)],
        n_paths=paths,
        seed=seed,
    )
    return upper, lower


def _sequential(
    measure: MeasureInfo,
    member_id: int,
    frame: pd.DataFrame,
    limits: tuple[cusum.CusumLimit, cusum.CusumLimit],
    settings: RunSettings,
) -> list[dict[str, Any]]:
    ordered = frame.sort_values(["event_year", "event_month", "sequence"], kind="stable")
    labels = [
        f"{int(year)}-{int(month):02d}"
        for year, month in zip(ordered["event_year"], ordered["event_month"], strict=True)
    ]
    return case_order_charts(
        measure,
        member_id,
        ordered["outcome"].to_numpy(dtype=float),
        ordered["_expected"].to_numpy(dtype=float),
        labels=labels,
        limits=limits,
        odds=settings.cusum_odds_ratio,
    )


def case_order_charts(
    measure: MeasureInfo,
    member_id: int,
    y: np.ndarray,
    p: np.ndarray,
    *,
    labels: list[str],
    limits: tuple[cusum.CusumLimit, cusum.CusumLimit],
    odds: float,
) -> list[dict[str, Any]]:
    """The stored ``racusum`` and ``vlad`` rows of one member's cases, in case order
    (outcomes ``y``, expected risks ``p``, month label per case)."""
    upper, lower = limits
    result = cusum.ra_cusum(y, p, h_up=upper.h, h_down=lower.h, odds_up=odds, odds_down=1 / odds)
    common = {
        "measure": measure.code,
        "member_id": member_id,
        "direction": measure.direction,
        "cases": len(y),
        "x": labels,
        "order": "event year, event month, case sequence",
        "model": "the run's pooled risk model (phase I: the cycle's pooled collaborative data)",
        "engine": "qicollab.stats.cusum",
    }
    racusum = RaCusumPayload(
        **common,
        odds_ratio_upper=odds,
        odds_ratio_lower=1 / odds,
        h_upper=upper.h,
        h_lower=lower.h,
        limit_upper=upper,
        limit_lower=lower,
        arl=upper.arl0,
        upper=np.round(result.upper, 4),
        lower=np.round(result.lower, 4),
        signals_upper=list(result.signals_up),
        signals_lower=list(result.signals_down),
        reset_after_signal=result.reset,
        upper_means="deterioration" if measure.direction == "decrease" else "improvement",
    )
    vlad = VladPayload(
        **common,
        vlad=np.round(cusum.vlad(y, p), 4),
        observed=float(y.sum()),
        expected=float(p.sum()),
        meaning="cumulative expected minus observed events (above 0: fewer than expected)",
    )
    return [
        {"member_id": member_id, "kind": "racusum", "payload": racusum.to_json()},
        {"member_id": member_id, "kind": "vlad", "payload": vlad.to_json()},
    ]
