"""Job rows for long work: create, start, report progress, succeed or fail.

Progress is written in its own short transaction, separate from the work's, so the portal and
the CLI see it while the work is still running. On SQLite a writer holds the database's single
write lock for its whole transaction, so the work must not hold a write transaction open while it
reports progress (the benchmark run computes outside any write transaction and stores its
results in one short transaction at the end); readers are never blocked (WAL).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

# Every domain's models, so foreign keys resolve in a process that imports only this module.
import qicollab.models  # noqa: F401
from qicollab.db import READ_ONLY_OPTION, session_scope, utcnow
from qicollab.jobs.models import Job, JobStatus, JobTask, TaskStatus

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

#: Statuses after which a job never changes again.
FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED})
#: Longest error text kept on the row (the full traceback goes to the log).
MAX_ERROR_CHARS = 4000
MAX_MESSAGE_CHARS = 500


class JobNotFoundError(LookupError):
    """No job with that id."""


class JobStateError(RuntimeError):
    """A transition that the job's current status does not allow (e.g. finishing twice)."""


@dataclass(frozen=True, slots=True)
class WorkerShare:
    """What one worker (``host:pid``) did of a fanned-out job."""

    worker: str
    done: int
    failed: int
    running: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """Part of the job's status document."""
        return {
            "worker": self.worker,
            "done": self.done,
            "failed": self.failed,
            "running": self.running,
            "seconds": round(self.seconds, 2),
        }


@dataclass(frozen=True, slots=True)
class TaskCounts:
    """A fanned-out job's tasks: how many are done, failed, running, queued, and by whom."""

    total: int
    done: int
    failed: int
    running: int
    queued: int
    workers: tuple[WorkerShare, ...]

    def to_json(self) -> dict[str, Any]:
        """Part of the job's status document."""
        return {
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "running": self.running,
            "queued": self.queued,
            "by_worker": [share.to_json() for share in self.workers],
        }


def task_counts(session: Session, job_id: int) -> TaskCounts | None:
    """The job's tasks counted by status and worker; None when the job was not fanned out."""
    rows = session.execute(
        sa.select(
            JobTask.worker,
            JobTask.status,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(JobTask.seconds), 0.0),
        )
        .where(JobTask.job_id == job_id)
        .group_by(JobTask.worker, JobTask.status)
    ).all()
    if not rows:
        return None
    by_status = dict.fromkeys(TaskStatus, 0)
    shares: dict[str, dict[str, float]] = {}
    for worker, status, count, seconds in rows:
        by_status[TaskStatus(status)] += count
        if worker is None or status == TaskStatus.QUEUED:
            continue
        share = shares.setdefault(worker, {"done": 0, "failed": 0, "running": 0, "seconds": 0.0})
        share[TaskStatus(status).value] += count
        share["seconds"] += float(seconds or 0.0)
    return TaskCounts(
        total=sum(by_status.values()),
        done=by_status[TaskStatus.DONE],
        failed=by_status[TaskStatus.FAILED],
        running=by_status[TaskStatus.RUNNING],
        queued=by_status[TaskStatus.QUEUED],
        workers=tuple(
            WorkerShare(
                name, int(s["done"]), int(s["failed"]), int(s["running"]), float(s["seconds"])
            )
            for name, s in sorted(shares.items())
        ),
    )


@dataclass(frozen=True, slots=True)
class JobState:
    """A read-only copy of a job row, safe to pass between threads and sessions."""

    id: int
    kind: str
    status: JobStatus
    done: int
    total: int
    message: str
    error: str | None
    params: dict[str, Any]
    result: dict[str, Any] | None
    collaborative_id: int | None
    created_by_id: int | None
    created_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    #: The tasks of a fanned-out job (None for a job that runs in one piece).
    tasks: TaskCounts | None = None

    @property
    def progress(self) -> float:
        """Fraction done, 0 to 1 (1 once succeeded)."""
        if self.status is JobStatus.SUCCEEDED:
            return 1.0
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def finished(self) -> bool:
        """Succeeded or failed: nothing will change any more."""
        return self.status in FINISHED

    @classmethod
    def of(cls, job: Job, *, tasks: TaskCounts | None = None) -> JobState:
        """Copy a row (with its tasks' counts, when given)."""
        return cls(
            id=job.id,
            kind=job.kind,
            status=JobStatus(job.status),
            done=job.done or 0,
            total=job.total or 0,
            message=job.message or "",
            error=job.error,
            params=dict(job.params or {}),
            result=None if job.result is None else dict(job.result),
            collaborative_id=job.collaborative_id,
            created_by_id=job.created_by_id,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            tasks=tasks,
        )

    def without_workers(self) -> JobState:
        """The state as members see it: progress and counts, but not which hosts and processes
        did the work (the deployment's layout is for coordinators)."""
        tasks = None if self.tasks is None else dataclasses.replace(self.tasks, workers=())
        result = self.result
        if result is not None:
            result = {key: value for key, value in result.items() if key != "workers"}
        return dataclasses.replace(self, tasks=tasks, result=result)

    def to_json(self) -> dict[str, Any]:
        """The status document the portal polls (``/jobs/{id}``) and ``jobs show`` prints."""

        def stamp(value: dt.datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status.value,
            "done": self.done,
            "total": self.total,
            "progress": round(self.progress, 4),
            "message": self.message,
            "error": self.error,
            "params": self.params,
            "result": self.result,
            "created_at": stamp(self.created_at),
            "started_at": stamp(self.started_at),
            "finished_at": stamp(self.finished_at),
            "finished": self.finished,
            "tasks": None if self.tasks is None else self.tasks.to_json(),
        }


def error_text(error: BaseException | str) -> str:
    """What a user sees about a failure: the exception type and message, trimmed."""
    if isinstance(error, str):
        text = error
    else:
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
    return text[:MAX_ERROR_CHARS]


ProgressListener = Callable[[JobState], None]


@dataclass
class JobService:
    """Job lifecycle over a session factory: every call is its own short transaction.

    ``listener`` (optional) is called with the new state after each committed change, in the
    calling thread: the CLI uses it to move a progress bar without polling.
    """

    session_factory: sessionmaker[Session]
    listener: ProgressListener | None = None
    clock: Callable[[], dt.datetime] = field(default=utcnow)

    # --- creating and reading -----------------------------------------------------------------

    def create(
        self,
        kind: str,
        *,
        params: dict[str, Any] | None = None,
        collaborative_id: int | None = None,
        created_by_id: int | None = None,
        total: int = 0,
        message: str = "queued",
        session: Session | None = None,
    ) -> Job:
        """A queued job. With ``session`` it joins the caller's transaction (enqueue it only
        after that commits); without, it is committed at once."""
        job = Job(
            kind=kind,
            params=params or {},
            collaborative_id=collaborative_id,
            created_by_id=created_by_id,
            status=JobStatus.QUEUED,
            done=0,
            total=total,
            message=message[:MAX_MESSAGE_CHARS],
            created_at=self.clock(),
        )
        if session is not None:
            session.add(job)
            session.flush()
            return job
        with session_scope(self.session_factory) as own:
            own.add(job)
            own.flush()
        return job

    def _reader(self) -> Session:
        """A session whose transactions only read: on SQLite it starts with a deferred
        ``BEGIN``, so looking at a job never waits for (or blocks) a writer."""
        bind = self.session_factory.kw["bind"].execution_options(**{READ_ONLY_OPTION: True})
        return self.session_factory(bind=bind)

    def get(self, job_id: int) -> JobState:
        """The current state, read in a fresh transaction."""
        session = self._reader()
        try:
            job = session.get(Job, job_id)
            if job is None:
                msg = f"no job {job_id}"
                raise JobNotFoundError(msg)
            return JobState.of(job, tasks=task_counts(session, job_id))
        finally:
            session.close()

    def recent(self, *, collaborative_id: int | None = None, limit: int = 50) -> list[JobState]:
        """The newest jobs first."""
        session = self._reader()
        try:
            query = sa.select(Job).order_by(Job.id.desc()).limit(limit)
            if collaborative_id is not None:
                query = query.where(Job.collaborative_id == collaborative_id)
            return [JobState.of(job) for job in session.scalars(query)]
        finally:
            session.close()

    # --- transitions --------------------------------------------------------------------------

    def start(self, job_id: int, *, message: str = "running", total: int | None = None) -> JobState:
        """Queued (or a retried running job) -> running."""
        values: dict[str, Any] = {
            "status": JobStatus.RUNNING,
            "started_at": self.clock(),
            "message": message[:MAX_MESSAGE_CHARS],
            "error": None,
        }
        if total is not None:
            values["total"] = total
        return self._update(job_id, values, allowed=(JobStatus.QUEUED, JobStatus.RUNNING))

    def progress(
        self, job_id: int, done: int, total: int | None = None, message: str | None = None
    ) -> JobState:
        """Record how far the work is; committed at once so other sessions see it."""
        values: dict[str, Any] = {"done": int(done)}
        if total is not None:
            values["total"] = int(total)
        if message is not None:
            values["message"] = message[:MAX_MESSAGE_CHARS]
        return self._update(job_id, values, allowed=(JobStatus.RUNNING,))

    def succeed(
        self,
        job_id: int,
        *,
        result: dict[str, Any] | None = None,
        message: str = "done",
        session: Session | None = None,
    ) -> JobState | None:
        """Running -> succeeded. With ``session`` the change commits with the caller's work
        (so the job is never "succeeded" while the work's results are missing)."""
        values: dict[str, Any] = {
            "status": JobStatus.SUCCEEDED,
            "finished_at": self.clock(),
            "message": message[:MAX_MESSAGE_CHARS],
            "result": result,
        }
        if session is not None:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None:
                raise JobNotFoundError(job_id)
            if job.status is not JobStatus.RUNNING:
                msg = f"job {job_id} is {job.status.value}, not running"
                raise JobStateError(msg)
            for key, value in values.items():
                setattr(job, key, value)
            if job.total:
                job.done = job.total
            session.flush()
            return None
        return self._update(job_id, values, allowed=(JobStatus.RUNNING,), complete=True)

    def fail(self, job_id: int, error: BaseException | str) -> JobState:
        """Any unfinished status -> failed, with the error text (its own transaction)."""
        return self._update(
            job_id,
            {
                "status": JobStatus.FAILED,
                "finished_at": self.clock(),
                "error": error_text(error),
                "message": "failed",
            },
            allowed=(JobStatus.QUEUED, JobStatus.RUNNING),
        )

    def _update(
        self,
        job_id: int,
        values: dict[str, Any],
        *,
        allowed: tuple[JobStatus, ...],
        complete: bool = False,
    ) -> JobState:
        with session_scope(self.session_factory) as session:
            job = session.get(Job, job_id)
            if job is None:
                msg = f"no job {job_id}"
                raise JobNotFoundError(msg)
            if job.status not in allowed:
                msg = f"job {job_id} is {job.status.value}; cannot change it"
                raise JobStateError(msg)
            for key, value in values.items():
                setattr(job, key, value)
            if complete and job.total:
                job.done = job.total
            session.flush()
            state = JobState.of(job)
        if self.listener is not None:
            self.listener(state)
        return state
