"""The improvement pages as their users work them: officers record PDSA cycles and monthly
reports, coordinators keep the change package, score teams and run learning sessions."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from qicollab.audit.models import AuditEvent
from qicollab.cycles.models import Annotation, AnnotationKind, LearningSession
from qicollab.improvement.models import PdsaCycle, ProgressScore, SessionAttendance
from tests.cycles.world import csrf


def _fill_package(coordinator):
    page = coordinator.get("/change-package")
    form = page.forms["aim-form"]
    form["aim"] = "Zero preventable falls with harm"
    page = form.submit().follow()
    form = page.forms["driver-form"]
    form["title"] = "Every patient's fall risk is known"
    page = form.submit().follow()
    form = page.forms["driver-form"]
    form["parent"].select(text=form["parent"].options[1][2])
    form["title"] = "Risk assessed on admission"
    page = form.submit().follow()
    form = page.forms["idea-form"]
    form["code"] = "F1"
    form["title"] = "Falls risk score in the admission checklist"
    form["evidence"] = "NICE CG161 | https://www.nice.org.uk/guidance/cg161"
    return form.submit().follow()


def test_coordinator_keeps_the_change_package_and_members_read_it(as_user):
    page = _fill_package(as_user("coordinator"))
    assert "F1 Falls risk score in the admission checklist" in page.text
    svg = page.html.find(id="driver-diagram").find("svg")
    assert svg["role"] == "img"
    assert "Risk assessed on admission" in svg.text
    member_page = as_user("viewer").get("/change-package")
    assert "Zero preventable falls with harm" in member_page.text
    assert "idea-form" not in member_page.forms
    refused = as_user("officer").post(
        "/change-package",
        {"part": "aim", "aim": "x", "csrf_token": csrf(member_page)},
        status=403,
    )
    assert refused.status_code == 403


def test_officer_records_a_pdsa_that_marks_the_chart(as_user, world, db_session):
    officer = as_user("officer")
    page = officer.get(f"/members/{world.h01.id}/pdsa")
    page = (
        page.click(linkid="new-pdsa") if False else officer.get(f"/members/{world.h01.id}/pdsa/new")
    )
    form = page.forms["pdsa-form"]
    form["title"] = "Hand-rub at every bed, ward 4"
    form["own_change"] = "Alcohol hand-rub at the bedside"
    form["starts_on"] = "2026-04-06"
    for field in form.fields["measures"]:
        field.checked = field._value == str(world.measures["HH"].id)
    form["prediction"] = "Compliance above 80% within four weeks"
    detail = form.submit().follow()
    assert detail.html.find(id="stage").text == "Plan"
    assert "HH" in detail.html.find(id="measures").text
    cycle_id = db_session.scalar(sa.select(PdsaCycle.id))
    notes = db_session.scalars(sa.select(Annotation).where(Annotation.member_id == world.h01.id))
    assert [(n.kind, n.occurred_on, n.measure_id) for n in notes] == [
        (AnnotationKind.PDSA, dt.date(2026, 4, 6), world.measures["HH"].id)
    ]
    db_session.commit()  # end the read: SQLite writers wait for it
    # Act: adopt, starting a new chart phase.
    edit = officer.get(f"/members/{world.h01.id}/pdsa/{cycle_id}/edit")
    form = edit.forms["pdsa-form"]
    form["study"] = "Compliance 86%: better than predicted"
    form["decision"] = "adopt"
    form["decided_on"] = "2026-05-04"
    form["starts_phase"] = True
    detail = form.submit().follow()
    assert detail.html.find(id="decision").text.startswith("adopt on 2026-05-04")
    phase = db_session.scalar(sa.select(Annotation).where(Annotation.starts_phase.is_(True)))
    assert phase.occurred_on == dt.date(2026, 5, 4)
    actions = db_session.scalars(
        sa.select(AuditEvent.action).where(AuditEvent.object_type == "pdsa")
    ).all()
    assert actions == ["pdsa.created", "pdsa.updated"]
    db_session.commit()
    # The team's viewer reads it; the other team cannot, not even by id.
    assert "Hand-rub at every bed" in as_user("viewer").get(f"/members/{world.h01.id}/pdsa").text
    as_user("other_officer").get(f"/members/{world.h01.id}/pdsa/{cycle_id}", status=403)
    as_user("other_officer").get(f"/members/{world.h02.id}/pdsa/{cycle_id}", status=404)
    as_user("viewer").get(f"/members/{world.h01.id}/pdsa/new", status=403)


def test_identifying_pdsa_text_is_refused_and_nothing_is_stored(as_user, world, db_session):
    officer = as_user("officer")
    form = officer.get(f"/members/{world.h01.id}/pdsa/new").forms["pdsa-form"]
    form["title"] = "Falls huddle"
    form["own_change"] = "Safety huddle"
    form["starts_on"] = "2026-04-06"
    form["observations"] = "Patient John, phone 617-555-0199, fell twice"
    page = form.submit(status=422)
    assert "telephone" in page.html.find(id="error").text
    assert page.forms["pdsa-form"]["title"].value == "Falls huddle"
    assert db_session.scalar(sa.select(sa.func.count(PdsaCycle.id))) == 0


def test_monthly_report_scores_and_who_has_not_reported(as_user, world, db_session):
    officer = as_user("officer")
    page = officer.get(f"/members/{world.h01.id}/progress?month=2026-05")
    assert "Outstanding sustainable results" in page.html.find(id="scale").text
    form = page.forms["monthly-form"]
    form["tested"] = "Bedside hand-rub on ward 4"
    form["learned"] = "Refill rounds matter"
    form["score"] = "2.5"
    page = form.submit().follow()
    assert "Refill rounds matter" in page.text
    coordinator = as_user("coordinator")
    teams = coordinator.get("/improvement/teams?month=2026-05")
    assert [li.text for li in teams.html.find(id="missing").find_all("li")] == [
        f"{world.h02.code} · {world.h02.name}"
    ]
    form = teams.forms["faculty-form"]
    form["member"] = str(world.h01.id)
    form["score"] = "2.0"
    teams = form.submit().follow()
    row = teams.html.find(id="scores").find("tbody").find_all("tr")[0]
    assert [td.text for td in row.find_all("td")][:2] == ["2.5", "2.0"]
    scores = db_session.execute(sa.select(ProgressScore.scorer, ProgressScore.halves)).all()
    assert sorted((s.value, h) for s, h in scores) == [("faculty", 4), ("team", 5)]
    db_session.commit()
    trend = officer.get(f"/members/{world.h01.id}/progress?month=2026-05")
    svg = trend.html.find(id="trend").find("svg")
    assert "2026-05 team 2.5, faculty 2.0" in svg.find("desc").text
    as_user("viewer").post(
        f"/members/{world.h01.id}/progress?month=2026-05",
        {"tested": "x", "score": "3.0", "csrf_token": csrf(trend)},
        status=403,
    )
    as_user("officer").get("/improvement/teams", status=403)


def test_learning_session_agenda_material_and_attendance(as_user, world, db_session):
    session = LearningSession(
        cycle_id=world.cycles["this"].id, held_on=dt.date(2026, 3, 10), title="Spring session"
    )
    db_session.add(session)
    db_session.commit()
    session_id = session.id
    db_session.commit()
    coordinator = as_user("coordinator")
    page = coordinator.get(f"/learning-sessions/{session_id}")
    form = page.forms["agenda-form"]
    form["starts_at"] = "09:30"
    form["title"] = "What the best performers do"
    page = form.submit().follow()
    form = page.forms["material-form"]
    form["kind"] = "change-package"
    page = form.submit().follow()
    form = page.forms["attendance-form"]
    form[f"people-{world.h01.id}"] = "3"
    page = form.submit().follow()
    assert "1 teams, 3 people" in page.text
    assert db_session.scalar(sa.select(SessionAttendance.people)) == 3
    db_session.commit()
    calendar = as_user("viewer").get("/learning-sessions")
    assert "Action period 1" in calendar.text
    member_view = as_user("other_viewer").get(f"/learning-sessions/{session_id}")
    assert "What the best performers do" in member_view.text
    assert world.h01.name not in member_view.text  # another team's attendance stays hidden


def _record_pdsa(officer, world, title, *, follows=None, adopt=False):
    form = officer.get(
        f"/members/{world.h01.id}/pdsa/new" + (f"?follows={follows}" if follows else "")
    ).forms["pdsa-form"]
    form["title"] = title
    form["own_change"] = "Alcohol hand-rub at the bedside"
    form["starts_on"] = "2026-04-06"
    for field in form.fields["measures"]:
        field.checked = field._value == str(world.measures["HH"].id)
    if adopt:
        form["decision"] = "adopt"
        form["decided_on"] = "2026-05-04"
        form["starts_phase"] = True
    detail = form.submit().follow()
    return int(detail.request.path.rstrip("/").rsplit("/", 1)[-1])


def test_a_pdsa_recorded_by_mistake_is_deleted_after_a_confirmation(as_user, world, db_session):
    officer = as_user("officer")
    first = _record_pdsa(officer, world, "Hand-rub, ward 4")
    middle = _record_pdsa(officer, world, "Hand-rub, wrong ward", follows=first, adopt=True)
    last = _record_pdsa(officer, world, "Hand-rub, wards 4 and 5", follows=middle)
    detail = officer.get(f"/members/{world.h01.id}/pdsa/{middle}")
    confirm = detail.click(linkid="delete-pdsa")
    said = confirm.html.find(id="consequences").text
    assert "control chart of HH, and the chart phase it started" in said
    assert "“Hand-rub, wards 4 and 5” follow the cycle before it" in said
    assert db_session.scalar(sa.select(sa.func.count(PdsaCycle.id))) == 3  # GET deletes nothing
    db_session.commit()
    # Someone else's team cannot even see the confirmation; a viewer cannot delete.
    as_user("other_officer").get(f"/members/{world.h01.id}/pdsa/{middle}/delete", status=403)
    as_user("viewer").post(
        f"/members/{world.h01.id}/pdsa/{middle}/delete", {"csrf_token": csrf(detail)}, status=403
    )
    listed = confirm.forms["delete-form"].submit().follow()
    assert "was deleted" in listed.html.find(id="deleted").text
    assert "wrong ward" not in listed.text
    remaining = db_session.execute(sa.select(PdsaCycle.id, PdsaCycle.follows_id)).all()
    assert sorted(map(tuple, remaining)) == [(first, None), (last, first)]  # the ramp holds
    notes = db_session.scalars(sa.select(Annotation.label)).all()
    assert sorted(notes) == ["PDSA: Hand-rub, ward 4", "PDSA: Hand-rub, wards 4 and 5"]
    deleted = db_session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "pdsa.deleted"))
    assert (deleted.object_id, deleted.actor) == (str(middle), world.users["officer"].email)
    assert deleted.details["title"] == "Hand-rub, wrong ward"
    db_session.commit()
    officer.get(f"/members/{world.h01.id}/pdsa/{middle}", status=404)
    # The coordinator may delete a team's cycle too (they may record on its behalf).
    coordinator = as_user("coordinator")
    page = coordinator.get(f"/members/{world.h01.id}/pdsa/{last}/delete")
    page.forms["delete-form"].submit().follow()
    assert db_session.scalar(sa.select(sa.func.count(PdsaCycle.id))) == 1


def test_an_attached_blinded_summary_links_its_pdf_once_rendered(as_user, world, db_session):
    from qicollab.benchmarking.models import BenchmarkRun, RunStatus
    from qicollab.reporting.models import Report, ReportKind

    session = LearningSession(
        cycle_id=world.cycles["this"].id, held_on=dt.date(2026, 3, 10), title="Spring session"
    )
    run = BenchmarkRun(
        collaborative_id=world.collaborative.id,
        cycle_id=world.cycles["last"].id,
        status=RunStatus.SUCCEEDED,
        settings={},
    )
    db_session.add_all([session, run])
    db_session.commit()
    session_id, run_id = session.id, run.id
    db_session.commit()
    coordinator = as_user("coordinator")
    form = coordinator.get(f"/learning-sessions/{session_id}").forms["material-form"]
    form["kind"] = "blinded-summary"
    form["run"] = str(run_id)
    page = form.submit().follow()
    item = page.html.find(id="materials").find("li")
    assert "the PDF is not rendered yet" in item.text
    assert item.find("a")["href"].endswith(f"/runs/{run_id}/reports")
    report = Report(
        run_id=run_id,
        kind=ReportKind.BLINDED_SUMMARY,
        path=f"reports/{run_id}/summary.pdf",
        sha256="0" * 64,
        size_bytes=1,
    )
    db_session.add(report)
    db_session.commit()
    report_id = report.id
    db_session.commit()
    item = coordinator.get(f"/learning-sessions/{session_id}").html.find(id="materials").find("li")
    pdf = item.find("a", class_="pdf")
    assert pdf["href"].endswith(f"/reports/{report_id}/download")
    assert pdf.text == f"Blinded collaborative summary, run {run_id} (PDF)"
