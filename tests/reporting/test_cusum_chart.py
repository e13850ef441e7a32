"""The RA-CUSUM / VLAD drawing of a member's cases: what it draws matches the stored payload the
benchmark run writes (built here by the run's own payload builder from simulated cases)."""

from __future__ import annotations

import datetime as dt
import itertools
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qicollab.benchmarking.charts import case_order_charts
from qicollab.benchmarking.inputs import MeasureInfo
from qicollab.benchmarking.payloads import RaCusumPayload, VladPayload
from qicollab.reporting.charts.cusum import monthly_rows, sequential_chart, thinned
from qicollab.stats.cusum import cusum_limits, racusum_increment

SVG = "{http://www.w3.org/2000/svg}"
MORTALITY = MeasureInfo(
    id=1,
    code="MORT",
    title="Mortality",
    measure_type="ratio",
    level="patient",
    direction="decrease",
    target=None,
    minimum_volume=0,
    multiplier=100.0,
)


def _payloads(*, per_month: int = 40, months: int = 24, shift: float = 1.0, seed: int = 3):
    """Stored payloads of simulated cases whose odds are multiplied by ``shift`` in the
    second half (limits for an in-control ARL of 2,000 cases)."""
    rng = np.random.default_rng(seed)
    labels = [f"{2024 + i // 12}-{i % 12 + 1:02d}" for i in range(months) for _ in range(per_month)]
    p = np.clip(rng.beta(2, 30, size=len(labels)), 0.005, 0.5)
    later = np.arange(len(labels)) >= len(labels) // 2
    odds = p / (1 - p) * np.where(later, shift, 1.0)
    y = (rng.random(len(labels)) < odds / (1 + odds)).astype(float)
    limits = cusum_limits(
        p, arl0=2_000, increments=[racusum_increment(2.0), racusum_increment(0.5)], n_paths=80
    )
    stored = [
        row["payload"]
        for row in case_order_charts(
            MORTALITY, 1, y, p, labels=labels, limits=tuple(limits), odds=2.0
        )
    ]
    return RaCusumPayload.from_json(stored[0]), VladPayload.from_json(stored[1]), y, p


@pytest.fixture(scope="module")
def worsening():
    return _payloads(shift=3.0)


def _tree(chart) -> ET.Element:
    return ET.fromstring(chart.svg)


def test_a_worsening_member_signals_on_the_upper_chart_and_every_signal_is_marked(worsening):
    racusum, vlad, _, _ = worsening
    assert racusum.signals_upper, "odds x3 for a year must signal at an ARL of 2,000"
    chart = sequential_chart(racusum, vlad, title="MORT: cases")
    root = _tree(chart)
    upper = root.findall(".//*[@class='signal-upper']")
    lower = root.findall(".//*[@class='signal-lower']")
    assert len(upper) == len(racusum.signals_upper)
    assert len(lower) == len(racusum.signals_lower)
    # Fewer deaths is better: an upper signal is a concern (white fill, orange outline).
    assert all(marker.get("fill") == "#ffffff" for marker in upper)
    assert "Upper chart signalled" in chart.description
    assert "more events than expected" in chart.description


def test_signals_fall_in_the_worse_half(worsening):
    racusum, _, _, _ = worsening
    half = racusum.cases // 2
    assert min(racusum.signals_upper) >= half * 0.8


def test_the_svg_is_accessible_and_well_formed(worsening):
    racusum, vlad, _, _ = worsening
    chart = sequential_chart(racusum, vlad, title="MORT: cases")
    root = _tree(chart)
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title").text == "MORT: cases"
    assert root.find(f"{SVG}desc").text == chart.description
    assert "VLAD" in chart.svg
    assert chart.alt.startswith("MORT: cases. Risk-adjusted CUSUM (Steiner)")


def test_the_vlad_end_is_expected_minus_observed(worsening):
    racusum, vlad, y, p = worsening
    chart = sequential_chart(racusum, vlad, title="t")
    assert f"VLAD ends at {p.sum() - y.sum():+.1f}" in chart.description
    assert f"{y.sum():,.0f} events observed" in chart.description


def test_the_data_table_has_a_row_per_month_adding_up_to_the_cases(worsening):
    racusum, vlad, y, p = worsening
    rows = monthly_rows(racusum, vlad)
    assert [row[0] for row in rows] == sorted(set(racusum.x))
    assert sum(int(row[1].replace(",", "")) for row in rows) == len(y)
    # The monthly net E - O adds up to the VLAD's end, and each month ends where VLAD is then.
    assert sum(float(row[2]) for row in rows) == pytest.approx(p.sum() - y.sum(), abs=0.05)
    assert float(rows[-1][5]) == pytest.approx(vlad.vlad[-1], abs=0.01)
    fired = [row for row in rows if "upper at case" in row[6]]
    assert len(fired) == len({racusum.x[i] for i in racusum.signals_upper})


def test_an_in_control_member_draws_no_signal():
    racusum, vlad, _, _ = _payloads(shift=1.0, seed=6)  # a seed whose cases stay in control
    assert not racusum.signals_upper
    assert not racusum.signals_lower
    chart = sequential_chart(racusum, vlad, title="t")
    assert "Upper chart: no signal." in chart.description
    assert "Lower chart: no signal." in chart.description
    assert not _tree(chart).findall(".//*[@class='signal-upper']")
    assert "Signal:" not in chart.svg


def test_annotations_sit_at_the_first_case_of_their_month_on_both_panels(worsening):
    racusum, vlad, _, _ = worsening
    note = {"occurred_on": dt.date(2024, 7, 15), "label": "Checklist introduced"}
    chart = sequential_chart(racusum, vlad, title="t", annotations=[note])
    assert chart.svg.count("Checklist introduced") == 2
    without = sequential_chart(racusum, vlad, title="t")
    assert "Annotation" in chart.svg
    assert "Annotation" not in without.svg


def test_user_text_is_escaped(worsening):
    racusum, vlad, _, _ = worsening
    hostile = '<script>alert(1)</script> & "x"'
    chart = sequential_chart(
        racusum, vlad, title=hostile, annotations=[{"occurred_on": "2024-03-01", "label": hostile}]
    )
    assert "<script>" not in chart.svg
    _tree(chart)  # still well-formed XML


def test_thousands_of_cases_stay_a_small_drawing():
    racusum, vlad, _, _ = _payloads(per_month=2_000, months=24, shift=1.5)
    chart = sequential_chart(racusum, vlad, title="t")
    assert racusum.cases == 48_000
    assert len(chart.svg) < 80_000


def test_without_a_vlad_the_cusum_takes_the_whole_width(worsening):
    racusum, _, _, _ = worsening
    chart = sequential_chart(racusum, None, title="t")
    assert "VLAD" not in chart.svg
    assert "Risk-adjusted CUSUM" in chart.svg


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=3_000),
    st.integers(1, 400),
)
def test_thinning_keeps_every_extreme_in_order(values, columns):
    series = np.asarray(values)
    keep = thinned(series, columns)
    assert list(keep) == sorted(set(keep.tolist()))
    assert keep[0] == 0
    assert keep[-1] == len(series) - 1
    assert series[keep].max() == series.max()
    assert series[keep].min() == series.min()
    assert len(keep) <= max(len(series), 4 * columns)
    # Every bucket's extremes survive, not just the global ones.
    edges = np.linspace(0, len(series), columns + 1).astype(int)
    if len(series) > 4 * columns:
        for start, stop in itertools.pairwise(edges):
            if stop > start:
                inside = keep[(keep >= start) & (keep < stop)]
                assert series[inside].max() == series[start:stop].max()
