"""Benchmark runs: create one over a locked cycle (or explicit versions), execute it, read it.

Execution has three phases, chosen so that the database is never locked for long:

1. **Read** (read-only transactions): the run, the collaborative's members, peer groups,
   periods, annotations, the measures and the snapshot (which versions).
2. **Compute** (no transaction held): per measure, load its data and compute the numbers and
   the charts, reporting progress through the job after each measure (progress commits in its
   own short transaction, so the portal and ``qicollab jobs show`` see it). On the queue,
   each measure is its own task, taken by any worker (:mod:`qicollab.benchmarking.tasks`);
   results are identical either way.
3. **Store** (one write transaction): the snapshot rows (``benchmark_run_submissions``), every
   member result, summary, fitted model and chart, the run's hash and status, and the job's
   success. Either all of it is stored or none of it.

A failure anywhere marks the run and its job failed in a separate transaction; earlier runs'
results are never touched. The numbers depend only on the snapshot and the settings (inputs are
loaded in a fixed order, every method is deterministic), so the same snapshot gives identical
numbers, which ``snapshot_hash`` lets anyone check.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

# Every domain's models, so foreign keys resolve in a process that imports only this module.
import qicollab.models  # noqa: F401
from qicollab.benchmarking import snapshot as snapshots
from qicollab.benchmarking.inputs import (
    AnnotationInfo,
    MeasureInfo,
    MeasureOutput,
    PeerGroupInfo,
    PeriodInfo,
    RunInputs,
)
from qicollab.benchmarking.models import (
    BenchmarkRun,
    MeasureSummary,
    MemberResult,
    RiskModelFitRecord,
    RunStatus,
    StoredChart,
    run_submissions,
)
from qicollab.benchmarking.settings import RunSettings, SettingsError
from qicollab.cycles.models import (
    Annotation,
    CycleStatus,
    LearningCycle,
    ReportingPeriod,
)
from qicollab.db import (
    READ_ONLY_OPTION,
    session_scope,
    utcnow,
)
from qicollab.jobs.services import JobService, error_text
from qicollab.measures.models import Measure
from qicollab.members.models import Collaborative, DeidProfile, Member, PeerGroup

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

JOB_KIND = "benchmark-run"

#: Cycle statuses a run may use: data frozen.
RUNNABLE = frozenset({CycleStatus.LOCKED, CycleStatus.PUBLISHED})


class RunError(RuntimeError):
    """A run cannot be created or executed (unlocked cycle, wrong status, unknown cycle)."""


class RunFailedError(RunError):
    """Executing the run failed; the run and its job are marked failed with ``error``."""

    def __init__(self, run_id: int, error: str) -> None:
        super().__init__(f"benchmark run {run_id} failed: {error}")
        self.run_id = run_id
        self.error = error


@dataclass(frozen=True, slots=True)
class RunPlan:
    """What the read phase found: the inputs, the measures and the snapshot."""

    run_id: int
    job_id: int | None
    inputs: RunInputs
    measures: tuple[MeasureInfo, ...]
    snapshot: snapshots.Snapshot


def run_settings(
    collaborative: Collaborative, overrides: dict[str, Any] | None = None
) -> RunSettings:
    """Defaults, then the collaborative's method defaults and its minimum number of
    contributors, then explicit overrides; an unknown or ill-typed setting is a RunError."""
    try:
        return (
            RunSettings()
            .merged(collaborative.default_methods)
            .merged({"min_contributors": collaborative.min_contributors})
            .merged(overrides)
        )
    except SettingsError as error:
        raise RunError(str(error)) from error


def _read_session(session_factory: sessionmaker[Session]) -> Session:
    """A session that only reads (SQLite: deferred BEGIN, never waiting for writers)."""
    bind = session_factory.kw["bind"].execution_options(**{READ_ONLY_OPTION: True})
    return session_factory(bind=bind)


@dataclass
class BenchmarkRunService:
    """Create, execute and read benchmark runs (:meth:`execute` computes every measure in
    this process; the queue computes one measure per task)."""

    session_factory: sessionmaker[Session]
    jobs: JobService | None = None
    clock: Callable[[], dt.datetime] = field(default=utcnow)

    def __post_init__(self) -> None:
        if self.jobs is None:
            self.jobs = JobService(self.session_factory, clock=self.clock)

    @property
    def engine(self) -> sa.Engine:
        """The engine the session factory is bound to."""
        return self.session_factory.kw["bind"]

    # --- creating -----------------------------------------------------------------------------

    def create(
        self,
        *,
        collaborative_id: int | None = None,
        cycle_code: str | None = None,
        cycle_id: int | None = None,
        submission_ids: Sequence[int] | None = None,
        settings: dict[str, Any] | None = None,
        created_by_id: int | None = None,
        session: Session | None = None,
    ) -> BenchmarkRun:
        """A queued run with its job. The cycle must be locked (or published).

        Give a cycle (by id, or by code within ``collaborative_id``), optionally with an
        explicit list of submission versions that replaces the cycle's current versions. With
        ``session`` the run joins the caller's transaction (enqueue it after the commit);
        without, it is committed here.
        """
        if session is None:
            with session_scope(self.session_factory) as own:
                return self.create(
                    collaborative_id=collaborative_id,
                    cycle_code=cycle_code,
                    cycle_id=cycle_id,
                    submission_ids=submission_ids,
                    settings=settings,
                    created_by_id=created_by_id,
                    session=own,
                )
        cycle = self._cycle(session, collaborative_id, cycle_code, cycle_id)
        if cycle is None and submission_ids is None:
            msg = "a run needs a learning cycle or an explicit list of submission versions"
            raise RunError(msg)
        if cycle is not None:
            if cycle.status not in RUNNABLE:
                msg = (
                    f"cycle {cycle.code} is {cycle.status.value}: lock it before computing "
                    "benchmarks, so the data cannot change under the run"
                )
                raise RunError(msg)
            collaborative_id = cycle.collaborative_id
        collaborative = session.get(Collaborative, collaborative_id)
        if collaborative is None:
            msg = f"no collaborative {collaborative_id}"
            raise RunError(msg)
        if submission_ids is not None:
            ids, _ = zip(
                *snapshots.check_explicit_ids(session, collaborative.id, submission_ids),
                strict=True,
            )
            explicit: list[int] | None = list(ids)
        else:
            explicit = None
        method_settings = run_settings(collaborative, settings)
        assert self.jobs is not None
        params: dict[str, Any] = {"cycle": cycle.code if cycle else None}
        if explicit is not None:
            params["submission_ids"] = explicit
        job = self.jobs.create(
            JOB_KIND,
            params=params,
            collaborative_id=collaborative.id,
            created_by_id=created_by_id,
            session=session,
        )
        run = BenchmarkRun(
            collaborative_id=collaborative.id,
            cycle_id=cycle.id if cycle else None,
            status=RunStatus.QUEUED,
            settings=method_settings.to_json(),
            job_id=job.id,
            created_by_id=created_by_id,
            created_at=self.clock(),
        )
        session.add(run)
        session.flush()
        job.params = {**params, "run_id": run.id}
        session.flush()
        return run

    @staticmethod
    def _cycle(
        session: Session,
        collaborative_id: int | None,
        cycle_code: str | None,
        cycle_id: int | None,
    ) -> LearningCycle | None:
        if cycle_id is not None:
            cycle = session.get(LearningCycle, cycle_id)
            if cycle is None:
                msg = f"no learning cycle {cycle_id}"
                raise RunError(msg)
            return cycle
        if cycle_code is None:
            return None
        query = sa.select(LearningCycle).where(LearningCycle.code == cycle_code)
        if collaborative_id is not None:
            query = query.where(LearningCycle.collaborative_id == collaborative_id)
        cycles = session.scalars(query).all()
        if not cycles:
            msg = f"no learning cycle {cycle_code!r}"
            raise RunError(msg)
        if len(cycles) > 1:
            msg = f"several collaboratives have a cycle {cycle_code!r}; name the collaborative"
            raise RunError(msg)
        return cycles[0]

    # --- executing ----------------------------------------------------------------------------

    def execute(self, run_id: int) -> BenchmarkRun:
        """Compute and store a queued run; raises :class:`RunFailedError` after marking it."""
        assert self.jobs is not None
        job_id = self.start_run(run_id)
        try:
            plan = self.plan(run_id, job_id)
            outputs = self._compute(plan)
            self._report(job_id, self._total(plan) - 1, self._total(plan), "storing results")
            self._store(plan, outputs)
        except Exception as error:
            log.exception("benchmark run %s failed", run_id)
            text = error_text(error)
            self.mark_failed(run_id, job_id, text)
            raise RunFailedError(run_id, text) from error
        return self.get(run_id)

    def start_run(self, run_id: int) -> int | None:
        """Queued -> running (the run and its job); returns the job's id."""
        with session_scope(self.session_factory) as session:
            run = session.get(BenchmarkRun, run_id, with_for_update=True)
            if run is None:
                msg = f"no benchmark run {run_id}"
                raise RunError(msg)
            if run.status is not RunStatus.QUEUED:
                msg = f"run {run_id} is {run.status.value}; only a queued run can be executed"
                raise RunError(msg)
            run.status = RunStatus.RUNNING
            run.started_at = self.clock()
            job_id = run.job_id
        if job_id is not None:
            assert self.jobs is not None
            state = self.jobs.get(job_id)
            if not state.finished and state.status.value == "queued":
                self.jobs.start(job_id, message="reading the snapshot")
        return job_id

    def _report(self, job_id: int | None, done: int, total: int, message: str) -> None:
        if job_id is not None:
            assert self.jobs is not None
            self.jobs.progress(job_id, done, total, message)

    @staticmethod
    def _total(plan: RunPlan) -> int:
        # One step per measure, plus storing.
        return len(plan.measures) + 1

    def plan(self, run_id: int, job_id: int | None) -> RunPlan:
        """Read the run's inputs, measures and snapshot (read-only transaction)."""
        session = _read_session(self.session_factory)
        try:
            with session.begin():
                return self._read_plan(session, run_id, job_id)
        finally:
            session.close()

    def _read_plan(self, session: Session, run_id: int, job_id: int | None) -> RunPlan:
        run = session.get(BenchmarkRun, run_id)
        assert run is not None
        collaborative = session.get(Collaborative, run.collaborative_id)
        assert collaborative is not None
        cycle = session.get(LearningCycle, run.cycle_id) if run.cycle_id else None
        explicit = None
        if job_id is not None:
            assert self.jobs is not None
            explicit = self.jobs.get(job_id).params.get("submission_ids")
        snapshot = snapshots.resolve(
            session,
            collaborative_id=collaborative.id,
            settings=run.settings,
            cycle=cycle,
            submission_ids=explicit,
        )
        measures = tuple(
            measure_info(measure)
            for measure in session.scalars(
                sa.select(Measure).where(Measure.id.in_(snapshot.measure_ids)).order_by(Measure.id)
            )
        )
        members = session.execute(
            sa.select(Member.id, Member.code, Member.has_data_use_agreement)
            .where(Member.collaborative_id == collaborative.id)
            .order_by(Member.id)
        ).all()
        groups = []
        for group in session.scalars(
            sa.select(PeerGroup)
            .where(PeerGroup.collaborative_id == collaborative.id)
            .order_by(PeerGroup.id)
        ):
            groups.append(
                PeerGroupInfo(
                    group.id, group.code, group.name, tuple(sorted(m.id for m in group.members))
                )
            )
        periods = {
            period.id: PeriodInfo(
                period.id,
                period.label,
                period.granularity.value,
                period.start_date,
                period.end_date,
            )
            for period in session.scalars(
                sa.select(ReportingPeriod).where(
                    ReportingPeriod.collaborative_id == collaborative.id
                )
            )
        }
        notes = tuple(
            AnnotationInfo(
                note.id,
                note.member_id,
                note.measure_id,
                note.kind.value,
                note.occurred_on,
                note.label,
                note.starts_phase,
            )
            for note in session.scalars(
                sa.select(Annotation)
                .where(Annotation.collaborative_id == collaborative.id)
                .order_by(Annotation.occurred_on, Annotation.id)
            )
        )
        limited = collaborative.deid_profile is DeidProfile.LIMITED_DATA_SET
        inputs = RunInputs(
            settings=RunSettings.from_json(run.settings),
            member_ids=tuple(row.id for row in members),
            member_codes={row.id: row.code for row in members},
            peer_groups=tuple(groups),
            periods=periods,
            annotations=notes,
            case_order_members=frozenset(
                row.id for row in members if limited and row.has_data_use_agreement
            ),
        )
        return RunPlan(run_id, job_id, inputs, measures, snapshot)

    def _compute(self, plan: RunPlan) -> list[MeasureOutput]:
        from qicollab.benchmarking.compute import measure_job  # noqa: PLC0415

        total = self._total(plan)
        outputs: list[MeasureOutput] = []
        for done, measure in enumerate(plan.measures):
            self._report(plan.job_id, done, total, f"{measure.code}: computing")
            ids = plan.snapshot.by_measure.get(measure.id, ())
            outputs.append(measure_job(ids, measure, plan.inputs, engine=self.engine))
        self._report(plan.job_id, len(plan.measures), total, "all measures computed")
        return outputs

    def _store(self, plan: RunPlan, outputs: list[MeasureOutput]) -> None:
        with session_scope(self.session_factory) as session:
            self.store_results(session, plan, outputs)

    def store_results(self, session: Session, plan: RunPlan, outputs: list[MeasureOutput]) -> None:
        """Store every measure's results and make the run visible (succeeded) in ``session``'s
        transaction, with its job's success: all of it or none of it."""
        started = time.perf_counter()
        run = session.get(BenchmarkRun, plan.run_id, with_for_update=True)
        assert run is not None
        if run.status is not RunStatus.RUNNING:
            msg = f"run {plan.run_id} is {run.status.value}; not storing its results"
            raise RunError(msg)
        run_id = plan.run_id
        if plan.snapshot.submission_ids:
            session.execute(
                sa.insert(run_submissions),
                [{"run_id": run_id, "submission_id": i} for i in plan.snapshot.submission_ids],
            )
        counts: dict[str, int] = {}
        for model, key, rows_of in (
            (RiskModelFitRecord, "fits", lambda o: [o.fit] if o.fit is not None else []),
            (
                MeasureSummary,
                "summaries",
                lambda o: [{**r, "worker": o.worker} for r in o.summaries],
            ),
            (MemberResult, "member_results", lambda o: o.members),
            (StoredChart, "charts", lambda o: o.charts),
        ):
            rows = [
                {**row, "run_id": run_id, "measure_id": output.measure_id}
                for output in outputs
                for row in rows_of(output)
            ]
            if rows:
                session.execute(sa.insert(model), rows)
            counts[key] = len(rows)
        run.snapshot_hash = plan.snapshot.hash
        run.status = RunStatus.SUCCEEDED
        run.finished_at = self.clock()
        run.error = None
        if plan.job_id is not None:
            assert self.jobs is not None
            self.jobs.succeed(
                plan.job_id,
                result={
                    "run_id": run_id,
                    "snapshot_hash": plan.snapshot.hash,
                    "submissions": len(plan.snapshot),
                    "measures": len(outputs),
                    "member_results": counts["member_results"],
                    "charts": counts["charts"],
                    "notes": [note for output in outputs for note in output.notes][:50],
                    "seconds": {output.measure_id: output.seconds for output in outputs},
                    "store_seconds": round(time.perf_counter() - started, 3),
                },
                message="results stored",
                session=session,
            )

    def mark_failed(self, run_id: int, job_id: int | None, text: str) -> None:
        """Mark the run and its job failed (own transactions); earlier runs are untouched."""
        try:
            with session_scope(self.session_factory) as session:
                run = session.get(BenchmarkRun, run_id)
                if run is not None and run.status in {RunStatus.QUEUED, RunStatus.RUNNING}:
                    run.status = RunStatus.FAILED
                    run.error = text
                    run.finished_at = self.clock()
            if job_id is not None:
                assert self.jobs is not None
                if not self.jobs.get(job_id).finished:
                    self.jobs.fail(job_id, text)
        except Exception:
            log.exception("could not mark benchmark run %s failed", run_id)

    # --- reading ------------------------------------------------------------------------------

    def get(self, run_id: int) -> BenchmarkRun:
        """The run row (detached, read in a fresh transaction)."""
        session = _read_session(self.session_factory)
        try:
            run = session.get(BenchmarkRun, run_id)
            if run is None:
                msg = f"no benchmark run {run_id}"
                raise RunError(msg)
            return run
        finally:
            session.close()

    def runs(self, *, collaborative_id: int | None = None, limit: int = 50) -> list[BenchmarkRun]:
        """The newest runs first."""
        session = _read_session(self.session_factory)
        try:
            query = sa.select(BenchmarkRun).order_by(BenchmarkRun.id.desc()).limit(limit)
            if collaborative_id is not None:
                query = query.where(BenchmarkRun.collaborative_id == collaborative_id)
            return list(session.scalars(query))
        finally:
            session.close()


def measure_info(measure: Measure) -> MeasureInfo:
    """What the statistics need of a measure's definition (no ORM object leaves the session)."""
    return MeasureInfo(
        id=measure.id,
        code=measure.code,
        title=measure.title,
        measure_type=measure.measure_type.value,
        level=measure.level.value,
        direction=measure.direction.value,
        target=measure.target,
        minimum_volume=measure.minimum_volume,
        multiplier=measure.multiplier,
        unit=measure.unit,
        chart_override=measure.chart_override,
        risk_model=measure.risk_model,
    )


def latest_run(
    session: Session, collaborative_id: int, *, cycle_id: int | None = None
) -> BenchmarkRun | None:
    """The newest succeeded run (of a cycle): the one pages and reports show."""
    query = (
        sa.select(BenchmarkRun)
        .where(
            BenchmarkRun.collaborative_id == collaborative_id,
            BenchmarkRun.status == RunStatus.SUCCEEDED,
        )
        .order_by(BenchmarkRun.finished_at.desc(), BenchmarkRun.id.desc())
        .limit(1)
    )
    if cycle_id is not None:
        query = query.where(BenchmarkRun.cycle_id == cycle_id)
    return session.scalar(query)
