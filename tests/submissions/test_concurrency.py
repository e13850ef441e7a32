"""Many submitters at once, and a writer killed mid-commit: versions are whole and unique."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from qicollab.db import create_engine_from_settings, get_session_factory
from qicollab.measures.models import Measure
from qicollab.members.models import Member
from qicollab.submissions.errors import SubmissionError
from qicollab.submissions.models import PatientRecord, Submission, SubmissionStatus
from qicollab.submissions.services import SubmissionService
from tests.submissions.conftest import NOW, aggregate_csv

THREADS = 20
ROOT = Path(__file__).resolve().parents[2]


def submit_concurrently(settings, world, contents):
    """Each thread: its own engine connection, session and service; returns errors seen."""
    engine = create_engine_from_settings(settings, poolclass=sa.pool.NullPool)
    factory = get_session_factory(engine)
    barrier = threading.Barrier(len(contents))
    errors: list[BaseException] = []
    results = []

    def work(data: bytes) -> None:
        session = factory()
        try:
            member = session.get(Member, world.member.id)
            measure = session.get(Measure, world.hh.id)
            _ = member.collaborative
            # End the loading transaction before waiting: on SQLite it holds the write lock.
            session.commit()
            service = SubmissionService(session, clock=lambda: NOW)
            barrier.wait()
            result = service.commit(
                member=member,
                measure=measure,
                data=data,
                filename="c.csv",
                actor="thread",
                reason="concurrent correction",
            )
            session.commit()
            results.append(result)
        except BaseException as error:
            session.rollback()
            errors.append(error)
        finally:
            session.close()

    threads = [threading.Thread(target=work, args=(data,)) for data in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    engine.dispose()
    return results, errors


def test_twenty_submitters_each_get_their_own_version(settings, world, db_session):
    contents = [aggregate_csv(f"2026-03,{i},100,,") for i in range(THREADS)]
    results, errors = submit_concurrently(settings, world, contents)
    assert errors == []
    assert len(results) == THREADS
    db_session.rollback()
    versions = db_session.scalars(sa.select(Submission).order_by(Submission.version)).all()
    assert [v.version for v in versions] == list(range(1, THREADS + 1))
    assert versions[0].predecessor_id is None
    for previous, current in itertools.pairwise(versions):
        assert current.predecessor_id == previous.id
        assert previous.status is SubmissionStatus.SUPERSEDED
    assert versions[-1].status is SubmissionStatus.SUBMITTED
    numerators = sorted(v.aggregate.numerator for v in versions)
    assert numerators == list(range(THREADS))


def test_twenty_identical_submissions_store_one_version(settings, world, db_session):
    results, errors = submit_concurrently(settings, world, [aggregate_csv("2026-04,5,9,,")] * 20)
    assert errors == []
    assert sum(not r.duplicate for r in results) == 1
    assert {r.versions[0].submission_id for r in results} == {results[0].versions[0].submission_id}
    db_session.rollback()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Submission)) == 1


def run_writer(settings, world, rows, *, pause):
    command = [
        sys.executable,
        "-m",
        "tests.submissions.writer_process",
        settings["sqlalchemy.url"],
        str(world.member.id),
        str(world.surg.id),
        str(rows),
        *(["pause"] if pause else []),
    ]
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def stored(settings):
    """Submissions and patient rows, as a separate short-lived connection sees them.

    A fresh connection per look, closed at once, as another process would inspect the file
    (a connection kept in this process's pool across the writer's crash is not what is tested).
    """
    engine = create_engine_from_settings(settings, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            counts = (
                connection.scalar(sa.select(sa.func.count()).select_from(Submission)),
                connection.scalar(sa.select(sa.func.count()).select_from(PatientRecord)),
            )
            if connection.dialect.name == "sqlite":
                assert connection.execute(sa.text("PRAGMA integrity_check")).scalar() == "ok"
            connection.rollback()
    finally:
        engine.dispose()
    return counts


def finish(process):
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_writer_killed_mid_commit_leaves_nothing_then_a_retry_stores_everything(
    settings, world, engine
):
    engine.dispose()
    writer = run_writer(settings, world, 4000, pause=True)
    try:
        lines = []
        for line in writer.stdout:
            lines.append(line.strip())
            if line.strip() == "MIDWAY":
                break
        assert "MIDWAY" in lines, writer.stderr.read()
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        finish(writer)
    assert writer.returncode == -signal.SIGKILL
    assert stored(settings) == (0, 0)
    retry = run_writer(settings, world, 4000, pause=False)
    out, err = retry.communicate(timeout=120)
    finish(retry)
    assert "DONE" in out, err
    assert stored(settings) == (1, 4000)


@pytest.mark.parametrize("delay", [0.2, 0.6, 1.0])
def test_writer_killed_at_any_moment_leaves_all_or_nothing(settings, world, engine, delay):
    import time

    engine.dispose()
    writer = run_writer(settings, world, 20_000, pause=False)
    try:
        assert writer.stdout.readline().strip() == "STARTED"
        time.sleep(delay)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        finish(writer)
    assert stored(settings) in {(0, 0), (1, 20_000)}


def test_submission_errors_do_not_leak_between_threads(settings, world):
    contents = [aggregate_csv("2026-05,1,2,,")] + [aggregate_csv("2026-05,9,2,,")] * 3
    results, errors = submit_concurrently(settings, world, contents)
    assert len(results) == 1
    assert len(errors) == 3
    assert all(isinstance(error, SubmissionError) for error in errors)
