"""huey integration: immediate mode, the SQLite and PostgreSQL queues, enqueue after commit."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import huey
import pytest
import sqlalchemy as sa

from qicollab.db import get_session_factory, session_scope, utcnow
from qicollab.jobs import fanout
from qicollab.jobs.models import JobStatus, JobTask, TaskStatus
from qicollab.jobs.queue import JobQueue, job_handler, make_huey
from qicollab.jobs.services import JobService
from qicollab.reporting.rendering import JOB_KIND

CALLS: list[dict] = []


@job_handler("test.echo")
def _echo(context):
    CALLS.append(dict(context.job.params))
    context.jobs.progress(context.job.id, 1, 2, "half way")
    return {"echo": context.job.params.get("word")}


@job_handler("test.boom")
def _boom(context):
    raise RuntimeError("the computation exploded")


@pytest.fixture(autouse=True)
def _clear_calls():
    CALLS.clear()


def _queue(settings, engine, **overrides):
    return JobQueue({**settings, **overrides}, engine=engine)


def test_immediate_mode_runs_the_job_at_enqueue(settings, engine):
    queue = _queue(settings, engine, **{"qicollab.queue.immediate": "true"})
    jobs = JobService(get_session_factory(engine))
    job = jobs.create("test.echo", params={"word": "hello"})
    queue.enqueue(job.id)
    state = jobs.get(job.id)
    assert state.status is JobStatus.SUCCEEDED
    assert state.result == {"echo": "hello"}
    assert CALLS == [{"word": "hello"}]


def test_a_failing_handler_marks_the_job_failed(settings, engine, caplog):
    queue = _queue(settings, engine, **{"qicollab.queue.immediate": "true"})
    jobs = JobService(get_session_factory(engine))
    job = jobs.create("test.boom")
    queue.enqueue(job.id)
    state = jobs.get(job.id)
    assert state.status is JobStatus.FAILED
    assert state.error == "RuntimeError: the computation exploded"
    assert "failed" in caplog.text


def test_unknown_kind_fails_cleanly(settings, engine):
    queue = _queue(settings, engine, **{"qicollab.queue.immediate": "true"})
    jobs = JobService(get_session_factory(engine))
    job = jobs.create("no.such.kind")
    queue.enqueue(job.id)
    assert "no handler" in jobs.get(job.id).error


def test_enqueue_after_commit_not_before_and_never_on_rollback(settings, engine):
    queue = _queue(settings, engine, **{"qicollab.queue.immediate": "true"})
    factory = get_session_factory(engine)
    jobs = JobService(factory)
    session = factory()
    job = jobs.create("test.echo", params={"word": "kept"}, session=session)
    queue.enqueue_after_commit(session, job.id)
    assert CALLS == []  # nothing runs inside the transaction
    session.commit()
    session.close()
    assert CALLS == [{"word": "kept"}]
    session = factory()
    dropped = jobs.create("test.echo", params={"word": "dropped"}, session=session)
    queue.enqueue_after_commit(session, dropped.id)
    session.rollback()
    session.close()
    assert CALLS == [{"word": "kept"}]


def test_sqlite_queue_in_storage_is_drained_by_a_worker(settings, engine, tmp_path):
    queue = _queue(settings, engine)
    assert isinstance(queue.huey, huey.SqliteHuey)
    assert (tmp_path / "storage" / "huey.sqlite").exists()
    jobs = JobService(get_session_factory(engine))
    ids = [jobs.create("test.echo", params={"word": w}).id for w in ("a", "b")]
    for job_id in ids:
        queue.enqueue(job_id)
    assert queue.pending() == 2
    assert jobs.get(ids[0]).status is JobStatus.QUEUED
    # A second process would build its own queue from the same settings.
    worker = _queue(settings, engine)
    assert worker.drain() == 2
    assert [jobs.get(i).status for i in ids] == [JobStatus.SUCCEEDED] * 2
    queue.close()
    worker.close()


@pytest.mark.postgresql
def test_postgresql_queue_lives_in_its_own_schema(settings, engine, request):
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    queue = _queue(settings, engine, **{"qicollab.queue.backend": "postgresql"})
    assert isinstance(queue.huey, huey.PostgresHuey)
    jobs = JobService(get_session_factory(engine))
    job = jobs.create("test.echo", params={"word": "pg"})
    queue.enqueue(job.id)
    with session_scope(get_session_factory(engine)) as session:
        schemas = session.execute(
            sa.text(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = 'huey_task'"
            )
        ).scalars()
        assert list(schemas) == ["qicollab_queue"]
    assert queue.drain() == 1
    assert jobs.get(job.id).status is JobStatus.SUCCEEDED
    queue.close()


def test_unknown_backend_is_refused(settings):
    with pytest.raises(ValueError, match="unknown"):
        make_huey({**settings, "qicollab.queue.backend": "carrier-pigeon"})


def test_memory_backend(settings):
    assert isinstance(make_huey({**settings, "qicollab.queue.backend": "memory"}), huey.MemoryHuey)


def test_idle_consumers_look_at_the_queue_at_least_every_poll_seconds(settings, engine):
    """huey backs an idle consumer off to 10 s; ours stop at poll_seconds, so tasks another
    worker fans out (or a job enqueued after a quiet spell) wait at most that long."""
    default = _queue(settings, engine).create_consumer(workers=1, worker_type="thread")
    assert default.max_delay == 1.0
    assert default.default_delay <= default.max_delay
    quick = _queue(settings, engine, **{"qicollab.queue.poll_seconds": "0.05"})
    consumer = quick.create_consumer(workers=2, worker_type="thread")
    assert (consumer.default_delay, consumer.max_delay) == (0.05, 0.05)
    assert consumer.periodic


REAPER_PROCESS = """
import sys
import sqlalchemy as sa
from qicollab.db import create_engine_from_settings
from qicollab.jobs import fanout
from qicollab.jobs.queue import JobQueue
from qicollab.reporting.rendering import JOB_KIND

settings = {"sqlalchemy.url": sys.argv[1], "qicollab.storage": sys.argv[2]}
try:
    fanout.kind_for(JOB_KIND)
except LookupError:
    pass
else:
    raise SystemExit("the report task kind was registered before the reaper ran")
engine = create_engine_from_settings(settings)
queue = JobQueue({**settings, "qicollab.queue.backend": "memory"}, engine=engine)
print(queue.reap_stale().failed_jobs)
"""


def test_a_reaper_in_a_process_that_never_ran_a_job_ends_the_job_it_failed(settings, engine):
    """A process consumer's parent only reaps: when it fails a job's last task (its worker
    died too often), it must still know the job's kind to end the job, not leave it running."""
    factory = get_session_factory(engine)
    jobs = JobService(factory)
    job_id = jobs.create(JOB_KIND, params={"run_id": 1}).id
    jobs.start(job_id)
    fanout.plan_tasks(factory, job_id, [fanout.TaskSpec("member-1.pdf", {})])
    with session_scope(factory) as session:
        session.execute(
            sa.update(JobTask)
            .where(JobTask.job_id == job_id)
            .values(
                status=TaskStatus.RUNNING,
                attempt=fanout.MAX_ATTEMPTS,
                worker="gone:1",
                lease_until=utcnow() - dt.timedelta(seconds=5),
            )
        )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            REAPER_PROCESS,
            settings["sqlalchemy.url"],
            settings["qicollab.storage"],
        ],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"({job_id},)"
    state = jobs.get(job_id)
    assert state.status is JobStatus.FAILED
    assert "member-1.pdf" in (state.error or "")
