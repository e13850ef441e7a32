"""``qicollab analyze funnel|risk|abc`` on CSV files: JSON output and row-precise errors."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from qicollab.cli import cli
from qicollab.cli._csv import CsvError, read_csv

DATA = Path(__file__).resolve().parents[1] / "data"


def _run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["analyze", *args], catch_exceptions=False)


def _json(result: Result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def ratio_csv(tmp_path: Path) -> Path:
    # FunnelPlotR tests/testthat/test-classes_methods.R
    path = tmp_path / "ratio.csv"
    pd.DataFrame(
        {
            "trust": list("abcdef"),
            "deaths": [100, 150, 180, 80, 120, 225],
            "expected": [108, 112, 165, 95, 100, 220],
        }
    ).to_csv(path, index=False)
    return path


class TestFunnel:
    def test_ratio_json(self, ratio_csv: Path) -> None:
        out = _json(
            _run(
                "funnel",
                str(ratio_csv),
                "--unit",
                "trust",
                "--observed",
                "deaths",
                "--expected",
                "expected",
                "--method",
                "shmi",
            )
        )
        assert out["method"] == "shmi"
        assert out["phi"] == pytest.approx(2.948033, abs=5e-7)
        assert out["tau2"] == pytest.approx(0.019478, abs=5e-7)
        unit = out["units"][1]
        assert unit["unit"] == "b"
        assert unit["expected"] == 112
        assert unit["value"] == pytest.approx(150 / 112)
        assert set(unit["limits"]) == {"95", "99.8"}
        assert set(unit["adjusted_limits"]) == {"95", "99.8"}
        assert unit["outlier"] == {
            "95": "high",
            "99.8": "high",
            "adjusted_95": None,
            "adjusted_99.8": None,
        }
        low, high = unit["limits"]["95"]
        assert low < 1 < high

    def test_default_is_the_calibrated_random_effects_method(self, ratio_csv: Path) -> None:
        out = _json(
            _run(
                "funnel",
                str(ratio_csv),
                "--unit",
                "trust",
                "--observed",
                "deaths",
                "--expected",
                "expected",
            )
        )
        assert out["method"] == "random-effects"
        assert out["adjustment"] == "predictive"
        assert out["tau2"] > 0
        # b (150 of 112 expected) is high before the adjustment and within the predictive
        # limits after it; the adjusted limits are never narrower.
        unit = out["units"][1]
        assert unit["outlier"]["99.8"] == "high"
        assert unit["outlier"]["adjusted_99.8"] is None
        for key in ("95", "99.8"):
            assert unit["adjusted_limits"][key][0] <= unit["limits"][key][0]
            assert unit["adjusted_limits"][key][1] >= unit["limits"][key][1]

    def test_cqc_method_and_trim(self, ratio_csv: Path) -> None:
        out = _json(
            _run(
                "funnel",
                str(ratio_csv),
                "--unit",
                "trust",
                "--observed",
                "deaths",
                "--expected",
                "expected",
                "--method",
                "cqc",
                "--trim",
                "0.05",
            )
        )
        assert out["phi"] == pytest.approx(2.746783, abs=5e-7)
        assert out["tau2"] == pytest.approx(0.004406, abs=5e-7)

    def test_aggregate_sums_rows_per_unit(self, tmp_path: Path) -> None:
        # FunnelPlotR tests/testthat/test-aggregate_fun.R
        path = tmp_path / "rows.csv"
        path.write_text("g,n,d\na,100,102\na,150,135\na,180,165\nb,89,95\nb,120,100\nc,225,220\n")
        out = _json(
            _run(
                "funnel",
                str(path),
                "--unit",
                "g",
                "--observed",
                "n",
                "--expected",
                "d",
                "--aggregate",
            )
        )
        assert [u["unit"] for u in out["units"]] == ["a", "b", "c"]
        assert [round(u["value"], 6) for u in out["units"]] == [1.069652, 1.071795, 1.022727]

    def test_duplicate_units_need_aggregate(self, tmp_path: Path) -> None:
        path = tmp_path / "rows.csv"
        path.write_text("g,n,d\na,1,2\nb,3,4\na,5,6\n")
        result = _run("funnel", str(path), "--unit", "g", "--observed", "n", "--expected", "d")
        assert result.exit_code == 1
        assert "rows.csv: data row 3 (line 4), column 'g'" in result.output
        assert "--aggregate" in result.output

    def test_proportions(self, tmp_path: Path) -> None:
        frame = pd.read_csv(DATA / "phe_testdata_funnel_prop_inputs.csv")
        path = tmp_path / "prop.csv"
        frame.to_csv(path, index=False)
        out = _json(
            _run(
                "funnel",
                str(path),
                "--unit",
                "Area",
                "--observed",
                "numerator",
                "--denominator",
                "denominator",
                "--type",
                "proportion",
                "--method",
                "cqc",
            )
        )
        assert out["method"] == "cqc"
        assert out["target"] * 100 == pytest.approx(80.642448, abs=5e-7)
        assert "denominator" in out["units"][0]
        assert "expected" not in out["units"][0]
        assert len(out["units"]) == 303

    def test_proportion_needs_a_denominator(self, ratio_csv: Path) -> None:
        result = _run(
            "funnel",
            str(ratio_csv),
            "--unit",
            "trust",
            "--observed",
            "deaths",
            "--type",
            "proportion",
        )
        assert result.exit_code == 2
        assert "--denominator" in result.output

    def test_numerator_above_denominator(self, tmp_path: Path) -> None:
        path = tmp_path / "p.csv"
        path.write_text("u,x,n\na,5,10\nb,12,10\n")
        result = _run(
            "funnel",
            str(path),
            "--unit",
            "u",
            "--observed",
            "x",
            "--denominator",
            "n",
            "--type",
            "proportion",
        )
        assert result.exit_code == 1
        assert "p.csv: data row 2 (line 3), column 'x'" in result.output

    def test_svg(self, ratio_csv: Path, tmp_path: Path) -> None:
        svg = tmp_path / "funnel.svg"
        result = _run(
            "funnel",
            str(ratio_csv),
            "--unit",
            "trust",
            "--observed",
            "deaths",
            "--expected",
            "expected",
            "--method",
            "shmi",
            "--svg",
            str(svg),
        )
        assert result.exit_code == 0
        root = ET.fromstring(svg.read_text())
        ns = {"s": "http://www.w3.org/2000/svg"}
        assert root.get("role") == "img"
        assert root.find("s:title", ns).text == "Funnel plot: ratio.csv"  # type: ignore[union-attr]
        desc = root.find("s:desc", ns).text  # type: ignore[union-attr]
        assert "phi = 2.9480" in desc
        assert len(root.findall(".//s:circle", ns)) >= 6
        dashes = {p.get("stroke-dasharray") for p in root.findall(".//s:path", ns)}
        assert len(dashes) == 4  # 95 / 99.8, unadjusted / adjusted: told apart without colour


class TestCsvErrors:
    def test_non_numeric_value_names_file_row_line_and_column(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.csv"
        path.write_text("unit,o,e\na,100,108\nb,x,112\n")
        result = _run("funnel", str(path), "--unit", "unit", "--observed", "o", "--expected", "e")
        assert result.exit_code == 1
        assert "bad.csv: data row 2 (line 3), column 'o': 'x' is not a number" in result.output

    def test_negative_count(self, tmp_path: Path) -> None:
        path = tmp_path / "neg.csv"
        path.write_text("unit,o,e\na,100,108\nb,3,-1\n")
        result = _run("funnel", str(path), "--unit", "unit", "--observed", "o", "--expected", "e")
        assert result.exit_code == 1
        assert "neg.csv: data row 2 (line 3), column 'e'" in result.output
        assert "negative" in result.output

    def test_missing_column(self, ratio_csv: Path) -> None:
        result = _run(
            "abc",
            str(ratio_csv),
            "--unit",
            "trust",
            "--numerator",
            "deaths",
            "--denominator",
            "patients",
        )
        assert result.exit_code == 1
        assert "ratio.csv: missing column(s) 'patients'" in result.output

    def test_missing_value(self, tmp_path: Path) -> None:
        path = tmp_path / "gap.csv"
        path.write_text("unit,o,e\na,,108\n")
        result = _run("funnel", str(path), "--unit", "unit", "--observed", "o", "--expected", "e")
        assert result.exit_code == 1
        assert "gap.csv: data row 1 (line 2), column 'o': missing value" in result.output

    @pytest.mark.parametrize(
        ("content", "message"),
        [(None, "no such file"), ("", "empty"), ("unit,o,e\n", "no data rows")],
    )
    def test_bad_files(self, tmp_path: Path, content: str | None, message: str) -> None:
        path = tmp_path / "file.csv"
        if content is not None:
            path.write_text(content)
        result = _run("abc", str(path), "--unit", "u", "--numerator", "x", "--denominator", "n")
        assert result.exit_code == 1
        assert str(path) in result.output
        assert message in result.output

    def test_line_numbers_count_quoted_line_breaks_and_blank_lines(self, tmp_path: Path) -> None:
        path = tmp_path / "multi.csv"
        path.write_text('u,x,n\n"first\nunit",1,10\n\nb,oops,10\n')
        table = read_csv(path)
        with pytest.raises(CsvError, match=r"data row 2 \(line 5\), column 'x'"):
            table.numeric("x")

    def test_integer_and_helper_messages(self, tmp_path: Path) -> None:
        path = tmp_path / "h.csv"
        path.write_text("u,x\na,1.5\n")
        table = read_csv(path)
        with pytest.raises(CsvError, match="not a whole number"):
            table.numeric("x", integer=True)
        assert table.where(0) == f"{path}: data row 1 (line 2)"


@pytest.fixture
def medpar_csv(tmp_path: Path) -> Path:
    path = tmp_path / "medpar.csv"
    pd.read_csv(DATA / "count_medpar.csv", dtype=str).to_csv(path, index=False)
    return path


class TestRisk:
    def test_binomial_json(self, medpar_csv: Path) -> None:
        out = _json(
            _run(
                "risk",
                str(medpar_csv),
                "--unit",
                "provnum",
                "--outcome",
                "died",
                "--covariates",
                "hmo,white,age80",
                "--categorical",
                "type",
            )
        )
        terms = [c["term"] for c in out["coefficients"]]
        assert terms == ["intercept", "hmo", "white", "age80", "type[2]", "type[3]"]
        assert 0.5 < out["diagnostics"]["c_statistic"] < 1
        assert len(out["diagnostics"]["c_statistic_ci95"]) == 2
        units = out["units"]
        assert len(units) == pd.read_csv(medpar_csv)["provnum"].nunique()
        assert sum(u["n"] for u in units) == 1495
        assert sum(u["observed"] for u in units) == pytest.approx(sum(u["expected"] for u in units))
        first = units[0]
        assert set(first) >= {
            "n",
            "observed",
            "expected",
            "oe",
            "oe_ci95",
            "oe_ci998",
            "risk_adjusted_rate",
        }
        assert first["risk_adjusted_rate"] == pytest.approx(first["oe"] * out["reference_rate"])
        assert first["oe_ci998"][0] <= first["oe_ci95"][0]

    def test_poisson_family(self, medpar_csv: Path) -> None:
        out = _json(
            _run(
                "risk",
                str(medpar_csv),
                "--unit",
                "provnum",
                "--outcome",
                "los",
                "--covariates",
                "hmo,white,type",
                "--categorical",
                "type",
                "--family",
                "poisson",
            )
        )
        assert out["family"] == "poisson"
        assert out["diagnostics"]["c_statistic"] is None
        assert out["coefficients"][1]["ratio"] == pytest.approx(
            np.exp(out["coefficients"][1]["estimate"])
        )

    def test_refusal_is_a_clean_error(self, tmp_path: Path) -> None:
        path = tmp_path / "sep.csv"
        rows = ["u,y,x"] + [f"h{i % 5},{int(i >= 100)},{i}" for i in range(200)]
        path.write_text("\n".join(rows) + "\n")
        result = _run("risk", str(path), "--unit", "u", "--outcome", "y", "--covariates", "x")
        assert result.exit_code == 1
        assert "separation" in result.output
        assert "sep.csv" in result.output

    def test_outcome_must_be_binary(self, tmp_path: Path) -> None:
        path = tmp_path / "y.csv"
        path.write_text("u,y,x\na,0,1\nb,2,3\n")
        result = _run("risk", str(path), "--unit", "u", "--outcome", "y", "--covariates", "x")
        assert result.exit_code == 1
        assert "y.csv: data row 2 (line 3), column 'y': 2 is not 0 or 1" in result.output


class TestAbc:
    @pytest.fixture
    def abc_csv(self, tmp_path: Path) -> Path:
        # METHODS.md part A, 4.6
        path = tmp_path / "abc.csv"
        path.write_text(
            "provider,x,n\nA,3,3\nB,18,20\nC,46,50\nD,80,100\nE,27,30\nF,60,80\nG,9,12\nH,280,400\n"
        )
        return path

    def test_methods_example(self, abc_csv: Path) -> None:
        out = _json(
            _run(
                "abc", str(abc_csv), "--unit", "provider", "--numerator", "x", "--denominator", "n"
            )
        )
        assert out["abc"] == pytest.approx(0.9125)
        assert out["benchmark_units"] == ["C", "E"]
        assert out["overall"] == pytest.approx(523 / 695)

    def test_lower_is_better(self, abc_csv: Path, tmp_path: Path) -> None:
        frame = pd.read_csv(abc_csv)
        frame["failures"] = frame["n"] - frame["x"]
        path = tmp_path / "fail.csv"
        frame.to_csv(path, index=False)
        out = _json(
            _run(
                "abc",
                str(path),
                "--unit",
                "provider",
                "--numerator",
                "failures",
                "--denominator",
                "n",
                "--lower-is-better",
            )
        )
        assert out["benchmark_units"] == ["C", "E"]
        assert out["abc"] == pytest.approx(0.0875)
