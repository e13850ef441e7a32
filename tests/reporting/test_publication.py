"""Members see a run only once its cycle is published; coordinators see it as soon as it
succeeds, marked as not yet published. Pages, exports, FHIR, report listing and downloads."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from qicollab.accounts.models import User
from qicollab.benchmarking.models import BenchmarkRun, RunStatus
from qicollab.cycles.models import CycleStatus, LearningCycle
from qicollab.cycles.services import CycleService

MEMBERS = ("officer", "viewer")


@pytest.fixture
def locked(world, db_session):
    """The world's cycle locked and computed, its results not yet released."""
    db_session.execute(
        sa.update(LearningCycle)
        .where(LearningCycle.id == world.cycle_id)
        .values(status=CycleStatus.LOCKED)
    )
    db_session.commit()
    return world


def _publish(db_session, world) -> None:
    """What a coordinator's publish button does."""
    cycle = db_session.get(LearningCycle, world.cycle_id)
    coordinator = db_session.get(User, world.users["coordinator"])
    CycleService(db_session, world.collaborative_id).transition(cycle, "publish", actor=coordinator)
    db_session.commit()


def _member_urls(world) -> list[str]:
    return [
        f"/members/{world.member}/results?run={world.run_id}",
        f"/members/{world.member}/results.csv",
        f"/members/{world.member}/results.xlsx",
        f"/api/members/{world.member}/measure-reports",
        f"/runs/{world.run_id}/reports",
    ]


@pytest.mark.parametrize("user", MEMBERS)
def test_before_publication_members_are_told_results_are_not_published(portal, locked, user):
    page = portal.as_user(user).get(f"/members/{locked.member}/results")
    assert "Results not yet published" in page.text
    assert not page.html.select("section.qc-measure")
    assert f"run {locked.run_id}" not in page.text


@pytest.mark.parametrize("user", MEMBERS)
def test_before_publication_members_cannot_reach_the_run_at_all(portal, locked, user):
    browser = portal.as_user(user)
    for url in _member_urls(locked):
        browser.get(url, status=404)


def test_before_publication_members_cannot_download_its_reports(portal, locked, reports):
    browser = portal.as_user("officer")
    browser.get(f"/reports/{reports[('member', locked.member)]}/download", status=404)
    browser.get(f"/reports/{reports[('blinded-summary', None)]}/download", status=404)


def test_before_publication_coordinators_see_the_run_marked_unpublished(portal, locked, reports):
    browser = portal.as_user("coordinator")
    for url in (f"/members/{locked.member}/results", "/results"):
        page = browser.get(url)
        assert "Not yet published" in page.text
        assert "not published</option>" in page.text
    assert browser.get(f"/members/{locked.member}/results").html.select("section.qc-measure")
    assert "Not yet published" in browser.get(f"/runs/{locked.run_id}/reports").text
    for url in (*_member_urls(locked), "/results.csv"):
        browser.get(url)
    browser.get(f"/reports/{reports[('member', locked.member)]}/download")


@pytest.mark.parametrize("user", MEMBERS)
def test_after_publication_members_see_the_run(portal, locked, reports, db_session, user):
    _publish(db_session, locked)
    browser = portal.as_user(user)
    page = browser.get(f"/members/{locked.member}/results")
    assert f"run {locked.run_id}" in page.text
    assert page.html.select("section.qc-measure")
    assert "Not yet published" not in page.text
    for url in _member_urls(locked):
        browser.get(url)
    browser.get(f"/reports/{reports[('member', locked.member)]}/download")
    browser.get(f"/reports/{reports[('blinded-summary', None)]}/download")


def test_members_get_the_newest_published_run_not_the_newest_run(portal, world, db_session):
    """A later cycle computed but not yet published stays hidden behind the published one."""
    later = LearningCycle(
        collaborative_id=world.collaborative_id,
        code="C2",
        title="Cycle 2026",
        status=CycleStatus.LOCKED,
        first_period_start=dt.date(2026, 1, 1),
        last_period_end=dt.date(2026, 3, 31),
        window_opens_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        deadline=dt.datetime(2026, 4, 30, tzinfo=dt.UTC),
    )
    db_session.add(later)
    db_session.flush()
    newer = BenchmarkRun(
        collaborative_id=world.collaborative_id,
        cycle_id=later.id,
        status=RunStatus.SUCCEEDED,
        settings={},
        finished_at=dt.datetime(2026, 5, 2, tzinfo=dt.UTC),
    )
    db_session.add(newer)
    db_session.commit()
    member = portal.as_user("officer")
    page = member.get(f"/members/{world.member}/results")
    assert f"run {world.run_id} " in page.text
    assert f'value="{newer.id}"' not in page.text  # not even in the run selector
    member.get(f"/members/{world.member}/results?run={newer.id}", status=404)
    coordinator = portal.as_user("coordinator").get(f"/members/{world.member}/results")
    assert f"run {newer.id} " in coordinator.text
    assert "Not yet published" in coordinator.text
