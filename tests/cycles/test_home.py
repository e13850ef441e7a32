"""Role home pages: each role lands on what it has to do next."""

from __future__ import annotations

import datetime as dt

from qicollab.benchmarking.models import BenchmarkRun, MemberResult, RunStatus
from qicollab.cycles.models import CycleStatus
from tests.cycles.test_views import submit
from tests.cycles.world import NOW


def test_officer_sees_deadline_counts_and_a_submit_button(as_user, world, db_session):
    rows = [{"period": f"2026-{m:02d}", "numerator": "4", "denominator": "5"} for m in (1, 2)]
    submit(db_session, world, world.h01, rows)
    page = as_user("officer").get("/")
    home = page.html.find(id="officer-home")
    assert home.find(id="due").text == "due in 10 days"
    counts = {li["data-count"]: int(li.text.split()[0]) for li in home.find_all("li")}
    # C2026: HH and CLABSI monthly (24 cells), SURG yearly (1): 25 for one member.
    assert counts == {"missing": 23, "returned": 0, "awaiting review": 2, "accepted": 0}
    assert home.find(id="submit-button")["href"].endswith(f"/members/{world.h01.id}/submit")


def test_viewer_sees_the_headline_changes_of_published_results(as_user, world, db_session):
    assert as_user("viewer").get("/").html.find(id="no-results")
    hh = world.measures["HH"]  # higher is better
    last = world.cycles["last"]
    last.status = CycleStatus.PUBLISHED
    for run_number, value in ((1, 0.70), (2, 0.82)):
        run = BenchmarkRun(
            collaborative_id=world.collaborative.id,
            cycle_id=last.id,
            status=RunStatus.SUCCEEDED,
            settings={},
            created_at=NOW + dt.timedelta(hours=run_number),
        )
        db_session.add(run)
        db_session.flush()
        db_session.add(
            MemberResult(
                run_id=run.id,
                measure_id=hh.id,
                member_id=world.h01.id,
                value=value,
                outlier_status="better" if run_number == 2 else "as-expected",
            )
        )
    db_session.commit()
    row = (
        as_user("viewer")
        .get("/")
        .html.find(id="headlines")
        .find("tr", attrs={"data-measure": "HH"})
    )
    cells = [td.text for td in row.find_all("td")]
    shown = lambda v: f"{v * hh.multiplier:,.1f} {hh.unit}".strip()  # noqa: E731
    assert cells == [shown(0.82), shown(0.70), "improved", "better than expected"]


def test_coordinator_sees_queue_completeness_workers_and_next_step(as_user, world, db_session):
    submit(
        db_session, world, world.h01, [{"period": "2026-01", "numerator": "4", "denominator": "5"}]
    )
    home = as_user("coordinator").get("/").html.find(id="coordinator-home")
    assert home.find(id="queue-size").text == "1"
    assert (
        home.find(id="completeness-counts").text == "0 of 50 cells accepted, 49 missing, 0 returned"
    )
    assert home.find(id="next-step").text == "Close submissions"
    assert "none heard from" in home.find(id="workers").text


def test_viewer_home_says_what_was_published_since_the_last_sign_in(as_user, world, db_session):
    first = as_user("viewer").get("/").html.find(id="since-last-visit")
    assert first.find("h3").text == "New to you"  # never signed in before
    assert first.find(id="nothing-new")
    second = as_user("viewer").get("/").html.find(id="since-last-visit")
    assert second.find("h3").text.startswith("New since you last signed in (")
    assert second.find(id="nothing-new")
    # The coordinator publishes C2025 (locked, with a run computed since).
    last = world.cycles["last"]
    run = BenchmarkRun(
        collaborative_id=world.collaborative.id,
        cycle_id=last.id,
        status=RunStatus.SUCCEEDED,
        settings={},
        created_at=last.locked_at + dt.timedelta(days=1),
    )
    db_session.add(run)
    db_session.commit()
    coordinator = as_user("coordinator")
    page = coordinator.get(f"/cycles/{last.code}")
    form = next(
        f for f in page.forms.values() if "action" in f.fields and f["action"].value == "publish"
    )
    assert form.submit().follow().html.find(id="status").text == "published"
    news = as_user("viewer").get("/").html.find(id="since-last-visit")
    (item,) = news.find_all("li")
    assert item["data-cycle"] == last.code
    assert f"reports of run {run.id}" in item.text
    # Seen once, it is no longer new at the next sign-in.
    assert as_user("viewer").get("/").html.find(id="since-last-visit").find(id="nothing-new")
