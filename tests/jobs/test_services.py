"""The job lifecycle: create, start, progress in its own transaction, succeed, fail."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from qicollab.db import READ_ONLY_OPTION, get_session_factory, session_scope
from qicollab.jobs.models import Job, JobStatus
from qicollab.jobs.services import JobService, JobStateError, error_text


@pytest.fixture
def jobs(engine):
    return JobService(get_session_factory(engine))


def test_lifecycle_to_success(jobs):
    job = jobs.create("test.kind", params={"run_id": 7}, total=3)
    state = jobs.get(job.id)
    assert state.status is JobStatus.QUEUED
    assert state.params == {"run_id": 7}
    assert state.progress == 0.0
    jobs.start(job.id)
    state = jobs.progress(job.id, 1, 3, "first of three")
    assert (state.done, state.total, state.message) == (1, 3, "first of three")
    assert state.progress == pytest.approx(1 / 3)
    final = jobs.succeed(job.id, result={"ok": True})
    assert final.status is JobStatus.SUCCEEDED
    assert final.done == final.total == 3
    assert final.result == {"ok": True}
    assert final.finished_at is not None
    assert final.finished
    document = final.to_json()
    assert document["status"] == "succeeded"
    assert document["progress"] == 1.0


def test_fail_records_the_error_text(jobs):
    job = jobs.create("test.kind")
    jobs.start(job.id)
    try:
        raise ValueError("too few events for measure X")
    except ValueError as error:
        state = jobs.fail(job.id, error)
    assert state.status is JobStatus.FAILED
    assert state.error == "ValueError: too few events for measure X"
    assert state.finished


def test_finished_jobs_do_not_change(jobs):
    job = jobs.create("test.kind")
    jobs.start(job.id)
    jobs.succeed(job.id)
    with pytest.raises(JobStateError):
        jobs.progress(job.id, 1, 2)
    with pytest.raises(JobStateError):
        jobs.fail(job.id, "late")
    with pytest.raises(JobStateError):
        jobs.start(job.id)


def test_progress_is_visible_to_another_session_while_work_is_open(engine, jobs):
    """The work's transaction stays open; progress commits separately and is seen.

    On PostgreSQL the work even holds uncommitted writes; on SQLite (one writer at a time) the
    work reads while it computes, which is how benchmark runs are built.
    """
    job = jobs.create("test.kind", total=4)
    jobs.start(job.id)
    reading = engine.execution_options(**{READ_ONLY_OPTION: True})
    work = get_session_factory(engine)(bind=engine if engine.dialect.name != "sqlite" else reading)
    observer = get_session_factory(engine)(bind=reading)
    try:
        if engine.dialect.name == "sqlite":
            work.execute(sa.select(sa.func.count()).select_from(Job)).scalar_one()
        else:
            work.add(Job(kind="uncommitted"))
            work.flush()
        for done in range(1, 4):
            jobs.progress(job.id, done, 4, f"step {done}")
            seen = observer.execute(sa.select(Job.done, Job.message).where(Job.id == job.id)).one()
            observer.rollback()  # a fresh snapshot for the next look
            assert tuple(seen) == (done, f"step {done}")
        assert work.in_transaction()
    finally:
        work.close()
        observer.close()


def test_create_in_the_callers_transaction_rolls_back_with_it(engine, jobs):
    factory = get_session_factory(engine)
    session = factory()
    job = jobs.create("test.kind", session=session)
    assert job.id is not None
    session.rollback()
    session.close()
    with session_scope(factory) as check:
        assert check.scalar(sa.select(sa.func.count()).select_from(Job)) == 0


def test_succeed_in_the_callers_transaction(engine, jobs):
    job = jobs.create("test.kind", total=2)
    jobs.start(job.id)
    with session_scope(get_session_factory(engine)) as session:
        jobs.succeed(job.id, result={"run": 1}, session=session)
        assert jobs.get(job.id).status is JobStatus.RUNNING  # not before the work commits
    state = jobs.get(job.id)
    assert state.status is JobStatus.SUCCEEDED
    assert state.done == 2


def test_listener_sees_every_state_change(engine):
    seen = []
    jobs = JobService(get_session_factory(engine), listener=seen.append)
    job = jobs.create("test.kind")
    jobs.start(job.id)
    for done in range(1, 4):
        jobs.progress(job.id, done, 3, f"{done}")
    jobs.succeed(job.id, result={})
    assert [(state.status, state.done) for state in seen] == [
        (JobStatus.RUNNING, 0),
        (JobStatus.RUNNING, 1),
        (JobStatus.RUNNING, 2),
        (JobStatus.RUNNING, 3),
        (JobStatus.SUCCEEDED, 3),
    ]


def test_error_text_is_trimmed():
    assert len(error_text("x" * 10_000)) == 4000
    assert error_text(KeyError("a")) == "KeyError: 'a'"


def test_recent_filters_by_collaborative(jobs, people):
    jobs.create("a", collaborative_id=people.collaborative.id)
    jobs.create("b", collaborative_id=people.other_collaborative.id)
    jobs.create("c", collaborative_id=people.collaborative.id)
    assert [s.kind for s in jobs.recent(collaborative_id=people.collaborative.id)] == ["c", "a"]
    assert len(jobs.recent(limit=2)) == 2
