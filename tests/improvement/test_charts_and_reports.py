"""PDSA cycles on the member's control charts and in the printed reports; the change package and
the teams' progress in the collaborative report and the blinded summary."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from pyramid.csrf import CookieCSRFStoragePolicy

from qicollab import make_config
from qicollab.improvement.models import ActDecision, Scorer
from qicollab.improvement.package import ChangePackageService
from qicollab.improvement.pdsa import PdsaDraft, PdsaService
from qicollab.improvement.progress import ProgressService
from qicollab.reporting import page_cache
from qicollab.reporting.models import ReportKind
from qicollab.reporting.pdf import PdfRenderer
from qicollab.reporting.reports import TEMPLATES, ReportSpec, report_context
from qicollab.reporting.results import load_run
from qicollab.security import IDENTITY_LOADER_KEY
from tests.reporting.conftest import Portal, _loader
from tests.reporting.world import build_world


@pytest.fixture
def world(db_session):
    page_cache.forget()
    built = build_world(db_session)
    package = ChangePackageService(db_session, built.collaborative_id)
    package.save_aim(aim="Every line inserted and kept clean", actor="coordinator")
    primary = package.save_driver(title="Clean insertion", actor="coordinator")
    secondary = package.save_driver(
        title="Checklist every time", parent_id=primary.id, actor="coordinator"
    )
    idea = package.save_idea(
        driver_id=secondary.id, code="L1", title="Insertion checklist", actor="coordinator"
    )
    pdsa = PdsaService(db_session, built.collaborative_id)
    first = pdsa.create(
        built.member,
        PdsaDraft(
            title="Checklist trial on ICU",
            starts_on=dt.date(2024, 3, 12),
            measure_ids=(built.measure_ids["CLABSI"],),
            change_idea_id=idea.id,
        ),
        actor="officer",
    )
    pdsa.create(
        built.member,
        PdsaDraft(
            title="Checklist on all wards",
            starts_on=dt.date(2024, 6, 17),
            measure_ids=(built.measure_ids["CLABSI"],),
            change_idea_id=idea.id,
            follows_id=first.id,
            decision=ActDecision.ADOPT,
            decided_on=dt.date(2024, 9, 9),
            starts_phase=True,
        ),
        actor="officer",
    )
    progress = ProgressService(db_session, built.collaborative_id)
    for month, team, faculty in ((dt.date(2024, 3, 1), 2.0, 2.0), (dt.date(2024, 9, 1), 3.5, 3.0)):
        progress.score(built.member, month, Scorer.TEAM, team, actor="officer")
        progress.score(built.member, month, Scorer.FACULTY, faculty, actor="coordinator")
    progress.score(built.other, dt.date(2024, 9, 1), Scorer.FACULTY, 2.5, actor="coordinator")
    db_session.commit()
    return built


def test_pdsa_markers_are_drawn_on_the_members_chart_at_their_month(settings, engine, world):
    config = make_config({**settings, "db.engine": engine})
    config.registry[IDENTITY_LOADER_KEY] = _loader
    config.set_csrf_storage_policy(CookieCSRFStoragePolicy())
    portal = Portal(config.make_wsgi_app(), world)
    page = portal.as_user("viewer").get(f"/members/{world.member}/results")
    section = page.html.find(id="m-CLABSI")
    chart = next(svg for svg in section.find_all("svg") if "PDSA: Checklist trial" in svg.text)
    # Long labels are shortened on the chart, with the whole label as the marker's title.
    titles = [t.text for t in chart.find_all("title")]
    assert "PDSA: Checklist trial on ICU" in titles
    assert "Adopted: Checklist on all wards" in titles
    other = portal.as_user("other_officer").get(f"/members/{world.other}/results")
    assert "Checklist trial" not in other.text


def _html(db_session, world, spec):
    run = load_run(db_session, world.run_id)
    return PdfRenderer().html(TEMPLATES[spec.kind], report_context(db_session, run, spec))


def test_the_member_report_lists_the_teams_ramps_and_scores(db_session, world):
    html = _html(db_session, world, ReportSpec(ReportKind.MEMBER, world.member))
    assert "Your improvement work" in html
    assert "L1 Insertion checklist" in html
    assert "1. Checklist trial on ICU" in html
    assert "2. Checklist on all wards" in html
    assert "new chart phase" in html
    assert "2024-09 team 3.5, faculty 3.0" in html
    other = _html(db_session, world, ReportSpec(ReportKind.MEMBER, world.other))
    assert "Checklist trial on ICU" not in other
    assert "No PDSA cycles recorded yet." in other


def test_collaborative_reports_draw_the_driver_diagram_and_the_score_distribution(
    db_session, world
):
    for kind in (ReportKind.COLLABORATIVE, ReportKind.BLINDED_SUMMARY):
        html = _html(db_session, world, ReportSpec(kind))
        assert "Aim: Every line inserted and kept clean" in html
        assert "Driver diagram: 1 primary drivers, 1 secondary drivers, 1 change ideas" in html
        assert "Progress scores, 2024-09" in html
        assert "1 of 12 teams scored themselves and the faculty scored 2" in html
    blinded = _html(db_session, world, ReportSpec(ReportKind.BLINDED_SUMMARY))
    assert "Checklist trial on ICU" not in blinded


def test_the_member_report_renders_as_pdf(db_session, world):
    run = load_run(db_session, world.run_id)
    spec = ReportSpec(ReportKind.MEMBER, world.member)
    pdf = PdfRenderer().render(TEMPLATES[spec.kind], report_context(db_session, run, spec))
    assert pdf.startswith(b"%PDF")


def test_best_practice_counts_what_every_group_adopted(settings, engine, db_session, world):
    """Every member adopts L1 on CLABSI: each shown group adopted it to a member (100%)."""
    from qicollab.improvement.models import ChangeIdea
    from qicollab.improvement.practice import best_practice

    idea_id = db_session.scalar(sa.select(ChangeIdea.id))
    pdsa = PdsaService(db_session, world.collaborative_id)
    for member_id in world.member_ids[1:]:
        pdsa.create(
            member_id,
            PdsaDraft(
                title="Checklist",
                starts_on=dt.date(2024, 4, 1),
                measure_ids=(world.measure_ids["CLABSI"],),
                change_idea_id=idea_id,
                decision=ActDecision.ADOPT,
                decided_on=dt.date(2024, 5, 1),
            ),
            actor="officer",
        )
    db_session.commit()
    run = load_run(db_session, world.run_id)
    practice = {p.measure.code: p for p in best_practice(db_session, run, min_contributors=3)}
    clabsi = practice["CLABSI"]
    comparison = clabsi.comparison
    measure = run.measure(world.measure_ids["CLABSI"])
    shown = len(run.results_for(measure.id)) - len(run.suppressed(measure))
    assert comparison.contributors <= shown
    assert comparison.best + comparison.rest <= comparison.contributors
    assert comparison.min_contributors >= 3  # the run's stored minimum wins when larger
    (row,) = clabsi.used
    assert any(not g.withheld for g in (row.best, row.improved, row.rest))
    for group in (row.best, row.improved, row.rest):
        if group.members >= comparison.min_contributors:
            assert (group.tested, group.adopted, group.adopted_share) == (
                group.members,
                group.members,
                1.0,
            )
        else:
            assert group.withheld
    assert practice["HH"].used == ()  # no cycle is linked to HH
    withheld = best_practice(db_session, run, min_contributors=100)
    assert all(p.comparison.withheld for p in withheld)
    config = make_config({**settings, "db.engine": engine})
    config.registry[IDENTITY_LOADER_KEY] = _loader
    config.set_csrf_storage_policy(CookieCSRFStoragePolicy())
    page = Portal(config.make_wsgi_app(), world).as_user("viewer").get("/best-practice")
    section = page.html.find(id="practice-CLABSI")
    assert "L1 Insertion checklist" in section.text
    assert not any(name in page.text for name in world.names.values())
    blinded = _html(db_session, world, ReportSpec(ReportKind.BLINDED_SUMMARY))
    assert "What the best performers do" in blinded
