"""Benchmark runs on the 12-member demo: lifecycle, storage, identical re-runs, failures,
progress seen from another session, the queue, and the charts stored with the run."""

from __future__ import annotations

import io
import math

import pytest
import sqlalchemy as sa

from qicollab.benchmarking import compute as compute_module
from qicollab.benchmarking.models import (
    BenchmarkRun,
    MeasureSummary,
    MemberResult,
    RiskModelFitRecord,
    RunStatus,
    StoredChart,
    run_submissions,
)
from qicollab.benchmarking.payloads import (
    MemberPayload,
    PeriodPayload,
    SummaryPayload,
)
from qicollab.benchmarking.results import member_results, run_overview, stored_chart
from qicollab.benchmarking.services import (
    BenchmarkRunService,
    RunError,
    RunFailedError,
)
from qicollab.benchmarking.settings import RunSettings
from qicollab.benchmarking.snapshot import snapshot_hash
from qicollab.db import READ_ONLY_OPTION, get_session_factory
from qicollab.demo.loader import HISTORY_CYCLE, OPEN_CYCLE
from qicollab.jobs.local import run_here
from qicollab.jobs.models import Job, JobStatus
from qicollab.jobs.progress import follow_job
from qicollab.jobs.queue import JobQueue
from qicollab.jobs.services import JobService
from qicollab.measures.models import Measure
from qicollab.members.models import Member, PeerGroup
from qicollab.stats.change import RATE_TEST
from qicollab.stats.funnel import DEFAULT_METHOD

N_MEASURES = 8


@pytest.fixture
def factory(small_engine):
    return get_session_factory(small_engine)


@pytest.fixture
def service(factory):
    return BenchmarkRunService(factory)


def _read(factory, statement, method="scalars"):
    reader = factory.kw["bind"].execution_options(**{READ_ONLY_OPTION: True})
    with factory(bind=reader) as session:
        result = getattr(session, method)(statement)
        return result.all() if method in {"scalars", "execute"} else result


def _stored(factory, run_id):
    """Every number a run stored, in a comparable, ordered form."""
    members = _read(
        factory,
        sa.select(MemberResult)
        .where(MemberResult.run_id == run_id)
        .order_by(MemberResult.measure_id, MemberResult.member_id, MemberResult.period_id),
    )
    summaries = _read(
        factory,
        sa.select(MeasureSummary)
        .where(MeasureSummary.run_id == run_id)
        .order_by(MeasureSummary.measure_id, MeasureSummary.peer_group_id),
    )
    fits = _read(
        factory,
        sa.select(RiskModelFitRecord)
        .where(RiskModelFitRecord.run_id == run_id)
        .order_by(RiskModelFitRecord.measure_id),
    )
    charts = _read(
        factory,
        sa.select(StoredChart)
        .where(StoredChart.run_id == run_id)
        .order_by(StoredChart.measure_id, StoredChart.member_id, StoredChart.kind),
    )
    columns = [c.name for c in MemberResult.__table__.columns if c.name not in {"id", "run_id"}]
    return {
        "members": [tuple(getattr(r, c) for c in columns) for r in members],
        "summaries": [
            (
                s.measure_id,
                s.scope,
                s.peer_group_id,
                s.n_members,
                s.observed,
                s.expected,
                s.denominator,
                s.rate,
                s.abc,
                s.payload,
            )
            for s in summaries
        ],
        "fits": [
            (f.measure_id, f.family, f.n, f.events, f.coefficients, f.diagnostics) for f in fits
        ],
        "charts": [(c.measure_id, c.member_id, c.kind, c.payload) for c in charts],
    }


def test_create_queues_a_run_with_its_job_and_merged_settings(service, factory):
    run = service.create(cycle_code=HISTORY_CYCLE, settings={"trim": 0.05})
    assert run.status is RunStatus.QUEUED
    assert run.settings["trim"] == 0.05
    assert run.settings["spc_mode"] == "mdc"  # the demo collaborative's default
    assert run.settings["funnel_ratio"] == RunSettings().funnel_ratio
    assert run.settings["min_contributors"] == 5  # the collaborative's column
    job = service.jobs.get(run.job_id)
    assert job.status is JobStatus.QUEUED
    assert job.params == {"cycle": HISTORY_CYCLE, "run_id": run.id}
    assert job.kind == "benchmark-run"


def test_runs_need_a_locked_cycle(service, factory):
    with pytest.raises(RunError, match="lock it"):
        service.create(cycle_code=OPEN_CYCLE)
    with pytest.raises(RunError, match="no learning cycle"):
        service.create(cycle_code="NOPE")
    with pytest.raises(RunError, match="needs a learning cycle"):
        service.create()
    assert _read(factory, sa.select(sa.func.count()).select_from(BenchmarkRun), "scalar") == 0


def test_execute_stores_everything_with_the_snapshot(service, factory, small_demo):
    run = service.create(cycle_code=HISTORY_CYCLE)
    done = service.execute(run.id)
    assert done.status is RunStatus.SUCCEEDED
    assert done.started_at is not None
    assert done.finished_at >= done.started_at
    ids = _read(
        factory,
        sa.select(run_submissions.c.submission_id).where(run_submissions.c.run_id == run.id),
    )
    assert len(ids) == len(small_demo.demo.aggregate) + len(
        small_demo.demo.patients[["member", "measure", "year"]].drop_duplicates()
    )
    assert done.snapshot_hash == snapshot_hash(ids, done.settings)
    job = service.jobs.get(run.job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.done == job.total == N_MEASURES + 1
    assert job.result["run_id"] == run.id
    assert job.result["snapshot_hash"] == done.snapshot_hash

    members = _read(factory, sa.select(Member.id))
    groups = _read(factory, sa.select(PeerGroup.id))
    cycle_rows = _read(
        factory,
        sa.select(MemberResult).where(
            MemberResult.run_id == run.id, MemberResult.period_id.is_(None)
        ),
    )
    assert len(cycle_rows) == N_MEASURES * len(members)
    period_rows = _read(
        factory,
        sa.select(sa.func.count())
        .select_from(MemberResult)
        .where(MemberResult.run_id == run.id, MemberResult.period_id.is_not(None)),
        "scalar",
    )
    assert period_rows == len(small_demo.demo.aggregate) + 3 * len(members) * 3  # 3 years
    summaries = _read(factory, sa.select(MeasureSummary).where(MeasureSummary.run_id == run.id))
    assert len(summaries) == N_MEASURES * (1 + len(groups))
    fits = _read(factory, sa.select(RiskModelFitRecord).where(RiskModelFitRecord.run_id == run.id))
    assert sorted(f.family for f in fits) == ["binomial", "binomial", "negbin"]
    for fit in fits:
        assert fit.diagnostics["calibration"]
        assert {"term", "estimate", "std_error", "ci_low", "ci_high"} <= set(fit.coefficients[0])

    # Every cycle row is complete and consistent.
    for row in cycle_rows:
        assert row.value is not None
        assert row.ci95_low <= row.value <= row.ci95_high or math.isclose(row.ci95_low, row.value)
        assert row.ci998_low <= row.ci95_low
        assert row.ci998_high >= row.ci95_high
        assert row.shrunk_value is not None
        assert 1 <= row.decile <= 10
        assert row.outlier_status in {"worse", "as-expected", "better", None}
        payload = MemberPayload.from_json(row.payload)
        assert payload.status.alarm == row.outlier_status
        assert payload.outlier.keys() >= {"95", "99.8", "adjusted_95", "adjusted_99.8"}


def test_payloads_have_the_documented_keys(service, factory):
    run = service.execute(service.create(cycle_code=HISTORY_CYCLE).id)
    surg = _read(factory, sa.select(Measure).where(Measure.code == "SURG-MORT"))[0]
    with factory() as session:
        rows = member_results(session, run.id, measure_id=surg.id)
        periods = member_results(session, run.id, measure_id=surg.id, periods=True)
        overview = run_overview(session, run.id)
        summary = session.scalar(
            sa.select(MeasureSummary).where(
                MeasureSummary.run_id == run.id,
                MeasureSummary.measure_id == surg.id,
                MeasureSummary.scope == "collaborative",
            )
        )
    payload = MemberPayload.from_json(rows[0].payload)
    assert payload.oe_ci.keys() == {"95", "99.8"}
    assert payload.oe_ci["99.8"][0] <= payload.oe_ci["95"][0] <= payload.oe
    assert payload.funnel_limits.keys() == {"95", "99.8", "adjusted_95", "adjusted_99.8"}
    assert payload.z is not None
    assert payload.n == rows[0].denominator
    assert rows[0].observed / rows[0].expected == pytest.approx(payload.oe)
    assert all(PeriodPayload.from_json(p.payload).period for p in periods)
    stored = SummaryPayload.from_json(summary.payload)
    funnel = stored.funnel
    assert funnel is not None
    assert funnel.method == DEFAULT_METHOD == RunSettings().funnel_ratio
    # SURG-MORT is a binary outcome: its change over the cycle is the test of equal O/E.
    changes = [MemberPayload.from_json(r.payload).change for r in rows]
    assert all(c is not None and c.test == RATE_TEST for c in changes)
    assert {c.verdict for c in changes} <= {"improved", "worsened", "no clear change"}
    assert all(c.first_label < c.last_label for c in changes)
    assert funnel.scale == "oe"
    assert funnel.limits["95"][0][0] > 0  # [(x, lower, upper), ...]
    assert len(funnel.limits["99.8"][0]) == 3
    assert stored.quantiles()["p50"] == stored.distribution.median
    assert summary.abc is not None
    assert summary.rate == pytest.approx(summary.observed / summary.expected * stored.overall)
    assert overview["measures"][0]["code"] == "HH"
    assert overview["snapshot_hash"] == run.snapshot_hash


def test_the_same_snapshot_gives_identical_numbers(service, factory):
    first = service.execute(service.create(cycle_code=HISTORY_CYCLE).id)
    second = service.execute(service.create(cycle_code=HISTORY_CYCLE).id)
    assert first.snapshot_hash == second.snapshot_hash
    one, two = _stored(factory, first.id), _stored(factory, second.id)
    assert len(one["members"]) > 500
    assert one == two  # every stored number, exactly


def test_measure_tasks_in_two_worker_processes_give_the_same_numbers(
    service, factory, small_demo, small_engine
):
    """The run as `qicollab compute --workers 2` computes it: one task per measure, taken by
    two consumer processes, stores exactly what computing every measure here stores."""
    serial = service.execute(service.create(cycle_code=HISTORY_CYCLE).id)
    fanned = service.create(cycle_code=HISTORY_CYCLE)
    with run_here(small_demo.settings, fanned.job_id, processes=2, engine=small_engine):
        state = follow_job(service.jobs, fanned.job_id, poll_seconds=0.2, file=io.StringIO())
    assert state.status is JobStatus.SUCCEEDED, state.error
    assert state.tasks is not None
    assert (state.tasks.done, state.tasks.total) == (N_MEASURES, N_MEASURES)
    assert _stored(factory, fanned.id) == _stored(factory, serial.id)


def test_explicit_versions_make_their_own_snapshot(service, factory):
    hh = _read(factory, sa.select(Measure).where(Measure.code == "HH"))[0]
    from qicollab.submissions.models import Submission

    ids = _read(factory, sa.select(Submission.id).where(Submission.measure_id == hh.id))
    run = service.create(cycle_code=HISTORY_CYCLE, submission_ids=ids)
    done = service.execute(run.id)
    assert done.snapshot_hash == snapshot_hash(ids, done.settings)
    measures = _read(
        factory,
        sa.select(MeasureSummary.measure_id).where(MeasureSummary.run_id == run.id).distinct(),
    )
    assert measures == [hh.id]


def test_a_failed_run_leaves_earlier_results_intact(service, factory, monkeypatch):
    good = service.execute(service.create(cycle_code=HISTORY_CYCLE).id)
    before = _stored(factory, good.id)
    original = compute_module.compute_measure
    calls = []

    def failing(measure, inputs, data, **kwargs):
        calls.append(measure.code)
        if len(calls) == 3:
            raise ZeroDivisionError("injected failure in measure 3")
        return original(measure, inputs, data, **kwargs)

    monkeypatch.setattr(compute_module, "compute_measure", failing)
    bad = service.create(cycle_code=HISTORY_CYCLE)
    with pytest.raises(RunFailedError, match="injected failure"):
        service.execute(bad.id)
    failed = service.get(bad.id)
    assert failed.status is RunStatus.FAILED
    assert failed.error == "ZeroDivisionError: injected failure in measure 3"
    assert failed.snapshot_hash is None
    job = service.jobs.get(bad.job_id)
    assert job.status is JobStatus.FAILED
    assert "injected failure" in job.error
    assert _stored(factory, bad.id) == {"members": [], "summaries": [], "fits": [], "charts": []}
    assert _stored(factory, good.id) == before
    with pytest.raises(RunError, match="only a queued run"):
        service.execute(bad.id)


def test_a_failure_while_storing_rolls_everything_back(service, factory, monkeypatch):
    """The store is one transaction: a bad row at the end leaves no partial results."""
    original = compute_module.compute_measure

    def poisoned(measure, inputs, data, **kwargs):
        output = original(measure, inputs, data, **kwargs)
        if measure.code == "LOS":
            output.members.append({**output.members[0], "member_id": 10**9})  # no such member
        return output

    monkeypatch.setattr(compute_module, "compute_measure", poisoned)
    run = service.create(cycle_code=HISTORY_CYCLE)
    with pytest.raises(RunFailedError):
        service.execute(run.id)
    assert _stored(factory, run.id) == {"members": [], "summaries": [], "fits": [], "charts": []}
    links = _read(
        factory,
        sa.select(sa.func.count())
        .select_from(run_submissions)
        .where(run_submissions.c.run_id == run.id),
        "scalar",
    )
    assert links == 0
    assert service.get(run.id).status is RunStatus.FAILED


def test_progress_is_visible_from_another_session_mid_run(factory):
    seen = []

    def watch(state):
        # Another session, mid-run: it sees the committed progress, and none of the results.
        row = _read(
            factory,
            sa.select(Job.done, Job.total, Job.message).where(Job.id == state.id),
            "execute",
        )[0]
        results = _read(
            factory,
            sa.select(sa.func.count()).select_from(MemberResult),
            "scalar",
        )
        seen.append((row.done, row.total, row.message, results, state.status))

    service = BenchmarkRunService(factory, jobs=JobService(factory, listener=watch))
    run = service.execute(service.create(cycle_code=HISTORY_CYCLE).id)
    running = [entry for entry in seen if entry[4] is JobStatus.RUNNING]
    dones = [entry[0] for entry in running]
    assert dones == sorted(dones)
    assert len(set(dones)) >= N_MEASURES  # one step per measure, plus storing
    assert any("SURG-MORT" in entry[2] for entry in running)
    assert all(entry[3] == 0 for entry in running)  # results appear only at the end
    assert (
        _read(
            factory,
            sa.select(sa.func.count())
            .select_from(MemberResult)
            .where(MemberResult.run_id == run.id),
            "scalar",
        )
        > 0
    )


def test_runs_execute_from_the_queue(small_demo, small_engine, factory):
    service = BenchmarkRunService(factory)
    run = service.create(cycle_code=HISTORY_CYCLE)
    queue = JobQueue(
        {**small_demo.settings, "qicollab.queue.immediate": "true"}, engine=small_engine
    )
    queue.enqueue(run.job_id)
    assert service.get(run.id).status is RunStatus.SUCCEEDED
    assert service.jobs.get(run.job_id).status is JobStatus.SUCCEEDED
    # Settings that cannot be read are refused when the run is created ...
    with pytest.raises(RunError, match="levels"):
        service.create(cycle_code=HISTORY_CYCLE, settings={"levels": "not a list"})
    # ... and a run that fails on the queue (here: its stored settings spoilt) marks its job
    # failed.
    broken = service.create(cycle_code=HISTORY_CYCLE)
    with factory() as session, session.begin():
        session.get(BenchmarkRun, broken.id).settings = {"levels": "not a list"}
    queue.enqueue(broken.job_id)
    assert service.get(broken.id).status is RunStatus.FAILED
    assert service.jobs.get(broken.job_id).status is JobStatus.FAILED


def test_a_measure_without_enough_data_is_reported_not_fatal(service, factory):
    from qicollab.submissions.models import PatientRecord, Submission

    surg = _read(factory, sa.select(Measure).where(Measure.code == "SURG-MORT"))[0]
    # The smallest member-year: a critical-access hospital with a death or two at most.
    one = _read(
        factory,
        sa.select(Submission.id)
        .join(PatientRecord, PatientRecord.submission_id == Submission.id)
        .where(Submission.measure_id == surg.id)
        .group_by(Submission.id)
        .order_by(sa.func.count(), Submission.id)
        .limit(1),
    )
    run = service.execute(service.create(cycle_code=HISTORY_CYCLE, submission_ids=one).id)
    assert run.status is RunStatus.SUCCEEDED
    summary = _read(factory, sa.select(MeasureSummary).where(MeasureSummary.run_id == run.id))[0]
    stored = SummaryPayload.from_json(summary.payload)
    assert stored.computed is False
    # The core refuses a model it cannot trust (here a level with no rows, or too few events).
    reason = stored.reason
    assert "no rows" in reason or "too few" in reason
    assert service.jobs.get(run.job_id).result["notes"] == [f"SURG-MORT: {reason}"]


def test_control_charts_follow_annotations_and_the_deid_profile(service, factory, small_demo):
    run = service.execute(service.create(cycle_code=HISTORY_CYCLE).id)
    truth = small_demo.truth
    members = {m.code: m for m in _read(factory, sa.select(Member))}
    measures = {m.code: m for m in _read(factory, sa.select(Measure))}
    with factory() as session:
        improver = members[truth["improvers"][0]]
        chart = stored_chart(session, run.id, improver.id, measures["HH"].id)
        assert chart.chart.chart == "p"
        assert chart.chart.mode == "mdc"
        assert chart.chart.direction == "increase"
        phases = [point.phase for point in chart.chart.points]
        first_new = phases.index(2)
        assert chart.chart.points[first_new].x == "2024-07"  # the annotated change
        assert any(note.starts_phase for note in chart.annotations)
        assert chart.chart.variation_icon is not None
        dua = next(m for m in members.values() if m.has_data_use_agreement)
        no_dua = next(m for m in members.values() if not m.has_data_use_agreement)
        monthly = stored_chart(session, run.id, dua.id, measures["SURG-MORT"].id)
        yearly = stored_chart(session, run.id, no_dua.id, measures["SURG-MORT"].id)
        assert monthly.series == "monthly"
        assert len(monthly.chart.points) == 36
        assert yearly.series == "yearly"
        assert [p.x for p in yearly.chart.points] == ["2023", "2024", "2025"]
        assert yearly.chart.trial_limits is True
        cusum = stored_chart(session, run.id, dua.id, measures["SURG-MORT"].id, "racusum")
        vlad = stored_chart(session, run.id, dua.id, measures["SURG-MORT"].id, "vlad")
        assert cusum.h_upper > 0
        assert len(cusum.upper) == cusum.cases == len(vlad.vlad)
        assert vlad.expected - vlad.observed == pytest.approx(vlad.vlad[-1], abs=1e-3)
        assert stored_chart(session, run.id, no_dua.id, measures["SURG-MORT"].id, "racusum") is None
        # Length of stay is not a binary outcome: no RA-CUSUM.
        assert stored_chart(session, run.id, dua.id, measures["LOS"].id, "racusum") is None
        d2p = stored_chart(session, run.id, dua.id, measures["D2P"].id)
        assert d2p.chart.chart == "i"
        # Rate targets reach the engine on the data scale, so assurance compares like with like.
        for member in members.values():
            clabsi = stored_chart(session, run.id, member.id, measures["CLABSI"].id)
            assert clabsi.chart.target == pytest.approx(0.0008)
            last = next(p for p in reversed(clabsi.chart.points) if not math.isnan(p.value))
            expected = (
                "consistent_pass"
                if last.ucl < 0.0008
                else "consistent_fail"
                if last.lcl > 0.0008
                else "inconsistent"
            )
            assert clabsi.chart.assurance_icon == expected


def test_safe_harbor_collaboratives_get_no_sequential_charts(service, factory):
    from qicollab.members.models import Collaborative, DeidProfile

    with factory() as session, session.begin():
        session.execute(sa.update(Collaborative).values(deid_profile=DeidProfile.SAFE_HARBOR))
    run = service.execute(service.create(cycle_code=HISTORY_CYCLE).id)
    kinds = _read(
        factory, sa.select(StoredChart.kind).where(StoredChart.run_id == run.id).distinct()
    )
    assert kinds == ["control"]
