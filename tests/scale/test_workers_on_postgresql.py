"""Two ``qicollab worker`` processes share one cycle's work through PostgreSQL.

A throwaway PostgreSQL cluster holds the 12-member demo, the huey queue (``PostgresHuey``) and
the job rows. Two worker processes, each with its own storage folder, take the tasks of a
benchmark run (one per measure) and of a report batch (one per report). The tests check that
every piece was done and recorded exactly once, that both workers took part (as the job's
status document and the result rows say), that the run's numbers equal a run computed in one
process, that the run was never visible half-stored, and that a worker killed with SIGKILL in
the middle of a report loses nothing: its task is taken over by the other worker once its lease
runs out, and no half-written file is left. The test process reads every report back from the
store (its own storage folder is a third one) and checks it against the recorded hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import webtest

from qicollab.benchmarking.models import BenchmarkRun, MeasureSummary, MemberResult, RunStatus
from qicollab.benchmarking.services import BenchmarkRunService, latest_run
from qicollab.benchmarking.snapshot import cycle_submission_ids
from qicollab.cycles.models import LearningCycle
from qicollab.db import create_engine_from_settings, get_session_factory, session_scope
from qicollab.demo.generator import DEFAULT_SEED, generate
from qicollab.demo.loader import HISTORY_CYCLE, load
from qicollab.jobs.models import JobStatus, JobTask, TaskStatus, WorkerHeartbeat
from qicollab.jobs.queue import JobQueue
from qicollab.jobs.services import JobService, JobState
from qicollab.measures.models import DataLevel, Measure
from qicollab.reporting.models import Report
from qicollab.reporting.rendering import JOB_KIND as RENDER_JOB
from qicollab.reporting.rendering import versioned_key
from qicollab.storage import file_store
from qicollab.storage.database import FILES

pytestmark = pytest.mark.postgresql

#: Short leases and beats so a killed worker's task is taken over within seconds.
LEASE_SECONDS = 4
BEAT_SECONDS = 1
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Deployment:
    """The shared database and the settings every process builds from."""

    settings: dict[str, Any]
    engine: sa.Engine
    folder: Path

    @property
    def factory(self) -> Any:
        return get_session_factory(self.engine)

    def process_settings(self, storage: Path) -> dict[str, Any]:
        return {**self.settings, "qicollab.storage": str(storage)}


@dataclass
class Worker:
    """A ``qicollab worker`` subprocess and its own storage folder."""

    process: subprocess.Popen[bytes]
    storage: Path
    log: Path

    @property
    def name(self) -> str:
        return f"{socket.gethostname()}:{self.process.pid}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _write_ini(path: Path, settings: dict[str, Any]) -> None:
    lines = ["[app:main]", "use = egg:qicollab"]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def deployment(postgres_cluster, tmp_path_factory) -> Deployment:
    """A database with the 12-member demo loaded, and the queue on PostgreSQL."""
    folder = tmp_path_factory.mktemp("scale")
    name = f"scale_{os.getpid()}"
    postgres_cluster.create_database(name, template="qicollab_template")
    settings = {
        "sqlalchemy.url": postgres_cluster.url(name),
        "qicollab.secret": "test-secret",
        "qicollab.storage": str(folder / "web"),
        "qicollab.queue.backend": "postgresql",
        "qicollab.queue.consumer": "separate",
        "qicollab.queue.lease_seconds": str(LEASE_SECONDS),
        "qicollab.queue.beat_seconds": str(BEAT_SECONDS),
        "qicollab.file_store": "database",
        "mail.mailer": "console",
    }
    engine = create_engine_from_settings(settings)
    with session_scope(get_session_factory(engine)) as session:
        load(session, generate(DEFAULT_SEED, n_members=12), storage=folder / "web")
    yield Deployment(settings, engine, folder)
    engine.dispose()


def _start_worker(deployment: Deployment, label: str) -> Worker:
    storage = deployment.folder / label
    ini = deployment.folder / f"{label}.ini"
    _write_ini(ini, deployment.process_settings(storage))
    log = deployment.folder / f"{label}.log"
    with log.open("wb") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "qicollab", "--config", str(ini), "worker"],
            stdout=stream,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    return Worker(process, storage, log)


@pytest.fixture(scope="module")
def workers(deployment) -> list[Worker]:
    """Two worker processes, each with its own storage folder, beating before tests start."""
    started = [_start_worker(deployment, label) for label in ("worker-a", "worker-b")]
    try:
        deadline = time.monotonic() + 60
        names = {worker.name for worker in started}
        while True:
            with deployment.factory() as session:
                beating = set(session.scalars(sa.select(WorkerHeartbeat.name)))
            if names <= beating:
                break
            for worker in started:
                assert worker.process.poll() is None, worker.log.read_text()
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.2)
        yield started
    finally:
        for worker in started:
            worker.stop()


def _wait(deployment: Deployment, job_id: int, *, timeout: float = 150, watch=None) -> JobState:
    jobs = JobService(deployment.factory)
    deadline = time.monotonic() + timeout
    while True:
        state = jobs.get(job_id)
        if watch is not None:
            watch(state)
        if state.finished:
            return state
        assert time.monotonic() < deadline, f"job {job_id} still {state.status}: {state.message}"
        time.sleep(0.1)


def _tasks(deployment: Deployment, job_id: int) -> list[JobTask]:
    with deployment.factory() as session:
        rows = list(session.scalars(sa.select(JobTask).where(JobTask.job_id == job_id)))
        session.expunge_all()
        return rows


def _results(deployment: Deployment, run_id: int) -> list[tuple[Any, ...]]:
    with deployment.factory() as session:
        return [
            tuple(row)
            for row in session.execute(
                sa.select(
                    MemberResult.measure_id,
                    MemberResult.member_id,
                    MemberResult.period_id,
                    MemberResult.value,
                    MemberResult.ci95_low,
                    MemberResult.shrunk_value,
                    MemberResult.outlier_status,
                    MemberResult.decile,
                )
                .where(MemberResult.run_id == run_id)
                .order_by(MemberResult.measure_id, MemberResult.member_id, MemberResult.period_id)
            )
        ]


def _aggregate_versions(deployment: Deployment) -> list[int]:
    """The cycle's current submissions of its aggregate measures (the patient-level ones take
    a minute each on a busy 2-core machine, and add nothing to what is tested here)."""
    with deployment.factory() as session:
        cycle = session.scalar(sa.select(LearningCycle).where(LearningCycle.code == HISTORY_CYCLE))
        aggregate = set(
            session.scalars(sa.select(Measure.id).where(Measure.level == DataLevel.AGGREGATE))
        )
        return [s for s, m in cycle_submission_ids(session, cycle) if m in aggregate]


def test_a_benchmark_run_is_computed_one_measure_per_task_by_both_workers(deployment, workers):
    service = BenchmarkRunService(deployment.factory)
    versions = _aggregate_versions(deployment)
    run = service.create(cycle_code=HISTORY_CYCLE, submission_ids=versions)
    queue = JobQueue(deployment.settings, engine=deployment.engine)
    seen: list[tuple[int | None, int]] = []

    def watch(_state: JobState) -> None:
        # What pages read while the run is being computed: never this run, never its rows
        # (some measures have committed by now, staged on their task rows).
        with deployment.factory() as session:
            shown = latest_run(session, run.collaborative_id)
            rows = session.scalar(
                sa.select(sa.func.count())
                .select_from(MemberResult)
                .where(MemberResult.run_id == run.id)
            )
            status = session.get(BenchmarkRun, run.id).status
        if status is not RunStatus.SUCCEEDED:
            seen.append((shown.id if shown is not None else None, rows))

    try:
        queue.enqueue(run.job_id)
        state = _wait(deployment, run.job_id, watch=watch)
    finally:
        queue.close()
    assert state.status is JobStatus.SUCCEEDED, state.error
    assert service.get(run.id).status is RunStatus.SUCCEEDED
    assert seen, "the run finished before it could be watched"
    assert all(shown != run.id and rows == 0 for shown, rows in seen)

    tasks = _tasks(deployment, run.job_id)
    with deployment.factory() as session:
        measures = dict(
            session.execute(
                sa.select(MeasureSummary.measure_id, MeasureSummary.worker)
                .where(MeasureSummary.run_id == run.id)
                .distinct()
            ).all()
        )
    # One task per measure, each done once, by the worker the measure's results name.
    assert len(tasks) == len(measures) >= 4
    assert all(t.status == TaskStatus.DONE and t.attempt == 1 for t in tasks)
    by_task = {int(t.params["measure_id"]): t.worker for t in tasks}
    assert by_task == measures
    assert set(by_task.values()) == {w.name for w in workers}
    assert {share.worker for share in state.tasks.workers} == {w.name for w in workers}
    assert sum(share.done for share in state.tasks.workers) == len(tasks)

    # The same numbers as a run computed in one process.
    serial = service.execute(service.create(cycle_code=HISTORY_CYCLE, submission_ids=versions).id)
    assert _results(deployment, run.id) == _results(deployment, serial.id)

    # Each worker logged its tasks' timings.
    for worker in workers:
        logged = worker.log.read_text()
        assert f"worker {worker.name}" in logged
        assert " done in " in logged


def _render_job(deployment: Deployment, run_id: int, **params: Any) -> int:
    with deployment.factory() as session:
        collaborative_id = session.get(BenchmarkRun, run_id).collaborative_id
    return (
        JobService(deployment.factory)
        .create(RENDER_JOB, params={"run_id": run_id, **params}, collaborative_id=collaborative_id)
        .id
    )


def _stored(deployment: Deployment, report: Report) -> bytes:
    """The report's bytes as another process (this one, with its own storage folder) reads
    them from the shared database store, checked against the recorded hash."""
    store = file_store(deployment.settings, deployment.engine)
    data = store.read(report.path, sha256=report.sha256)
    assert hashlib.sha256(data).hexdigest() == report.sha256
    assert data.startswith(b"%PDF-")
    return data


def test_reports_are_rendered_once_each_and_a_killed_worker_loses_nothing(deployment, workers):
    with deployment.factory() as session:
        run_id = session.scalar(
            sa.select(BenchmarkRun.id)
            .where(BenchmarkRun.status == RunStatus.SUCCEEDED)
            .order_by(BenchmarkRun.id)
            .limit(1)
        )
    assert run_id is not None, "the benchmark test runs first and leaves a run"
    queue = JobQueue(deployment.settings, engine=deployment.engine)
    try:
        job_id = _render_job(deployment, run_id)
        queue.enqueue(job_id)
        state = _wait(deployment, job_id)
        assert state.status is JobStatus.SUCCEEDED, state.error
        tasks = _tasks(deployment, job_id)
        with deployment.factory() as session:
            reports = list(session.scalars(sa.select(Report).where(Report.run_id == run_id)))
            session.expunge_all()
        # Every report rendered and recorded exactly once, by one of the two workers.
        assert len(reports) == len(tasks) == state.total >= 14
        assert all(t.status == TaskStatus.DONE and t.attempt == 1 for t in tasks)
        assert len({(r.kind, r.member_id) for r in reports}) == len(reports)
        assert {r.worker for r in reports} == {w.name for w in workers}
        for report in reports:
            _stored(deployment, report)
        first = {(r.kind, r.member_id): (r.sha256, r.job_id) for r in reports}

        # Four members' reports again, and kill worker A (SIGKILL) while it renders one.
        again = sorted(r.member_id for r in reports if r.member_id is not None)[:4]
        victim, survivor = workers
        job_id = _render_job(deployment, run_id, kinds=["member"], member_ids=again)
        queue.enqueue(job_id)
        killed: list[JobTask] = []
        deadline = time.monotonic() + 60
        while not killed:
            held = [
                t
                for t in _tasks(deployment, job_id)
                if t.status == TaskStatus.RUNNING and t.worker == victim.name
            ]
            if held:
                victim.process.send_signal(signal.SIGKILL)
                victim.process.wait()
                killed = held
            assert time.monotonic() < deadline, "worker A never took a report"
            time.sleep(0.02)
        state = _wait(deployment, job_id)
    finally:
        queue.close()
    assert state.status is JobStatus.SUCCEEDED, state.error
    tasks = {t.id: t for t in _tasks(deployment, job_id)}
    assert sorted(int(t.params["member_id"]) for t in tasks.values()) == again
    (lost,) = killed
    taken_over = tasks[lost.id]
    assert (taken_over.status, taken_over.attempt, taken_over.worker) == (
        TaskStatus.DONE,
        2,
        survivor.name,
    )
    assert all(t.attempt == 1 for t in tasks.values() if t.id != lost.id)
    with deployment.factory() as session:
        reports = list(session.scalars(sa.select(Report).where(Report.run_id == run_id)))
        session.expunge_all()
    assert {(r.kind, r.member_id) for r in reports} == set(first)
    for report in reports:
        task = next(
            (
                t
                for t in tasks.values()
                if versioned_key(t.params["path"], report.sha256) == report.path
            ),
            None,
        )
        if task is None:  # not in the second batch: as the first left it
            assert (report.sha256, report.job_id) == first[(report.kind, report.member_id)]
            continue
        assert (report.worker, report.job_id) == (task.worker, job_id)
        _stored(deployment, report)
    # No half-written file anywhere: the store holds one whole file per report key (a write
    # in progress has no key; the killed worker's transaction left none behind), and the
    # workers wrote nothing to their own folders.
    with deployment.factory() as session:
        keys = session.execute(sa.select(FILES.c.key, FILES.c.sha256)).all()
    assert sorted(keys) == sorted((r.path, r.sha256) for r in reports)
    for worker in workers:
        assert not (worker.storage / "reports").exists()
    with contextlib.suppress(Exception):
        victim.stop()


def test_a_web_node_with_its_own_folder_serves_each_report_with_its_recorded_hash(deployment):
    """The portal, built with yet another storage folder, streams every report the workers
    stored (the database store is all the machines share)."""
    from qicollab import make_config
    from qicollab.accounts.models import Role, User
    from qicollab.security import IDENTITY_LOADER_KEY

    web = deployment.process_settings(deployment.folder / "web-node")
    config = make_config({**web, "db.engine": deployment.engine})
    config.registry[IDENTITY_LOADER_KEY] = lambda request: request.db.get(
        User, int(request.environ["qicollab.test_user_id"])
    )
    with deployment.factory() as session:
        coordinator = session.scalar(sa.select(User.id).where(User.role == Role.COORDINATOR))
        reports = list(session.scalars(sa.select(Report).order_by(Report.id)))
        session.expunge_all()
    assert len(reports) >= 14
    browser = webtest.TestApp(
        config.make_wsgi_app(),
        extra_environ={"REMOTE_ADDR": "127.0.0.1", "qicollab.test_user_id": str(coordinator)},
    )
    for report in reports:
        response = browser.get(f"/reports/{report.id}/download")
        assert response.content_type == "application/pdf"
        assert hashlib.sha256(response.body).hexdigest() == report.sha256
    assert not (deployment.folder / "web-node" / "reports").exists()
