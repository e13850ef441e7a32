"""Rendering a run's reports: planning the batch, atomic files, recorded hashes.

A report batch runs on the queue, one task per report (:mod:`qicollab.reporting.tasks`): any
``qicollab worker`` takes reports, laying each out with the process's warm state
(:func:`render_in_task`: WeasyPrint imported and warmed up once, the run's shared data kept
between reports). :class:`ReportRenderer` plans the batch, and also renders it in this process
(tests, benchmarks, the demo's pages), recording each finished report (path, SHA-256, size) in
its own short transaction.

Each rendering is written atomically with its hash (:meth:`qicollab.storage.FileStore.put`) under
its own key, ``reports/run-<id>/<report>.<start of its SHA-256>.pdf`` (named by ids, never by
member names), and its row is pointed at it in the same transaction (:func:`store_report`). So
a new rendering never overwrites the file its row still names: a report that fails to render,
to record or to commit leaves the previous file, and its row, exactly as they were, with either
file store, and a download reads the bytes its row records. The file a committed rendering
replaced is deleted after the commit.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

import qicollab.models  # noqa: F401 - every mapper configured, also in worker processes
from qicollab.benchmarking.models import BenchmarkRun, MemberResult, RunStatus
from qicollab.db import READ_ONLY_OPTION, after_outcome, session_scope
from qicollab.jobs.workers import consumer_name
from qicollab.reporting.models import Report, ReportKind
from qicollab.reporting.reports import TEMPLATES, ReportSpec, report_context
from qicollab.storage import FileStore, FileStoreConfig, StoredFile

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from qicollab.reporting.pdf import PdfRenderer
    from qicollab.reporting.results import RunData

log = logging.getLogger(__name__)

JOB_KIND = "reports-render"


class RenderError(RuntimeError):
    """A run's reports cannot be rendered (no such run, run not succeeded)."""


@dataclass(frozen=True, slots=True)
class RenderTask:
    """One report to render: ids and paths only (a report task's params)."""

    run_id: int
    spec: ReportSpec
    relative_path: str


@dataclass(frozen=True, slots=True)
class RenderOutcome:
    """What rendering a report in this process did."""

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


def report_folder(run_id: int) -> str:
    """The run's folder: the prefix of its reports' file store keys."""
    return f"reports/run-{run_id}"


def versioned_key(path: str, sha256: str) -> str:
    """One rendering's file store key: the report's path with the first 16 hex digits of the
    rendering's SHA-256 before the extension."""
    stem, _, extension = path.rpartition(".")
    return f"{stem}.{sha256[:16]}.{extension}"


# --- laying out one report ----------------------------------------------------------------------


@dataclass
class _WarmState:
    """What a process keeps between reports: its PDF renderer and the current run's data.

    The run's data are kept for one batch (``batch``: its job) and read again for the next, so a
    member renamed or a blinded code changed between two batches of one run is printed as it
    now is."""

    session_factory: sessionmaker[Session]
    renderer: PdfRenderer
    runs: dict[int, RunData] = field(default_factory=dict)
    batch: object = None

    def for_batch(self, batch: object) -> _WarmState:
        """Forget the run data read for another batch."""
        if batch != self.batch:
            self.runs.clear()
            self.batch = batch
        return self


#: The warm state of a queue worker's process (its database and storage folder, and the
#: state), built on its first report task.
_TASK_STATE: tuple[sa.Engine, Path, _WarmState] | None = None
_TASK_STATE_LOCK = threading.Lock()
#: Tests replace this to make one report fail (reports laid out in the test's process).
RENDER_HOOK: Callable[[RenderTask], None] | None = None


def task_state(session_factory: sessionmaker[Session], storage: Path) -> _WarmState:
    """This process's warm state for report tasks: WeasyPrint imported and warmed up once,
    the current run's data kept between tasks."""
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
        state = _WarmState(get_session_factory(read_only), renderer)
        _TASK_STATE = (engine, storage, state)
    return _TASK_STATE[2]


def render_in_task(
    session_factory: sessionmaker[Session], storage: Path, task: RenderTask, job_id: int
) -> bytes:
    """One report's PDF in a queue worker, one at a time per process (the embedded
    consumer's threads share the warm state, and the run's data within one job)."""
    with _TASK_STATE_LOCK:
        return render_pdf(task_state(session_factory, storage).for_batch(job_id), task)


def render_pdf(state: _WarmState, task: RenderTask) -> bytes:
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


# --- a run's batch ------------------------------------------------------------------------------


@dataclass
class ReportRenderer:
    """Plans a run's reports (the queue's batch job fans the plan out, one task per report)
    and renders and records them in this process."""

    session_factory: sessionmaker[Session]
    settings: dict[str, Any]
    _warm: _WarmState | None = field(default=None, init=False, repr=False)
    _store: FileStore | None = field(default=None, init=False, repr=False)

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

    def _render(self, task: RenderTask, warm: _WarmState, store: FileStore) -> RenderOutcome:
        """Lay out one report, write its file and record it (its own short transaction)."""
        started = time.perf_counter()
        try:
            pdf = render_pdf(warm, task)
            with session_scope(self.session_factory) as session:
                written = store_report(
                    session, store, store, task, pdf, worker=consumer_name(), job_id=None
                )
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

    def render_run(
        self,
        run_id: int,
        *,
        kinds: Sequence[ReportKind] | None = None,
        member_ids: Sequence[int] | None = None,
    ) -> RenderSummary:
        """Render and record every report of the run in this process; failures keep their
        previous files."""
        started = time.perf_counter()
        tasks = self.plan(run_id, kinds=kinds, member_ids=member_ids)
        if self._warm is None or self._store is None:
            from qicollab.reporting.pdf import PdfRenderer  # noqa: PLC0415 - imports WeasyPrint

            self._warm = _WarmState(self.session_factory, PdfRenderer())
            config = FileStoreConfig.from_settings(self.settings)
            self._store = config.build(self.session_factory.kw["bind"])
        warm = self._warm.for_batch(object())  # names as they are now, not at the last batch
        summary = RenderSummary(run_id)
        for task in tasks:
            outcome = self._render(task, warm, self._store)
            (summary.rendered if outcome.ok else summary.failed).append(outcome)
        summary.seconds = time.perf_counter() - started
        return summary


def store_report(
    session: Session,
    store: FileStore,
    cleanup: FileStore,
    task: RenderTask,
    pdf: bytes,
    *,
    worker: str | None,
    job_id: int | None,
) -> StoredFile:
    """Write a rendering under its own key (:func:`versioned_key`) through ``store`` and point
    the report's row at it (hash, size, job, worker) in ``session``'s transaction.

    Once that commits, the file the row named before is deleted through ``cleanup`` (a store
    outside the transaction); if it rolls back, the new file is, and the row still names the
    previous file, untouched. An identical rendering has the same key and deletes nothing."""
    key = versioned_key(task.relative_path, hashlib.sha256(pdf).hexdigest())
    row = _report_row(session, task)
    previous = row.path if row is not None else None
    written = store.put(key, pdf)
    after_outcome(
        session,
        committed=functools.partial(_forget, cleanup, previous if previous != key else None),
        rolled_back=functools.partial(_forget, cleanup, key if key != previous else None),
    )
    if row is None:
        row = Report(run_id=task.run_id, kind=task.spec.kind, member_id=task.spec.member_id)
        session.add(row)
    row.path = key
    row.sha256 = written.sha256
    row.size_bytes = written.size_bytes
    row.job_id = job_id
    row.worker = worker
    session.flush()
    return written


def _forget(store: FileStore, key: str | None) -> None:
    """Delete a file no row names (nothing for None). A failure is logged, not raised: what it
    leaves behind is only space."""
    if key is None:
        return
    try:
        store.delete(key)
    except Exception:
        log.exception("could not delete the report file %s, which no row names", key)


def _report_row(session: Session, task: RenderTask) -> Report | None:
    spec = task.spec
    query = sa.select(Report).where(Report.run_id == task.run_id, Report.kind == spec.kind)
    query = query.where(
        Report.member_id == spec.member_id
        if spec.member_id is not None
        else Report.member_id.is_(None)
    )
    return session.scalars(query.order_by(Report.id)).first()
