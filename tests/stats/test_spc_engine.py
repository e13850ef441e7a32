"""Behaviour of the chart engine: phases, baseline, exclusions, gaps, trial limits, types,
JSON round trip, chart choice, the frame API, and the vectorised batch path against an
independent loop-by-loop implementation of the same formulas (design/METHODS.md part B)."""

from __future__ import annotations

import datetime as dt
import json
import math
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy.stats import binom

from qicollab.stats.spc import (
    ControlChart,
    chart_from_frame,
    choose_chart,
    control_chart,
    control_charts,
    make_settings,
    phase_positions,
)

# --- an independent reference implementation (plain loops) -----------------------------------


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _runs(signs: list[int]) -> list[list[int]]:
    """Indices (into ``signs``) of maximal blocks of equal non-zero signs."""
    blocks: list[list[int]] = []
    for i, s in enumerate(signs):
        if s != 0 and blocks and signs[blocks[-1][-1]] == s and blocks[-1][-1] == i - 1:
            blocks[-1].append(i)
        elif s != 0:
            blocks.append([i])
    return blocks


def reference(
    y: np.ndarray,
    n: np.ndarray | None,
    *,
    chart: str,
    part: list[int],
    exclude: list[int],
    mode: str,
) -> list[dict]:
    count = len(y)
    values = [float(y[j] / n[j]) if n is not None else float(y[j]) for j in range(count)]
    phase = [1 + sum(j >= p for p in part) for j in range(count)]
    out = [
        {"cl": math.nan, "ucl": math.nan, "lcl": math.nan, "signals": set()} for _ in range(count)
    ]
    k = 3 / 1.128 if mode == "qic" else 2.66
    for ph in sorted(set(phase)):
        seg = [j for j in range(count) if phase[j] == ph]
        base = [j for j in seg if j + 1 not in exclude]
        if chart == "i":
            vals = [values[j] for j in base]
            cl = _mean(vals)
            ranges = [abs(b - a) for a, b in pairwise(vals)]
            ranges = [r for r in ranges if math.isfinite(r)]
            amr = _mean(ranges)
            kept = [r for r in ranges if r < 3.267 * amr]
            amr = _mean(kept) if kept else amr
            sigma = dict.fromkeys(seg, amr * k / 3)
            clamp = (-math.inf, math.inf)
        else:
            usable = [j for j in base if math.isfinite(values[j])]
            total = float(sum(n[j] for j in usable))
            cl = float(sum(y[j] for j in usable)) / total if total else math.nan
            # qicharts2 drops incomplete cases: no denominator, no limits at a gap
            sigma = {
                j: math.sqrt(cl * (1 - cl) / n[j]) if math.isfinite(values[j]) else math.nan
                for j in seg
            }
            clamp = (0.0, 1.0)
        lines = {}
        for j in seg:
            ucl = min(cl + 3 * sigma[j], clamp[1])
            lcl = max(cl - 3 * sigma[j], clamp[0])
            lines[j] = (
                ucl,
                lcl,
                min(cl + 2 * sigma[j], clamp[1]),
                max(cl - 2 * sigma[j], clamp[0]),
            )
            out[j].update(cl=cl, ucl=ucl, lcl=lcl)
            if math.isfinite(values[j]) and (values[j] > ucl or values[j] < lcl):
                out[j]["signals"].add("outside_limits")
        seq = [j for j in seg if j + 1 not in exclude and math.isfinite(values[j])]
        side = [(values[j] > cl) - (values[j] < cl) for j in seq]
        if mode == "qic":
            useful = [s for s in side if s != 0]
            useful_at = [j for j, s in zip(seq, side, strict=True) if s != 0]
            m = len(useful)
            if m:
                blocks = _runs(useful)
                longest = max(len(b) for b in blocks)
                crossings = len(blocks) - 1
                longest_max = round(math.log2(m)) + 3
                crossings_min = binom.ppf(0.05, m - 1, 0.5)
                for b in blocks:
                    if len(b) > longest_max:
                        for i in b:
                            out[useful_at[i]]["signals"].add("anhoej_longest_run")
                if crossings < crossings_min:
                    for j in useful_at:
                        out[j]["signals"].add("anhoej_crossings")
                assert longest >= 1
        else:
            for b in _runs(side):
                if len(b) >= 7:
                    for i in b:
                        out[seq[i]]["signals"].add("shift")
            diffs = [0] + [
                (values[b] > values[a]) - (values[b] < values[a]) for a, b in pairwise(seq)
            ]
            for b in _runs(diffs):
                if len(b) >= 6:
                    for i in [b[0] - 1, *b]:
                        out[seq[i]]["signals"].add("trend")
            for w in range(len(seq) - 2):
                window = seq[w : w + 3]
                sides = side[w : w + 3]
                for direction in (1, -1):
                    beyond = [
                        j
                        for j in window
                        if (values[j] > lines[j][2] if direction > 0 else values[j] < lines[j][3])
                    ]
                    if len(beyond) >= 2 and all(s == direction for s in sides):
                        for j in beyond:
                            out[j]["signals"].add("two_of_three")
    return out


def _random_case(rng: np.random.Generator, chart: str) -> dict:
    count = int(rng.integers(14, 40))
    if chart == "i":
        y = rng.normal(10, 2, count) + np.where(rng.random(count) < 0.1, 6, 0)
        if rng.random() < 0.4:  # a drifting or steadily moving process: runs and trends
            y += np.cumsum(rng.normal(0, 1.5, count)) + np.arange(count) * rng.normal(0, 0.5)
        y[rng.random(count) < 0.08] = np.nan
        y = np.round(y, 1)  # ties, so points on the centre line and flat stretches happen
        n = None
    else:
        n = rng.integers(20, 200, count).astype(float)
        rate = 0.2 + (0.08 * np.sin(np.arange(count) / 3) if rng.random() < 0.4 else 0)
        y = rng.binomial(n.astype(int), rate).astype(float)
        y[rng.random(count) < 0.08] = np.nan
    part = sorted({int(p) for p in rng.integers(12, count, size=int(rng.integers(0, 2)))})
    exclude = sorted({int(p) for p in rng.integers(1, count + 1, size=int(rng.integers(0, 3)))})
    return {"y": y, "n": n, "part": part, "exclude": exclude}


@pytest.mark.parametrize("mode", ["qic", "mdc"])
@pytest.mark.parametrize("chart", ["i", "p"])
def test_engine_matches_loop_reference(chart: str, mode: str) -> None:
    rng = np.random.default_rng(20240 + len(mode) + len(chart))
    seen: set[str] = set()
    for _ in range(60):
        case = _random_case(rng, chart)
        got = control_chart(
            case["y"], case["n"], chart=chart, mode=mode, part=case["part"], exclude=case["exclude"]
        )
        want = reference(
            case["y"], case["n"], chart=chart, part=case["part"], exclude=case["exclude"], mode=mode
        )
        for point, ref in zip(got.points, want, strict=True):
            for line in ("cl", "ucl", "lcl"):
                assert_allclose(getattr(point, line), ref[line], rtol=1e-12, equal_nan=True)
            assert set(point.signals) == ref["signals"], (case, point)
            seen |= ref["signals"]
    # the comparison is not vacuous: the random series fire these rules
    expected = {"outside_limits", "anhoej_longest_run", "anhoej_crossings"}
    if mode == "mdc":
        expected = {"outside_limits", "shift", "two_of_three", "trend"}
    assert expected <= seen


def test_batch_equals_one_series_at_a_time() -> None:
    """Rows of one batch (different phases, exclusions, gaps, directions) do not leak into each
    other: each equals the same series charted alone."""
    rng = np.random.default_rng(5)
    rows, cols = 40, 30
    y = rng.normal(50, 5, (rows, cols))
    y[rng.random((rows, cols)) < 0.05] = np.nan
    phase = np.ones((rows, cols), dtype=int)
    for r in range(0, rows, 3):
        phase[r, int(rng.integers(8, 25)) :] = 2
    excluded = rng.random((rows, cols)) < 0.05
    freeze = np.where(np.arange(rows) % 4 == 0, 15, 0)
    directions = ["increase", "decrease", "neutral", None] * (rows // 4)
    targets = [55.0, None, 45.0, 50.0] * (rows // 4)
    for mode in ("qic", "mdc"):
        batch = control_charts(
            y,
            chart="i",
            mode=mode,
            phase=phase,
            excluded=excluded,
            freeze=freeze,
            direction=directions,
            target=targets,
            rules=("outside_limits", "anhoej", "trend", "two_of_three", "shift", "nelson"),
        )
        for r in range(rows):
            part = [int(i) for i in np.flatnonzero(np.diff(phase[r])) + 1]
            single = control_chart(
                y[r],
                chart="i",
                mode=mode,
                part=part,
                exclude=[int(i) + 1 for i in np.flatnonzero(excluded[r])],
                freeze=int(freeze[r]) or None,
                direction=directions[r],
                target=targets[r],
                rules=("outside_limits", "anhoej", "trend", "two_of_three", "shift", "nelson"),
            )
            assert batch.chart_at(r).to_dict() == single.to_dict()
            assert batch.dict_at(r) == single.to_dict()


# --- semantics ---------------------------------------------------------------------------------


def test_excluded_point_leaves_the_limits_but_is_still_flagged() -> None:
    y = [10, 11, 9, 10, 12, 8, 10, 11, 9, 10, 11, 40, 10, 9, 11, 10]
    with_outlier = control_chart(y, chart="i")
    excluded = control_chart(y, chart="i", exclude=[12])
    assert excluded.points[0].cl == pytest.approx(np.mean([v for v in y if v != 40]))
    assert with_outlier.points[0].cl > excluded.points[0].cl
    assert excluded.points[11].excluded
    assert "outside_limits" in excluded.points[11].signals
    # Moving ranges span the excluded point: 10 -> 10 (no 11->40->10 jumps).
    assert excluded.points[0].ucl < with_outlier.points[0].ucl


def test_missing_values_are_gaps_and_break_moving_ranges() -> None:
    y = np.array([10.0, 12, 10, 12, np.nan, 30, 32, 30, 32, 30, 32, 30, 32])
    chart = control_chart(y, chart="i", screen_mr=False)
    assert math.isnan(chart.points[4].value)
    assert chart.points[4].signals == ()
    # The ranges next to the gap (12 -> nan -> 30) are missing, not |30 - 12| = 18.
    ranges = [2, 2, 2, 2, 2, 2, 2, 2, 2, 2]
    assert (chart.points[0].ucl - chart.points[0].cl) == pytest.approx(np.mean(ranges) * 3 / 1.128)
    assert chart.to_dict()["points"][4]["value"] is None
    run = control_chart(y, chart="run").runs[0]
    assert run.cl == 30  # median of the 12 values
    assert run.n_useful == 12 - 4  # four points on the median drop out
    assert run.n_obs == 13  # the gap still counts as an observation (qicharts2)


def test_freeze_extends_baseline_limits_and_runs_use_all_points() -> None:
    y = [10, 11, 9, 10, 11, 9, 10, 11, 9, 10, 11, 9, 15, 16, 15, 16, 15, 16, 15, 16]
    chart = control_chart(y, chart="i", freeze=12)
    assert chart.points[-1].cl == pytest.approx(10.0)
    assert [p.baseline for p in chart.points] == [True] * 12 + [False] * 8
    assert chart.runs[0].n_useful == 20 - sum(v == 10 for v in y)
    assert chart.runs_signal
    assert "anhoej_longest_run" in chart.points[-1].signals


def test_freeze_with_phases_applies_to_the_phase_containing_it() -> None:
    y = list(range(1, 31))
    chart = control_chart(y, chart="i", part=[20], freeze=10)
    assert chart.points[0].cl == pytest.approx(5.5)
    assert chart.points[19].cl == pytest.approx(5.5)
    assert chart.points[20].cl == pytest.approx(np.mean(y[20:]))
    assert [p.baseline for p in chart.points][9:12] == [True, False, False]
    assert chart.points[25].baseline


def test_phase_starts_from_dates_and_labels() -> None:
    months = [dt.date(2024, m, 1) for m in range(1, 13)] + [
        dt.date(2025, m, 1) for m in range(1, 13)
    ]
    assert phase_positions(months, [dt.date(2024, 7, 1)]) == [6]
    assert phase_positions(months, ["2024-07-15"]) == [7]  # first period on/after the date
    assert phase_positions(months, [dt.date(2023, 1, 1), dt.date(2030, 1, 1)]) == []
    labels = [f"W{i}" for i in range(1, 25)]
    assert phase_positions(labels, ["W13"]) == [12]
    with pytest.raises(ValueError, match="W99"):
        phase_positions(labels, ["W99"])
    y = np.r_[np.full(12, 10.0), np.full(12, 20.0)] + np.tile([0.5, -0.5], 12)
    chart = control_chart(y, chart="i", x=months, phase_starts=[dt.date(2025, 1, 1)])
    assert [r.phase for r in chart.runs] == [1, 2]
    assert chart.runs[1].start == "2025-01-01"
    assert chart.points[0].cl == pytest.approx(10.0)
    assert chart.points[-1].cl == pytest.approx(20.0)


def test_trial_limits_below_twelve_baseline_values() -> None:
    chart = control_chart([5, 6, 5, 7, 6, 5, 6, 7, 5, 6, 6], chart="i")
    assert chart.trial_limits
    assert chart.runs[0].trial_limits
    assert "11 baseline values (< 12); trial limits" in chart.warnings[0]
    assert not control_chart([5, 6, 5, 7, 6, 5, 6, 7, 5, 6, 6, 5], chart="i").trial_limits
    phased = control_chart(list(range(30)), chart="i", part=[20])
    assert [r.trial_limits for r in phased.runs] == [False, True]
    assert phased.trial_limits


def test_direction_turns_signals_into_improvement_or_concern() -> None:
    y = [10, 11, 9, 10, 11, 9, 10, 11, 9, 10, 11, 9, 30]
    up = control_chart(y, chart="i", freeze=12, direction="increase")
    down = control_chart(y, chart="i", freeze=12, direction="decrease")
    neutral = control_chart(y, chart="i", freeze=12)
    assert up.points[-1].point_type == "special_cause_improvement"
    assert up.variation_icon == "improvement_high"
    assert down.points[-1].point_type == "special_cause_concern"
    assert down.variation_icon == "concern_high"
    assert neutral.points[-1].point_type == "special_cause_neutral_high"
    assert neutral.variation_icon == "neutral_high"
    assert [p.point_type for p in up.points[:-1]] == ["common_cause"] * 12


def test_mdc_improvement_wins_over_concern() -> None:
    """Seven falling points above the mean: a trend down (concern for "increase") and a shift
    above (improvement). The MDC resolution shows improvement; by precedence the trend, listed
    first, decides."""
    baseline = [10, 10.5, 9.5] * 4
    falling = [11.7, 11.4, 11.1, 10.8, 10.5, 10.3, 10.1]
    y = baseline + falling
    for resolution, want in (
        ("improvement", "special_cause_improvement"),
        ("precedence", "special_cause_concern"),
    ):
        chart = control_chart(
            y, chart="i", mode="mdc", freeze=12, direction="increase", resolution=resolution
        )
        point = chart.points[-1]
        assert point.signals == ("trend", "shift")
        assert point.point_type == want
    assert chart.points[12].signals == ("trend", "two_of_three", "shift")


def test_multiply_scales_values_and_lines_only() -> None:
    y, n = [3, 5, 4, 6, 2, 5, 4, 3, 5, 4, 6, 3], [50] * 12
    plain = control_chart(y, n, chart="p")
    percent = control_chart(y, n, chart="p", multiply=100, target=5, direction="decrease")
    for a, b in zip(plain.points, percent.points, strict=True):
        assert b.value == pytest.approx(100 * a.value)
        assert b.ucl == pytest.approx(100 * a.ucl)
        assert b.signals == a.signals
    assert percent.runs[0].cl == pytest.approx(100 * plain.runs[0].cl)
    assert percent.assurance_icon == "inconsistent"


def test_p_chart_limits_clamped_and_g_t_charts() -> None:
    chart = control_chart([1, 0, 2, 1, 0, 1, 3, 0, 1, 2, 1, 0], [10] * 12, chart="p")
    assert all(p.lcl == 0 for p in chart.points)
    g = control_chart([12, 30, 5, 44, 20, 8, 17, 60, 3, 25, 14, 9], chart="g")
    assert g.points[0].cl == pytest.approx(np.median([12, 30, 5, 44, 20, 8, 17, 60, 3, 25, 14, 9]))
    m = np.mean([12, 30, 5, 44, 20, 8, 17, 60, 3, 25, 14, 9])
    assert g.points[0].ucl == pytest.approx(m + 3 * math.sqrt(m * (m + 1)))
    assert g.points[0].lcl == 0
    with pytest.raises(ValueError, match="must be > 0"):
        control_chart([3, 0, 4], chart="t")


def test_laney_p_prime_widens_overdispersed_limits() -> None:
    rng = np.random.default_rng(3)
    n = np.full(24, 20000.0)
    p = rng.normal(0.1, 0.01, 24)
    y = np.round(p * n)
    p_chart = control_chart(y, n, chart="p")
    pp_chart = control_chart(y, n, chart="pp")
    assert sum(bool(q.signals) for q in p_chart.points) > 5
    assert pp_chart.points[0].ucl - pp_chart.points[0].cl > 3 * (
        p_chart.points[0].ucl - p_chart.points[0].cl
    )
    assert choose_chart("proportion", numerators=y, denominators=n).chart == "pp"


def test_invalid_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="not a valid proportion"):
        control_chart([5, 12], [10, 10], chart="p")
    with pytest.raises(ValueError, match="needs denominators"):
        control_chart([5, 6], chart="u")
    with pytest.raises(ValueError, match="chart must be one of"):
        control_chart([1, 2], chart="r")
    with pytest.raises(ValueError, match=r"outside 1\.\.3"):
        control_chart([1, 2, 3], chart="i", exclude=[4])
    with pytest.raises(ValueError, match="mode must be"):
        make_settings("nhs")
    with pytest.raises(TypeError, match="unknown SPC settings"):
        control_chart([1, 2, 3], chart="i", sigma=2)
    with pytest.raises(ValueError, match="direction must be"):
        control_chart([1, 2, 3], chart="i", direction="up")


# --- JSON --------------------------------------------------------------------------------------


def test_json_round_trip() -> None:
    y = [0.2, 0.3, np.nan, 0.25, 0.9, 0.3, 0.28, 0.31, 0.27, 0.3, 0.29, 0.32, 0.3, 0.26]
    chart = control_chart(
        np.array(y) * 100,
        [100] * 14,
        chart="p",
        mode="mdc",
        x=[dt.date(2024, m, 1) for m in range(1, 13)] + [dt.date(2025, 1, 1), dt.date(2025, 2, 1)],
        part=[6],
        exclude=[5],
        direction="decrease",
        target=0.25,
    )
    payload = chart.to_dict()
    text = json.dumps(payload, allow_nan=False)
    back = ControlChart.from_dict(json.loads(text))
    assert back.to_dict() == payload
    assert back.settings == chart.settings
    assert back.points[2].value != back.points[2].value  # NaN again
    assert payload["points"][2]["value"] is None
    assert payload["points"][0]["x"] == "2024-01-01"
    assert isinstance(payload["points"][0]["signals"], list)
    # keys added by the platform are ignored
    assert ControlChart.from_dict({**payload, "member_id": 3}).to_dict() == payload


# --- chart choice and frames --------------------------------------------------------------------


def test_choose_chart_rules() -> None:
    assert choose_chart("proportion", denominators=[50, 60, 70]).chart == "p"
    assert choose_chart("proportion", denominators=[5000, 6000]).chart == "pp"
    assert choose_chart("rate", denominators=[300, 400]).chart == "u"
    assert choose_chart("ratio", denominators=[3000, 4000]).chart == "up"
    assert choose_chart("rate").chart == "c"
    assert choose_chart("mean").chart == "i"
    assert choose_chart("mean", subgroup_sizes=[5, 5, 4]).chart == "xbar"
    assert choose_chart("time-between-events").chart == "t"
    assert choose_chart("cases-between-events").chart == "g"
    assert choose_chart("proportion", denominators=[10], override="run") == choose_chart(
        "mean", override="run"
    )
    # big denominators without overdispersion stay on the P chart
    n = np.full(24, 5000.0)
    y = np.random.default_rng(1).binomial(5000, 0.1, 24)
    assert choose_chart("proportion", numerators=y, denominators=n).chart == "p"
    with pytest.raises(ValueError, match="unknown measure type"):
        choose_chart("median")
    with pytest.raises(ValueError, match="override must be"):
        choose_chart("mean", override="x")


def test_chart_from_frame_aggregates_phases_and_exclusions() -> None:
    months = pd.date_range("2023-01-01", periods=24, freq="MS")
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "period": np.repeat(months, 2),  # two wards per month are summed
            "events": rng.integers(2, 10, 48),
            "patients": rng.integers(40, 60, 48),
        }
    )
    frame.loc[frame["period"] == months[5], ["events", "patients"]] = np.nan
    chart = chart_from_frame(
        frame,
        x="period",
        numerator="events",
        denominator="patients",
        measure_type="proportion",
        phase_starts=["2024-01-01"],
        exclude=[months[3]],
        direction="decrease",
    )
    assert chart.chart == "p"
    assert len(chart.points) == 24
    march = frame[frame["period"] == months[2]]
    assert chart.points[2].value == pytest.approx(march["events"].sum() / march["patients"].sum())
    assert chart.points[2].n == march["patients"].sum()
    assert math.isnan(chart.points[5].value)  # a gap, not zero
    assert chart.points[3].excluded
    assert [r.phase for r in chart.runs] == [1, 2]
    assert chart.points[12].x == "2024-01-01"
    assert chart.points[12].phase == 2
    means = chart_from_frame(
        pd.DataFrame({"week": np.repeat(np.arange(1, 21), 4), "los": rng.normal(5, 1, 80)}),
        x="week",
        value="los",
        measure_type="mean",
    )
    assert means.chart == "xbar"
    assert means.points[0].n == 4


def test_runs_statistics_in_every_mode_signal_only_when_anhoej_is_used() -> None:
    y = [10, 11, 9, 10, 11, 9, 10, 11, 9, 10, 11, 9, 15, 16, 15, 16, 15, 16, 15, 16]
    qic = control_chart(y, chart="i", freeze=12)
    mdc = control_chart(y, chart="i", freeze=12, mode="mdc")
    assert qic.runs[0].signal
    assert not mdc.runs[0].signal
    assert mdc.runs[0].longest_run == qic.runs[0].longest_run > qic.runs[0].longest_run_max
    assert all(not s.startswith("anhoej") for p in mdc.points for s in p.signals)
    both = control_chart(y, chart="i", freeze=12, mode="mdc", rules=("outside_limits", "anhoej"))
    assert both.runs[0].signal


def test_chart_from_frame_freeze_by_period_and_exclude_column() -> None:
    frame = pd.DataFrame(
        {
            "week": np.arange(1, 25),
            "minutes": np.r_[np.tile([30.0, 32.0, 31.0], 5), np.full(9, 40.0)],
            "outage": [False] * 3 + [True] + [False] * 20,
        }
    )
    chart = chart_from_frame(
        frame, x="week", value="minutes", chart="i", freeze=15, exclude="outage"
    )
    assert [p.baseline for p in chart.points] == [True] * 15 + [False] * 9
    assert chart.points[3].excluded
    assert chart.points[-1].cl == pytest.approx(np.mean(np.delete(frame["minutes"][:15], 3)))
    assert "outside_limits" in chart.points[-1].signals
    numeric = chart_from_frame(frame, x="week", value="minutes", chart="i", phase_starts=[16])
    assert [r.start for r in numeric.runs] == [1, 16]
