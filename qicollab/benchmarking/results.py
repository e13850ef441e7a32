"""Reading a run's stored results: what pages, reports and ``qicollab runs show`` use.

Nothing here recomputes: every number was stored by the run (see ``services`` for how and
``compute`` for the payload keys).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from qicollab.benchmarking.models import (
    BenchmarkRun,
    MeasureSummary,
    MemberResult,
    ResultScope,
    RiskModelFitRecord,
    StoredChart,
    run_submissions,
)
from qicollab.benchmarking.payloads import CHART_PAYLOADS, SummaryPayload, Versioned
from qicollab.cycles.models import LearningCycle
from qicollab.measures.models import Measure

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def member_results(
    session: Session,
    run_id: int,
    *,
    measure_id: int | None = None,
    member_id: int | None = None,
    periods: bool = False,
) -> list[MemberResult]:
    """Whole-cycle results (``periods=False``) or per-period results, ordered by measure,
    member and period."""
    query = sa.select(MemberResult).where(MemberResult.run_id == run_id)
    query = query.where(
        MemberResult.period_id.is_not(None) if periods else MemberResult.period_id.is_(None)
    )
    if measure_id is not None:
        query = query.where(MemberResult.measure_id == measure_id)
    if member_id is not None:
        query = query.where(MemberResult.member_id == member_id)
    return list(
        session.scalars(
            query.order_by(MemberResult.measure_id, MemberResult.member_id, MemberResult.period_id)
        )
    )


def measure_summary(
    session: Session, run_id: int, measure_id: int, *, peer_group_id: int | None = None
) -> MeasureSummary | None:
    """The collaborative summary (or a peer group's) of a measure in a run."""
    query = sa.select(MeasureSummary).where(
        MeasureSummary.run_id == run_id, MeasureSummary.measure_id == measure_id
    )
    if peer_group_id is None:
        query = query.where(MeasureSummary.scope == ResultScope.COLLABORATIVE)
    else:
        query = query.where(MeasureSummary.peer_group_id == peer_group_id)
    return session.scalar(query)


def stored_chart(
    session: Session, run_id: int, member_id: int, measure_id: int, kind: str = "control"
) -> Versioned | None:
    """A stored chart (``control``, ``racusum`` or ``vlad``) as its payload class, or None."""
    payload = session.scalar(
        sa.select(StoredChart.payload).where(
            StoredChart.run_id == run_id,
            StoredChart.member_id == member_id,
            StoredChart.measure_id == measure_id,
            StoredChart.kind == kind,
        )
    )
    return None if payload is None else CHART_PAYLOADS[kind].from_json(payload)


def run_overview(session: Session, run_id: int) -> dict[str, Any]:
    """The run's status, snapshot and per-measure headline numbers, as a JSON-able dict."""
    from qicollab.benchmarking.services import RunError  # noqa: PLC0415

    run = session.get(BenchmarkRun, run_id)
    if run is None:
        msg = f"no benchmark run {run_id}"
        raise RunError(msg)
    cycle = session.get(LearningCycle, run.cycle_id) if run.cycle_id else None
    submissions = session.scalar(
        sa.select(sa.func.count())
        .select_from(run_submissions)
        .where(run_submissions.c.run_id == run_id)
    )
    fits = {
        fit.measure_id: fit
        for fit in session.scalars(
            sa.select(RiskModelFitRecord).where(RiskModelFitRecord.run_id == run_id)
        )
    }
    statuses = {
        (row.measure_id, row.outlier_status): row.count
        for row in session.execute(
            sa.select(
                MemberResult.measure_id,
                MemberResult.outlier_status,
                sa.func.count().label("count"),
            )
            .where(MemberResult.run_id == run_id, MemberResult.period_id.is_(None))
            .group_by(MemberResult.measure_id, MemberResult.outlier_status)
        )
    }
    measures = []
    rows = session.execute(
        sa.select(MeasureSummary, Measure.code)
        .join(Measure, Measure.id == MeasureSummary.measure_id)
        .where(
            MeasureSummary.run_id == run_id,
            MeasureSummary.scope == ResultScope.COLLABORATIVE,
        )
        .order_by(Measure.id)
    ).all()
    for summary, code in rows:
        payload = SummaryPayload.from_json(summary.payload)
        funnel = payload.funnel
        fit = fits.get(summary.measure_id)
        measures.append(
            {
                "code": code,
                "measure_id": summary.measure_id,
                "members": summary.n_members,
                "rate": summary.rate,
                "abc": summary.abc,
                "phi": funnel.phi if funnel else None,
                "tau2": funnel.tau2 if funnel else None,
                "funnel_method": funnel.method if funnel else None,
                "worse": statuses.get((summary.measure_id, "worse"), 0),
                "better": statuses.get((summary.measure_id, "better"), 0),
                "computed": payload.computed,
                "reason": payload.reason,
                "withheld": payload.withheld,
                "c_statistic": fit.diagnostics.get("c_statistic") if fit else None,
            }
        )
    return {
        "id": run.id,
        "status": run.status.value,
        "cycle": cycle.code if cycle else None,
        "snapshot_hash": run.snapshot_hash,
        "submissions": submissions,
        "settings": run.settings,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "error": run.error,
        "job_id": run.job_id,
        "measures": measures,
    }
