"""A report batch through the per-task dispatch: the worker keeps the run's shared data warm.

Every report task of a run reads the member's own rows, but the run's shared data (every
member's results, the funnels' peers) is read once per worker process and run, and read again
for another run. Names, codes and groups are read once per batch, so a member renamed between
two batches is printed as it now is.
"""

from __future__ import annotations

import pytest
from cachetools import LRUCache

from qicollab.db import get_session_factory, session_scope
from qicollab.jobs.local import run_here
from qicollab.jobs.models import JobStatus
from qicollab.jobs.services import JobService
from qicollab.reporting import rendering, results
from qicollab.reporting.rendering import JOB_KIND
from tests.reporting.world import build_world


@pytest.fixture
def world(engine):
    with session_scope(get_session_factory(engine)) as session:
        return build_world(session, n_members=3, n_measures=2, months=12)


def test_a_worker_reads_a_runs_shared_data_once_for_all_its_report_tasks(
    settings, engine, world, monkeypatch
):
    reads: list[int] = []
    batches: list[int] = []
    read_core, load_run = results._read_core, results.load_run

    def counted_core(session, run_id):
        reads.append(run_id)
        return read_core(session, run_id)

    def counted_load(session, run_id):
        batches.append(run_id)
        return load_run(session, run_id)

    monkeypatch.setattr(results, "_read_core", counted_core)
    monkeypatch.setattr(results, "load_run", counted_load)
    monkeypatch.setattr(results, "_CORES", LRUCache(maxsize=results.CACHED_RUNS))
    monkeypatch.setattr(rendering, "_TASK_STATE", None)  # a fresh worker process
    jobs = JobService(get_session_factory(engine))
    params = {"run_id": world.run_id, "kinds": ["member"]}
    first = jobs.create(JOB_KIND, params=params).id
    with run_here(settings, first, processes=0, engine=engine):
        pass
    state = jobs.get(first)
    assert state.status is JobStatus.SUCCEEDED, state.error
    assert state.result["rendered"] == 3
    assert (reads, batches) == ([world.run_id], [world.run_id])
    # A second batch of the same run in the same worker reads the names again, nothing else.
    second = jobs.create(JOB_KIND, params={**params, "member_ids": [world.member]}).id
    with run_here(settings, second, processes=0, engine=engine):
        pass
    assert jobs.get(second).status is JobStatus.SUCCEEDED
    assert (reads, batches) == ([world.run_id], [world.run_id] * 2)
    # Another run's batch reads that run.
    with session_scope(get_session_factory(engine)) as session:
        other = build_world(session, n_members=2, n_measures=1, months=12, seed=8)
    third = jobs.create(JOB_KIND, params={"run_id": other.run_id, "kinds": ["member"]}).id
    with run_here(settings, third, processes=0, engine=engine):
        pass
    assert jobs.get(third).status is JobStatus.SUCCEEDED
    assert reads == [world.run_id, other.run_id]
