"""Jobs are always consumed: the embedded consumer beside the web server, heartbeats, warnings."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import sqlalchemy as sa

from qicollab.db import get_session_factory
from qicollab.jobs.embedded import start_embedded, wants_embedded
from qicollab.jobs.models import JobStatus, WorkerHeartbeat
from qicollab.jobs.queue import PERIODIC_TASKS, JobQueue, job_handler
from qicollab.jobs.services import JobService
from qicollab.jobs.workers import STALE_SECONDS, Heartbeat, worker_health


@job_handler("test.slow-square")
def _square(context):
    time.sleep(0.2)
    return {"square": context.job.params["n"] ** 2}


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_settings_choose_the_consumer():
    assert wants_embedded({})
    assert wants_embedded({"qicollab.queue.consumer": "Embedded"})
    assert not wants_embedded({"qicollab.queue.consumer": "separate"})
    assert not wants_embedded({"qicollab.queue.immediate": "true"})
    with pytest.raises(ValueError, match="embedded or separate"):
        wants_embedded({"qicollab.queue.consumer": "sometimes"})
    assert start_embedded({"qicollab.queue.consumer": "separate"}) is None


def test_the_embedded_consumer_runs_jobs_and_beats(settings, engine, db_session):
    factory = get_session_factory(engine)
    jobs = JobService(factory)
    consumer = start_embedded(settings, engine=engine)
    assert consumer is not None
    try:
        health = worker_health(db_session)
        assert len(health.live) == 1
        assert health.warning is None
        db_session.commit()
        ids = [jobs.create("test.slow-square", params={"n": n}).id for n in (3, 4, 5)]
        queue = JobQueue(settings, engine=engine)  # the portal's own handle on the same queue
        for job_id in ids:
            queue.enqueue(job_id)
        queue.close()
        assert wait_for(lambda: all(jobs.get(i).finished for i in ids))
        assert [jobs.get(i).result for i in ids] == [{"square": 9}, {"square": 16}, {"square": 25}]
        assert {jobs.get(i).status for i in ids} == {JobStatus.SUCCEEDED}
        # The scheduler knows the reminders.
        names = {task.__name__ for task in consumer.queue.huey._registry._periodic_tasks}
        assert {name for name, _, _ in PERIODIC_TASKS} <= names
    finally:
        consumer.stop()
    beat = db_session.scalar(sa.select(WorkerHeartbeat))
    assert beat.mode == "embedded"
    assert beat.stopped_at is not None
    db_session.commit()
    assert worker_health(db_session).live == ()


def test_jobs_waiting_without_a_live_worker_raise_the_warning(engine, db_session):
    factory = get_session_factory(engine)
    now = dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC)
    JobService(factory, clock=lambda: now).create("test.slow-square", params={"n": 2})
    # Just queued: a worker may not have looked yet.
    assert worker_health(db_session, now=now + dt.timedelta(seconds=5)).warning is None
    later = now + dt.timedelta(minutes=2)
    health = worker_health(db_session, now=later)
    assert health.waiting == 1
    assert health.warning.startswith("1 job waiting and no worker is running")
    db_session.commit()
    # A worker that beat recently is alive; one silent for longer than STALE_SECONDS is not.
    beat = Heartbeat(factory, mode="worker", clock=lambda: later - dt.timedelta(seconds=5))
    beat.beat(started=True)
    assert worker_health(db_session, now=later).warning is None
    db_session.commit()
    much_later = later + dt.timedelta(seconds=STALE_SECONDS + 1)
    assert worker_health(db_session, now=much_later).stalled
