"""``qicollab analyze risk``: shrunk O/E per unit and the ``shrinkage`` object (issue 11, item 6).

Binary outcomes are checked against ``lme4::glmer(died ~ hmo + white + age80 + type +
(1 | provnum), family = binomial, nAGQ = 15)`` on COUNT's medpar (references written by
``tests/stats/glmm_reference/references.R``, see ``tests/stats/test_glmm.py``).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from qicollab.benchmarking.compute import compute_measure
from qicollab.benchmarking.inputs import MeasureInfo, PeriodInfo, RunInputs
from qicollab.benchmarking.loading import _finish_patients
from qicollab.benchmarking.settings import RunSettings
from qicollab.cli import cli
from qicollab.measures.spec import Covariate, CovariateType, OutcomeFamily, RiskModelSpec
from qicollab.stats.shrinkage import gamma_poisson_shrinkage

ROOT = Path(__file__).resolve().parents[1]
MEDPAR = ROOT / "data" / "count_medpar.csv"
REFERENCES = json.loads((ROOT / "stats" / "glmm_reference" / "references.json").read_text())


def _risk(path: Path, *args: str) -> dict:
    result = CliRunner().invoke(
        cli, ["analyze", "risk", str(path), "--unit", "provnum", *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_binary_outcome_shrinks_like_glmer() -> None:
    out = _risk(
        MEDPAR, "--outcome", "died", "--covariates", "hmo,white,age80", "--categorical", "type"
    )
    reference = REFERENCES["medpar"]["full"]
    shrinkage = out["shrinkage"]
    assert shrinkage["method"].startswith("random-intercept logistic model")
    assert shrinkage["between_member_sd"] == pytest.approx(reference["sigma"], rel=1e-4)
    units = {u["unit"]: u for u in out["units"]}
    ours = np.array([units[m]["shrunk_oe"] for m in reference["member"]])
    assert stats.spearmanr(ours, reference["ratio"]).statistic >= 0.995
    np.testing.assert_allclose(ours, reference["ratio"], atol=1e-4)
    for unit in out["units"]:
        low, high = unit["shrunk_oe_ci95"]
        assert low < unit["shrunk_oe"] < high
    # Shrinkage pulls towards 1: never further out than the unit's own O/E.
    raw = np.array([units[m]["oe"] for m in reference["member"]])
    assert np.all((np.minimum(raw, 1.0) <= ours) & (ours <= np.maximum(raw, 1.0)))


def test_counts_keep_gamma_poisson() -> None:
    out = _risk(
        MEDPAR,
        "--outcome",
        "los",
        "--covariates",
        "hmo,white",
        "--categorical",
        "type",
        "--family",
        "poisson",
    )
    assert out["shrinkage"]["method"].startswith("gamma-Poisson")
    observed = [u["observed"] for u in out["units"]]
    expected = [u["expected"] for u in out["units"]]
    core = gamma_poisson_shrinkage(observed, expected)
    assert out["shrinkage"]["between_member_sd"] == pytest.approx(core.prior_sd)
    for unit, estimate in zip(out["units"], core.estimates, strict=True):
        assert unit["shrunk_oe"] == pytest.approx(estimate.shrunk)
        assert unit["shrunk_oe_ci95"] == pytest.approx([estimate.lower, estimate.upper])


def test_continuous_outcome_uses_normal_normal(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    unit = np.repeat([f"p{i}" for i in range(12)], 40)
    x = rng.normal(size=unit.size)
    effect = np.repeat(rng.normal(0.0, 3.0, 12), 40)
    y = 50.0 + 4.0 * x + effect + rng.normal(0.0, 5.0, unit.size)
    path = tmp_path / "los.csv"
    pd.DataFrame({"provnum": unit, "y": y, "x": x}).to_csv(path, index=False)
    out = _risk(path, "--outcome", "y", "--covariates", "x", "--family", "gaussian")
    assert out["shrinkage"]["method"] == "normal-normal empirical Bayes of log O/E"
    assert out["shrinkage"]["between_member_sd"] > 0
    for u in out["units"]:
        low, high = u["shrunk_oe_ci95"]
        assert low <= u["shrunk_oe"] <= high
        assert abs(u["shrunk_oe"] - 1.0) <= abs(u["oe"] - 1.0) + 1e-12


def test_benchmark_run_and_analyze_give_the_same_shrunk_oe(tmp_path: Path) -> None:
    """Issue 11, item 10 for shrinkage: a run's binary measure and ``analyze risk`` on the
    same patients give the same P/E and between-member SD."""
    asa = Covariate("asa", CovariateType.CATEGORICAL, "ASA", ("1", "2", "3"), "1")
    age = Covariate("age", CovariateType.NUMERIC, "Age")
    spec = RiskModelSpec(outcome="died", family=OutcomeFamily.BINOMIAL, covariates=(age, asa))
    rng = np.random.default_rng(4)
    n = 3000
    member = rng.integers(1, 21, n)
    ages = np.round(rng.normal(65, 10, n), 1)
    classes = rng.choice(["1", "2", "3"], n)
    effect = rng.normal(0.0, 0.4, 21)
    eta = -1 + 0.03 * (ages - 65) + np.where(classes == "3", 0.8, 0.0) + effect[member]
    died = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    frame = pd.DataFrame(
        {
            "member_id": member,
            "period_id": 1,
            "event_year": 2025,
            "event_month": 1.0,
            "sequence": np.arange(n),
            "outcome": died,
            "age": ages,
            "asa": classes,
        }
    )
    ids = tuple(range(1, 21))
    output = compute_measure(
        MeasureInfo(
            id=1,
            code="MORT",
            title="Mortality",
            measure_type="ratio",
            level="patient",
            direction="decrease",
            target=None,
            minimum_volume=1,
            multiplier=100.0,
            risk_model=spec.to_json(),
        ),
        RunInputs(
            settings=RunSettings(charts=False),
            member_ids=ids,
            member_codes={i: f"H{i}" for i in ids},
            peer_groups=(),
            periods={1: PeriodInfo(1, "2025", "year", dt.date(2025, 1, 1), dt.date(2025, 12, 31))},
        ),
        _finish_patients(frame, spec),
    )
    whole = [row for row in output.members if row["period_id"] is None]  # not its periods
    run = {row["member_id"]: row["payload"]["shrunk_oe"] for row in whole}
    intervals = {row["member_id"]: row["payload"]["shrunk_oe_ci95"] for row in whole}
    path = tmp_path / "patients.csv"
    frame.rename(columns={"member_id": "provnum", "outcome": "died"}).to_csv(path, index=False)
    out = _risk(path, "--outcome", "died", "--covariates", "age", "--categorical", "asa")
    cli_values = {int(u["unit"]): u["shrunk_oe"] for u in out["units"]}
    cli_intervals = {int(u["unit"]): u["shrunk_oe_ci95"] for u in out["units"]}
    assert run.keys() == cli_values.keys()
    for key, value in run.items():
        assert value == pytest.approx(cli_values[key], rel=1e-7)
        # the run stores the shrunk O/E's interval too, the one ``analyze risk`` gives
        assert intervals[key] == pytest.approx(cli_intervals[key], rel=1e-7)
        assert intervals[key][0] < value < intervals[key][1]
    summary = output.summaries[0]["payload"]["shrinkage"]
    assert summary["method"] == out["shrinkage"]["method"]
    assert summary["params"]["between_member_sd"] == pytest.approx(
        out["shrinkage"]["between_member_sd"], rel=1e-7
    )
