"""Fanned-out jobs: one job split into tasks (a report, a measure) that any worker runs.

A job handler plans its pieces with :func:`plan_tasks` (one ``job_tasks`` row each, unique per
job and key, committed before any is queued) and returns :class:`FannedOut`; the queue then puts
one huey message per task on the queue, so every ``qicollab worker`` on every machine takes
pieces of the same job.

A worker **claims** a task by one conditional update (queued, or running with an expired lease
-> running, ``attempt`` + 1, its name, a lease), so two workers never work on one piece at the
same time; it renews the lease from a thread while it works. It **records** the outcome in one
transaction that first re-checks its claim (status running, same attempt): the kind's
``record`` (e.g. the report row, the file) and the task's status commit together or not at
all, so a piece is recorded exactly once even when it was run twice. A worker killed mid-task
stops renewing; once the lease runs out, any consumer's **reaper** puts the piece back on the
queue (or fails it after :data:`MAX_ATTEMPTS` claims), and another worker takes it.

When the last task ends, whoever ended it runs the kind's ``finish`` in one transaction that
locks the job row (the first to see every task finished wins; the others find the job no longer
running): a benchmark run becomes visible there, all measures at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from qicollab.db import session_scope, utcnow
from qicollab.jobs.models import Job, JobStatus, JobTask, TaskStatus
from qicollab.jobs.services import JobService, JobState, error_text

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

#: A task's lease: a worker that has not renewed it for this long is taken for dead.
LEASE_SECONDS = 60.0
#: Claims before a task whose workers keep dying is failed.
MAX_ATTEMPTS = 3
#: No task of any job started for this long while a running job still has queued tasks: their
#: queue messages were lost (a claim that failed on a database error, a consumer killed between
#: committing a requeue and sending it), and the reaper sends them again.
STALL_SECONDS = 10 * LEASE_SECONDS


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One piece a job handler plans: its key (unique in the job) and its parameters."""

    key: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FannedOut:
    """A job handler's answer when it split its job into tasks (their rows are committed)."""

    task_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TaskState:
    """A read-only copy of a task row."""

    id: int
    job_id: int
    key: str
    params: dict[str, Any]
    status: TaskStatus
    attempt: int
    worker: str | None
    seconds: float | None
    error: str | None
    output: str | None

    @classmethod
    def of(cls, row: JobTask) -> TaskState:
        """Copy a row."""
        return cls(
            id=row.id,
            job_id=row.job_id,
            key=row.key,
            params=dict(row.params or {}),
            status=TaskStatus(row.status),
            attempt=row.attempt,
            worker=row.worker,
            seconds=row.seconds,
            error=row.error,
            output=row.output,
        )


@dataclass(frozen=True, slots=True)
class TaskContext:
    """What a task kind gets: the task, its job, the settings and the database."""

    task: TaskState
    job: JobState
    worker: str
    settings: dict[str, Any]
    session_factory: sessionmaker[Session]


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """How a fanned-out job ends, as its kind's ``finish`` decides."""

    succeeded: bool
    message: str
    result: dict[str, Any] | None = None
    error: str | None = None


class TaskKind(Protocol):
    """The three steps of a fanned-out job kind's tasks."""

    def run(self, context: TaskContext) -> Any:
        """Do the piece's work outside any write transaction; raise to fail the piece."""

    def record(self, session: Session, context: TaskContext, outcome: Any) -> str | None:
        """Store the outcome in ``session`` (the claim-checked transaction); return the text
        staged on the task row for ``finish``, if any."""

    def finish(
        self,
        session: Session,
        job: JobState,
        tasks: list[TaskState],
        session_factory: sessionmaker[Session],
    ) -> JobOutcome:
        """End the job once every task ended, in ``session``'s transaction (which holds the
        job row); ``session_factory`` is for reads beside it."""

    def abandon(self, job: JobState, error: str, session_factory: sessionmaker[Session]) -> None:
        """Clean up after a job that ends failed (its own transactions)."""


_KINDS: dict[str, TaskKind] = {}


def task_kind(job_kind: str, kind: TaskKind) -> TaskKind:
    """Register how the tasks of jobs of ``job_kind`` run."""
    _KINDS[job_kind] = kind
    return kind


def kind_for(job_kind: str) -> TaskKind:
    """The registered task kind of a job kind (handler modules imported by the caller)."""
    try:
        return _KINDS[job_kind]
    except KeyError:
        msg = f"jobs of kind {job_kind!r} have no tasks"
        raise LookupError(msg) from None


# --- planning -------------------------------------------------------------------------------------


def plan_tasks(
    session_factory: sessionmaker[Session], job_id: int, specs: Sequence[TaskSpec]
) -> FannedOut:
    """Create the job's task rows (keys already planned are kept) and set its total.

    Returns the tasks still to run; the caller queues them after this commit.
    """
    keys = [spec.key for spec in specs]
    if len(set(keys)) != len(keys):
        msg = f"job {job_id}: task keys must be unique"
        raise ValueError(msg)
    with session_scope(session_factory) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None:
            msg = f"no job {job_id}"
            raise LookupError(msg)
        known = set(session.scalars(sa.select(JobTask.key).where(JobTask.job_id == job_id)))
        new = [spec for spec in specs if spec.key not in known]
        if new:
            session.execute(
                sa.insert(JobTask),
                [{"job_id": job_id, "key": s.key, "params": s.params, "attempt": 0} for s in new],
            )
        rows = session.execute(
            sa.select(JobTask.id, JobTask.status).where(JobTask.job_id == job_id)
        ).all()
        job.total = len(rows)
        job.done = sum(1 for row in rows if row.status in (TaskStatus.DONE, TaskStatus.FAILED))
        job.message = f"{len(rows)} tasks queued"
        todo = tuple(sorted(row.id for row in rows if row.status == TaskStatus.QUEUED))
    return FannedOut(todo)


# --- claiming, renewing, recording --------------------------------------------------------------


def claim(
    session_factory: sessionmaker[Session],
    task_id: int,
    worker: str,
    *,
    lease_seconds: float = LEASE_SECONDS,
    now: dt.datetime | None = None,
) -> TaskState | None:
    """Take the task for ``worker``, or None when it is done, failed, or held by a live claim
    (a duplicate or late queue message), or its job is no longer running."""
    now = now or utcnow()
    with session_scope(session_factory) as session:
        claimable = sa.or_(
            JobTask.status == TaskStatus.QUEUED,
            sa.and_(JobTask.status == TaskStatus.RUNNING, JobTask.lease_until < now),
        )
        job_running = (
            sa.select(Job.id)
            .where(Job.id == JobTask.job_id, Job.status == JobStatus.RUNNING)
            .exists()
        )
        taken = session.execute(
            sa.update(JobTask)
            .where(JobTask.id == task_id, claimable, job_running)
            .values(
                status=TaskStatus.RUNNING,
                attempt=JobTask.attempt + 1,
                worker=worker,
                lease_until=now + dt.timedelta(seconds=lease_seconds),
                started_at=now,
                finished_at=None,
                error=None,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken != 1:
            return None
        row = session.get(JobTask, task_id)
        assert row is not None
        return TaskState.of(row)


def _held(task: TaskState) -> sa.ColumnElement[bool]:
    """The task is still running under this claim."""
    return sa.and_(
        JobTask.id == task.id,
        JobTask.status == TaskStatus.RUNNING,
        JobTask.attempt == task.attempt,
    )


def renew(
    session_factory: sessionmaker[Session],
    task: TaskState,
    *,
    lease_seconds: float = LEASE_SECONDS,
    now: dt.datetime | None = None,
) -> bool:
    """Extend the claim's lease; False when the claim was lost (reaped and taken over)."""
    now = now or utcnow()
    with session_scope(session_factory) as session:
        return (
            session.execute(
                sa.update(JobTask)
                .where(_held(task))
                .values(lease_until=now + dt.timedelta(seconds=lease_seconds))
                .execution_options(synchronize_session=False)
            ).rowcount
            == 1
        )


class LeaseKeeper:
    """Renews a lease from a daemon thread while work runs (``with`` block): ``renew`` extends
    it and returns False once the claim is lost; ``label`` ("task 12", "job 3") names it in
    the log."""

    def __init__(self, renew: Callable[[], bool], lease_seconds: float, *, label: str) -> None:
        self.renew = renew
        self.lease_seconds = lease_seconds
        self.label = label
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qicollab-lease", daemon=True)

    def _run(self) -> None:
        while not self._stopped.wait(self.lease_seconds / 3):
            try:
                if not self.renew():
                    log.warning("%s: claim lost or work ended; no longer renewing", self.label)
                    return
            except Exception:  # a busy database: try again at the next tick
                log.exception("%s: renewing the lease failed", self.label)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stopped.set()
        self._thread.join()


def task_lease(
    session_factory: sessionmaker[Session], task: TaskState, lease_seconds: float
) -> LeaseKeeper:
    """A keeper of a claimed task's lease."""
    return LeaseKeeper(
        lambda: renew(session_factory, task, lease_seconds=lease_seconds),
        lease_seconds,
        label=f"task {task.id}",
    )


# --- the lease of a job's handler (planning) -----------------------------------------------------


def hold_job(
    session_factory: sessionmaker[Session],
    job_id: int,
    worker: str,
    *,
    lease_seconds: float = LEASE_SECONDS,
    now: dt.datetime | None = None,
) -> bool:
    """Stamp ``worker`` and a lease on a running job whose handler it runs; False when the job
    is not running."""
    now = now or utcnow()
    with session_scope(session_factory) as session:
        return (
            session.execute(
                sa.update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
                .values(worker=worker, lease_until=now + dt.timedelta(seconds=lease_seconds))
                .execution_options(synchronize_session=False)
            ).rowcount
            == 1
        )


def job_lease(
    session_factory: sessionmaker[Session], job_id: int, worker: str, lease_seconds: float
) -> LeaseKeeper:
    """A keeper of the lease of the job whose handler ``worker`` runs (it stops renewing once
    the job is no longer running or was taken over)."""

    def renew_job() -> bool:
        with session_scope(session_factory) as session:
            return (
                session.execute(
                    sa.update(Job)
                    .where(
                        Job.id == job_id,
                        Job.status == JobStatus.RUNNING,
                        Job.worker == worker,
                        Job.lease_until.is_not(None),
                    )
                    .values(lease_until=utcnow() + dt.timedelta(seconds=lease_seconds))
                    .execution_options(synchronize_session=False)
                ).rowcount
                == 1
            )

    return LeaseKeeper(renew_job, lease_seconds, label=f"job {job_id}")


def release_job(session_factory: sessionmaker[Session], job_id: int) -> None:
    """The handler is done (its tasks, if any, are queued and carry their own leases)."""
    with session_scope(session_factory) as session:
        session.execute(
            sa.update(Job)
            .where(Job.id == job_id)
            .values(lease_until=None)
            .execution_options(synchronize_session=False)
        )


class ClaimLostError(RuntimeError):
    """The task was taken over by another worker before this one recorded its outcome."""


def _end(
    session: Session, task: TaskState, status: TaskStatus, seconds: float, **values: Any
) -> None:
    ended = session.execute(
        sa.update(JobTask)
        .where(_held(task))
        .values(
            status=status,
            finished_at=utcnow(),
            seconds=round(seconds, 3),
            lease_until=None,
            **values,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if ended != 1:
        msg = f"task {task.id} ({task.key}) is no longer held by attempt {task.attempt}"
        raise ClaimLostError(msg)
    session.execute(
        sa.update(Job)
        .where(Job.id == task.job_id)
        .values(done=Job.done + 1, message=f"{task.key}: {status.value}"[:500])
        .execution_options(synchronize_session=False)
    )


def complete(kind: TaskKind, context: TaskContext, outcome: Any, seconds: float) -> None:
    """Record a finished piece and mark it done, in one claim-checked transaction."""
    with session_scope(context.session_factory) as session:
        # The claim check comes first: on PostgreSQL it locks the task row, so nobody can take
        # the task over while the outcome is being stored.
        _end(session, context.task, TaskStatus.DONE, seconds)
        staged = kind.record(session, context, outcome)
        if staged is not None:
            session.execute(
                sa.update(JobTask)
                .where(JobTask.id == context.task.id)
                .values(output=staged)
                .execution_options(synchronize_session=False)
            )


def fail(
    session_factory: sessionmaker[Session],
    task: TaskState,
    error: BaseException | str,
    seconds: float,
) -> None:
    """Mark a claimed piece failed (its previous file or result is left as it was)."""
    with session_scope(session_factory) as session:
        _end(session, task, TaskStatus.FAILED, seconds, error=error_text(error))


# --- reaping and finishing ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reaped:
    """What a reaper pass did: tasks put back on the queue, jobs whose tasks it failed, and
    jobs it failed because their consumer died in the handler, before any task was planned."""

    requeued: tuple[int, ...]
    failed_jobs: tuple[int, ...]
    stranded: tuple[int, ...] = ()
    #: Running jobs all of whose tasks had ended (whoever ended the last one did not finish it).
    settled: tuple[int, ...] = ()


def reap(
    session_factory: sessionmaker[Session],
    *,
    max_attempts: int = MAX_ATTEMPTS,
    now: dt.datetime | None = None,
) -> Reaped:
    """Running tasks whose lease ran out (their worker died): back to queued, or failed after
    ``max_attempts`` claims; and running jobs whose handler's lease ran out (see
    :func:`_reap_handlers`). Safe from several consumers at once (conditional updates)."""
    now = now or utcnow()
    requeued: list[int] = []
    failed_jobs: set[int] = set()
    stranded = _reap_handlers(session_factory, requeued, now)
    settled = _sweep_planned(session_factory, requeued, now)
    with session_scope(session_factory) as session:
        stale = session.execute(
            sa.select(JobTask.id, JobTask.job_id, JobTask.attempt, JobTask.worker)
            .where(JobTask.status == TaskStatus.RUNNING, JobTask.lease_until < now)
            .order_by(JobTask.id)
            .with_for_update(skip_locked=True)
        ).all()
        for row in stale:
            this = sa.and_(
                JobTask.id == row.id,
                JobTask.status == TaskStatus.RUNNING,
                JobTask.attempt == row.attempt,
            )
            if row.attempt >= max_attempts:
                values: dict[str, Any] = {
                    "status": TaskStatus.FAILED,
                    "finished_at": now,
                    "lease_until": None,
                    # Host names stay in the log and the task row (coordinators see them).
                    "error": f"its worker stopped {row.attempt} times",
                }
            else:
                values = {"status": TaskStatus.QUEUED, "lease_until": None}
            changed = session.execute(
                sa.update(JobTask)
                .where(this)
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not changed:
                continue
            log.warning(
                "task %s of job %s: worker %s stopped renewing its lease; %s",
                row.id,
                row.job_id,
                row.worker,
                "failed" if row.attempt >= max_attempts else "queued again",
            )
            if row.attempt >= max_attempts:
                session.execute(
                    sa.update(Job)
                    .where(Job.id == row.job_id)
                    .values(done=Job.done + 1)
                    .execution_options(synchronize_session=False)
                )
                failed_jobs.add(row.job_id)
            else:
                requeued.append(row.id)
    return Reaped(tuple(requeued), tuple(sorted(failed_jobs)), stranded, settled)


def _sweep_planned(
    session_factory: sessionmaker[Session], requeued: list[int], now: dt.datetime
) -> tuple[int, ...]:
    """Running jobs past planning that the message path lost track of.

    Returns the jobs whose tasks have all ended (the worker that ended the last one died or
    failed before finishing the job). Appends to ``requeued`` the queued tasks of a job with
    none running when neither the job nor any task of any job started for
    :data:`STALL_SECONDS` (a busy queue's messages are only waiting)."""
    stall = dt.timedelta(seconds=STALL_SECONDS)
    settled: list[int] = []
    with session_scope(session_factory) as session:
        running = session.execute(
            sa.select(Job.id, Job.started_at)
            .where(Job.status == JobStatus.RUNNING, Job.lease_until.is_(None))
            .order_by(Job.id)
        ).all()
        if not running:
            return ()
        counts: dict[int, dict[TaskStatus, int]] = {}
        for job_id, status, count in session.execute(
            sa.select(JobTask.job_id, JobTask.status, sa.func.count())
            .where(JobTask.job_id.in_([job.id for job in running]))
            .group_by(JobTask.job_id, JobTask.status)
        ):
            counts.setdefault(job_id, {})[status] = count
        last_start = session.scalar(sa.select(sa.func.max(JobTask.started_at)))
        for job in running:
            tasks = counts.get(job.id)
            if not tasks:  # not fanned out: the handler's own job
                continue
            if not tasks.get(TaskStatus.QUEUED) and not tasks.get(TaskStatus.RUNNING):
                settled.append(job.id)
                continue
            recent = [t for t in (last_start, job.started_at) if t is not None]
            if tasks.get(TaskStatus.RUNNING) or (recent and now - max(recent) <= stall):
                continue
            lost = session.scalars(
                sa.select(JobTask.id)
                .where(JobTask.job_id == job.id, JobTask.status == TaskStatus.QUEUED)
                .order_by(JobTask.id)
            ).all()
            log.warning(
                "job %s: %d queued tasks sent again (nothing started for %.0f s)",
                job.id,
                len(lost),
                STALL_SECONDS,
            )
            requeued.extend(lost)
    return tuple(settled)


def _reap_handlers(
    session_factory: sessionmaker[Session], requeued: list[int], now: dt.datetime
) -> tuple[int, ...]:
    """Running jobs whose consumer stopped renewing the lease of their handler.

    A job that had planned its tasks (the consumer died between committing them and queueing
    them) gets its queued tasks queued again (appended to ``requeued``; a duplicate message is
    harmless, claims are conditional). A job with no tasks died while planning: it is failed
    (returned), since re-running a handler is not safe for every kind (a benchmark run left
    its queued state when planning began)."""
    stranded: list[int] = []
    with session_scope(session_factory) as session:
        stale = session.execute(
            sa.select(Job.id, Job.worker, Job.lease_until)
            .where(Job.status == JobStatus.RUNNING, Job.lease_until < now)
            .order_by(Job.id)
            .with_for_update(skip_locked=True)
        ).all()
        for job in stale:
            this = sa.and_(
                Job.id == job.id,
                Job.status == JobStatus.RUNNING,
                Job.lease_until == job.lease_until,
            )
            queued = list(
                session.scalars(
                    sa.select(JobTask.id)
                    .where(JobTask.job_id == job.id, JobTask.status == TaskStatus.QUEUED)
                    .order_by(JobTask.id)
                )
            )
            planned = queued or session.scalar(
                sa.select(JobTask.id).where(JobTask.job_id == job.id).limit(1)
            )
            if planned:
                values: dict[str, Any] = {"lease_until": None}
            else:
                values = {
                    "status": JobStatus.FAILED,
                    "finished_at": now,
                    "lease_until": None,
                    "message": "failed",
                    "error": (
                        "its worker stopped while planning the job (its lease ran out at "
                        f"{job.lease_until:%Y-%m-%d %H:%M:%S} UTC); nothing was computed or "
                        "stored: start it again"
                    ),
                }
            changed = session.execute(
                sa.update(Job)
                .where(this)
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not changed:
                continue
            log.warning(
                "job %s: its consumer %s stopped renewing its lease while planning; %s",
                job.id,
                job.worker,
                f"{len(queued)} planned tasks queued again" if planned else "failed",
            )
            if planned:
                requeued.extend(queued)
            else:
                stranded.append(job.id)
    return tuple(stranded)


def finish_if_complete(
    session_factory: sessionmaker[Session], job_id: int, jobs: JobService
) -> JobState | None:
    """End the job when none of its tasks is queued or running; None while some are (or when
    another worker ended it)."""
    with session_scope(session_factory) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.status is not JobStatus.RUNNING:
            return None
        unfinished = session.scalar(
            sa.select(sa.func.count())
            .select_from(JobTask)
            .where(
                JobTask.job_id == job_id,
                JobTask.status.in_((TaskStatus.QUEUED, TaskStatus.RUNNING)),
            )
        )
        if unfinished:
            return None
        state = JobState.of(job)
        kind = kind_for(state.kind)
        tasks = [
            TaskState.of(row)
            for row in session.scalars(
                sa.select(JobTask).where(JobTask.job_id == job_id).order_by(JobTask.id)
            )
        ]
        try:
            with session.begin_nested():
                outcome = kind.finish(session, state, tasks, session_factory)
        except Exception as error:
            log.exception("job %s: its final step failed", job_id)
            outcome = JobOutcome(False, "failed", error=error_text(error))
        session.refresh(job)
        if job.status is JobStatus.RUNNING:
            job.status = JobStatus.SUCCEEDED if outcome.succeeded else JobStatus.FAILED
            job.finished_at = jobs.clock()
            job.message = outcome.message[:500]
            job.result = outcome.result
            job.error = None if outcome.succeeded else error_text(outcome.error or "failed")
            job.done = job.total
    if not outcome.succeeded:
        kind.abandon(state, outcome.error or "failed", session_factory)
    return jobs.get(job_id)
