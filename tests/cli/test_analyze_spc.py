"""``qicollab analyze spc`` on CSV files: reference charts, aggregation, icons, gaps, errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from qicollab.cli import cli

DATA = Path(__file__).resolve().parents[1] / "data"
EXPECTED = pd.read_csv(DATA / "qicharts2_expected_montgomery.csv")


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["analyze", "spc", *args])
    return result.exit_code, result.output


def _json(*args: str) -> dict:
    code, output = _run(*args)
    assert code == 0, output
    return json.loads(output)


def test_p_chart_with_phases_and_exclusions_matches_qicharts2(tmp_path: Path) -> None:
    source = pd.read_csv(DATA / "qicharts2_sysdata_tbl_07_03.csv")
    csv = tmp_path / "tbl.csv"
    source[["sample", "count", "size"]].astype(int).to_csv(csv, index=False)
    out = _json(
        str(csv), "--x", "sample", "--y", "count", "--n", "size", "--chart", "p",
        "--exclude", "15,23", "--phase-after", "30",
    )  # fmt: skip
    expected = EXPECTED[EXPECTED["case"] == "ex_7.1_5"]
    points = out["points"]
    assert [p["x"] for p in points] == list(range(1, 95))
    assert [p["cl"] for p in points] == pytest.approx(expected["cl"].tolist(), rel=1e-12)
    assert [p["ucl"] for p in points] == pytest.approx(expected["ucl"].tolist(), rel=1e-12)
    assert [p["lcl"] for p in points] == pytest.approx(expected["lcl"].tolist(), abs=1e-12)
    assert [p["phase"] for p in points] == expected["part"].tolist()
    assert [p["x"] for p in points if p["excluded"]] == [15, 23]
    assert [p["x"] for p in points if "outside_limits" in p["signals"]] == [15, 21, 23]
    assert [r["phase"] for r in out["runs"]] == [1, 2]
    first = out["runs"][0]
    assert {k: first[k] for k in ("n_useful", "longest_run", "longest_run_max")} == {
        "n_useful": 28,
        "longest_run": 5,
        "longest_run_max": 8,
    }
    assert (first["crossings"], first["crossings_min"], first["signal"]) == (13, 9, False)
    for key in ("ucl_2sigma", "lcl_2sigma", "n", "value"):
        assert key in points[0]


def test_rows_per_x_become_subgroups(tmp_path: Path) -> None:
    """Montgomery's piston rings (25 samples of 5 rows): Xbar chart from the raw rows."""
    source = pd.read_csv(DATA / "qicharts2_sysdata_tbl_06_03.csv")[["sample", "obs"]]
    csv = tmp_path / "rings.csv"
    source.sample(frac=1, random_state=1).to_csv(csv, index=False)  # order must not matter
    out = _json(str(csv), "--x", "sample", "--y", "obs", "--chart", "xbar")
    assert len(out["points"]) == 25
    assert out["points"][0]["cl"] == pytest.approx(74.001176, abs=5e-7)
    assert out["points"][0]["ucl"] == pytest.approx(74.014592, abs=5e-7)
    assert out["points"][0]["n"] == 5
    s_chart = _json(str(csv), "--x", "sample", "--y", "obs", "--chart", "s")
    assert s_chart["points"][0]["cl"] == pytest.approx(0.009399, abs=5e-7)


def test_counts_are_summed_per_period_and_blanks_are_gaps(tmp_path: Path) -> None:
    csv = tmp_path / "wards.csv"
    csv.write_text(
        "month,falls,bed_days\n"
        "2024-01,3,900\n2024-01,2,600\n"  # two wards: summed
        "2024-02,4,1400\n2024-03,,\n2024-04,6,1500\n2024-05,5,1450\n"
    )
    out = _json(str(csv), "--x", "month", "--y", "falls", "--n", "bed_days", "--chart", "u")
    points = out["points"]
    assert [p["x"] for p in points] == ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05"]
    assert points[0]["value"] == pytest.approx(5 / 1500)
    assert points[0]["n"] == 1500
    assert points[2]["value"] is None  # a gap, not zero
    assert out["trial_limits"] is True
    assert any("trial limits" in w for w in out["warnings"])


def test_mdc_mode_reports_icons(tmp_path: Path) -> None:
    cases = json.loads((DATA / "nhsrplotthedots_cases.json").read_text())["cases"]
    case = next(c for c in cases if c["case"] == "G_icons_shift_up")
    csv = tmp_path / "shift.csv"
    pd.DataFrame({"date": case["dates"], "value": case["y"]}).to_csv(csv, index=False)
    args = [str(csv), "--x", "date", "--y", "value", "--chart", "i", "--mode", "mdc"]
    up = _json(*args, "--direction", "increase", "--target", "-3")
    assert (up["variation_icon"], up["assurance_icon"]) == ("improvement_high", "consistent_pass")
    down = _json(*args, "--direction", "decrease", "--target", "-3")
    assert (down["variation_icon"], down["assurance_icon"]) == ("concern_high", "consistent_fail")
    assert up["mode"] == "mdc"
    assert any("shift" in p["signals"] for p in up["points"])


def test_freeze_and_svg(tmp_path: Path) -> None:
    source = pd.read_csv(DATA / "qicharts2_sysdata_tbl_06_07.csv")
    csv = tmp_path / "cost.csv"
    source[["weeks", "cost"]].to_csv(csv, index=False)
    svg = tmp_path / "chart.svg"
    out = _json(
        str(csv), "--x", "weeks", "--y", "cost", "--chart", "i", "--freeze", "20", "--svg", str(svg)
    )
    assert out["points"][0]["cl"] == pytest.approx(300.5)
    assert out["points"][0]["ucl"] == pytest.approx(321.21668533034716, rel=1e-12)
    assert [p["x"] for p in out["points"] if p["signals"]] == [39, 40]
    root = ET.fromstring(svg.read_text())
    assert root.get("role") == "img"


def test_errors_name_the_row_and_column(tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("month,deaths,cases\n2024-01,3,100\n2024-02,abc,100\n2024-03,2,100\n")
    code, output = _run(str(csv), "--x", "month", "--y", "deaths", "--n", "cases", "--chart", "p")
    assert code != 0
    assert "data row 2 (line 3), column 'deaths': 'abc' is not a number" in output

    code, output = _run(str(csv), "--x", "month", "--y", "dead", "--chart", "i")
    assert code != 0
    assert "missing column(s) 'dead'" in output

    csv.write_text("month,deaths,cases\n2024-01,3,100\n2024-02,120,100\n")
    code, output = _run(str(csv), "--x", "month", "--y", "deaths", "--n", "cases", "--chart", "p")
    assert code != 0
    assert "data row 2 (line 3), column 'deaths': 120 exceeds 'cases' (100)" in output

    csv.write_text("month,deaths\n2024-01,3\n2024-02,-1\n")
    code, output = _run(str(csv), "--x", "month", "--y", "deaths", "--chart", "c")
    assert code != 0
    assert "data row 2 (line 3), column 'deaths'" in output

    code, output = _run(str(csv), "--x", "month", "--y", "deaths", "--chart", "p")
    assert code != 0
    assert "--n is required" in output

    csv.write_text("month,deaths\n2024-01,3\n2024-02,4\n")
    code, output = _run(str(csv), "--x", "month", "--y", "deaths", "--chart", "i", "--exclude", "7")
    assert code != 0
    assert "position 7 is outside 1..2" in output
    code, output = _run(str(csv), "--x", "month", "--y", "deaths", "--chart", "i", "--exclude", "x")
    assert code != 0
    assert "'x' is not a whole number" in output
