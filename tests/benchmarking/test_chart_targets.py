"""Targets are on the data scale from the catalogue to the stored chart, its assurance icon and
the drawing: a rate's 0.8 per 1,000 line-days is 0.0008 per line-day everywhere."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from qicollab.benchmarking.charts import measure_charts
from qicollab.benchmarking.inputs import MeasureInfo, MeasureOutput, PeriodInfo, RunInputs
from qicollab.benchmarking.payloads import ControlChartPayload
from qicollab.benchmarking.settings import RunSettings
from qicollab.reporting.charts.control import render_stored
from qicollab.reporting.charts.icons import assurance_icon
from qicollab.reporting.results import MeasureView

MONTHS = 24
LINE_DAYS = 10_000.0


def _clabsi(target: float | None) -> MeasureInfo:
    return MeasureInfo(
        id=1,
        code="CLABSI",
        title="Central line-associated bloodstream infections",
        measure_type="rate",
        level="aggregate",
        direction="decrease",
        target=target,
        minimum_volume=100,
        multiplier=1000.0,
        unit="per 1,000 line-days",
    )


def _inputs() -> RunInputs:
    periods = {}
    for index in range(MONTHS):
        start = dt.date(2024 + index // 12, index % 12 + 1, 1)
        end = (pd.Timestamp(start) + pd.offsets.MonthEnd(0)).date()
        periods[index + 1] = PeriodInfo(index + 1, start.strftime("%Y-%m"), "month", start, end)
    return RunInputs(
        settings=RunSettings(spc_mode="mdc"),
        member_ids=(7,),
        member_codes={7: "H07"},
        peer_groups=(),
        periods=periods,
    )


def _monthly(inputs: RunInputs, rate: float) -> pd.DataFrame:
    """One member's months at ``rate`` events per line-day (Poisson noise, fixed seed)."""
    rng = np.random.default_rng(3)
    events = rng.poisson(rate * LINE_DAYS, size=MONTHS).astype(float)
    return pd.DataFrame(
        {
            "member_id": 7,
            "period_id": list(inputs.periods),
            "granularity": "month",
            "period_start": pd.to_datetime([p.start for p in inputs.periods.values()]),
            "numerator": events,
            "denominator": LINE_DAYS,
            "value": events / LINE_DAYS,
        }
    )


def _stored(rate: float, target: float | None) -> ControlChartPayload:
    inputs = _inputs()
    (row,) = measure_charts(_clabsi(target), inputs, _monthly(inputs, rate), MeasureOutput(1))
    return ControlChartPayload.from_json(row["payload"])


def _view(target: float | None) -> MeasureView:
    return MeasureView(
        id=1,
        code="CLABSI",
        title="CLABSI",
        description="",
        measure_type="rate",
        level="aggregate",
        direction="decrease",
        unit="per 1,000 line-days",
        multiplier=1000.0,
        target=target,
        minimum_volume=100,
        numerator_definition="",
        denominator_definition="",
        exclusion_definition="",
        risk_model=None,
    )


def test_a_rate_consistently_above_its_target_fails_assurance():
    # 3 events per 1,000 line-days against a target of 0.8: every limit is above the target.
    chart = _stored(0.003, 0.0008).chart
    assert chart.target == pytest.approx(0.0008)
    assert chart.points[-1].lcl > 0.0008
    assert chart.assurance_icon == "consistent_fail"
    assert assurance_icon(chart.assurance_icon).words == "Consistently misses the target"


def test_a_rate_consistently_below_its_target_passes_and_one_around_it_is_hit_and_miss():
    assert _stored(0.0002, 0.0025).chart.assurance_icon == "consistent_pass"
    assert _stored(0.003, 0.003).chart.assurance_icon == "inconsistent"
    assert _stored(0.003, None).chart.assurance_icon is None


def test_the_drawn_target_is_on_the_display_scale():
    payload = _stored(0.003, 0.0008)
    chart = render_stored(payload, title="CLABSI")
    assert "Target 0.80" in chart.svg
    assert "Target 800" not in chart.svg
    assert _view(0.0008).show(0.0008) == "0.8 per 1,000 line-days"
