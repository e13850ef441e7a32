"""A real ``qicollab worker`` process: its heartbeat clears the coordinators' warning about
waiting jobs while it runs, and the warning comes back once it has stopped."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from qicollab.db import utcnow
from qicollab.jobs.models import Job, JobStatus, WorkerHeartbeat

ROOT = Path(__file__).resolve().parents[2]


def _home(browser):
    return browser.get("/").html.find(id="coordinator-home")


def _wait_for(db_session, condition, process, seconds=90.0):
    deadline = time.monotonic() + seconds
    while True:
        rows = db_session.execute(
            sa.select(
                WorkerHeartbeat.name,
                WorkerHeartbeat.mode,
                WorkerHeartbeat.beat_at,
                WorkerHeartbeat.stopped_at,
            )
        ).all()
        db_session.rollback()  # end the read: SQLite writers wait for readers
        if condition(rows):
            return rows
        if time.monotonic() > deadline:
            finished = process.poll() is not None and process.stdout and not process.stdout.closed
            output = process.stdout.read() if finished else "(no output yet)"
            raise AssertionError(f"worker heartbeat not seen as expected: {output}")
        time.sleep(0.2)


def test_a_worker_process_beats_and_the_portal_warning_follows_it(
    as_user, world, db_session, settings
):
    # A job has waited five minutes (a row only: no worker will find a message to run).
    db_session.add(
        Job(
            collaborative_id=world.collaborative.id,
            kind="benchmark-run",
            status=JobStatus.QUEUED,
            created_at=utcnow() - dt.timedelta(minutes=5),
        )
    )
    db_session.commit()
    coordinator = as_user("coordinator")  # signed in once: the world is not read again
    db_session.rollback()  # end the read of the world's users: SQLite writers wait for it
    home = _home(coordinator)
    assert "1 job waiting and no worker is running" in home.find(id="worker-warning").text
    assert "none heard from" in home.find(id="workers").text

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": settings["sqlalchemy.url"],
        "QICOLLAB_STORAGE": settings["qicollab.storage"],
        "QICOLLAB_SECRET": "worker-test-secret-" + "0" * 40,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "qicollab", "--config", str(ROOT / "development.ini"), "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        (row,) = _wait_for(
            db_session, lambda rows: any(r.stopped_at is None for r in rows), process
        )
        assert row.mode == "worker"
        assert row.name.endswith(f":{process.pid}")
        home = _home(coordinator)
        assert home.find(id="worker-warning") is None
        assert "1 running, 1 job waiting" in home.find(id="workers").text
    finally:
        process.terminate()  # Ctrl-C's gentler cousin: the worker marks itself stopped
        process.wait(timeout=60)
        if process.stdout:
            process.stdout.close()
    (row,) = _wait_for(db_session, lambda rows: all(r.stopped_at for r in rows), process, 5)
    assert row.stopped_at >= row.beat_at
    home = _home(coordinator)
    assert "no worker is running" in home.find(id="worker-warning").text
