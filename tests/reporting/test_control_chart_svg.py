"""The control-chart SVG: well-formed, accessible, one marker per value, gaps, signal markers,
phases, annotations, escaping, and the stored-payload entry point the reporting pages use."""

from __future__ import annotations

import base64
import datetime as dt
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from qicollab.benchmarking.payloads import ChartNote, ControlChartPayload
from qicollab.reporting.charts import base
from qicollab.reporting.charts.control import render_control_chart, render_stored
from qicollab.stats.spc import control_chart

NS = {"svg": "http://www.w3.org/2000/svg"}
HOSTILE = 'Falls <script>alert("x")</script> & "quotes" \'single\''


def _months(count: int) -> list[dt.date]:
    return [dt.date(2022 + m // 12, m % 12 + 1, 1) for m in range(count)]


def _chart(**options: object):
    rng = np.random.default_rng(4)
    n = rng.integers(80, 200, 30).astype(float)
    y = rng.binomial(n.astype(int), 0.2).astype(float)
    y[6] = np.nan  # a missing month
    y[25] = n[25] * 0.6  # far above the limits
    return control_chart(y, n, chart="p", x=_months(30), **options)


def _tree(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _classed(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if name in (e.get("class") or "").split()]


def test_well_formed_and_accessible() -> None:
    chart = render_control_chart(_chart(), title=HOSTILE)
    root = _tree(chart.svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("role") == "img"
    title = root.find("svg:title", NS)
    desc = root.find("svg:desc", NS)
    assert title is not None
    assert desc is not None
    assert title.text == HOSTILE  # escaped in the markup, intact once parsed
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert "P chart of 29 values from 2022-01 to 2024-06" in (desc.text or "")
    assert "Signals at 2024-02" in (desc.text or "")
    assert "<script>" not in chart.svg
    assert len(chart.rows) == 30
    assert chart.rows[6][1] == "missing"


def test_one_marker_per_value_and_a_gap_for_missing() -> None:
    chart = _chart()
    root = _tree(render_control_chart(chart, title="t").svg)
    points = _classed(root, "point")
    assert len(points) == sum(np.isfinite(p.value) for p in chart.points) == 29
    # the data line breaks at the missing month: two polylines, 6 + 23 vertices
    lines = _classed(root, "data-line")
    assert [len(e.get("points", "").split()) for e in lines] == [6, 23]
    # the p-chart limits have no value at the gap either
    ucl = _classed(root, "ucl")
    assert len(ucl) == 2


def test_signals_get_rule_markers() -> None:
    chart = _chart()
    root = _tree(render_control_chart(chart, title="t").svg)
    flagged = _classed(root, "signal-outside_limits")
    assert len(flagged) == sum("outside_limits" in p.signals for p in chart.points) >= 1
    assert all(e.tag.endswith("rect") for e in flagged)  # squares, not circles
    plain = [e for e in _classed(root, "point") if "signal" not in e.get("class", "")]
    assert all(e.tag.endswith("circle") for e in plain)
    legend_text = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "Outside limits" in legend_text


def test_mdc_rules_use_distinct_shapes_and_two_sigma_lines() -> None:
    y = [10, 10.5, 9.5] * 4 + [11.7, 11.4, 11.1, 10.8, 10.5, 10.3, 10.1]
    chart = control_chart(y, chart="i", mode="mdc", freeze=12, direction="increase")
    root = _tree(render_control_chart(chart, title="t").svg)
    trend = _classed(root, "signal-trend")
    assert trend
    assert all(e.tag.endswith("polygon") for e in trend)
    assert _classed(root, "ucl_2sigma")
    assert not _classed(
        _tree(render_control_chart(chart, title="t", show_2sigma=False).svg), "ucl_2sigma"
    )


def test_phases_excluded_points_target_and_trial_note() -> None:
    chart = _chart(part=[20], exclude=[3], target=0.25, direction="decrease")
    svg = render_control_chart(chart, title="t").svg
    root = _tree(svg)
    assert len(_classed(root, "cl")) == 2  # one centre-line segment per phase
    assert "Phase 2" in svg
    assert len(_classed(root, "excluded")) == 1
    assert "Target 0.250" in svg or "Target 0.25" in svg
    assert "Trial limits" in svg  # phase 2 has 10 points
    assert "Trial limits" not in render_control_chart(_chart(), title="t").svg


def test_annotations_are_dated_markers_with_escaped_labels() -> None:
    notes = [
        (dt.date(2022, 7, 15), 'PDSA 1 <b>bold</b> & "new" protocol for night shifts'),
        ("2023-03-01", "Audit"),
        (dt.date(1999, 1, 1), "before the chart"),  # placed nowhere
    ]
    chart = render_control_chart(_chart(), title="t", annotations=notes)
    root = _tree(chart.svg)
    texts = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert any(t.startswith("PDSA 1 <b>bold</b>") and t.endswith("…") for t in texts)
    titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert 'PDSA 1 <b>bold</b> & "new" protocol for night shifts' in titles
    assert "Audit" in texts
    assert "before the chart" not in chart.svg
    assert "<b>" not in chart.svg


def test_run_chart_with_runs_signal() -> None:
    y = [*[5, 6] * 5, 9, 10, 9, 10, 11, 10, 9, 10, 11, 10]
    chart = control_chart(y, chart="run")
    assert chart.runs_signal
    svg = render_control_chart(chart, title="Run chart").svg
    assert "Runs signal (Anhøj)" in svg
    assert "Median" in svg
    assert not _classed(_tree(svg), "ucl")


def test_data_uri_round_trips() -> None:
    chart = render_control_chart(_chart(), title="t")
    uri = chart.data_uri()
    assert uri == base.data_uri(chart.svg)
    assert uri.startswith("data:image/svg+xml;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]).decode() == chart.svg


def _stored(chart, multiplier: float = 1.0, unit: str = "") -> ControlChartPayload:
    return ControlChartPayload(
        chart=chart,
        measure="FALLS",
        member_id=1,
        chart_reason="test",
        multiplier=multiplier,
        unit=unit,
        series="monthly",
        source="test",
    )


def test_render_stored_reads_the_stored_chart_and_scales_natural_values() -> None:
    payload = ControlChartPayload.from_json(_stored(_chart(), 100, "%").to_json())
    drawn = render_stored(payload, title="Falls", annotations=[("2022-05-01", "Change")])
    assert "CL 2" in drawn.svg  # centre line ~0.2 drawn as ~20 %
    assert "Change" in drawn.svg
    scaled = control_chart([3, 4, 5, 4, 3, 5, 4, 3, 4, 5, 4, 3], [20] * 12, chart="p", multiply=100)
    # already multiplied (multiply = 100): not scaled again (47/240 = 19.6 %, not 1,958)
    assert "CL 19.6" in render_stored(_stored(scaled, 100), title="t").svg


def test_render_stored_draws_the_stored_notes_without_annotations_given() -> None:
    payload = _stored(_chart()).model_copy(
        update={
            "annotations": [
                ChartNote(
                    id=1,
                    date="2022-03-01",
                    x="2022-03",
                    kind="change",
                    label="Huddles",
                    starts_phase=False,
                )
            ]
        }
    )
    drawn = render_stored(payload, title="t")
    assert "Huddles" in drawn.svg


@pytest.mark.parametrize("chart_type", ["i", "mr", "c", "g", "t", "xbar", "s", "u", "up", "pp"])
def test_every_chart_type_renders(chart_type: str) -> None:
    rng = np.random.default_rng(8)
    if chart_type in {"xbar", "s"}:
        chart = control_chart(
            rng.normal(10, 1, 15), np.full(15, 5.0), sd=rng.uniform(0.5, 1.5, 15), chart=chart_type
        )
    elif chart_type in {"u", "up", "pp"}:
        n = rng.integers(100, 300, 15).astype(float)
        chart = control_chart(rng.binomial(n.astype(int), 0.1), n, chart=chart_type)
    else:
        chart = control_chart(rng.gamma(4, 10, 15).round() + 1, chart=chart_type)
    root = _tree(render_control_chart(chart, title=f"{chart_type} chart").svg)
    assert len(_classed(root, "point")) == sum(np.isfinite(p.value) for p in chart.points)
