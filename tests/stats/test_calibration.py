"""The default funnel method is calibrated: seeded simulations with a known truth (issue 11).

Each test re-runs a smaller simulation than the stored table (other seeds) and checks both the
targets of issue 11 and that the stored CALIBRATION agrees within Monte Carlo error.
"""

from __future__ import annotations

import math

import pytest

from qicollab.stats import calibration
from qicollab.stats.calibration import CALIBRATION, CalibrationRow, lookup, simulate

REPLICATES = 6
SEED = 424242


def _agrees(fresh: CalibrationRow) -> None:
    stored = lookup(
        fresh.data_type, fresh.method, fresh.scenario, fresh.level, adjusted=fresh.adjusted
    )
    # The fresh run's SE from the stored (longer) run's spread: six replicates estimate their
    # own spread too poorly. Four standard errors, and never tighter than two members of those
    # judged (a rate of 0 or 1 has no spread).
    se = stored.se * math.sqrt(1 + stored.replicates / fresh.replicates)
    judged = fresh.replicates * (
        calibration.OUTLIERS if fresh.scenario == "rr3" else calibration.MEMBERS
    )
    assert abs(fresh.rate - stored.rate) <= 4 * se + 2 / judged, (fresh, stored)


@pytest.fixture(scope="module", params=["ratio", "proportion"])
def default_runs(request: pytest.FixtureRequest) -> dict[str, list[CalibrationRow]]:
    return {
        scenario: simulate(
            request.param, scenario, replicates=REPLICATES, seed=SEED, methods=["random-effects"]
        )
        for scenario in calibration.SCENARIOS
    }


def _rate(rows: list[CalibrationRow], level: float, *, adjusted: bool) -> float:
    (row,) = [r for r in rows if r.level == level and r.adjusted == adjusted]
    return row.rate


def test_in_control_false_alarms(default_runs: dict[str, list[CalibrationRow]]) -> None:
    rows = default_runs["in-control"]
    for adjusted in (False, True):
        assert _rate(rows, 0.998, adjusted=adjusted) <= 0.003
        assert _rate(rows, 0.95, adjusted=adjusted) <= 0.055
    for row in rows:
        _agrees(row)


def test_between_member_variation_is_not_flagged(
    default_runs: dict[str, list[CalibrationRow]],
) -> None:
    rows = default_runs["sd-0.2"]
    assert _rate(rows, 0.998, adjusted=True) <= 0.005
    assert _rate(rows, 0.95, adjusted=True) <= 0.055
    # The unadjusted funnel does flag them: the adjustment is doing the work.
    assert _rate(rows, 0.998, adjusted=False) > 0.02
    for row in rows:
        _agrees(row)


def test_relative_risk_three_is_found(default_runs: dict[str, list[CalibrationRow]]) -> None:
    rows = default_runs["rr3"]
    assert _rate(rows, 0.998, adjusted=True) >= 0.8
    for row in rows:
        _agrees(row)


def test_published_variants_false_alarms_agree_with_the_stored_table() -> None:
    # What the methods appendix prints for SHMI, CQC and Spiegelhalter under SD 0.2.
    rows = simulate(
        "ratio", "sd-0.2", replicates=4, seed=SEED, methods=["shmi", "cqc", "spiegelhalter"]
    )
    for row in rows:
        _agrees(row)
    shmi = lookup("ratio", "shmi", "sd-0.2", 0.998, adjusted=True)
    default = lookup("ratio", "random-effects", "sd-0.2", 0.998, adjusted=True)
    assert shmi.rate > 5 * default.rate


def test_table_is_complete_and_round_trips() -> None:
    keys = {(r.data_type, r.method, r.scenario, r.level, r.adjusted) for r in CALIBRATION}
    assert len(keys) == len(CALIBRATION) == 3 * 2 * 2 * (4 + 3)
    assert all(r.replicates >= 20 for r in CALIBRATION)
    row = CALIBRATION[0]
    assert CalibrationRow.from_dict(row.to_dict()) == row
    assert "--replicates 20" in calibration.COMMAND
