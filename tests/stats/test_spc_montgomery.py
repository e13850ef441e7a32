"""qicharts2's Montgomery reference outputs (tests/testthat/*.rds), reproduced column by column.

Each case is a ``qic()`` call from qicharts2's test_montgomery.R on a Montgomery (6th ed.) table;
the expected frame holds every column of ``qic(...)$data`` (design/METHODS.md part B, section 2
"Q"). Plotting columns are derived from our result the way qicharts2's plot derives them:
``dotcol`` is empty for a missing value, col5 for an excluded point, col3 for a point outside
the limits, col2 otherwise; ``linecol`` is col3 when the phase's runs analysis signals;
``*.lab`` carry the lines at the last point of each phase.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from qicollab.stats.spc import ControlChart, aggregate_subgroups, control_chart

DATA = Path(__file__).resolve().parents[1] / "data"
EXPECTED = pd.read_csv(DATA / "qicharts2_expected_montgomery.csv")
TOL = {"rtol": 1e-9, "atol": 1e-9}

#: case -> (table, x column, y column, n column, qic options)
CASES: dict[str, tuple[str, str, str, str | None, dict]] = {
    "ex_6.3_1": ("tbl_06_03", "sample", "obs", None, {"chart": "xbar"}),
    "ex_6.3_2": ("tbl_06_03", "sample", "obs", None, {"chart": "s"}),
    "ex_6.4_1": ("tbl_06_04", "sample", "obs", None, {"chart": "xbar"}),
    "ex_6.4_2": ("tbl_06_04", "sample", "obs", None, {"chart": "s"}),
    "ex_6.5_3": ("tbl_06_07", "weeks", "cost", None, {"chart": "i", "freeze": 20}),
    "ex_6.5_4": ("tbl_06_07", "weeks", "cost", None, {"chart": "mr", "freeze": 20}),
    "ex_7.1_5": (
        "tbl_07_03",
        "sample",
        "count",
        "size",
        {"chart": "p", "exclude": [15, 23], "part": [30]},
    ),
    "tbl_7.4_1": ("tbl_07_04", "sample", "count", "size", {"chart": "p"}),
    "ex_7.3_3": (
        "tbl_07_08",
        "sample",
        "count",
        None,
        {"chart": "c", "exclude": [6, 20], "freeze": 26},
    ),
    "ex_7.4_1": ("tbl_07_10", "sample", "count", "size", {"chart": "u"}),
    "ex_7.5_1": ("tbl_07_11", "roll", "count", "meters", {"chart": "u", "multiply": 50}),
    "ex_7.6_1": ("tbl_07_14", "failure", "hours", None, {"chart": "t"}),
    # The reference needs qicharts2's pooled-SD denominator for the empty subgroup 16.
    "NA_test": ("NA_test", "sample", "obs", None, {"chart": "xbar", "empty_subgroup_quirk": True}),
}


def _input(case: str) -> pd.DataFrame:
    table = CASES[case][0]
    return pd.read_csv(DATA / f"qicharts2_sysdata_{table}.csv")


def _run(case: str, **extra: object) -> ControlChart:
    _, x, y, n, options = CASES[case]
    frame = _input(case)
    sub = aggregate_subgroups(frame[x], frame[y], None if n is None else frame[n])
    options = {**options, **extra}
    if options["chart"] in {"xbar", "s"}:
        return control_chart(sub.y_mean, sub.y_length, sd=sub.y_sd, x=list(sub.x), **options)
    values = sub.y_sum if n is not None or options["chart"] == "c" else sub.y_mean
    return control_chart(values, None if n is None else sub.n_sum, x=list(sub.x), **options)


def _floats(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def _bools(values: pd.Series) -> np.ndarray:
    return values.astype(str).eq("True").to_numpy()


def _runs_column(chart: ControlChart, name: str) -> np.ndarray:
    by_phase = {r.phase: r for r in chart.runs}
    out = []
    for point in chart.points:
        value = getattr(by_phase[point.phase], name)
        out.append(math.nan if value is None else float(value))
    return np.array(out)


def test_every_case_is_covered() -> None:
    assert set(EXPECTED["case"]) == set(CASES)
    assert len(CASES) == 13


@pytest.mark.parametrize("case", list(CASES))
def test_matches_qicharts2_reference(case: str) -> None:
    expected = EXPECTED[EXPECTED["case"] == case].reset_index(drop=True)
    chart = _run(case)
    points = chart.points
    assert len(points) == len(expected)
    _, xcol, ycol, ncol, _ = CASES[case]
    frame = _input(case)
    sub = aggregate_subgroups(frame[xcol], frame[ycol], None if ncol is None else frame[ncol])

    # Subgroup aggregation (qic.agg)
    assert_allclose([float(p.x) for p in points], expected["x"], **TOL)
    assert_allclose(sub.y_sum, expected["y.sum"], **TOL)
    assert_allclose(sub.y_length, expected["y.length"], **TOL)
    assert_allclose(sub.y_mean, _floats(expected["y.mean"]), equal_nan=True, **TOL)
    assert_allclose(sub.y_sd, _floats(expected["y.sd"]), equal_nan=True, **TOL)
    assert_allclose(sub.n_sum, _floats(expected["n"]), equal_nan=True, **TOL)
    assert (expected["facet1"] == 1).all()
    assert (expected["facet2"] == 1).all()

    # Values and lines
    for ours, theirs in (("value", "y"), ("cl", "cl"), ("ucl", "ucl"), ("lcl", "lcl")):
        got = np.array([getattr(p, ours) for p in points])
        assert_allclose(got, _floats(expected[theirs]), equal_nan=True, **TOL, err_msg=theirs)
    if ncol is not None:
        assert_allclose([p.n for p in points], _floats(expected["n"]), **TOL)

    # Phases, baseline, exclusions
    assert [p.phase for p in points] == expected["part"].tolist()
    assert list(range(1, len(points) + 1)) == expected["xx"].tolist()
    assert [p.baseline for p in points] == _bools(expected["baseline"]).tolist()
    assert [not p.excluded for p in points] == _bools(expected["include"]).tolist()

    # Runs analysis per phase
    for ours, theirs in (
        ("n_obs", "n.obs"),
        ("n_useful", "n.useful"),
        ("longest_run", "longest.run"),
        ("longest_run_max", "longest.run.max"),
        ("crossings", "n.crossings"),
        ("crossings_min", "n.crossings.min"),
    ):
        assert_allclose(_runs_column(chart, ours), _floats(expected[theirs]), err_msg=theirs)
    signal = _runs_column(chart, "signal").astype(bool)
    assert signal.tolist() == _bools(expected["runs.signal"]).tolist()

    # 3-sigma signals (excluded points are still flagged)
    sigma = ["outside_limits" in p.signals for p in points]
    assert sigma == _bools(expected["sigma.signal"]).tolist()

    # No target; notes are annotations carried by the input, not computed
    assert chart.target is None
    assert expected["target"].isna().all()
    assert expected["target.lab"].isna().all()
    if case == "ex_7.1_5":  # the only call that passes notes = note
        assert frame["note"].fillna("").tolist() == expected["notes"].fillna("").tolist()
    else:
        assert expected["notes"].isna().all()

    # Labels at the last point of each phase
    last = [i == len(points) - 1 or points[i + 1].phase != p.phase for i, p in enumerate(points)]
    for line, column in (("cl", "cl.lab"), ("ucl", "ucl.lab"), ("lcl", "lcl.lab")):
        want = np.array(
            [getattr(p, line) if end else math.nan for p, end in zip(points, last, strict=True)]
        )
        assert_allclose(want, _floats(expected[column]), equal_nan=True, **TOL, err_msg=column)

    # Colours qicharts2's plot derives from these columns
    dotcol = [
        ""
        if not math.isfinite(p.value)
        else "col5"
        if p.excluded
        else "col3"
        if "outside_limits" in p.signals
        else "col2"
        for p in points
    ]
    assert dotcol == expected["dotcol"].fillna("").tolist()
    linecol = ["col3" if s else "col1" for s in signal]
    assert linecol == expected["linecol"].tolist()


def test_published_numbers_in_methods() -> None:
    """The headline numbers of METHODS.md section 2 "Q", read off our charts."""
    part = _run("ex_7.1_5")
    phase2 = [p for p in part.points if p.phase == 2]
    assert len(phase2) == 64
    assert phase2[0].cl == pytest.approx(0.109688, abs=1e-6)  # printed to 6 dp
    assert phase2[0].ucl == pytest.approx(0.242270, abs=1e-6)
    assert [p.x for p in part.points if "outside_limits" in p.signals] == [15, 21, 23]
    c_chart = _run("ex_7.3_3")
    assert c_chart.runs[0].crossings == 14 < c_chart.runs[0].crossings_min == 16
    assert c_chart.runs_signal
    # Runs analysis uses all 40 points against the frozen centre line
    frozen = _run("ex_6.5_3")
    assert frozen.runs[0].n_useful == 40
    assert [p.x for p in frozen.signalled()] == [39, 40]


def test_empty_subgroup_quirk_moves_the_limits_by_about_1e4() -> None:
    quirk = _run("NA_test")
    clean = _run("NA_test", empty_subgroup_quirk=False)
    diff = np.array([q.ucl - c.ucl for q, c in zip(quirk.points, clean.points, strict=True)])
    finite = diff[np.isfinite(diff)]
    sizes = np.array([p.n for p in clean.points])
    assert finite.size == (sizes >= 2).sum() == 22  # sizes 0 and 1 have no limits
    # The quirk lowers the pooled denominator by one, so its limits are wider.
    assert (finite > 0).all()
    assert 1e-4 < finite.max() < 2e-4
    assert quirk.points[0].cl == clean.points[0].cl


def test_mr_screening_does_not_change_these_cases() -> None:
    """METHODS: screening on/off gives identical results for all 13 cases."""
    for case in CASES:
        on, off = _run(case, screen_mr=True), _run(case, screen_mr=False)
        assert [p.ucl for p in on.points] == pytest.approx([p.ucl for p in off.points], nan_ok=True)
