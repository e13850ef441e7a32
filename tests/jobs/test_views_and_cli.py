"""The job status JSON view (who may read it) and the jobs/worker commands."""

from __future__ import annotations

import json

import pytest
import webtest
from click.testing import CliRunner

from qicollab import make_config
from qicollab.accounts.models import User
from qicollab.cli import cli
from qicollab.db import get_session_factory, session_scope
from qicollab.jobs.models import Job, TaskStatus
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


def test_a_fanned_out_job_shows_its_tasks_by_worker(portal, people, engine, settings, job):
    from qicollab.jobs import fanout

    factory = get_session_factory(engine)
    specs = [fanout.TaskSpec(f"measure:{n}", {"n": n}) for n in range(4)]
    ids = fanout.plan_tasks(factory, job.id, specs).task_ids
    claims = [
        fanout.claim(factory, task_id, worker)
        for task_id, worker in zip(
            ids, ["node-1:10", "node-1:10", "node-2:20", "node-2:20"], strict=True
        )
    ]
    for claim in claims[:2]:
        with session_scope(factory) as session:
            fanout._end(session, claim, TaskStatus.DONE, 2.5)
    fanout.fail(factory, claims[2], "ValueError: no data", 1.0)
    document = portal(people.coordinator).get(f"/jobs/{job.id}").json["tasks"]
    assert (document["total"], document["done"], document["failed"], document["running"]) == (
        4,
        2,
        1,
        1,
    )
    assert document["by_worker"] == [
        {"worker": "node-1:10", "done": 2, "failed": 0, "running": 0, "seconds": 5.0},
        {"worker": "node-2:20", "done": 0, "failed": 1, "running": 1, "seconds": 1.0},
    ]
    page = portal(people.coordinator).get(f"/jobs/{job.id}", headers={"Accept": "text/html"})
    rows = page.html.select("#job-workers tbody tr")
    assert [row.th.get_text(strip=True) for row in rows] == ["node-1:10", "node-2:20"]
    assert [td.get_text(strip=True) for td in rows[1].find_all("td")] == ["0", "1", "1", "1.0"]
    assert "2 done, 1 failed" in page.html.select_one("#job-tasks").get_text(" ", strip=True)
    shown = json.loads(_run(["jobs", "show", str(job.id)], settings).output)
    assert shown["tasks"]["by_worker"][0]["done"] == 2


def test_only_coordinators_see_which_workers_did_the_tasks(portal, people, engine, job):
    """The creator (a quality officer) follows the same progress, without host names or pids,
    in the JSON and on the page; the result's list of workers is dropped for them too."""
    from qicollab.jobs import fanout

    factory = get_session_factory(engine)
    specs = [fanout.TaskSpec(f"measure:{n}", {"n": n}) for n in range(3)]
    ids = fanout.plan_tasks(factory, job.id, specs).task_ids
    for task_id, worker in zip(ids, ["node-1:10", "node-2:20", "node-2:20"], strict=True):
        claim = fanout.claim(factory, task_id, worker)
        with session_scope(factory) as session:
            fanout._end(session, claim, TaskStatus.DONE, 1.0)
    with session_scope(factory) as session:
        session.get(Job, job.id).result = {"rendered": 3, "workers": ["node-1:10", "node-2:20"]}

    coordinator = portal(people.coordinator).get(f"/jobs/{job.id}").json
    assert [share["worker"] for share in coordinator["tasks"]["by_worker"]] == [
        "node-1:10",
        "node-2:20",
    ]
    assert coordinator["result"]["workers"] == ["node-1:10", "node-2:20"]

    officer = portal(people.officer).get(f"/jobs/{job.id}")
    assert (officer.json["tasks"]["done"], officer.json["tasks"]["total"]) == (3, 3)
    assert officer.json["tasks"]["by_worker"] == []
    assert officer.json["result"] == {"rendered": 3}
    assert "node-" not in officer.text
    page = portal(people.officer).get(f"/jobs/{job.id}", headers={"Accept": "text/html"})
    assert page.html.select("#job-workers") == []
    assert "3 done, 0 failed" in page.html.select_one("#job-tasks").get_text(" ", strip=True)
    assert "node-" not in page.text
    coordinator_page = portal(people.coordinator).get(
        f"/jobs/{job.id}", headers={"Accept": "text/html"}
    )
    assert len(coordinator_page.html.select("#job-workers tbody tr")) == 2
