"""The stored-results contract: what a run writes is what every reader reads.

A real run over the small demo is read back through the payload classes and the reporting
loaders; a payload of another version, or with a key the classes do not know, is refused;
peer figures are withheld (with the reason) when too few members contribute.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from pyramid import testing

from qicollab.benchmarking.models import MeasureSummary, MemberResult, StoredChart
from qicollab.benchmarking.payloads import (
    CHART_PAYLOADS,
    PAYLOAD_VERSION,
    BenchmarkStanding,
    MemberPayload,
    StalePayloadError,
    SummaryPayload,
)
from qicollab.benchmarking.services import BenchmarkRunService, RunError
from qicollab.benchmarking.settings import RunSettings
from qicollab.db import get_session_factory
from qicollab.demo.loader import HISTORY_CYCLE
from qicollab.reporting import formatting
from qicollab.reporting.charts.peer_funnel import funnel
from qicollab.reporting.privacy import Audience
from qicollab.reporting.results import load_member, load_run
from qicollab.reporting.sections import best_practice, comparison, member_sections
from qicollab.reporting.views import stale_run
from qicollab.submissions.models import Submission


@pytest.fixture
def factory(small_engine):
    return get_session_factory(small_engine)


@pytest.fixture
def service(factory):
    return BenchmarkRunService(factory)


def test_every_payload_a_run_stores_reads_back_through_its_class(service, factory):
    run = service.execute(service.create(cycle_code=HISTORY_CYCLE).id)
    with factory() as session:
        for (payload,) in session.execute(
            sa.select(MeasureSummary.payload).where(MeasureSummary.run_id == run.id)
        ):
            stored = SummaryPayload.from_json(payload)
            assert stored.to_json() == payload  # nothing lost or added on the way
        for kind, payload in session.execute(
            sa.select(StoredChart.kind, StoredChart.payload).where(StoredChart.run_id == run.id)
        ):
            assert CHART_PAYLOADS[kind].from_json(payload).to_json() == payload
        data = load_run(session, run.id)
        member = load_member(session, data, next(iter(data.members)))
    assert data.results
    assert member.charts
    assert any("racusum" in kinds for kinds in load_sequential_kinds(factory, run.id))


def load_sequential_kinds(factory, run_id: int) -> list[set[str]]:
    with factory() as session:
        rows = session.execute(
            sa.select(StoredChart.member_id, StoredChart.kind).where(StoredChart.run_id == run_id)
        ).all()
    by_member: dict[int, set[str]] = {}
    for member_id, kind in rows:
        by_member.setdefault(member_id, set()).add(kind)
    return list(by_member.values())


@pytest.mark.parametrize("method", ["random-effects", "cqc"])
def test_statuses_follow_the_limits_the_chart_draws(service, factory, method):
    """A member flagged at the warning (95%) or alarm (99.8%) limit lies outside the limits
    that decided its status, and the funnel chart draws those limits with the run's
    overdispersion note: for the default method and for a published one."""
    settings = {"funnel_ratio": method, "funnel_proportion": method}
    run = service.execute(service.create(cycle_code=HISTORY_CYCLE, settings=settings).id)
    with factory() as session:
        data = load_run(session, run.id)
    assert data.run.settings.funnel_ratio == method
    flagged = 0
    for measure in data.measures:
        summary = data.summary(measure.id)
        if summary is None or summary.payload.funnel is None:
            continue
        stored = summary.payload.funnel
        prefix = "adjusted_" if stored.adjusted else ""
        for result in data.results_for(measure.id):
            payload = result.payload
            assert isinstance(payload, MemberPayload)
            for level, status in (("95", payload.status.warning), ("99.8", payload.status.alarm)):
                low, high = payload.funnel_limits.get(f"{prefix}{level}", (None, None))
                position = payload.oe if stored.scale == "oe" else result.value
                if status not in {"worse", "better"}:
                    continue
                flagged += 1
                assert position is not None
                assert low is not None
                assert high is not None
                assert not (low <= position <= high), (measure.code, result.member_id, level)
        labelled = [("x", r, False) for r in data.results_for(measure.id)]
        chart = funnel(measure, summary, labelled)
        assert chart is not None
        assert stored.overdispersion_note() in chart.description
    assert flagged > 0


def test_a_run_stored_by_another_payload_version_is_refused(service, factory):
    run = service.execute(service.create(cycle_code=HISTORY_CYCLE).id)
    with factory() as session, session.begin():
        summary = session.scalars(
            sa.select(MeasureSummary).where(MeasureSummary.run_id == run.id).limit(1)
        ).one()
        summary.payload = {**summary.payload, "version": PAYLOAD_VERSION - 1}
    with factory() as session, pytest.raises(StalePayloadError, match="recompute this run"):
        load_run(session, run.id)
    request = testing.DummyRequest()
    stale_run(StalePayloadError("recompute this run"), request)
    assert request.response.status_code == 409


def test_a_key_the_contract_does_not_know_is_refused():
    good = MemberPayload(interval_method="Wilson", funnel_scale="value").to_json()
    assert MemberPayload.from_json(good) == MemberPayload.from_json(good)
    # The old writer's key that no reader read: refused, not silently ignored.
    with pytest.raises(StalePayloadError, match="MemberPayload"):
        MemberPayload.from_json({**good, "oe_ci95": [0.5, 1.5]})
    with pytest.raises(StalePayloadError, match="version None"):
        SummaryPayload.from_json({"computed": False})


def test_one_contributor_shows_no_peer_figures(service, factory):
    """The reported bug: one member's data made "All members 6.47, middle half 6.47-6.47"."""
    with factory() as session:
        member_id = session.scalar(sa.select(sa.func.min(Submission.member_id)))
        ids = list(
            session.scalars(sa.select(Submission.id).where(Submission.member_id == member_id))
        )
    run = service.execute(service.create(cycle_code=HISTORY_CYCLE, submission_ids=ids).id)
    with factory() as session:
        rows = session.scalars(
            sa.select(MemberResult).where(
                MemberResult.run_id == run.id, MemberResult.period_id.is_(None)
            )
        ).all()
        data = load_run(session, run.id)
    assert rows
    assert all(row.decile is None and row.distance_to_abc is None for row in rows)
    assert all(row.outlier_status is None for row in rows)
    # who reaches the benchmark is a figure about peers: withheld with it
    assert all(MemberPayload.from_json(row.payload).benchmark.reaches is None for row in rows)
    for measure in data.measures:
        summary = data.summary(measure.id)
        assert summary is not None
        if not summary.payload.computed:
            continue
        assert summary.abc is None
        assert summary.payload.at_benchmark is None
        assert summary.payload.distribution is None
        assert summary.payload.funnel is None
        assert "only 1 member contributed" in (summary.withheld or "")
        shown = comparison(
            data, measure, Audience.coordinator(data.run.min_cell_size), member_id, None
        )
        assert shown.median == formatting.MISSING
        assert shown.quartiles == formatting.MISSING
        assert shown.withheld == summary.withheld


def test_run_settings_have_their_defaults_in_one_place_and_refuse_unknown_keys(service):
    settings = RunSettings()
    assert settings.levels == (0.95, 0.998)
    assert RunSettings.from_json(settings.to_json()) == settings
    with pytest.raises(RunError, match="funnel_ratoi"):
        service.create(cycle_code=HISTORY_CYCLE, settings={"funnel_ratoi": "shmi"})
    with pytest.raises(RunError, match="shrinkage"):
        service.create(cycle_code=HISTORY_CYCLE, settings={"shrinkage": "sometimes"})


def test_the_shrinkage_setting_is_used(service, factory):
    """With shrinkage "none" the stored shrunk value is the member's own, and deciles follow
    the raw values; by default small members are pulled towards the collaborative."""
    shrunk = service.execute(service.create(cycle_code=HISTORY_CYCLE).id)
    raw = service.execute(
        service.create(cycle_code=HISTORY_CYCLE, settings={"shrinkage": "none"}).id
    )
    with factory() as session:
        rows = {
            run.id: session.scalars(
                sa.select(MemberResult).where(
                    MemberResult.run_id == run.id,
                    MemberResult.period_id.is_(None),
                    MemberResult.value.is_not(None),
                )
            ).all()
            for run in (shrunk, raw)
        }
        summary = SummaryPayload.from_json(
            session.scalars(
                sa.select(MeasureSummary.payload).where(MeasureSummary.run_id == raw.id).limit(1)
            ).one()
        )
    assert summary.shrinkage is not None
    assert summary.shrinkage.method.startswith("none")
    assert all(row.shrunk_value == pytest.approx(row.value) for row in rows[raw.id])
    assert any(row.shrunk_value != pytest.approx(row.value) for row in rows[shrunk.id])


def test_readers_show_the_benchmark_judgement_the_run_stored(service, factory):
    """Who reaches the benchmark, and how far short the others are, is judged once by the run
    (:func:`qicollab.stats.achievable.benchmark_gaps`). A planted judgement that contradicts
    the member's value is what the page shows and what the peers' best-practice table uses:
    no reader judges again, so a writer/reader drift fails here."""
    run = service.execute(service.create(cycle_code=HISTORY_CYCLE).id)
    with factory() as session, session.begin():
        rows = session.scalars(
            sa.select(MemberResult).where(
                MemberResult.run_id == run.id, MemberResult.period_id.is_(None)
            )
        ).all()
        for summary in session.scalars(
            sa.select(MeasureSummary).where(
                MeasureSummary.run_id == run.id, MeasureSummary.scope == "collaborative"
            )
        ):
            stored = SummaryPayload.from_json(summary.payload)
            if stored.abc is None:
                continue
            mine = [
                MemberPayload.from_json(r.payload)
                for r in rows
                if r.measure_id == summary.measure_id
            ]
            # the summary's count is its members' judgements, and those follow the direction
            assert stored.at_benchmark == sum(bool(p.benchmark.reaches) for p in mine)
            assert 0 < stored.at_benchmark < len(mine)
            for row, payload in zip(
                (r for r in rows if r.measure_id == summary.measure_id), mine, strict=True
            ):
                if row.value is None:
                    continue
                better = row.value >= stored.abc.value
                if stored.direction == "decrease":
                    better = row.value <= stored.abc.value
                assert payload.benchmark.reaches == better
                assert row.distance_to_abc == payload.benchmark.distance
        target = next(
            r
            for r in rows
            if MemberPayload.from_json(r.payload).benchmark.reaches and r.value is not None
        )
        planted = MemberPayload.from_json(target.payload).model_copy(
            update={
                "benchmark": BenchmarkStanding(
                    reaches=False, distance=-0.25, gap=0.25, relative_gap=0.5
                )
            }
        )
        target.payload = planted.to_json()
        target_member, target_measure = target.member_id, target.measure_id
    with factory() as session:
        data = load_run(session, run.id)
        member = load_member(session, data, target_member)
        audience = Audience.coordinator(data.run.min_cell_size)
        sections = member_sections(data, member, audience, measure_ids={target_measure})
    (section,) = sections
    measure = section.measure
    assert section.reaches is False
    assert section.gap_relative == 0.5
    assert section.gap == f"{0.25 * measure.multiplier:,.{measure.digits}f}" + (
        " pts short" if measure.unit == "%" else f" {measure.unit} short".replace("  ", " ")
    )
    other = next(m for m in data.members if m != target_member)
    listed, count = best_practice(data, measure, audience, other)
    names = {p.label for p in listed}
    assert data.members[target_member].name not in names
    assert count == sum(
        1
        for r in data.results_for(measure.id)
        if r.member_id not in {other, target_member}
        and isinstance(r.payload, MemberPayload)
        and r.payload.benchmark.reaches
    )
