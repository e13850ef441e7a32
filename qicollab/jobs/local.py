"""Running a job from the command line: the same handler and task code as ``qicollab worker``.

``qicollab reports render`` and ``qicollab compute`` create a job and then either hand it to
the running workers (a worker's heartbeat is recent: enqueue on the shared queue) or run it
here: with no processes, the job and every task it fans out run in this process (a private
immediate queue); with N processes, N short-lived consumers (spawned, each exactly what
``qicollab worker`` runs) drain a private queue in the storage folder and stop when the job
has ended. Either way the caller follows the job's row with a progress bar.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qicollab.config import as_bool, storage_path
from qicollab.jobs.queue import BACKEND, IMMEDIATE, URL, JobQueue
from qicollab.jobs.services import JobService, JobStateError
from qicollab.jobs.workers import Heartbeat, worker_health

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)


def workers_running(settings: dict[str, Any], session_factory: sessionmaker[Session]) -> bool:
    """Some ``qicollab worker`` (or embedded consumer) consumes the shared queue now."""
    if as_bool(settings.get(IMMEDIATE)) or str(settings.get(BACKEND)).lower() == "memory":
        return False  # nothing outside this process reads that queue
    with session_factory() as session:
        return bool(worker_health(session).live)


def consume(settings: dict[str, Any], *, workers: int = 1, worker_type: str = "thread") -> None:
    """Consume the queue until Ctrl-C: ``workers`` threads or processes taking tasks, and a
    heartbeat that reaps dead workers' tasks (the body of ``qicollab worker`` and of the
    short-lived consumers started here)."""
    queue = JobQueue(settings)
    try:
        consumer = queue.create_consumer(workers=workers, worker_type=worker_type)
        heartbeat = Heartbeat(
            queue.session_factory,
            mode="worker",
            interval=queue.beat_seconds,
            on_beat=queue.reap_stale,
        ).start()
        try:
            consumer.run()
        finally:
            heartbeat.stop()
    finally:
        queue.close()


@contextlib.contextmanager
def run_here(
    settings: dict[str, Any], job_id: int, *, processes: int, engine: sa.Engine
) -> Iterator[None]:
    """Run a created job here while the ``with`` block follows it; on leaving the block the
    work has stopped (consumers are stopped after the job ended, or when the caller gave up).

    ``processes`` 0 runs the handler and every task in a thread of this process; more start
    that many consumer processes on a private queue."""
    if processes <= 0:
        private = {**settings, BACKEND: "memory", IMMEDIATE: "true"}
        queue = JobQueue(private, engine=engine)
        thread = threading.Thread(
            target=queue.run_job, args=(job_id,), name="qicollab-job", daemon=True
        )
        thread.start()
        yield  # an interrupted caller leaves the daemon thread to die with the process
        thread.join()
        queue.close()
        return
    folder = storage_path(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="queue-", dir=folder) as scratch:
        private = {
            **settings,
            BACKEND: "sqlite",
            URL: str(Path(scratch) / "huey.sqlite"),
            IMMEDIATE: "false",
        }
        queue = JobQueue(private, engine=engine)
        context = multiprocessing.get_context("spawn")
        consumers = [context.Process(target=consume, args=(private,)) for _ in range(processes)]
        for process in consumers:
            process.start()
        stopped = threading.Event()
        watchdog = threading.Thread(
            target=_fail_if_consumers_exit,
            args=(consumers, queue, job_id, stopped),
            name="qicollab-watchdog",
            daemon=True,
        )
        try:
            queue.enqueue(job_id)
            watchdog.start()
            yield
        finally:
            stopped.set()
            queue.close()
            for process in consumers:
                if process.pid is not None and process.is_alive():
                    os.kill(process.pid, signal.SIGINT)  # huey finishes its task, then stops
            for process in consumers:
                process.join(timeout=60)
                if process.is_alive():
                    process.kill()
                    process.join()


def _fail_if_consumers_exit(
    consumers: list[Any], queue: JobQueue, job_id: int, stopped: threading.Event
) -> None:
    """Fail the job when every consumer started for it has exited before it ended (e.g. a
    consumer could not open the database), so the caller following it does not wait forever."""
    while not stopped.wait(1.0):
        if any(process.is_alive() for process in consumers):
            continue
        codes = ", ".join(str(process.exitcode) for process in consumers)
        try:
            JobService(queue.session_factory).fail(
                job_id, f"the worker processes started for it exited (exit codes {codes})"
            )
        except JobStateError:
            return  # it ended meanwhile
        queue.abandon(job_id)
        return
