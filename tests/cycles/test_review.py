"""The review queue: values beside the previous version, warnings, justification, comment;
several versions accepted or returned at once after a confirmation."""

from __future__ import annotations

import sqlalchemy as sa

from qicollab.submissions.models import (
    AggregateValue,
    Submission,
    SubmissionSource,
    SubmissionStatus,
)
from qicollab.submissions.services import SubmissionService
from tests.cycles.test_views import read, submit
from tests.cycles.world import NOW


def history(db_session, world, member):
    """Six accepted months of 2025 (HH near 80%), stored as a past cycle would have."""
    for month, numerator in enumerate((40, 41, 39, 40, 42, 38), start=1):
        period = world.periods[f"2025-{month:02d}"]
        version = Submission(
            member_id=member.id,
            measure_id=world.measures["HH"].id,
            period_id=period.id,
            version=1,
            status=SubmissionStatus.ACCEPTED,
            content_hash=f"h{month}",
            submitted_at=NOW,
        )
        db_session.add(version)
        db_session.flush()
        db_session.add(
            AggregateValue(
                submission_id=version.id,
                numerator=numerator,
                denominator=50,
                value=numerator / 50,
            )
        )
    db_session.commit()


def test_queue_shows_values_previous_version_warnings_and_justification(as_user, world, db_session):
    history(db_session, world, world.h01)
    service = SubmissionService(db_session, clock=lambda: NOW)
    service.submit_rows(
        member=world.h01,
        measure=world.measures["HH"],
        rows=[{"period": "2026-01", "numerator": "40", "denominator": "50"}],
        source=SubmissionSource.FORM,
        actor=world.users["officer"],
    )
    db_session.commit()
    service.submit_rows(
        member=world.h01,
        measure=world.measures["HH"],
        rows=[{"period": "2026-01", "numerator": "5", "denominator": "50", "comment": "audit"}],
        source=SubmissionSource.FORM,
        actor=world.users["officer"],
        reason="the first count missed two wards",
        justification="a new observer counted strictly this month",
    )
    db_session.commit()
    current = read(
        db_session, sa.select(Submission).where(Submission.status == SubmissionStatus.SUBMITTED)
    )
    assert current.version == 2
    assert [w["rule"] for w in current.warnings] == ["history_range"]

    queue = as_user("coordinator").get("/review?cycle=C2026")
    row = queue.html.find(id=f"submission-{current.id}")
    numerator = row.find(attrs={"data-field": "numerator"}).text
    assert "5" in numerator
    assert "(before: 40)" in numerator
    assert "changed" in numerator
    assert "outside the range expected from your history" in row.find(class_="warnings").text
    assert "a new observer counted strictly" in row.find(class_="justification").text
    assert "audit" in row.find(class_="comment").text
    assert "missed two wards" in row.find(class_="correction").text


def test_bulk_accept_and_return_need_a_confirmation(as_user, world, db_session):
    rows = [{"period": f"2026-{m:02d}", "numerator": "4", "denominator": "5"} for m in (1, 2, 3)]
    submit(db_session, world, world.h01, rows)
    submit(db_session, world, world.h02, rows[:1])
    ids = read(db_session, sa.select(Submission.id).order_by(Submission.id), "scalars")
    browser = as_user("coordinator")
    queue = browser.get("/review?cycle=C2026")
    form = queue.forms["bulk-form"]
    for box in form.fields["ids"]:
        box.checked = box._value in {str(ids[0]), str(ids[3])}
    confirm = form.submit("decision", value="accept")
    assert confirm.html.find("h1").text == "Accept 2 submissions?"
    assert len(confirm.html.find(id="chosen").find_all("li", recursive=False)) == 2
    # Nothing changed before the confirmation.
    statuses = read(db_session, sa.select(Submission.status).order_by(Submission.id), "scalars")
    assert set(statuses) == {SubmissionStatus.SUBMITTED}
    queue = confirm.forms["confirm-form"].submit().follow()
    assert queue.html.find(id="done").text == "2 submissions accepted."
    assert queue.request.path_qs.startswith("/review?cycle=C2026")
    statuses = read(db_session, sa.select(Submission.status).order_by(Submission.id), "scalars")
    assert statuses == [
        SubmissionStatus.ACCEPTED,
        SubmissionStatus.SUBMITTED,
        SubmissionStatus.SUBMITTED,
        SubmissionStatus.ACCEPTED,
    ]
    # Returning several needs one reason, said in the confirmation; all or none.
    form = queue.forms["bulk-form"]
    for box in form.fields["ids"]:
        box.checked = True
    confirm = form.submit("decision", value="return")
    refused = confirm.forms["confirm-form"].submit(expect_errors=True)
    assert refused.status_int == 422
    assert "a reason is required" in refused.html.find(id="error").text
    form = refused.forms["bulk-form"]
    for box in form.fields["ids"]:
        box.checked = True
    form["reason"] = "February and March repeat January exactly"
    confirm = form.submit("decision", value="return")
    assert "February and March repeat" in confirm.html.find(id="confirm-reason").text
    queue = confirm.forms["confirm-form"].submit().follow()
    assert queue.html.find(id="done").text == "2 submissions returned."
    statuses = read(db_session, sa.select(Submission.status).order_by(Submission.id), "scalars")
    assert statuses.count(SubmissionStatus.RETURNED) == 2
