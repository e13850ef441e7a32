"""The 106 rule cases of tests/data/spc_rule_cases.json (PowerBI-SPC, qcc, NHSRplotthedots).

Each case carries its inputs and the peer package's expected output; the adapters below only
translate the peer's calling convention (upper/lower labels, 1-based indices) to our functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.testing import assert_allclose

from qicollab.stats import cusum
from qicollab.stats import spc_rules as rules
from qicollab.stats.spc import control_chart

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).resolve().parents[1] / "data" / "spc_rule_cases.json").read_text()
)


def _case_id(case: dict[str, Any]) -> str:
    source = case["source"].split("/")[-1]
    return f"{source}:{case['rule'].split(' ')[0]}:{case['case']}"


def _labels(flags: np.ndarray) -> list[str]:
    return ["upper" if v > 0 else "lower" if v < 0 else "none" for v in np.asarray(flags)]


def _indices(mask: np.ndarray) -> list[int]:
    return [int(i) + 1 for i in np.flatnonzero(mask)]


def _powerbi(rule: str, params: dict, inputs: dict) -> list[str]:
    val = np.asarray(inputs["val"], dtype=float)
    if val.size == 0:
        return []
    if rule == "shift":
        return _labels(rules.shift(rules.sides(val, inputs["targets"]), params["n"]))
    if rule == "trend":
        return _labels(rules.trend(val, params["n"]))
    if rule == "twoInThree":
        return _labels(
            rules.two_in_three(
                val,
                np.nan,
                upper2=inputs["ul95"],
                lower2=inputs["ll95"],
                upper3=np.inf,
                lower3=-np.inf,
                variant="powerbi",
                highlight_window=params["highlight_series"],
            )
        )
    assert rule == "astronomical"
    return _labels(rules.outside(val, inputs["ul99"], inputs["ll99"]))


def _qcc(rule: str, params: dict, inputs: dict) -> Any:
    x = np.asarray(inputs["statistics"], dtype=float)
    z = (x - params.get("center", 0)) / params.get("std_dev", 1)
    if rule.startswith(("WER", "NEL")):
        found = rules.western_electric(z) if rule.startswith("WER") else rules.nelson(z)
        return _indices(found[int(rule[-1])])
    if rule == "qccRules":
        rule_set = "nelson" if params["rule_set"] == "nelson" else "western-electric"
        numbers = rules.qcc_rule_numbers(z, rule_set=rule_set, rules=tuple(params["rules"]))
        return [None if v == 0 else int(v) for v in numbers]
    if rule == "tabular CUSUM":
        result = cusum.tabular_cusum(
            x,
            center=params["center"],
            sigma=params["std_dev"],
            k=params["se_shift"] / 2,
            h=params["decision_interval"],
            head_start=params["head_start"],
        )
        return {
            "pos": result.pos.round(12).tolist(),
            "neg": result.neg.round(12).tolist(),
            "upper_violation_index": [i + 1 for i in result.signals_up],
            "lower_violation_index": [i + 1 for i in result.signals_down],
        }
    assert rule == "EWMA"
    result = cusum.ewma(
        x,
        center=params["center"],
        sigma=params["std_dev"],
        lambda_=params["lambda_"],
        nsigmas=params["nsigmas"],
    )
    return {
        "ewma": result.ewma,
        "sigma": result.sigma,
        "LCL": result.lcl,
        "UCL": result.ucl,
    }


def _nhsr(rule: str, inputs: dict) -> list[int]:
    if rule == "seven_point_one_side_mean":
        # NHSRplotthedots' helper returns 1 for the points of the run, either side.
        return np.abs(rules.side_run_end(inputs["relative_to_mean"], 7)).tolist()
    if rule == "seven_point_trend":
        return rules.trend_end(np.asarray(inputs["y"], dtype=float), 7).tolist()
    if rule == "part_of_seven_trend":
        return np.abs(rules.backfill(inputs["flags"], 7)).tolist()
    close = np.asarray(inputs["close_to_limits"])
    if rule.startswith("two_in_three"):
        windows = rules.two_in_three_windows(close, inputs["relative_to_mean"])
        return windows.astype(int).tolist()
    assert rule == "part_of_two_in_three"
    return (rules.two_in_three_windows(close) & (close != 0)).astype(int).tolist()


def test_there_are_106_cases() -> None:
    assert len(CASES) == 106
    assert len({_case_id(c) for c in CASES}) == 106


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_rule_case(case: dict[str, Any]) -> None:
    source, rule = case["source"], case["rule"]
    params, inputs, expected = case["params"], case["inputs"], case["expected"]
    if source.endswith("PowerBI-SPC"):
        assert _powerbi(rule, params, inputs) == expected
    elif source.endswith("qcc"):
        got = _qcc(rule, params, inputs)
        if isinstance(expected, dict):
            for key, want in expected.items():
                assert_allclose(got[key], want, rtol=1e-12, atol=1e-12, err_msg=key)
        else:
            assert got == expected
    else:
        assert _nhsr(rule, inputs) == expected


# --- the same rules through the chart engine --------------------------------------------------


def test_we_and_nelson_names_on_a_chart() -> None:
    # 9 points above the centre line, then a long stable stretch: Nelson 2 fires at the 9th.
    y = [10.0, 11, 9, 10, 11, 9, 10, 11, 9, 10] + [10.5] * 9 + [9.5, 10.5, 9.5]
    chart = control_chart(y, chart="i", rules=("outside_limits", "nelson"))
    names = [p.signals for p in chart.points]
    assert "nelson2" in names[18]
    assert all("nelson2" not in n for n in names[:18])
    assert chart.points[18].point_type == "special_cause_neutral_high"
