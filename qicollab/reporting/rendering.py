"""Rendering every report of a run: a pool of long-lived workers, atomic files, recorded hashes.

A report takes ~1.5-3 s of WeasyPrint layout and a fresh process adds ~0.8 s of imports
(PERFORMANCE.md section 5), so reports are rendered by a ``multiprocessing`` pool whose workers
import WeasyPrint once (the initializer lays out a warm-up page), open their own database
engine, and keep the run's shared data between reports. The parent passes ids only, records each
finished report (path, SHA-256, size) in its own short transaction, and reports progress
through the job.

Each file is written atomically with its hash (:meth:`qicollab.storage.FileStore.put`): a report
that fails to render leaves the previous file, and its row, exactly as they were.
Files go to the file store (:mod:`qicollab.storage`: the local folder or the database) under
keys ``reports/run-<id>/...``, named by ids, never by member names.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

import qicollab.models  # noqa: F401 - every mapper configured, also in spawned workers
from qicollab.benchmarking.models import BenchmarkRun, MemberResult, RunStatus
from qicollab.db import READ_ONLY_OPTION, session_scope
from qicollab.jobs.workers import consumer_name
from qicollab.reporting.models import Report, ReportKind
from qicollab.reporting.reports import TEMPLATES, ReportSpec, report_context
from qicollab.storage import FileStore, FileStoreConfig

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from qicollab.jobs.services import JobService
    from qicollab.reporting.pdf import PdfRenderer
    from qicollab.reporting.results import RunData

log = logging.getLogger(__name__)

JOB_KIND = "reports-render"
DEFAULT_WORKERS = 2


class RenderError(RuntimeError):
    """A run's reports cannot be rendered (no such run, run not succeeded)."""


@dataclass(frozen=True, slots=True)
class RenderTask:
    """One report to render: ids and paths only, so it pickles cheaply."""

    run_id: int
    spec: ReportSpec
    relative_path: str


@dataclass(frozen=True, slots=True)
class RenderOutcome:
    """What a worker did with a task."""

    task: RenderTask
    sha256: str | None = None
    size_bytes: int = 0
    seconds: float = 0.0
    error: str | None = None
    #: ``host:pid`` of the process that rendered it.
    worker: str | None = None

    @property
    def ok(self) -> bool:
        """Rendered and written."""
        return self.error is None


@dataclass
class RenderSummary:
    """The batch's result: what was written and what failed (their old files were kept)."""

    run_id: int
    rendered: list[RenderOutcome] = field(default_factory=list)
    failed: list[RenderOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The job's result document."""
        return {
            "run_id": self.run_id,
            "rendered": len(self.rendered),
            "failed": [
                {"report": o.task.spec.filename, "error": (o.error or "")[:300]}
                for o in self.failed
            ],
            "seconds": round(self.seconds, 2),
        }


def report_folder(run_id: int) -> str:
    """The run's folder: the prefix of its reports' file store keys."""
    return f"reports/run-{run_id}"


# --- the worker side ----------------------------------------------------------------------------


@dataclass
class _WorkerState:
    """What a long-lived worker keeps between reports."""

    session_factory: sessionmaker[Session]
    renderer: PdfRenderer
    #: Where the pool's workers write (queue tasks write in their own transaction instead).
    store: FileStore | None = None
    runs: dict[int, RunData] = field(default_factory=dict)


_STATE: _WorkerState | None = None
#: The warm state of a queue worker's process (its database and storage folder, and the
#: state), built on its first report task.
_TASK_STATE: tuple[sa.Engine, Path, _WorkerState] | None = None
_TASK_STATE_LOCK = threading.Lock()
#: Tests replace this to make one report fail (in-process rendering only).
RENDER_HOOK: Callable[[RenderTask], None] | None = None


def _make_state(database_url: str, store: FileStoreConfig) -> _WorkerState:
    from qicollab.db import create_engine_from_settings, get_session_factory  # noqa: PLC0415
    from qicollab.reporting.pdf import PdfRenderer  # noqa: PLC0415 - imports WeasyPrint

    engine = create_engine_from_settings({"sqlalchemy.url": database_url})
    read_only = engine.execution_options(**{READ_ONLY_OPTION: True})
    return _WorkerState(get_session_factory(read_only), PdfRenderer(), store.build(engine))


def task_state(session_factory: sessionmaker[Session], storage: Path) -> _WorkerState:
    """This process's warm state for report tasks: WeasyPrint imported and warmed up once,
    the current run's data kept between tasks (as the pool's workers do)."""
    global _TASK_STATE  # noqa: PLW0603 - one state per worker process, by design
    engine: sa.Engine = session_factory.kw["bind"]
    if _TASK_STATE is None or _TASK_STATE[:2] != (engine, storage):
        from qicollab.db import get_session_factory  # noqa: PLC0415
        from qicollab.reporting.pdf import PdfRenderer, warm_up  # noqa: PLC0415

        read_only = engine.execution_options(**{READ_ONLY_OPTION: True})
        if _TASK_STATE is None:
            renderer = PdfRenderer()
            warm_up()
        else:
            renderer = _TASK_STATE[2].renderer
        state = _WorkerState(get_session_factory(read_only), renderer)
        _TASK_STATE = (engine, storage, state)
    return _TASK_STATE[2]


def render_in_task(
    session_factory: sessionmaker[Session], storage: Path, task: RenderTask
) -> bytes:
    """One report's PDF in a queue worker, one at a time per process (the embedded
    consumer's threads share the warm state)."""
    with _TASK_STATE_LOCK:
        return render_pdf(task_state(session_factory, storage), task)


def init_worker(database_url: str, store: FileStoreConfig) -> None:
    """Pool initializer: import WeasyPrint, warm it up, open this worker's engine."""
    global _STATE  # noqa: PLW0603 - one state per worker process, by design
    from qicollab.reporting.pdf import warm_up  # noqa: PLC0415

    _STATE = _make_state(database_url, store)
    warm_up()


def render_pdf(state: _WorkerState, task: RenderTask) -> bytes:
    """Lay out one report with this process's warm state (the run's data kept between
    reports of the same run)."""
    from qicollab.reporting.results import load_run  # noqa: PLC0415

    with state.session_factory() as session:
        run = state.runs.get(task.run_id)
        if run is None:
            state.runs.clear()  # one run at a time per worker; keep memory flat
            run = state.runs[task.run_id] = load_run(session, task.run_id)
        context = report_context(session, run, task.spec)
    if RENDER_HOOK is not None:
        RENDER_HOOK(task)
    return state.renderer.render(TEMPLATES[task.spec.kind], context)


def _render(state: _WorkerState, task: RenderTask) -> RenderOutcome:
    assert state.store is not None, "a pool worker's state has its file store"
    started = time.perf_counter()
    try:
        pdf = render_pdf(state, task)
        written = state.store.put(task.relative_path, pdf)
    except Exception as error:
        log.exception("rendering %s of run %s failed", task.spec.filename, task.run_id)
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        return RenderOutcome(task, error=text, seconds=time.perf_counter() - started)
    return RenderOutcome(
        task,
        written.sha256,
        written.size_bytes,
        time.perf_counter() - started,
        worker=consumer_name(),
    )


def render_task(task: RenderTask) -> RenderOutcome:
    """Render one report in this worker (the function the pool maps)."""
    assert _STATE is not None, "worker not initialised"
    return _render(_STATE, task)


# --- the parent side ----------------------------------------------------------------------------


Progress = Callable[[int, int, str], None]


@dataclass
class ReportRenderer:
    """Renders a run's reports and records them; ``workers=0`` renders in this process."""

    session_factory: sessionmaker[Session]
    settings: dict[str, Any]
    workers: int = DEFAULT_WORKERS
    jobs: JobService | None = None
    _local: _WorkerState | None = field(default=None, init=False, repr=False)

    @property
    def store_config(self) -> FileStoreConfig:
        """Where reports are written (pool workers build their own store from it)."""
        return FileStoreConfig.from_settings(self.settings)

    @property
    def database_url(self) -> str:
        """The URL worker processes connect with."""
        engine = self.session_factory.kw["bind"]
        return engine.url.render_as_string(hide_password=False)

    def plan(
        self,
        run_id: int,
        *,
        kinds: Sequence[ReportKind] | None = None,
        member_ids: Sequence[int] | None = None,
    ) -> list[RenderTask]:
        """Every report of a succeeded run: member reports (members with results), then the
        collaborative report and the blinded summary."""
        kinds = tuple(kinds or ReportKind)
        with self.session_factory() as session:
            run = session.get(BenchmarkRun, run_id)
            if run is None or run.status is not RunStatus.SUCCEEDED:
                msg = f"run {run_id} has no results to report (not a succeeded run)"
                raise RenderError(msg)
            members = list(
                session.scalars(
                    sa.select(MemberResult.member_id)
                    .where(MemberResult.run_id == run_id)
                    .distinct()
                    .order_by(MemberResult.member_id)
                )
            )
        if member_ids is not None:
            wanted = set(member_ids)
            members = [m for m in members if m in wanted]
        specs: list[ReportSpec] = []
        if ReportKind.MEMBER in kinds:
            specs += [ReportSpec(ReportKind.MEMBER, m) for m in members]
        specs += [ReportSpec(kind) for kind in kinds if kind is not ReportKind.MEMBER]
        folder = report_folder(run_id)
        return [RenderTask(run_id, spec, f"{folder}/{spec.filename}") for spec in specs]

    def _outcomes(self, tasks: list[RenderTask]) -> Iterator[RenderOutcome]:
        url = self.database_url
        workers = min(self.workers, len(tasks))
        in_memory = ":memory:" in url or url.rstrip("/").endswith("sqlite:")
        if workers <= 0 or in_memory:
            if self._local is None:
                from qicollab.reporting.pdf import PdfRenderer  # noqa: PLC0415

                store = self.store_config.build(self.session_factory.kw["bind"])
                self._local = _WorkerState(self.session_factory, PdfRenderer(), store)
            for task in tasks:
                yield _render(self._local, task)
            return
        context = multiprocessing.get_context("spawn")
        with context.Pool(
            workers, initializer=init_worker, initargs=(url, self.store_config)
        ) as pool:
            yield from pool.imap_unordered(render_task, tasks, chunksize=1)

    def render_run(
        self,
        run_id: int,
        *,
        job_id: int | None = None,
        kinds: Sequence[ReportKind] | None = None,
        member_ids: Sequence[int] | None = None,
        progress: Progress | None = None,
    ) -> RenderSummary:
        """Render and record every report of the run; failures keep their previous files."""
        started = time.perf_counter()
        tasks = self.plan(run_id, kinds=kinds, member_ids=member_ids)
        summary = RenderSummary(run_id)
        total = len(tasks)
        report = self._reporter(job_id, progress)
        report(0, total, f"rendering {total} reports with {max(self.workers, 1)} worker(s)")
        for done, outcome in enumerate(self._outcomes(tasks), start=1):
            if outcome.ok:
                self._record(outcome, job_id)
                summary.rendered.append(outcome)
            else:
                summary.failed.append(outcome)
            report(done, total, f"{outcome.task.spec.filename}: {'ok' if outcome.ok else 'failed'}")
        summary.seconds = time.perf_counter() - started
        return summary

    def _reporter(self, job_id: int | None, progress: Progress | None) -> Progress:
        job_reporter = (
            self.jobs.reporter(job_id, min_interval=0.5)
            if self.jobs is not None and job_id is not None
            else None
        )

        def report(done: int, total: int, message: str) -> None:
            if job_reporter is not None:
                job_reporter(done, total, message)
            if progress is not None:
                progress(done, total, message)

        return report

    def _record(self, outcome: RenderOutcome, job_id: int | None) -> None:
        """Insert or update the report's row (its own short transaction)."""
        with session_scope(self.session_factory) as session:
            record_report(session, outcome, job_id)


def record_report(session: Session, outcome: RenderOutcome, job_id: int | None) -> None:
    """Insert or update the report's row: path, hash, size, job and worker."""
    spec = outcome.task.spec
    query = sa.select(Report).where(Report.run_id == outcome.task.run_id, Report.kind == spec.kind)
    query = query.where(
        Report.member_id == spec.member_id
        if spec.member_id is not None
        else Report.member_id.is_(None)
    )
    row = session.scalars(query.order_by(Report.id)).first()
    if row is None:
        row = Report(run_id=outcome.task.run_id, kind=spec.kind, member_id=spec.member_id)
        session.add(row)
    row.path = outcome.task.relative_path
    row.sha256 = outcome.sha256 or ""
    row.size_bytes = outcome.size_bytes
    row.job_id = job_id
    row.worker = outcome.worker
    session.flush()


def cpu_workers() -> int:
    """Two workers by default (1.75x on two cores); never more than the cores."""
    return max(1, min(DEFAULT_WORKERS, os.cpu_count() or 1))
