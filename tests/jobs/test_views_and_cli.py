"""The job status JSON view (who may read it) and the jobs/worker commands."""

from __future__ import annotations

import json

import pytest
import webtest
from click.testing import CliRunner

from qicollab import make_config
from qicollab.accounts.models import User
from qicollab.cli import cli
from qicollab.db import get_session_factory
from qicollab.jobs.services import JobService
from qicollab.security import IDENTITY_LOADER_KEY

USER_KEY = "qicollab.test_user_id"


def _loader(request):
    raw = request.environ.get(USER_KEY)
    return None if raw is None else request.db.get(User, int(raw))


@pytest.fixture
def portal(settings, engine):
    config = make_config({**settings, "db.engine": engine})
    config.registry[IDENTITY_LOADER_KEY] = _loader
    app = config.make_wsgi_app()

    def as_user(user):
        environ = {"REMOTE_ADDR": "127.0.0.1"}
        if user is not None:
            environ[USER_KEY] = str(user.id)
        return webtest.TestApp(app, extra_environ=environ)

    return as_user


@pytest.fixture
def job(engine, people):
    jobs = JobService(get_session_factory(engine))
    job = jobs.create(
        "benchmark-run",
        collaborative_id=people.collaborative.id,
        created_by_id=people.officer.id,
        params={"run_id": 1},
        total=8,
    )
    jobs.start(job.id)
    jobs.progress(job.id, 3, 8, "SURG-MORT: funnel")
    return job


def test_creator_and_coordinator_read_the_status(portal, people, job):
    for user in (people.officer, people.coordinator):
        response = portal(user).get(f"/jobs/{job.id}")
        assert response.content_type == "application/json"
        assert response.json["status"] == "running"
        assert (response.json["done"], response.json["total"]) == (3, 8)
        assert response.json["message"] == "SURG-MORT: funnel"
        assert "no-store" in response.headers["Cache-Control"]


def test_others_may_not(portal, people, job):
    assert portal(people.other_officer).get(f"/jobs/{job.id}", status=403)
    assert portal(None).get(f"/jobs/{job.id}", status=403)
    # Another collaborative's coordinator does not learn that the job exists.
    assert portal(people.foreign_coordinator).get(f"/jobs/{job.id}", status=404)
    assert portal(people.coordinator).get("/jobs/999999", status=404)
    assert portal(people.coordinator).get("/jobs/abc", status=404)


def _run(args, settings):
    env = {
        "DATABASE_URL": settings["sqlalchemy.url"],
        "QICOLLAB_STORAGE": settings["qicollab.storage"],
    }
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def test_jobs_list_and_show(settings, job):
    result = _run(["jobs", "list"], settings)
    assert result.exit_code == 0
    assert "benchmark-run" in result.output
    assert "3/8" in result.output
    result = _run(["jobs", "show", str(job.id)], settings)
    assert result.exit_code == 0
    assert json.loads(result.output)["message"] == "SURG-MORT: funnel"
    result = CliRunner().invoke(
        cli,
        ["jobs", "show", "424242"],
        env={"DATABASE_URL": settings["sqlalchemy.url"]},
    )
    assert result.exit_code == 1
    assert "no job 424242" in result.output


def test_jobs_show_exits_1_for_a_failed_job(settings, engine, job):
    JobService(get_session_factory(engine)).fail(job.id, "ZeroDivisionError: boom")
    result = _run(["jobs", "show", str(job.id), "--follow"], settings)
    assert result.exit_code == 1
    assert json.loads(result.output[result.output.index("{") :])["status"] == "failed"


def test_worker_drain_on_an_empty_queue(settings):
    result = _run(["worker", "--drain"], settings)
    assert result.exit_code == 0
    assert "ran 0 queued tasks" in result.output


def test_help():
    for args in (["jobs", "--help"], ["jobs", "show", "--help"], ["worker", "--help"]):
        assert CliRunner().invoke(cli, args).exit_code == 0
