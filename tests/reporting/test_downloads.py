"""Report downloads: who may fetch which PDF, the listing page, the audit trail, the render job."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from qicollab.audit.models import AuditEvent
from qicollab.jobs.models import Job, JobStatus
from qicollab.reporting.models import Report, ReportKind


def url(report_id: int) -> str:
    return f"/reports/{report_id}/download"


def test_member_downloads_its_own_report(portal, world, reports):
    response = portal.as_user("officer").get(url(reports[("member", world.member)]))
    assert response.content_type == "application/pdf"
    assert response.body.startswith(b"%PDF")


def test_member_cannot_download_another_members_report(portal, world, reports):
    portal.as_user("officer").get(url(reports[("member", world.other)]), status=403)


def test_member_viewer_cannot_download_another_members_report(portal, world, reports):
    portal.as_user("viewer").get(url(reports[("member", world.other)]), status=403)


def test_member_downloads_the_blinded_summary(portal, world, reports):
    portal.as_user("other_officer").get(url(reports[("blinded-summary", None)]), status=200)


def test_member_cannot_download_the_identified_collaborative_report(portal, world, reports):
    portal.as_user("officer").get(url(reports[("collaborative", None)]), status=403)


@pytest.mark.parametrize(
    "key", [("member", "member"), ("member", "other"), ("collaborative", None)]
)
def test_coordinator_downloads_everything(portal, world, reports, key):
    kind, who = key
    member_id = getattr(world, who) if who else None
    portal.as_user("coordinator").get(url(reports[(kind, member_id)]), status=200)


def test_anonymous_cannot_download(portal, world, reports):
    portal.as_user(None).get(url(reports[("blinded-summary", None)]), status=403)


def test_unknown_report_is_404(portal, world, reports):
    portal.as_user("coordinator").get(url(99999), status=404)


def test_downloads_are_audited(portal, world, reports, db_session):
    report_id = reports[("member", world.member)]
    portal.as_user("officer").get(url(report_id))
    events = db_session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "report.downloaded")
    ).all()
    assert [(e.object_id, e.actor_id) for e in events] == [(str(report_id), world.users["officer"])]


def test_refused_downloads_are_not_audited_as_downloads(portal, world, reports, db_session):
    portal.as_user("officer").get(url(reports[("member", world.other)]), status=403)
    count = db_session.scalar(
        sa.select(sa.func.count()).where(AuditEvent.action == "report.downloaded")
    )
    assert count == 0


def test_a_missing_file_is_404(portal, world, reports, settings):
    report = Path(settings["qicollab.storage"]) / f"reports/run-{world.run_id}/blinded-summary.pdf"
    report.unlink()
    portal.as_user("officer").get(url(reports[("blinded-summary", None)]), status=404)


# --- the run's reports page ---------------------------------------------------------------------


def test_members_see_only_their_report_and_the_summary(portal, world, reports):
    page = portal.as_user("officer").get(f"/runs/{world.run_id}/reports")
    links = {a["href"].split("/")[-2] for a in page.html.select('a[href*="/download"]')}
    assert links == {
        str(reports[("member", world.member)]),
        str(reports[("blinded-summary", None)]),
    }


def test_the_reports_page_names_no_other_member(portal, world, reports):
    text = portal.as_user("officer").get(f"/runs/{world.run_id}/reports").text
    others = [name for m, name in world.names.items() if m != world.member]
    assert [name for name in others if name in text] == []


def test_coordinators_see_every_report(portal, world, reports):
    page = portal.as_user("coordinator").get(f"/runs/{world.run_id}/reports")
    assert len(page.html.select('a[href*="/download"]')) == len(reports)


def test_members_cannot_start_rendering(portal, world, reports):
    browser = portal.as_user("officer")
    browser.get(f"/runs/{world.run_id}/reports")
    browser.post(f"/runs/{world.run_id}/reports", {"csrf_token": "x"}, status=403)


@pytest.fixture
def immediate_queue(monkeypatch, world):
    """Jobs run as soon as they are enqueued, in this process, and render two reports."""
    from qicollab.jobs import queue as queue_module
    from qicollab.reporting import rendering

    monkeypatch.setattr(
        queue_module, "make_huey", lambda s, **k: queue_module.huey.MemoryHuey("t", immediate=True)
    )
    plan = rendering.ReportRenderer.plan

    def small_plan(self, run_id, **options):
        tasks = plan(self, run_id, **options)
        return [t for t in tasks if t.spec.member_id in (None, world.member)][:2]

    monkeypatch.setattr(rendering.ReportRenderer, "plan", small_plan)


def test_coordinator_starts_a_render_job_and_sees_its_status(
    portal, world, db_session, immediate_queue
):
    browser = portal.as_user("coordinator")
    result = browser.get(f"/runs/{world.run_id}/reports").forms["render-form"].submit().follow()
    job = db_session.scalars(sa.select(Job).where(Job.kind == "reports-render")).one()
    db_session.commit()
    assert job.status is JobStatus.SUCCEEDED
    assert f"Rendering job {job.id}: succeeded" in result.text


def test_a_render_job_records_the_reports(portal, world, db_session, immediate_queue):
    browser = portal.as_user("coordinator")
    browser.get(f"/runs/{world.run_id}/reports").forms["render-form"].submit()
    rows = db_session.scalars(sa.select(Report)).all()
    db_session.commit()
    assert {(r.kind, r.member_id) for r in rows} == {
        (ReportKind.MEMBER, world.member),
        (ReportKind.COLLABORATIVE, None),
    }


def test_a_render_request_is_audited(portal, world, db_session, immediate_queue):
    browser = portal.as_user("coordinator")
    browser.get(f"/runs/{world.run_id}/reports").forms["render-form"].submit()
    actions = db_session.scalars(sa.select(AuditEvent.action)).all()
    db_session.commit()
    assert "reports.render_requested" in actions


def test_a_second_render_request_while_one_is_under_way_starts_nothing(portal, world, db_session):
    """Two batches of one run would write the same reports: while a render job is queued or
    running, the button shows it instead of starting another."""
    browser = portal.as_user("coordinator")
    page = browser.get(f"/runs/{world.run_id}/reports")
    page.forms["render-form"].submit()  # no consumer here: the job stays queued
    page.forms["render-form"].submit().follow()
    jobs = db_session.scalars(sa.select(Job).where(Job.kind == "reports-render")).all()
    actions = db_session.scalars(sa.select(AuditEvent.action)).all()
    db_session.commit()
    assert [job.status for job in jobs] == [JobStatus.QUEUED]
    assert actions.count("reports.render_requested") == 1
