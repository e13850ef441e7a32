"""Fanned-out jobs: planning, claims and leases, exactly-once recording, reaping, the final step.

A job kind defined here records each task's outcome in a table of its own (``fanout_outcomes``,
created per test) so the tests can count what was recorded; the engine under test is the real
one, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from qicollab.db import get_session_factory, session_scope, utcnow
from qicollab.jobs import fanout
from qicollab.jobs.models import Job, JobStatus, JobTask, TaskStatus
from qicollab.jobs.queue import JobQueue, job_handler
from qicollab.jobs.services import JobService
from qicollab.jobs.workers import consumer_name

KIND = "test-fanout"
OUTCOMES = sa.table("fanout_outcomes", sa.column("key"), sa.column("value"))


class Squares:
    """Each task squares its number; a number in ``params["fail"]`` raises."""

    def __init__(self) -> None:
        self.finished: list[int] = []
        self.abandoned: list[tuple[int, str]] = []

    def run(self, context: fanout.TaskContext) -> int:
        number = int(context.task.params["n"])
        if number in context.job.params.get("fail", []):
            msg = f"cannot square {number}"
            raise ValueError(msg)
        return number * number

    def record(self, session, context: fanout.TaskContext, outcome: int) -> str:
        session.execute(sa.insert(OUTCOMES).values(key=context.task.key, value=outcome))
        return str(outcome)

    def finish(self, session, job, tasks, session_factory) -> fanout.JobOutcome:
        del session, session_factory
        self.finished.append(job.id)
        failed = [t.key for t in tasks if t.status is TaskStatus.FAILED]
        if failed:
            return fanout.JobOutcome(False, "failed", error=f"failed: {', '.join(failed)}")
        total = sum(int(t.output or 0) for t in tasks)
        return fanout.JobOutcome(True, "summed", result={"sum": total})

    def abandon(self, job, error, session_factory) -> None:
        del session_factory
        self.abandoned.append((job.id, error))


SQUARES = Squares()
fanout.task_kind(KIND, SQUARES)


@job_handler(KIND)
def _plan_squares(context) -> fanout.FannedOut:
    if context.job.params.get("hang"):  # a handler stuck planning, for the kill test
        time.sleep(600)
    numbers = context.job.params["numbers"]
    return fanout.plan_tasks(
        context.session_factory,
        context.job.id,
        [fanout.TaskSpec(f"n{n}", {"n": n}) for n in numbers],
    )


@pytest.fixture
def factory(engine):
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE fanout_outcomes (key VARCHAR(20), value INT)"))
    return get_session_factory(engine)


@pytest.fixture
def jobs(factory):
    return JobService(factory)


def _outcomes(factory) -> list[tuple[str, int]]:
    with factory() as session:
        return sorted(tuple(row) for row in session.execute(sa.select(OUTCOMES)))


def _running_job(jobs: JobService, **params: Any) -> int:
    job_id = jobs.create(KIND, params=params).id
    jobs.start(job_id)
    return job_id


def test_a_fanned_out_job_runs_every_task_once_and_ends_with_its_final_step(
    settings, engine, factory, jobs
):
    SQUARES.finished.clear()
    queue = JobQueue({**settings, "qicollab.queue.immediate": "true"}, engine=engine)
    job_id = jobs.create(KIND, params={"numbers": [1, 2, 3, 4, 5]}).id
    queue.enqueue(job_id)
    state = jobs.get(job_id)
    assert state.status is JobStatus.SUCCEEDED
    assert state.result == {"sum": 55}
    assert (state.done, state.total) == (5, 5)
    assert _outcomes(factory) == [("n1", 1), ("n2", 4), ("n3", 9), ("n4", 16), ("n5", 25)]
    assert SQUARES.finished == [job_id]
    # The status document counts the tasks, by worker.
    tasks = state.to_json()["tasks"]
    assert (tasks["done"], tasks["failed"], tasks["total"]) == (5, 0, 5)
    assert [w["worker"] for w in tasks["by_worker"]] == [consumer_name()]
    assert tasks["by_worker"][0]["done"] == 5
    # A late duplicate queue message of a done task does nothing.
    with factory() as session:
        first = session.scalar(sa.select(JobTask.id).where(JobTask.job_id == job_id).limit(1))
    queue.run_task(first)
    assert len(_outcomes(factory)) == 5
    assert SQUARES.finished == [job_id]


def test_a_failed_task_fails_the_job_and_the_others_are_kept(settings, engine, factory, jobs):
    SQUARES.abandoned.clear()
    queue = JobQueue({**settings, "qicollab.queue.immediate": "true"}, engine=engine)
    job_id = jobs.create(KIND, params={"numbers": [1, 2, 3], "fail": [2]}).id
    queue.enqueue(job_id)
    state = jobs.get(job_id)
    assert state.status is JobStatus.FAILED
    assert state.error == "failed: n2"
    assert _outcomes(factory) == [("n1", 1), ("n3", 9)]
    assert SQUARES.abandoned == [(job_id, "failed: n2")]
    with factory() as session:
        failed = session.scalars(
            sa.select(JobTask).where(JobTask.job_id == job_id, JobTask.status == "failed")
        ).one()
        assert failed.key == "n2"
        assert "ValueError: cannot square 2" in failed.error


def test_planning_is_idempotent(factory, jobs):
    job_id = _running_job(jobs)
    specs = [fanout.TaskSpec(f"n{n}", {"n": n}) for n in range(3)]
    first = fanout.plan_tasks(factory, job_id, specs)
    again = fanout.plan_tasks(factory, job_id, [*specs, fanout.TaskSpec("n9", {"n": 9})])
    assert len(first.task_ids) == 3
    assert set(first.task_ids) < set(again.task_ids)
    assert len(again.task_ids) == 4
    assert jobs.get(job_id).total == 4
    with pytest.raises(ValueError, match="unique"):
        fanout.plan_tasks(factory, job_id, [specs[0], specs[0]])


def test_a_claim_excludes_others_until_its_lease_runs_out_and_a_lost_claim_records_nothing(
    settings, factory, jobs
):
    job_id = _running_job(jobs)
    (task_id,) = fanout.plan_tasks(factory, job_id, [fanout.TaskSpec("n7", {"n": 7})]).task_ids
    now = utcnow()
    first = fanout.claim(factory, task_id, "host-a:1", lease_seconds=30, now=now)
    assert first is not None
    assert (first.attempt, first.worker) == (1, "host-a:1")
    # Held: nobody else gets it, however often the message is delivered.
    assert fanout.claim(factory, task_id, "host-b:2", lease_seconds=30, now=now) is None
    # Renewing keeps it held past the first lease.
    assert fanout.renew(factory, first, lease_seconds=30, now=now + dt.timedelta(seconds=20))
    later = now + dt.timedelta(seconds=40)
    assert fanout.claim(factory, task_id, "host-b:2", lease_seconds=30, now=later) is None
    # Not renewed any more (worker killed): after the lease, another worker takes it over.
    much_later = now + dt.timedelta(seconds=60)
    second = fanout.claim(factory, task_id, "host-b:2", lease_seconds=30, now=much_later)
    assert second is not None
    assert (second.attempt, second.worker) == (2, "host-b:2")
    job = jobs.get(job_id)
    context = fanout.TaskContext(first, job, "host-a:1", settings, factory)
    with pytest.raises(fanout.ClaimLostError):
        fanout.complete(SQUARES, context, 49, seconds=1.0)
    assert not fanout.renew(factory, first)
    assert _outcomes(factory) == []
    fanout.complete(
        SQUARES, fanout.TaskContext(second, job, "host-b:2", settings, factory), 49, 2.0
    )
    assert _outcomes(factory) == [("n7", 49)]
    with factory() as session:
        row = session.get(JobTask, task_id)
        assert (row.status, row.worker, row.attempt, row.output) == ("done", "host-b:2", 2, "49")
    assert jobs.get(job_id).done == 1


def test_the_reaper_requeues_tasks_of_dead_workers_and_fails_them_after_max_attempts(factory, jobs):
    SQUARES.finished.clear()
    SQUARES.abandoned.clear()
    job_id = _running_job(jobs)
    specs = [fanout.TaskSpec("n1", {"n": 1}), fanout.TaskSpec("n2", {"n": 2})]
    one, two = fanout.plan_tasks(factory, job_id, specs).task_ids
    now = utcnow()
    assert fanout.claim(factory, one, "dead:1", lease_seconds=5, now=now) is not None
    assert fanout.claim(factory, two, "alive:2", lease_seconds=600, now=now) is not None
    assert fanout.reap(factory, now=now + dt.timedelta(seconds=1)).requeued == ()
    reaped = fanout.reap(factory, now=now + dt.timedelta(seconds=10))
    assert (reaped.requeued, reaped.failed_jobs) == ((one,), ())
    with factory() as session:
        assert session.get(JobTask, one).status == TaskStatus.QUEUED
        assert session.get(JobTask, two).status == TaskStatus.RUNNING
    # The task keeps dying: after MAX_ATTEMPTS claims the reaper fails it.
    for attempt in range(2, fanout.MAX_ATTEMPTS + 1):
        at = now + dt.timedelta(seconds=20 * attempt)
        claimed = fanout.claim(factory, one, f"dead:{attempt}", lease_seconds=5, now=at)
        assert claimed is not None
        assert claimed.attempt == attempt
        reaped = fanout.reap(factory, now=at + dt.timedelta(seconds=10))
    assert (reaped.requeued, reaped.failed_jobs) == ((), (job_id,))
    with factory() as session:
        row = session.get(JobTask, one)
        assert row.status == TaskStatus.FAILED
        assert f"stopped {fanout.MAX_ATTEMPTS} times" in row.error
    # The job ends only when its other task ends too.
    assert fanout.finish_if_complete(factory, job_id, jobs) is None
    with session_scope(factory) as session:
        session.execute(sa.update(JobTask).where(JobTask.id == two).values(status="done"))
    ended = fanout.finish_if_complete(factory, job_id, jobs)
    assert ended is not None
    assert ended.status is JobStatus.FAILED
    assert SQUARES.finished == [job_id]
    assert SQUARES.abandoned == [(job_id, "failed: n1")]
    # Ending it again is a no-op.
    assert fanout.finish_if_complete(factory, job_id, jobs) is None
    assert SQUARES.finished == [job_id]


def test_the_embedded_consumer_of_the_default_setup_runs_fanned_out_jobs(settings, engine, jobs):
    """``qicollab serve`` on SQLite (SqliteHuey, two consumer threads): a job's tasks run beside
    the web server, and the embedded heartbeat reaps a task whose claim has expired."""
    from qicollab.jobs.embedded import start_embedded

    factory = get_session_factory(engine)
    fast = {**settings, "qicollab.queue.beat_seconds": "0.2", "qicollab.queue.lease_seconds": "1"}
    consumer = start_embedded(fast, engine=engine)
    assert consumer is not None
    try:
        # A task claimed by a worker that then died: the reaper puts it back, a thread runs it.
        job_id = _running_job(jobs)
        (dead,) = fanout.plan_tasks(factory, job_id, [fanout.TaskSpec("n6", {"n": 6})]).task_ids
        assert fanout.claim(factory, dead, "gone:1", lease_seconds=0.5) is not None
        queue = JobQueue(fast, engine=engine)  # the portal's own handle on the same queue
        queued = jobs.create(KIND, params={"numbers": [7, 8, 9]}).id
        queue.enqueue(queued)
        queue.close()
        deadline = time.monotonic() + 60
        while not (jobs.get(queued).finished and jobs.get(job_id).finished):
            assert time.monotonic() < deadline, "the embedded consumer did not finish the jobs"
            time.sleep(0.1)
    finally:
        consumer.stop()
    assert jobs.get(queued).result == {"sum": 49 + 64 + 81}
    assert jobs.get(job_id).result == {"sum": 36}
    with factory() as session:
        taken = session.get(JobTask, dead)
        assert (taken.attempt, taken.worker) == (2, consumer_name())


#: A consumer process that runs one job's handler (here: one that hangs while planning).
HANDLER_PROCESS = """
import sys
from tests.jobs import test_fanout  # registers the test kind and its handler
from qicollab.jobs.queue import JobQueue
queue = JobQueue({"sqlalchemy.url": sys.argv[1], "qicollab.storage": sys.argv[2],
                  "qicollab.queue.backend": "memory", "qicollab.queue.lease_seconds": "2"})
queue.run_job(int(sys.argv[3]))
"""


def _job_row(factory, job_id):
    with factory() as session:
        return session.get(Job, job_id)


def test_a_job_whose_consumer_is_killed_while_planning_is_failed_by_the_reaper(
    settings, engine, factory, jobs
):
    """The handler's consumer renews the job's lease while it plans; killed (SIGKILL) before
    any task exists, its lease runs out and the reaper fails the job with a clear reason and
    lets its kind clean up (a benchmark run is marked failed the same way)."""
    SQUARES.abandoned.clear()
    job_id = jobs.create(KIND, params={"numbers": [1], "hang": True}).id
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HANDLER_PROCESS,
            settings["sqlalchemy.url"],
            settings["qicollab.storage"],
            str(job_id),
        ],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        deadline = time.monotonic() + 60
        while _job_row(factory, job_id).lease_until is None:
            assert process.poll() is None, "the handler process ended early"
            assert time.monotonic() < deadline, "the handler never took the job"
            time.sleep(0.1)
        first = _job_row(factory, job_id)
        assert first.status is JobStatus.RUNNING
        assert first.worker.endswith(f":{process.pid}")
        # Alive: the lease is renewed (every lease/3 s), and the reaper leaves the job alone.
        while _job_row(factory, job_id).lease_until == first.lease_until:
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(0.1)
        queue = JobQueue({**settings, "qicollab.queue.backend": "memory"}, engine=engine)
        assert queue.reap_stale().stranded == ()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        assert _job_row(factory, job_id).status is JobStatus.RUNNING  # nobody knows yet
        while utcnow() <= _job_row(factory, job_id).lease_until:
            time.sleep(0.2)
        reaped = queue.reap_stale()
        queue.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert reaped.stranded == (job_id,)
    state = jobs.get(job_id)
    assert state.status is JobStatus.FAILED
    assert "stopped while planning" in state.error
    assert "start it again" in state.error
    assert str(process.pid) not in state.error  # host names are for coordinators
    assert SQUARES.abandoned == [(job_id, state.error)]
    # A second pass finds nothing more to do.
    assert fanout.reap(factory, now=utcnow() + dt.timedelta(hours=1)).stranded == ()


def test_a_job_whose_consumer_died_after_planning_gets_its_tasks_queued_again(factory, jobs):
    """Killed between committing its tasks and queueing them: the reaper queues the planned
    tasks (a duplicate message is harmless: claims are conditional) and the job runs on."""
    job_id = _running_job(jobs)
    now = utcnow()
    assert fanout.hold_job(factory, job_id, "dead:1", lease_seconds=5, now=now)
    one, two = fanout.plan_tasks(
        factory, job_id, [fanout.TaskSpec("n1", {"n": 1}), fanout.TaskSpec("n2", {"n": 2})]
    ).task_ids
    assert fanout.claim(factory, one, "alive:2", lease_seconds=600, now=now) is not None
    assert fanout.reap(factory, now=now + dt.timedelta(seconds=1)) == fanout.Reaped((), ())
    reaped = fanout.reap(factory, now=now + dt.timedelta(seconds=10))
    assert reaped == fanout.Reaped((two,), (), ())
    row = _job_row(factory, job_id)
    assert (row.status, row.lease_until) == (JobStatus.RUNNING, None)
    assert fanout.reap(factory, now=now + dt.timedelta(seconds=20)) == fanout.Reaped((), ())


def test_a_queued_job_runs_under_a_lease_released_once_its_tasks_are_queued(
    settings, engine, factory, jobs
):
    """Through the queue (immediate mode: its tasks run as they are queued)."""
    queue = JobQueue(
        {**settings, "qicollab.queue.backend": "memory", "qicollab.queue.immediate": "true"},
        engine=engine,
    )
    job_id = jobs.create(KIND, params={"numbers": [2, 3]}).id
    queue.enqueue(job_id)
    queue.close()
    row = _job_row(factory, job_id)
    assert (row.status, row.result) == (JobStatus.SUCCEEDED, {"sum": 13})
    assert (row.worker, row.lease_until) == (consumer_name(), None)


def test_a_job_run_here_goes_through_the_same_handler_and_tasks(settings, engine, factory, jobs):
    """``run_here`` with no processes (``qicollab reports render --workers 0``): the handler
    plans, every task is claimed and recorded, the final step ends the job, in this process."""
    from qicollab.jobs.local import run_here

    job_id = jobs.create(KIND, params={"numbers": [4, 5, 6]}).id
    with run_here(settings, job_id, processes=0, engine=engine):
        pass
    state = jobs.get(job_id)
    assert (state.status, state.result) == (JobStatus.SUCCEEDED, {"sum": 16 + 25 + 36})
    assert _outcomes(factory) == [("n4", 16), ("n5", 25), ("n6", 36)]
    assert state.tasks is not None
    assert [(s.worker, s.done) for s in state.tasks.workers] == [(consumer_name(), 3)]


def test_the_cli_hands_a_job_to_the_running_workers_when_one_is_alive(
    settings, engine, factory, jobs
):
    """A worker's recent heartbeat: the command enqueues on the shared queue and follows the
    job (here a thread drains that queue, as a `qicollab worker` would) instead of running it."""
    import threading

    from qicollab.cli._dispatch import run_job
    from qicollab.cli.context import LazyApp
    from qicollab.jobs.local import workers_running
    from qicollab.jobs.workers import Heartbeat

    shared = {**settings, "qicollab.queue.backend": "sqlite"}
    app = LazyApp(None)
    app.__dict__.update(settings=shared, engine=engine, session_factory=factory)
    assert not workers_running(shared, factory)
    Heartbeat(factory, mode="worker").beat(started=True)
    assert workers_running(shared, factory)
    assert not workers_running({**shared, "qicollab.queue.immediate": "true"}, factory)

    job_id = jobs.create(KIND, params={"numbers": [7]}).id
    consumer = JobQueue(shared, engine=engine)

    def drain_when_queued() -> None:
        deadline = time.monotonic() + 60
        while not consumer.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        consumer.drain()

    thread = threading.Thread(target=drain_when_queued)
    thread.start()
    try:
        state = run_job(
            app, job_id, processes=None, default_processes=0, description="t", bar=False
        )
    finally:
        thread.join()
        consumer.close()
    assert (state.status, state.result) == (JobStatus.SUCCEEDED, {"sum": 49})


def test_a_job_run_by_consumers_that_cannot_start_fails_instead_of_waiting_forever(
    settings, engine, jobs
):
    """``run_here`` with processes: consumers that exit at once (here they cannot open their
    database) fail the job with their exit codes, so the command following it ends."""
    from qicollab.jobs.local import run_here

    broken = {**settings, "sqlalchemy.url": f"sqlite:///{settings['qicollab.storage']}/no/db"}
    job_id = jobs.create(KIND, params={"numbers": [1]}).id
    deadline = time.monotonic() + 120
    with run_here(broken, job_id, processes=1, engine=engine):
        while not jobs.get(job_id).finished:
            assert time.monotonic() < deadline, "the job was left waiting"
            time.sleep(0.2)
    state = jobs.get(job_id)
    assert state.status is JobStatus.FAILED
    assert "worker processes started for it exited" in state.error


def test_a_job_whose_tasks_cannot_all_be_queued_is_failed_and_cleaned_up_after(
    settings, engine, factory, jobs, monkeypatch
):
    """Queueing the third of five planned tasks fails (the queue's database went away): the
    job is failed and its kind cleans up after it (a benchmark run is marked failed), so the
    cycle is not left believing a computation is under way."""
    SQUARES.abandoned.clear()
    queue = JobQueue({**settings, "qicollab.queue.backend": "memory"}, engine=engine)
    queued: list[int] = []

    def piece(task_id: int) -> None:
        if len(queued) == 2:
            msg = "the queue's connection was lost"
            raise ConnectionError(msg)
        queued.append(task_id)

    monkeypatch.setattr(queue, "_piece", piece)
    job_id = jobs.create(KIND, params={"numbers": [1, 2, 3, 4, 5]}).id
    queue.run_job(job_id)
    queue.close()
    state = jobs.get(job_id)
    assert state.status is JobStatus.FAILED
    assert "connection was lost" in (state.error or "")
    assert [job for job, _error in SQUARES.abandoned] == [job_id]


def test_the_reaper_ends_a_job_whose_last_task_ended_without_ending_it(
    factory, jobs, settings, engine
):
    """The worker that recorded the last task died (or its database call failed) before it
    ran the job's final step: a reaper pass runs it, once."""
    SQUARES.finished.clear()
    job_id = _running_job(jobs)
    (task_id,) = fanout.plan_tasks(factory, job_id, [fanout.TaskSpec("n3", {"n": 3})]).task_ids
    claimed = fanout.claim(factory, task_id, "mortal:1")
    assert claimed is not None
    job = jobs.get(job_id)
    context = fanout.TaskContext(claimed, job, "mortal:1", settings, factory)
    fanout.complete(SQUARES, context, 9, 0.1)  # ... and the worker dies here
    assert jobs.get(job_id).status is JobStatus.RUNNING
    queue = JobQueue({**settings, "qicollab.queue.backend": "memory"}, engine=engine)
    assert queue.reap_stale().settled == (job_id,)
    assert queue.reap_stale().settled == ()
    queue.close()
    state = jobs.get(job_id)
    assert (state.status, state.result) == (JobStatus.SUCCEEDED, {"sum": 9})
    assert SQUARES.finished == [job_id]


def test_the_reaper_sends_again_the_queued_tasks_whose_messages_were_lost(factory, jobs):
    """A claim that failed on a database error dropped its message: once nothing has started
    for STALL_SECONDS the reaper sends the job's queued tasks again; before that (a busy queue's
    messages are only waiting) it leaves them."""
    job_id = _running_job(jobs)
    specs = [fanout.TaskSpec("n4", {"n": 4}), fanout.TaskSpec("n5", {"n": 5})]
    four, five = fanout.plan_tasks(factory, job_id, specs).task_ids
    now = utcnow()
    assert fanout.claim(factory, four, "alive:1", lease_seconds=3600, now=now) is not None
    later = now + dt.timedelta(seconds=fanout.STALL_SECONDS + 1)
    assert fanout.reap(factory, now=later).requeued == ()  # one of its tasks is running
    with session_scope(factory) as session:
        session.execute(sa.update(JobTask).where(JobTask.id == four).values(status="done"))
    assert fanout.reap(factory, now=now + dt.timedelta(seconds=5)).requeued == ()
    assert fanout.reap(factory, now=later).requeued == (five,)
