"""A benchmark run and ``qicollab analyze`` give identical numbers and flags on the same data.

Both call the statistics core (:mod:`qicollab.stats`); this proves the run adds nothing of its
own. A real run over the small demo stores each member's O and E (or x and n); the same numbers
go through ``qicollab analyze funnel`` (default method) and ``qicollab analyze abc`` as CSV,
and every member's limits and statuses, phi, tau2, the benchmark and who reaches it must agree.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from qicollab.benchmarking.compute import direction_status
from qicollab.benchmarking.models import MeasureSummary, MemberResult
from qicollab.benchmarking.payloads import MemberPayload, SummaryPayload
from qicollab.benchmarking.services import BenchmarkRunService
from qicollab.cli import cli
from qicollab.db import get_session_factory
from qicollab.demo.loader import HISTORY_CYCLE
from qicollab.measures.models import Measure
from qicollab.members.models import Member

#: (measure, analyze --type, precision column): a patient-level binary outcome (O vs E), an
#: aggregate rate (events vs expected events at the collaborative rate), a proportion.
CASES = [
    ("SURG-MORT", "ratio", "expected"),
    ("CLABSI", "ratio", "expected"),
    ("HH", "proportion", "denominator"),
]


@pytest.fixture
def stored(small_engine):
    factory = get_session_factory(small_engine)
    service = BenchmarkRunService(factory)
    run = service.execute(service.create(cycle_code=HISTORY_CYCLE).id)
    with factory() as session:
        codes = dict(session.execute(sa.select(Member.id, Member.code)).all())
        measures = {m.code: m for m in session.scalars(sa.select(Measure))}
        rows = session.scalars(
            sa.select(MemberResult)
            .where(MemberResult.run_id == run.id, MemberResult.period_id.is_(None))
            .order_by(MemberResult.member_id)
        ).all()
        summaries = session.scalars(
            sa.select(MeasureSummary).where(
                MeasureSummary.run_id == run.id, MeasureSummary.scope == "collaborative"
            )
        ).all()
        session.expunge_all()
    return run, codes, measures, rows, {s.measure_id: s for s in summaries}


def _analyze(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["analyze", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _write(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        # repr() round-trips every float exactly.
        writer.writerows(
            [[v if isinstance(v, str) else repr(float(v)) for v in row] for row in rows]
        )
    return path


@pytest.mark.parametrize(("code", "data_type", "precision"), CASES)
def test_funnel_numbers_and_flags_are_identical(stored, tmp_path, code, data_type, precision):
    run, codes, measures, rows, summaries = stored
    measure = measures[code]
    mine = [r for r in rows if r.measure_id == measure.id]
    summary = SummaryPayload.from_json(summaries[measure.id].payload)
    funnel = summary.funnel
    assert funnel is not None
    assert funnel.method == run.settings["funnel_ratio"] == "random-effects"
    path = _write(
        tmp_path / f"{code}.csv",
        ["unit", "observed", precision],
        [[codes[r.member_id], r.observed, getattr(r, precision)] for r in mine],
    )
    out = _analyze(
        "funnel",
        str(path),
        "--unit",
        "unit",
        "--observed",
        "observed",
        f"--{precision}",
        precision,
        "--type",
        data_type,
    )
    assert out["method"] == funnel.method
    assert out["phi"] == funnel.phi
    assert out["tau2"] == funnel.tau2
    assert out["fallback"] == (not funnel.adjusted)
    assert out["target"] * (summary.overall if code == "CLABSI" else 1.0) == pytest.approx(
        funnel.target, rel=1e-12
    )
    # Stored limits are on the value scale: O/E for patient-level measures, the rate for
    # aggregate rates (O/E x the collaborative rate), the proportion for proportions.
    scale = summary.overall if code == "CLABSI" else 1.0
    higher_is_better = measure.direction == "increase"
    units = {u["unit"]: u for u in out["units"]}
    assert len(units) == len(mine)
    for result in mine:
        payload = MemberPayload.from_json(result.payload)
        unit = units[codes[result.member_id]]
        for level in ("95", "99.8"):
            for prefix, limits in (("", unit["limits"]), ("adjusted_", unit["adjusted_limits"])):
                low, high = payload.funnel_limits[f"{prefix}{level}"]
                assert low == pytest.approx(limits[level][0] * scale, rel=1e-12, abs=0)
                assert high == pytest.approx(limits[level][1] * scale, rel=1e-12, abs=0)
                flag = unit["outlier"][f"{prefix}{level}"]
                assert payload.outlier[f"{prefix}{level}"] == direction_status(
                    flag, higher_is_better=higher_is_better
                )
        if not payload.below_minimum_volume:
            prefix = "adjusted_" if funnel.adjusted else ""
            assert result.outlier_status == payload.outlier[f"{prefix}99.8"]


def test_the_benchmark_is_identical(stored, tmp_path):
    _, codes, measures, rows, summaries = stored
    measure = measures["HH"]
    mine = [r for r in rows if r.measure_id == measure.id]
    summary = SummaryPayload.from_json(summaries[measure.id].payload)
    assert summary.abc is not None
    path = _write(
        tmp_path / "hh.csv",
        ["unit", "x", "n"],
        [[codes[r.member_id], r.observed, r.denominator] for r in mine],
    )
    args = ["abc", str(path), "--unit", "unit", "--numerator", "x", "--denominator", "n"]
    if measure.direction == "decrease":
        args.append("--lower-is-better")
    out = _analyze(*args)
    assert out["abc"] == summary.abc.value
    assert sorted(out["benchmark_units"]) == sorted(codes[m] for m in summary.abc.member_ids)
    # who reaches the benchmark, and how far short the others are, agree member by member
    units = {u["unit"]: u for u in out["units"]}
    reaching = 0
    for result in mine:
        standing = MemberPayload.from_json(result.payload).benchmark
        unit = units[codes[result.member_id]]
        assert standing.reaches is unit["reaches"]
        assert standing.gap == pytest.approx(unit["gap"], rel=1e-12, abs=1e-15)
        assert standing.distance == pytest.approx(unit["distance"], rel=1e-12, abs=1e-15)
        reaching += unit["reaches"]
    assert summary.at_benchmark == reaching
    assert 0 < reaching < len(mine)
