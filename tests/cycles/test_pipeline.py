"""The cycle page as a pipeline: consequences in numbers, lock reasons, unlock, jobs, publish."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from qicollab.benchmarking.models import BenchmarkRun, MemberResult, RunStatus
from qicollab.cycles.models import CycleStatus, LearningCycle
from qicollab.cycles.pipeline import RENDER_JOB_KIND
from qicollab.jobs.models import Job, JobStatus
from qicollab.jobs.queue import JobQueue
from qicollab.jobs.workers import worker_health
from qicollab.reporting.models import Report
from qicollab.reporting.rendering import JOB_KIND as RENDER_KIND
from tests.cycles.test_views import read, submit


def stages(page):
    return {
        li["data-stage"]: li["class"][1].removeprefix("stage-")
        for li in page.html.find(id="pipeline").find_all("li", class_="stage")
    }


def action_form(page, action):
    return next(
        f
        for f in page.forms.values()
        if f.get("action", default=None) and f["action"].value == action
    )


def said(page, action):
    return " ".join(li.text for li in page.html.find(id=f"action-{action}").find_all("li"))


def test_render_job_kind_is_the_reporting_handlers():
    assert RENDER_JOB_KIND == RENDER_KIND


def test_coordinator_runs_the_pipeline_from_the_portal(
    as_user, world, db_session, settings, engine
):
    rows = [
        {"period": f"2026-{m:02d}", "numerator": str(40 + m), "denominator": "50"}
        for m in range(1, 6)
    ]
    submit(db_session, world, world.h01, rows)
    submit(db_session, world, world.h02, rows[:3])
    browser = as_user("coordinator")
    page = browser.get("/cycles/C2026")
    assert stages(page) == {
        "open": "done",
        "closed": "current",
        "locked": "todo",
        "computed": "todo",
        "reports rendered": "todo",
        "published": "todo",
    }
    # HH: 5 + 3 submitted of 24; CLABSI: 0 of 24; SURG (yearly): 0 of 2 -> 50 cells, 42 missing.
    text = said(page, "lock")
    assert "The deadline is not reached yet: 10 days left." in text
    assert "42 of 50 member x measure x period cells are missing." in text
    assert "8 submissions not reviewed yet." in text

    form = action_form(page, "lock")
    form["reason"] = "the collaborative agreed to benchmark HH now"
    page = form.submit().follow()
    assert stages(page)["locked"] == "done"
    assert stages(page)["computed"] == "current"
    assert "from 8 submitted values" in said(page, "compute")

    page = action_form(page, "compute").submit().follow()
    job_id = read(db_session, sa.select(BenchmarkRun.job_id))
    assert page.html.find(id=f"job-{job_id}").find(class_="job-status").text == "queued"
    # A second press while it waits shows the same job instead of queueing another.
    again = action_form(page, "compute").submit()
    assert f"running={job_id}" in again.location
    assert (
        f"Job {job_id} is already doing this" in again.follow().html.find(id="already-running").text
    )
    assert read(db_session, sa.select(sa.func.count()).select_from(Job)) == 1
    # Nobody consumes the queue: coordinators are told once the job has waited a while.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert "1 job waiting and no worker is running" in worker_health(db_session, now=later).warning
    db_session.commit()

    queue = JobQueue(settings, engine=engine)
    try:
        # The job and the per-measure tasks it fans out all run; nothing is left queued.
        assert queue.drain() > 1
        assert queue.drain() == 0
        run = read(db_session, sa.select(BenchmarkRun))
        assert run.status is RunStatus.SUCCEEDED, run.error
        page = browser.get("/cycles/C2026")
        assert stages(page)["computed"] == "done"
        members = read(
            db_session,
            sa.select(sa.func.count(sa.distinct(MemberResult.member_id))).where(
                MemberResult.run_id == run.id
            ),
        )
        assert f"Renders {members} member report" in said(page, "render")
        page = action_form(page, "render").submit().follow()
        render_job = read(
            db_session, sa.select(Job).where(Job.kind == RENDER_KIND).order_by(Job.id.desc())
        )
        assert render_job.status is JobStatus.QUEUED
        assert queue.drain() > 1
        assert queue.drain() == 0
    finally:
        queue.close()
    kinds = read(db_session, sa.select(Report.kind, Report.member_id), "execute")
    assert sorted(k.value for k, _ in kinds) == sorted(
        ["blinded-summary", "collaborative"] + ["member"] * members
    )
    page = browser.get("/cycles/C2026")
    assert stages(page)["reports rendered"] == "done"
    assert "2 members (4 users) see run" in said(page, "publish")
    page = action_form(page, "publish").submit().follow()
    assert page.html.find(id="status").text == "published"
    assert set(stages(page).values()) == {"done"}
    status = read(db_session, sa.select(LearningCycle.status).where(LearningCycle.code == "C2026"))
    assert status is CycleStatus.PUBLISHED


def test_unlock_needs_a_reason_and_a_fresh_run_before_publishing(as_user, world, db_session):
    browser = as_user("coordinator")
    page = browser.get("/cycles/C2025")  # locked 50 days ago, no run
    refused = browser.post(
        "/cycles/C2025/status",
        {"action": "publish", "csrf_token": action_form(page, "unlock")["csrf_token"].value},
        expect_errors=True,
    )
    assert refused.status_int == 422
    assert "no succeeded benchmark run since it was locked" in refused.html.find(id="error").text
    refused = action_form(page, "unlock").submit(expect_errors=True)
    assert "an unlock reason is required" in refused.html.find(id="error").text
    form = action_form(refused, "unlock")
    form["reason"] = "a member found a counting error"
    page = form.submit().follow()
    assert page.html.find(id="status").text == "closed"
    # The reopened window can take data again; lock before the deadline needs no reason
    # only when nothing is missing, which is not the case here.
    assert "Locking freezes the data" in said(page, "lock")
    row = read(
        db_session,
        sa.select(LearningCycle.status, LearningCycle.locked_at).where(
            LearningCycle.code == "C2025"
        ),
        "execute",
    ).one()
    assert tuple(row) == (CycleStatus.CLOSED, None)


def test_the_cycle_page_lists_every_lock_and_unlock_with_who_when_and_why(
    as_user, world, db_session
):
    rows = [
        {"period": f"2026-{m:02d}", "numerator": str(40 + m), "denominator": "50"}
        for m in range(1, 6)
    ]
    submit(db_session, world, world.h01, rows)
    submit(db_session, world, world.h02, rows[:3])
    browser = as_user("coordinator")
    page = browser.get("/cycles/C2026")
    assert history(page) == []
    form = action_form(page, "lock")
    form["reason"] = "the collaborative agreed to benchmark HH now"
    page = form.submit().follow()
    form = action_form(page, "unlock")
    form["reason"] = "H02 found a counting error in March"
    page = form.submit().follow()
    form = action_form(page, "lock")
    form["reason"] = "H02 resubmitted; locking again"
    page = form.submit().follow()
    found = history(page)
    assert [row[1] for row in found] == ["locked", "unlocked", "locked"]  # newest first
    assert {row[2] for row in found} == {"coordinator@wf.example"}
    assert [row[3] for row in found] == [
        "H02 resubmitted; locking again",
        "H02 found a counting error in March",
        "the collaborative agreed to benchmark HH now",
    ]
    # What each lock froze, in numbers (the same counts the confirmation stated).
    assert found[2][4] == "42 of 50 cells missing, 8 unreviewed, 10 days before the deadline"
    assert found[1][4] == "—"
    # The cycle's own lock reason is the current one; the history keeps the earlier ones.
    assert "H02 resubmitted" in page.html.find(id="lock-reason").text
    # Members do not see who locked (coordinators' addresses) or the list at all.
    assert as_user("officer").get("/cycles/C2026").html.find(id="status-history") is None


def history(page):
    table = page.html.find(id="status-history")
    return [
        [td.text for td in tr.find_all("td")]
        for tr in table.find("tbody").find_all("tr")
        if tr.get("data-action")
    ]
