"""The data entry grid (periods x fields) through WebTest: stored values loaded, locked periods
read-only, rows saved as drafts through the upload checks, warnings in the measure's display
unit, the Submit button sending every changed period; and the CSV template's companion guide."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from qicollab.measures.models import Measure
from qicollab.schedule.periods import ReportingPeriod
from qicollab.submissions.models import AggregateValue, Submission, SubmissionStatus
from tests.submissions.test_portal import csrf, portal, query, world_users

__all__ = ["portal", "world_users"]  # fixtures used by name

#: HH compliance the member reported through 2025 (accepted; the 2025 cycle is locked).
HISTORY = {f"2025-{month:02d}": (90 + month % 3, 100) for month in range(1, 9)}


@pytest.fixture
def hh_history(portal, db_session):
    """HH shown as a percentage, and eight accepted 2025 months for H01."""
    world, app = portal
    measure = db_session.get(Measure, world.hh.id)
    measure.unit, measure.multiplier = "%", 100.0
    periods = dict(
        db_session.execute(
            sa.select(ReportingPeriod.label, ReportingPeriod.id).where(
                ReportingPeriod.collaborative_id == world.collaborative.id
            )
        ).all()
    )
    for label, (numerator, denominator) in HISTORY.items():
        submission = Submission(
            member_id=world.member.id,
            measure_id=world.hh.id,
            period_id=periods[label],
            version=1,
            status=SubmissionStatus.ACCEPTED,
            content_hash=hashlib.sha256(label.encode()).hexdigest(),
        )
        db_session.add(submission)
        db_session.flush()
        db_session.add(
            AggregateValue(
                submission_id=submission.id, numerator=numerator, denominator=denominator
            )
        )
    db_session.commit()
    return world, app


def _grid_url(world):
    return f"/members/{world.member.id}/measures/HH/form"


def _save_row(browser, world, token, period, status=200, **values):
    return browser.post_json(
        f"/members/{world.member.id}/measures/HH/grid",
        {"period": period, "values": values},
        headers={"X-CSRF-Token": token},
        status=status,
    )


def _cell(page, period, name):
    return page.html.find("input", attrs={"name": f"cell.{period}.{name}"})


def test_the_grid_loads_stored_values_and_locks_closed_periods(hh_history):
    world, app = hh_history
    page = app.as_user("officer").get(_grid_url(world))
    assert "entry-grid.js" in page.text
    periods = [tr["data-period"] for tr in page.html.select("tr[data-period]")]
    # Open 2026 months and the 2025 months holding data, newest first.
    assert periods[:1] == ["2026-12"]
    assert "2026-01" in periods
    assert [p for p in periods if p.startswith("2025")] == sorted(HISTORY, reverse=True)
    assert periods == sorted(periods, reverse=True)
    locked = _cell(page, "2025-03", "numerator")
    assert locked["value"] == "90"
    assert locked.has_attr("readonly")
    assert locked.parent["data-state"] == "locked"
    assert "locked in learning cycle C2025" in page.html.find(id="status-2025-03").text
    assert _cell(page, "2025-03", "denominator")["value"] == "100"
    assert _cell(page, "2026-02", "numerator")["value"] == ""
    assert not _cell(page, "2026-02", "numerator").has_attr("readonly")
    # Labels say "(optional)" once.
    assert "(optional) (optional)" not in page.text
    assert page.text.count("Exclusions") >= 1


def test_a_row_is_saved_as_a_draft_with_per_cell_states(hh_history, db_session):
    world, app = hh_history
    browser = app.as_user("officer")
    token = csrf(browser.get(_grid_url(world)))
    # Incomplete: saved as a draft, the missing cell marked invalid (required to submit).
    partial = _save_row(browser, world, token, "2026-04", numerator="91", denominator="")
    assert partial.json["status"] == "saved"
    assert partial.json["cells"]["numerator"] == "saved"
    assert partial.json["cells"]["denominator"] == "invalid"
    assert partial.json["summary"] == "draft saved"
    # A contradiction is not saved; the draft keeps its values.
    wrong = _save_row(browser, world, token, "2026-04", 422, numerator="120", denominator="100")
    assert wrong.json["status"] == "invalid"
    assert wrong.json["cells"]["numerator"] == "invalid"
    assert "larger than denominator" in wrong.json["problems"][0]["message"]
    assert wrong.json["problems"][0]["label"] == "Numerator"
    value = query(
        db_session,
        "scalar",
        sa.select(AggregateValue)
        .join(Submission)
        .where(Submission.status == SubmissionStatus.DRAFT),
    )
    assert (value.numerator, value.denominator) == (91, None)
    # Far below the member's history: saved, with a warning in the display unit (per cent).
    low = _save_row(browser, world, token, "2026-04", numerator="20", denominator="100")
    assert low.json["status"] == "saved"
    assert low.json["shown"] == "20.0 %"
    assert low.json["cells"]["numerator"] == "warning"
    (warning,) = [p for p in low.json["problems"] if p["column"] == "numerator"]
    assert warning["severity"] == "warning"
    assert (
        "the proportion 20.0 % is outside the range expected from your history"
        in (warning["message"])
    )
    assert "0.2 " not in warning["message"]
    # The grid shows the draft after a reload.
    page = browser.get(_grid_url(world))
    assert _cell(page, "2026-04", "numerator")["value"] == "20"
    assert "draft saved" in page.html.find(id="status-2026-04").text
    assert page.html.find(id="shown-2026-04").text == "20.0 %"
    assert page.html.find(id="shown-2025-03").text == "90.0 %"  # 90 of 100
    # Locked periods and unknown ones are refused.
    locked = _save_row(browser, world, token, "2025-03", 409, numerator="1", denominator="2")
    assert locked.json["status"] == "locked"
    _save_row(browser, world, token, "1999-01", 400, numerator="1")
    browser.post_json(
        f"/members/{world.member.id}/measures/HH/grid",
        {"period": "2026-04", "values": {}},
        status=403,  # no CSRF token
    )


def test_submit_sends_every_changed_period_and_shows_problems_on_their_cells(
    hh_history, db_session
):
    world, app = hh_history
    browser = app.as_user("officer")
    page = browser.get(_grid_url(world))
    form = page.forms["entry-grid"]
    form["cell.2026-01.numerator"] = "92"
    form["cell.2026-01.denominator"] = "100"
    form["cell.2026-02.numerator"] = "150"
    form["cell.2026-02.denominator"] = "100"
    refused = form.submit("action", value="submit", status=422)
    # Nothing stored; the typed values stay, the bad cell is marked with its reason.
    assert (
        query(
            db_session,
            "scalar",
            sa.select(sa.func.count(Submission.id)).where(
                Submission.period_id.in_(
                    sa.select(ReportingPeriod.id).where(ReportingPeriod.label.like("2026-%"))
                )
            ),
        )
        == 0
    )
    bad = _cell(refused, "2026-02", "numerator")
    assert bad["value"] == "150"
    assert bad["aria-invalid"] == "true"
    assert bad.parent["data-state"] == "invalid"
    assert "larger than denominator" in refused.html.find(id="status-2026-02").text
    assert _cell(refused, "2026-01", "numerator")["value"] == "92"
    form = refused.forms["entry-grid"]
    form["cell.2026-02.numerator"] = "93"
    done = form.submit("action", value="submit").follow()
    assert "Submitted (2 periods)" in done.text
    stored = query(
        db_session,
        "scalars",
        sa.select(AggregateValue.numerator)
        .join(Submission)
        .where(Submission.status == SubmissionStatus.SUBMITTED),
    )
    assert sorted(stored) == [92, 93]
    assert _cell(done, "2026-01", "numerator").parent["data-state"] == "saved"
    assert "v1 submitted" in done.html.find(id="status-2026-01").text
    # Changing a submitted period is a correction: a reason is asked for.
    form = done.forms["entry-grid"]
    form["cell.2026-01.numerator"] = "94"
    again = form.submit("action", value="submit", status=422)
    assert "reason" in again.text.lower()
    # Submitting the grid as stored changes nothing.
    nothing = browser.get(_grid_url(world)).forms["entry-grid"].submit("action", value="submit")
    nothing = nothing.follow()
    assert "Nothing changed" in nothing.text


def test_the_csv_template_has_a_companion_guide(portal):
    world, app = portal
    browser = app.as_user("officer")
    portal_page = browser.get(f"/members/{world.member.id}/submit")
    assert "/measures/HH/template.txt" in portal_page.text
    guide = browser.get(f"/members/{world.member.id}/measures/HH/template.txt")
    assert guide.content_disposition == 'attachment; filename="HH-template-guide.txt"'
    text = guide.text
    assert "period (required)" in text
    assert "Allowed: a month written YYYY-MM, e.g. 2026-03" in text
    assert "exclusions (optional)" in text
    assert "Allowed: a whole number, 0 or more" in text
    lines = text.splitlines()
    header = lines.index("period,numerator,denominator,exclusions,comment")
    assert lines[header + 1].startswith("2026-01,45,50")
    assert lines[header + 2].startswith("2026-02,")
    # The template itself stays a header row that uploads as it is.
    csv = browser.get(f"/members/{world.member.id}/measures/HH/template.csv").body
    assert csv.decode("utf-8-sig").strip() == "period,numerator,denominator,exclusions,comment"


def test_posting_a_locked_cell_changes_nothing(hh_history, db_session):
    world, app = hh_history
    browser = app.as_user("officer")
    token = csrf(browser.get(_grid_url(world)))
    response = browser.post(
        _grid_url(world),
        {"csrf_token": token, "cell.2025-03.numerator": "1", "action": "submit"},
    ).follow()
    assert "Nothing changed" in response.text
    assert _cell(response, "2025-03", "numerator")["value"] == "90"


def test_rate_warnings_read_per_1000_line_days():
    import numpy as np

    from qicollab.measures.models import DataLevel, Direction, MeasureType
    from qicollab.members.models import Collaborative, DeidProfile, Member
    from qicollab.submissions import phi
    from qicollab.submissions.layout import layout_for
    from qicollab.submissions.parsing import table_from_rows
    from qicollab.submissions.validation import History, validate
    from tests.submissions.pure import context

    measure = Measure(
        code="CLABSI",
        title="Central line infections",
        measure_type=MeasureType.RATE,
        level=DataLevel.AGGREGATE,
        direction=Direction.DECREASE,
        numerator_definition="infections",
        denominator_definition="line-days",
        unit="per 1,000 line-days",
        multiplier=1000.0,
    )
    shape = layout_for(
        measure,
        collaborative=Collaborative(slug="c", name="c", deid_profile=DeidProfile.SAFE_HARBOR),
        member=Member(code="H", name="H"),
    )
    # Usual months: 0.5 to 1.2 infections per 1,000 line-days.
    history = History(
        rates=np.array([0.0005, 0.0008, 0.0012, 0.0007, 0.0009, 0.0006, 0.001, 0.0008]),
        denominators=np.full(8, 1300.0),
    )
    table = phi.screen(
        table_from_rows([{"period": "2026-01", "numerator": "40", "denominator": "1300"}]), shape
    )
    result = validate(table, shape, context(history=history))
    (warning,) = [p for p in result.problems if p.column == "numerator"]
    assert warning.message.startswith("the rate 30.77 per 1,000 line-days is outside the range")
    assert warning.message.endswith("per 1,000 line-days)")
    assert "0.0308" not in warning.message
