"""Reference values from NHSRplotthedots (MDC mode), ggQC (Wheeler) and the Anhøj table.

Sources and inputs: tests/data/PROVENANCE.md; expected values as the packages print them
(design/METHODS.md part B, section 2 "N", "W").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from qicollab.stats.spc import control_chart
from qicollab.stats.spc_rules import anhoej_critical_values

DATA = Path(__file__).resolve().parents[1] / "data"
NHSR: dict[str, dict[str, Any]] = {
    c["case"]: c for c in json.loads((DATA / "nhsrplotthedots_cases.json").read_text())["cases"]
}


def _mdc(y: Any, **options: Any) -> Any:
    """NHSRplotthedots 0.2.2: XmR at 2.66 AMR, its own (pre-2023) two-in-three rule."""
    return control_chart(y, chart="i", mode="mdc", two_in_three="nhsr", **options)


# --- NHSRplotthedots ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["A_rnorm20", "B_outlier_screened", "C_outlier_unscreened"])
def test_nhsr_limits(name: str) -> None:
    case = NHSR[name]
    chart = _mdc(case["y"], x=case["dates"], screen_mr=case["params"]["screen_outliers"])
    expected = case["expected"]
    last = chart.points[-1]
    assert last.cl == pytest.approx(expected["mean_col"], abs=5e-8)
    assert last.lcl == pytest.approx(expected["lpl"], abs=5e-6)
    assert last.ucl == pytest.approx(expected["upl"], abs=5e-7)
    assert all(p.cl == last.cl and p.ucl == last.ucl for p in chart.points)
    if "common_cause" in expected:
        types = [p.point_type for p in chart.points]
        assert types.count("common_cause") == expected["common_cause"] == expected["n"]
    assert chart.points[0].x == "2020-01-02"


def test_nhsr_screening_changes_the_limits_not_the_mean() -> None:
    case = NHSR["B_outlier_screened"]
    screened = _mdc(case["y"], screen_mr=True)
    unscreened = _mdc(case["y"], screen_mr=False)
    assert screened.points[0].cl == unscreened.points[0].cl
    assert screened.points[0].ucl < unscreened.points[0].ucl
    # The outlier (y[15] = 10) lies above both upper limits.
    assert "outside_limits" in screened.points[14].signals
    assert "outside_limits" in unscreened.points[14].signals


def test_nhsr_facets_are_separate_charts() -> None:
    case = NHSR["D_facets"]
    y, facet = np.asarray(case["y"]), np.asarray(case["facet"])
    for key, want in (("facet_0", 0), ("facet_1", 1)):
        chart = _mdc(y[facet == want])
        expected = case["expected"][key]
        # printed to 3 significant figures
        assert float(f"{chart.points[0].cl:.3g}") == expected["mean_col"]
        assert float(f"{chart.points[0].lcl:.3g}") == expected["lpl"]
        assert float(f"{chart.points[0].ucl:.3g}") == expected["upl"]
        assert [p.point_type for p in chart.points] == ["common_cause"] * expected["n"]
        assert chart.trial_limits  # 10 points per facet
        assert any("trial limits" in w for w in chart.warnings)


@pytest.mark.parametrize("variant", ["nhsr", "mdc2023"])
def test_nhsr_two_in_three_needs_one_side_of_the_mean(variant: str) -> None:
    """Issue #143: two close points on opposite sides of the mean are not a signal."""
    case = NHSR["E_opposite_sides_2in3"]
    chart = control_chart(
        case["y"], chart="i", mode="mdc", direction="increase", two_in_three=variant
    )
    assert [p.point_type for p in chart.points[-2:]] == case["expected"]["last_two_point_type"]
    assert all("two_of_three" not in p.signals for p in chart.points)


def test_nhsr_deviation_vignette() -> None:
    case = NHSR["F_deviation_vignette"]
    expected = case["expected"]
    for screen, key in (
        (True, "screen_outliers=TRUE"),
        (False, "screen_outliers=FALSE (MDC Excel)"),
    ):
        chart = _mdc(case["y"], screen_mr=screen, direction="increase")
        point = chart.points[0]
        assert round(point.ucl, 2) == expected[key]["upl"]
        assert round(point.cl, 2) == expected[key]["mean_col"]
        assert round(point.lcl, 2) == expected[key]["lpl"]
        assert chart.points[4].point_type == "special_cause_improvement"
        assert chart.points[4].signals == ("outside_limits",)


@pytest.mark.parametrize(
    ("name", "target", "direction", "variation", "assurance"),
    [
        ("G_icons_null", None, "increase", "common_cause", None),
        ("G_icons_null", 0.5, "increase", "common_cause", "inconsistent"),
        ("G_icons_null", 0.5, "decrease", "common_cause", "inconsistent"),
        ("G_icons_shift_up", -3, "increase", "improvement_high", "consistent_pass"),
        ("G_icons_shift_up", -3, "decrease", "concern_high", "consistent_fail"),
        ("G_icons_shift_down", 3, "increase", "concern_low", "consistent_fail"),
        ("G_icons_shift_down", 3, "decrease", "improvement_low", "consistent_pass"),
        ("G_icons_shift_down", 3, "neutral", "neutral_low", None),
    ],
)
def test_nhsr_icons(
    name: str, target: float | None, direction: str, variation: str, assurance: str | None
) -> None:
    chart = _mdc(NHSR[name]["y"], target=target, direction=direction)
    assert chart.variation_icon == variation
    assert chart.assurance_icon == assurance


def test_nhsr_icons_per_facet() -> None:
    case = NHSR["G_icons_null"]
    y, facet = np.asarray(case["y"]), np.asarray(case["facet"])
    for value in (0, 1):
        chart = _mdc(y[facet == value], target=0.5, direction="increase")
        assert (chart.variation_icon, chart.assurance_icon) == ("common_cause", "inconsistent")


@pytest.mark.parametrize("direction", ["increase", "decrease", "neutral"])
def test_nhsr_assurance_unit_cases(direction: str) -> None:
    """(LPL, UPL) rows with target 4; built as constant-free charts whose last limits are the
    rows' limits: a flat series at the mid-point with a known moving range."""
    case = NHSR["H_assurance_unit"]
    target = case["params"]["target"]
    got = []
    for row in case["params"]["rows"]:
        mid, half = (row["lpl"] + row["upl"]) / 2, (row["upl"] - row["lpl"]) / 2
        amr = half / 2.66
        y = [mid + (amr / 2 if i % 2 else -amr / 2) for i in range(12)]
        chart = control_chart(y, chart="i", mode="mdc", target=target, direction=direction)
        assert chart.points[-1].lcl == pytest.approx(row["lpl"])
        assert chart.points[-1].ucl == pytest.approx(row["upl"])
        got.append(chart.assurance_icon)
    assert got == case["expected"][direction]


# --- ggQC (Wheeler) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("series", "result"), [("Wheeler49", "Wheeler49"), ("WheelerEMP15", "WheelerEMP15")]
)
def test_wheeler_xmr_limits(series: str, result: str) -> None:
    inputs = pd.read_csv(DATA / "ggqc_wheeler49_emp15_inputs.csv")
    y = inputs.loc[inputs["series"] == series, "value"].to_numpy(dtype=float)
    expected = pd.read_csv(DATA / f"ggqc_{result}_Result.csv").iloc[0]
    chart = control_chart(y, chart="i", mode="mdc", screen_mr=False)
    point = chart.points[0]
    assert point.cl == pytest.approx(expected["mean"], rel=1e-12)
    assert point.lcl == pytest.approx(expected["xBar_one_LCL"], rel=1e-12)
    assert point.ucl == pytest.approx(expected["xBar_one_UCL"], rel=1e-12)
    assert (point.ucl - point.cl) / 3 == pytest.approx(expected["sigma"], rel=1e-12)
    mr = control_chart(y, chart="mr")
    assert mr.points[1].cl == pytest.approx(expected["mR"], rel=1e-12)
    # ggQC's mR UCL uses D4 = 3.268, qicharts2 and MDC use 3.267 (exact 3.26653).
    assert mr.points[1].ucl == pytest.approx(expected["mR"] * 3.267, rel=1e-12)
    assert expected["mR_UCL"] == pytest.approx(expected["mR"] * 3.268, rel=1e-12)
    assert mr.points[1].lcl == expected["mR_LCL"] == 0


def test_wheeler91_z_scores() -> None:
    """ggQC's z-scores are (x - mean) / sigma with sigma = 2.66 AMR / 3: the chart's zones."""
    data = pd.read_csv(DATA / "ggqc_wheeler91.csv")
    result = pd.read_csv(DATA / "ggqc_Wheeler91_QC_Result.csv")
    chart = control_chart(data["Average"], chart="i", mode="mdc", screen_mr=False)
    sigma = (chart.points[0].ucl - chart.points[0].cl) / 3
    z = (np.array([p.value for p in chart.points]) - chart.points[0].cl) / sigma
    for _, block in result.groupby("Violation_Result"):
        assert_allclose(z, block["z_score"].to_numpy(), rtol=0, atol=1e-9)


def test_wheeler_p_chart() -> None:
    data = pd.read_csv(DATA / "ggqc_wheeler_USPC_264.csv")
    expected = pd.read_csv(DATA / "ggqc_wheeler264_test.csv")
    chart = control_chart(data["Num_Incomplete_Items"], data["Num_Items_in_Set"], chart="p")
    # ggQC's stored p-bar differs from sum(x)/sum(n) by 1.3e-11 (its own arithmetic), so the
    # lines agree to 2e-11 absolute rather than to 1e-9 relative near zero.
    tol = {"rtol": 1e-9, "atol": 2e-11}
    assert_allclose([p.cl for p in chart.points], expected["pBar"], **tol)
    assert_allclose([p.ucl for p in chart.points], expected["pBar_UCL"], **tol)
    assert_allclose([p.lcl for p in chart.points], expected["pBar_LCL"], **tol)


def test_wheeler_u_chart() -> None:
    data = pd.read_csv(DATA / "ggqc_wheeler_USPC_276.csv")
    expected = pd.read_csv(DATA / "ggqc_wheeler276_test.csv")
    chart = control_chart(data["No_of_Leaks"], data["No_of_Radiators"], chart="u")
    assert_allclose([p.cl for p in chart.points], expected["uBar"], rtol=1e-9)
    assert_allclose([p.ucl for p in chart.points], expected["uBar_UCL"], rtol=1e-9)
    assert_allclose([p.lcl for p in chart.points], expected["uBar_LCL"], atol=1e-12)


def test_wheeler_xbar_grand_mean() -> None:
    """ggQC's Xbar-R example (n = 4): the grand mean 4.763 is our Xbar centre line. (Xbar-R
    limits are not offered: qicharts2 uses Xbar-S for every subgroup size.)"""
    data = pd.read_csv(DATA / "ggqc_Wheeler_USPC_43.csv")
    groups = data.groupby("subgroup")["values"]
    chart = control_chart(
        groups.mean(), groups.count(), sd=groups.std(), chart="xbar", x=list(groups.groups)
    )
    assert chart.points[0].cl == pytest.approx(4.763, abs=5e-4)


# --- Anhøj critical values --------------------------------------------------------------------


def test_anhoej_critical_values_table() -> None:
    table = pd.read_csv(DATA / "derived_anhoej_critical_values.csv")
    longest, crossings = anhoej_critical_values(table["n_useful"].to_numpy())
    assert longest.tolist() == table["longest_run_max"].tolist()
    assert crossings.tolist() == table["n_crossings_min"].tolist()
    # METHODS.md quotes a few rows; check the quoted ones independently of the file.
    quoted = {10: (6, 2), 24: (8, 8), 46: (9, 17), 91: (10, 37), 100: (10, 41)}
    got_l, got_c = anhoej_critical_values(list(quoted))
    assert list(zip(got_l.tolist(), got_c.tolist(), strict=True)) == list(quoted.values())
