"""``qicollab compute`` and ``qicollab runs`` on the demo data, in-process and through the queue."""

from __future__ import annotations

import json
import re

import sqlalchemy as sa
from click.testing import CliRunner

from qicollab.benchmarking.models import BenchmarkRun, RunStatus
from qicollab.cli import cli
from qicollab.db import create_engine_from_settings
from qicollab.demo.loader import HISTORY_CYCLE, OPEN_CYCLE


def _run(database, args, **kwargs):
    env = {
        "DATABASE_URL": database.url,
        "QICOLLAB_STORAGE": database.settings["qicollab.storage"],
    }
    return CliRunner().invoke(cli, args, env=env, **kwargs)


def _runs(database):
    engine = create_engine_from_settings(database.settings)
    try:
        with engine.connect() as connection:
            return connection.execute(
                sa.select(BenchmarkRun.id, BenchmarkRun.status).order_by(BenchmarkRun.id)
            ).all()
    finally:
        engine.dispose()


def test_compute_in_process_then_list_and_show(small_demo):
    result = _run(small_demo, ["compute", "--cycle", HISTORY_CYCLE], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "run 1 succeeded" in result.output
    assert _runs(small_demo) == [(1, RunStatus.SUCCEEDED)]
    listing = _run(small_demo, ["runs", "list"], catch_exceptions=False)
    assert HISTORY_CYCLE in listing.output
    assert "succeeded" in listing.output
    shown = _run(small_demo, ["runs", "show", "1"], catch_exceptions=False)
    assert "SURG-MORT" in shown.output
    assert "c=0." in shown.output
    as_json = json.loads(
        _run(small_demo, ["runs", "show", "1", "--json"], catch_exceptions=False).output
    )
    assert as_json["status"] == "succeeded"
    assert len(as_json["measures"]) == 8
    assert _run(small_demo, ["runs", "show", "99"]).exit_code == 1


def test_compute_refuses_an_open_cycle(small_demo):
    result = _run(small_demo, ["compute", "--cycle", OPEN_CYCLE])
    assert result.exit_code == 1
    assert "lock it before computing" in result.output
    assert _runs(small_demo) == []


def test_compute_enqueue_then_a_worker_runs_it(small_demo):
    result = _run(
        small_demo,
        ["compute", "--cycle", HISTORY_CYCLE, "--enqueue", "--set", "trim=0.05"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "run 1 queued as job 1" in result.output
    assert _runs(small_demo) == [(1, RunStatus.QUEUED)]
    worker = _run(small_demo, ["worker", "--drain"], catch_exceptions=False)
    # The job and the one task per measure it fans out into all run in the draining worker.
    ran = re.search(r"ran (\d+) queued task", worker.output)
    assert ran is not None, worker.output
    assert int(ran[1]) > 1, worker.output
    assert _runs(small_demo) == [(1, RunStatus.SUCCEEDED)]
    job = json.loads(_run(small_demo, ["jobs", "show", "1"], catch_exceptions=False).output)
    assert job["status"] == "succeeded"
    assert job["result"]["run_id"] == 1
    shown = json.loads(_run(small_demo, ["runs", "show", "1", "--json"]).output)
    assert shown["settings"]["trim"] == 0.05


def test_compute_enqueue_and_wait_follows_the_job(small_demo, tmp_path):
    """With an immediate queue (an ini setting) the job has run by the time it is followed."""
    ini = tmp_path / "immediate.ini"
    ini.write_text(
        "[app:main]\nuse = egg:qicollab\nqicollab.queue.immediate = true\n"
        f"qicollab.storage = {small_demo.settings['qicollab.storage']}\n"
    )
    result = _run(
        small_demo,
        ["--config", str(ini), "compute", "--cycle", HISTORY_CYCLE, "--enqueue", "--wait"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "run 1 queued as job 1" in result.output
    assert "run 1 succeeded" in result.output
    followed = _run(small_demo, ["jobs", "show", "1", "--follow"], catch_exceptions=False)
    assert '"status": "succeeded"' in followed.output


def test_help():
    for args in (["compute", "--help"], ["runs", "--help"], ["runs", "show", "--help"]):
        assert CliRunner().invoke(cli, args).exit_code == 0
