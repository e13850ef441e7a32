"""The job queue: huey, configured from the settings, running registered job handlers.

Settings (ini ``[app:main]`` or environment):

``qicollab.queue.backend``
    ``sqlite`` (default): :class:`huey.SqliteHuey` in ``<storage>/huey.sqlite``. Workers on the
    same machine share the file; nothing else to run.

    ``postgresql``: :class:`huey.PostgresHuey` (psycopg 3). The queue tables live in their own
    schema (``qicollab_queue``, created on first use) of the database in
    ``qicollab.queue.url``, by default the application's own PostgreSQL database, so more
    worker machines are just more ``qicollab worker`` processes pointed at the same database,
    and the application schema (checked by ``qicollab db check``) stays untouched.

    ``redis``: :class:`huey.RedisHuey` at ``qicollab.queue.url`` (``redis://host:6379/0``);
    needs the ``redis`` package, which qicollab does not install.

    ``memory``: an in-process queue, for experiments.
``qicollab.queue.immediate``
    ``true`` runs every job synchronously when it is enqueued (tests, one-off scripts).
``qicollab.queue.lease_seconds``
    How long a fanned-out task's claim lasts unless its worker renews it (default 60): a worker
    killed mid-task has its task taken over this long after it stopped renewing.
``qicollab.queue.beat_seconds``
    How often each consumer stamps its heartbeat and reaps expired claims (default 10).
``qicollab.queue.poll_seconds``
    The longest an idle consumer waits between looks at the queue (default 1). huey's own
    default backs off to 10 s, so a job enqueued after a quiet spell, or the tasks another
    worker just fanned out, waited up to 10 s per idle worker; a look is one indexed query.

Jobs carry ids, never objects: the queue holds only the job id, and the handler registered for
the job's ``kind`` reads everything else (its ``params``) from the database. A handler may split
its job into tasks (:mod:`qicollab.jobs.fanout`); each task is its own queue message carrying
the task's id, so any worker takes any piece. Enqueue after the
transaction that created the job has committed (:meth:`JobQueue.enqueue_after_commit`), or a
fast worker may look for a row that does not exist yet.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import huey
import sqlalchemy as sa

from qicollab.config import as_bool, storage_path
from qicollab.jobs import fanout
from qicollab.jobs.models import JobStatus
from qicollab.jobs.services import JobService, JobState, JobStateError
from qicollab.jobs.workers import BEAT_SECONDS, consumer_name

if TYPE_CHECKING:
    import huey.consumer
    from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

BACKEND = "qicollab.queue.backend"
URL = "qicollab.queue.url"
IMMEDIATE = "qicollab.queue.immediate"
LEASE = "qicollab.queue.lease_seconds"
BEAT = "qicollab.queue.beat_seconds"
POLL = "qicollab.queue.poll_seconds"
#: Default :data:`POLL`: the longest an idle consumer sleeps before looking at the queue again.
POLL_SECONDS = 1.0
#: The schema holding huey's tables on PostgreSQL.
PG_SCHEMA = "qicollab_queue"
#: The advisory lock key held while a process creates the queue's schema and tables.
PG_SCHEMA_LOCK = 0x71C0_11AB
#: The huey task that runs the job whose id it is given.
TASK_NAME = "run_job"
#: The huey task that runs one task (piece) of a fanned-out job.
PIECE_TASK_NAME = "run_job_task"

#: Modules that register job handlers; imported before a job is dispatched.
HANDLER_MODULES: tuple[str, ...] = ("qicollab.benchmarking.tasks", "qicollab.reporting.tasks")

#: Work every consumer's scheduler runs on a timetable: name, crontab fields, and the
#: ``module:function`` called with ``(settings, session_factory)``. Each must be safe to run
#: from several consumers at once (reminders record what they sent, once per topic).
PERIODIC_TASKS: tuple[tuple[str, dict[str, str], str], ...] = (
    ("reminders", {"minute": "*/30"}, "qicollab.notifications.reminders:send_due_reminders"),
)


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a handler gets: the job, the settings, a session factory and the job service."""

    job: JobState
    settings: dict[str, Any]
    session_factory: sessionmaker[Session]
    jobs: JobService


Handler = Callable[[JobContext], dict[str, Any] | None]
_HANDLERS: dict[str, Handler] = {}


def job_handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that runs jobs of ``kind``.

    The handler may mark the job succeeded itself (e.g. in the same transaction as its
    results); otherwise the queue marks it succeeded with the handler's return value as result.
    Raising marks it failed with the error text.
    """

    def register(function: Handler) -> Handler:
        _HANDLERS[kind] = function
        return function

    return register


def load_handlers() -> None:
    """Import the modules that register job handlers and task kinds. A process that never ran
    a job (the reaper in a process consumer's parent) still finishes and cleans up after them."""
    for module in HANDLER_MODULES:
        importlib.import_module(module)


def handler_for(kind: str) -> Handler:
    """The registered handler of a job kind."""
    load_handlers()
    try:
        return _HANDLERS[kind]
    except KeyError:
        msg = f"no handler for jobs of kind {kind!r}"
        raise LookupError(msg) from None


def _pg_dsn(url: str) -> str:
    """A libpq connection string from an SQLAlchemy URL."""
    parsed = sa.make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def make_huey(settings: dict[str, Any], *, name: str = "qicollab") -> huey.Huey:
    """The huey instance for these settings (see the module docstring)."""
    backend = str(settings.get(BACKEND) or "sqlite").lower()
    immediate = as_bool(settings.get(IMMEDIATE))
    common: dict[str, Any] = {"results": False, "immediate": immediate, "utc": True}
    if backend == "sqlite":
        filename = settings.get(URL) or str(storage_path(settings) / "huey.sqlite")
        return huey.SqliteHuey(name, filename=filename, **common)
    if backend == "memory":
        return huey.MemoryHuey(name, **common)
    if backend == "redis":
        return huey.RedisHuey(name, url=settings.get(URL), **common)
    if backend in {"postgresql", "postgres"}:
        dsn = _pg_dsn(settings.get(URL) or settings["sqlalchemy.url"])
        options = f"-c search_path={PG_SCHEMA}"
        if immediate:
            return huey.PostgresHuey(name, dsn=dsn, options=options, table_prefix="huey", **common)
        import psycopg  # noqa: PLC0415 - only PostgreSQL deployments need it

        # Workers started together would race to create the schema and huey's tables (CREATE
        # ... IF NOT EXISTS is not safe against a concurrent creator): one at a time.
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute("SELECT pg_advisory_lock(%s)", (PG_SCHEMA_LOCK,))
            try:
                connection.execute(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")
                return huey.PostgresHuey(
                    name, dsn=dsn, options=options, table_prefix="huey", **common
                )
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s)", (PG_SCHEMA_LOCK,))
    msg = f"unknown {BACKEND} {backend!r}: use sqlite, postgresql, redis or memory"
    raise ValueError(msg)


class JobQueue:
    """A huey instance plus the database the jobs read and write.

    Build one per process from the settings (the portal, the CLI and ``qicollab worker`` build
    the same one, so they agree on the queue). The engine is created lazily and again after a
    fork, so huey's process workers never share a connection with their parent.
    """

    def __init__(
        self,
        settings: dict[str, Any],
        *,
        engine: sa.Engine | None = None,
        huey_instance: huey.Huey | None = None,
    ) -> None:
        self.settings = settings
        self.huey = huey_instance or make_huey(settings)
        self._engine = engine
        self._owns_engine = engine is None
        self._pid = os.getpid()
        self.lease_seconds = float(settings.get(LEASE) or fanout.LEASE_SECONDS)
        self.beat_seconds = float(settings.get(BEAT) or BEAT_SECONDS)
        self.poll_seconds = float(settings.get(POLL) or POLL_SECONDS)
        self._task = self.huey.task(name=TASK_NAME)(self.run_job)
        self._piece = self.huey.task(name=PIECE_TASK_NAME)(self.run_task)
        for name, when, target in PERIODIC_TASKS:
            self.huey.periodic_task(huey.crontab(**when), name=name)(self._periodic(target))

    @property
    def engine(self) -> sa.Engine:
        """The database engine of this process."""
        if self._engine is not None and self._pid != os.getpid():
            # A forked worker: drop the parent's pooled connections without closing them.
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        if self._engine is None:
            from qicollab.db import create_engine_from_settings  # noqa: PLC0415

            self._engine = create_engine_from_settings(self.settings)
            self._owns_engine = True
        return self._engine

    @property
    def session_factory(self) -> sessionmaker[Session]:
        """Sessions on :attr:`engine`."""
        from qicollab.db import get_session_factory  # noqa: PLC0415

        return get_session_factory(self.engine)

    def create_consumer(self, *, workers: int, worker_type: str) -> huey.consumer.Consumer:
        """A huey consumer of this queue whose idle polling backs off to :attr:`poll_seconds`
        at most (the first look after a task is at once)."""
        return self.huey.create_consumer(
            workers=workers,
            worker_type=worker_type,
            periodic=True,
            initial_delay=min(0.1, self.poll_seconds),
            max_delay=self.poll_seconds,
        )

    def enqueue(self, job_id: int) -> None:
        """Put a committed job on the queue (runs it at once in immediate mode)."""
        self._task(job_id)

    def enqueue_after_commit(self, session: Session, job_id: int) -> None:
        """Enqueue once ``session``'s transaction commits (nothing happens on rollback).

        Works for plain sessions and for pyramid_tm sessions alike, because both end in the
        SQLAlchemy session's commit.
        """

        def after_commit(_session: Session) -> None:
            self.enqueue(job_id)

        sa.event.listen(session, "after_commit", after_commit, once=True)

    def pending(self) -> int:
        """How many jobs wait for a worker."""
        return len(self.huey)

    def drain(self) -> int:
        """Run every queued task in this process, then return how many ran (``--drain``)."""
        count = 0
        while True:
            task = self.huey.dequeue()
            if task is None:
                return count
            self.huey.execute(task)
            count += 1

    def _periodic(self, target: str) -> Callable[[], None]:
        """A no-argument function for huey's scheduler that calls ``target`` here."""

        def run() -> None:
            module, _, name = target.partition(":")
            function = getattr(importlib.import_module(module), name)
            try:
                function(self.settings, self.session_factory)
            except Exception:  # logged; the next tick tries again
                log.exception("periodic task %s failed", target)

        run.__name__ = target.rpartition(":")[2]
        return run

    def run_job(self, job_id: int) -> None:
        """Run one job here and now: the body of the huey task.

        Failures are recorded on the job row (and logged), not re-raised: huey has nothing
        useful to do with them, and the row is what the portal and CLI show.
        """
        jobs = JobService(self.session_factory)
        try:
            state = jobs.get(job_id)
        except LookupError:
            log.exception("job %s vanished before it ran", job_id)
            return
        if state.finished:
            log.warning("job %s is already %s; not running it again", job_id, state.status)
            return
        worker = consumer_name()
        try:
            handler = handler_for(state.kind)
            jobs.start(job_id)
            fanout.hold_job(self.session_factory, job_id, worker, lease_seconds=self.lease_seconds)
            context = JobContext(state, self.settings, self.session_factory, jobs)
            # Renewed while the handler plans; released once its tasks are queued. A consumer
            # killed before that leaves a lease that runs out, and the reaper ends the job (or
            # queues its planned tasks again).
            with fanout.job_lease(self.session_factory, job_id, worker, self.lease_seconds):
                result = handler(context)
            if isinstance(result, fanout.FannedOut):
                log.info("job %s (%s): %d tasks queued", job_id, state.kind, len(result.task_ids))
                for task_id in result.task_ids:
                    self._piece(task_id)
                fanout.release_job(self.session_factory, job_id)
                fanout.finish_if_complete(self.session_factory, job_id, jobs)  # zero tasks
                return
            fanout.release_job(self.session_factory, job_id)
            if jobs.get(job_id).status is JobStatus.RUNNING:
                jobs.succeed(job_id, result=result)
        except Exception as error:
            log.exception("job %s (%s) failed", job_id, state.kind)
            with contextlib.suppress(JobStateError):  # the handler may have marked it
                jobs.fail(job_id, error)
            if jobs.get(job_id).status is JobStatus.FAILED:
                self.abandon(job_id)  # e.g. fail a benchmark run whose tasks were not all queued

    def run_task(self, task_id: int) -> None:
        """Run one task of a fanned-out job here: claim it, work under a renewed lease, record
        the outcome if the claim still holds, and end the job if this was its last task."""
        worker = consumer_name()
        claimed = fanout.claim(
            self.session_factory, task_id, worker, lease_seconds=self.lease_seconds
        )
        if claimed is None:
            log.info("task %s: done, failed or held by another worker; skipped", task_id)
            return
        jobs = JobService(self.session_factory)
        job = jobs.get(claimed.job_id)
        context = fanout.TaskContext(claimed, job, worker, self.settings, self.session_factory)
        started = time.perf_counter()
        status = "done"
        try:
            # The lease is renewed from the claim on, also while the first task of a process
            # imports its kind's modules (WeasyPrint takes seconds).
            with fanout.task_lease(self.session_factory, claimed, self.lease_seconds):
                handler_for(job.kind)  # imports the modules that register task kinds
                kind = fanout.kind_for(job.kind)
                outcome = kind.run(context)
            fanout.complete(kind, context, outcome, time.perf_counter() - started)
        except fanout.ClaimLostError:
            status = "dropped (claim lost)"
        except Exception as error:
            log.exception("task %s (%s) of job %s failed", task_id, claimed.key, job.id)
            status = "failed"
            with contextlib.suppress(fanout.ClaimLostError):
                fanout.fail(self.session_factory, claimed, error, time.perf_counter() - started)
        log.info(
            "task %s %s of job %s (%s): %s in %.2f s, attempt %d, worker %s",
            task_id,
            claimed.key,
            job.id,
            job.kind,
            status,
            time.perf_counter() - started,
            claimed.attempt,
            worker,
        )
        fanout.finish_if_complete(self.session_factory, job.id, jobs)

    def reap_stale(self) -> fanout.Reaped:
        """Put tasks of dead workers (and tasks whose messages were lost) back on the queue; end
        jobs whose last task it failed or that nobody ended, and clean up after jobs whose
        consumer died while planning (e.g. fail their run)."""
        load_handlers()  # finishing a job needs its task kind
        reaped = fanout.reap(self.session_factory)
        for task_id in reaped.requeued:
            self._piece(task_id)
        jobs = JobService(self.session_factory)
        for job_id in (*reaped.failed_jobs, *reaped.settled):
            fanout.finish_if_complete(self.session_factory, job_id, jobs)
        for job_id in reaped.stranded:
            self.abandon(job_id)
        return reaped

    def abandon(self, job_id: int) -> None:
        """Let a failed job's kind clean up after it (e.g. mark its benchmark run failed)."""
        state = JobService(self.session_factory).get(job_id)
        try:
            handler_for(state.kind)  # imports the modules that register task kinds
            kind = fanout.kind_for(state.kind)
        except LookupError:
            return  # a kind without tasks has nothing to clean up
        try:
            kind.abandon(state, state.error or "failed", self.session_factory)
        except Exception:  # logged; the job itself is failed already
            log.exception("job %s: cleaning up after it failed", job_id)

    def close(self) -> None:
        """Release the queue's storage connection and an engine it created."""
        storage_close = getattr(self.huey.storage, "close", None)
        if storage_close is not None:
            storage_close()
        if self._engine is not None and self._owns_engine:
            self._engine.dispose()


#: Where the portal keeps its process's queue.
REGISTRY_KEY = "qicollab.job_queue"


def registry_queue(registry: Any) -> JobQueue:
    """The web process's queue (built once from the settings and the app's engine)."""
    queue = registry.get(REGISTRY_KEY)
    if queue is None:
        queue = registry[REGISTRY_KEY] = JobQueue(registry.settings, engine=registry["db.engine"])
    return queue
