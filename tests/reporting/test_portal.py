"""The results pages and exports in the portal, on SQLite and PostgreSQL: content, blinding,
suppression, permissions."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import openpyxl
import pytest
import sqlalchemy as sa
from bs4 import BeautifulSoup

from qicollab.audit.models import AuditEvent
from qicollab.benchmarking.models import StoredChart
from qicollab.benchmarking.payloads import CHART_PAYLOADS
from qicollab.cycles.models import Annotation, AnnotationKind
from qicollab.measures.models import Measure
from qicollab.members.models import Member
from qicollab.reporting.charts.cusum import describe
from qicollab.reporting.results import load_run


def _text(page) -> str:
    return re.sub(r"\s+", " ", BeautifulSoup(page.text, "html.parser").get_text(" "))


@pytest.fixture
def run_data(db_session, world):
    data = load_run(db_session, world.run_id)
    db_session.commit()
    return data


def results_url(world, member_id=None, **query):
    member_id = member_id or world.member
    tail = "&".join(f"{k}={v}" for k, v in query.items())
    return f"/members/{member_id}/results" + (f"?{tail}" if tail else "")


def test_member_sees_every_measure(portal, world, run_data):
    page = portal.as_user("officer").get(results_url(world))
    text = _text(page)
    assert all(f"{m.code}: {m.title}" in text for m in run_data.measures)


def test_member_page_values_match_the_stored_results(portal, world, run_data):
    page = portal.as_user("viewer").get(results_url(world))
    values = [dd.get_text(" ", strip=True) for dd in page.html.select('dd[data-field="value"]')]
    expected = [
        run_data.measures[i].show(run_data.results[(world.member, m.id)].value)
        for i, m in enumerate(run_data.measures)
    ]
    assert [v.split(" 95%")[0] for v in values] == expected


def test_member_page_shows_the_stored_shrunk_estimate_and_its_interval(portal, world, run_data):
    page = portal.as_user("viewer").get(results_url(world))
    shown = [s.get_text(" ", strip=True) for s in page.html.select('small[data-field="shrunk"]')]
    expected = []
    for measure in run_data.measures:
        result = run_data.results[(world.member, measure.id)]
        payload = result.payload
        if measure.risk_adjusted:
            low, high = payload.shrunk_oe_ci95
            expected.append(f"shrunk O/E {payload.shrunk_oe:.2f} (95% {low:.2f}–{high:.2f})")
        else:
            interval = measure.show_interval(*payload.shrunk_ci95)
            expected.append(f"shrunk {measure.show(result.shrunk_value)} (95% {interval})")
    assert shown == expected


def test_member_page_deciles_match_the_stored_results(portal, world, run_data):
    page = portal.as_user("officer").get(results_url(world))
    deciles = [dd.contents[0].strip() for dd in page.html.select('dd[data-field="decile"]')]
    expected = [str(run_data.results[(world.member, m.id)].decile) for m in run_data.measures]
    assert deciles == expected


@pytest.mark.parametrize(
    "words",
    ["Funnel plot", "Caterpillar plot", "Control chart", "Who reaches the benchmark"],
)
def test_member_page_has_charts_and_comparisons(portal, world, words):
    assert words in _text(portal.as_user("officer").get(results_url(world)))


def test_member_page_charts_are_accessible_svg(portal, world):
    page = portal.as_user("officer").get(results_url(world))
    charts = page.html.select("svg.qc-chart")
    assert charts
    assert all(
        svg.get("role") == "img" and svg.find("title") and svg.find("desc") for svg in charts
    )


def test_member_page_charts_have_data_tables(portal, world):
    page = portal.as_user("officer").get(results_url(world))
    assert (
        len(page.html.select("figure.qc-figure details table"))
        >= len(page.html.select("svg.qc-chart")) - 1
    )  # the control chart of a yearly series may carry no table rows


def test_member_page_draws_the_members_own_cases_in_order(portal, world, db_session):
    surg = db_session.scalar(sa.select(Measure).where(Measure.code == "SURG"))
    stored = {
        kind: CHART_PAYLOADS[kind].from_json(
            db_session.scalar(
                sa.select(StoredChart.payload).where(
                    StoredChart.run_id == world.run_id,
                    StoredChart.member_id == world.member,
                    StoredChart.measure_id == surg.id,
                    StoredChart.kind == kind,
                )
            )
        )
        for kind in ("racusum", "vlad")
    }
    page = portal.as_user("viewer").get(results_url(world))
    charts = [
        svg for svg in page.html.select("svg.qc-chart") if "CUSUM and VLAD" in svg.title.get_text()
    ]
    assert len(charts) == 1
    assert charts[0].desc.get_text() == describe(stored["racusum"], stored["vlad"])
    assert len(charts[0].select(".signal-upper")) == len(stored["racusum"].signals_upper) > 0
    assert stored["racusum"].member_id == world.member


def test_member_page_has_variation_and_assurance_icons(portal, world):
    page = portal.as_user("officer").get(results_url(world))
    labels = {svg.get("aria-label") for svg in page.html.select("svg.qc-icon")}
    assert "Special cause: improvement (higher)" in labels


def test_member_page_names_no_other_member(portal, world):
    text = portal.as_user("officer").get(results_url(world)).text
    others = [name for member_id, name in world.names.items() if member_id != world.member]
    assert [name for name in others if name in text] == []


def test_member_page_shows_peers_by_blinded_code(portal, world):
    text = portal.as_user("officer").get(results_url(world)).text
    assert any(code in text for m, code in world.blinded.items() if m != world.member)


def test_member_page_hides_small_peers_from_chart_tables(portal, world, run_data):
    page = portal.as_user("officer").get(results_url(world))
    leaked = []
    for measure in run_data.measures:
        section = page.html.select_one(f"#m-{measure.code}")
        labels = {
            row.find("td").get_text(strip=True)
            for table in section.select("details table")
            for row in table.find("tbody").find_all("tr")
        }
        leaked += [
            (measure.code, code)
            for member_id, code in world.blinded.items()
            if (member_id, measure.code) in world.small and code in labels
        ]
    assert leaked == []


def test_member_page_has_no_other_members_annotation(portal, world):
    assert world.other_note not in portal.as_user("officer").get(results_url(world)).text


def test_peer_group_comparison_can_be_chosen(portal, world):
    page = portal.as_user("officer").get(results_url(world, peer_group=world.group_code))
    assert "Comparison with Teaching hospitals" in _text(page)


def test_unknown_peer_group_is_404(portal, world):
    portal.as_user("officer").get(results_url(world, peer_group="NOPE"), status=404)


def test_coordinator_sees_the_member_page_identified(portal, world):
    text = portal.as_user("coordinator").get(results_url(world)).text
    assert any(name in text for m, name in world.names.items() if m != world.member)


def test_member_cannot_see_another_members_page(portal, world):
    portal.as_user("officer").get(results_url(world, world.other), status=403)


def test_anonymous_cannot_see_results(portal, world):
    portal.as_user(None).get(results_url(world), status=403)


def test_member_of_another_collaborative_is_404(portal, world, db_session):
    from tests.reporting.world import build_world

    other = build_world(db_session, n_members=3, n_measures=1, months=12, seed=99)
    portal.as_user("coordinator").get(f"/members/{other.member}/results", status=404)


def test_unknown_run_is_404(portal, world):
    portal.as_user("officer").get(results_url(world, run=999), status=404)


def test_page_without_runs_says_so(portal, world, db_session):
    db_session.execute(sa.text("UPDATE benchmark_runs SET status = 'failed'"))
    db_session.commit()
    page = portal.as_user("coordinator").get(results_url(world))
    assert "No benchmark run has finished yet" in page.text
    # Members see published results only, so that is what they are told they lack.
    assert "Results not yet published" in portal.as_user("officer").get(results_url(world)).text


# --- overview ------------------------------------------------------------------------------------


def test_coordinator_overview_lists_every_member(portal, world):
    text = _text(portal.as_user("coordinator").get("/results"))
    assert all(name in text for name in world.names.values())


@pytest.mark.parametrize("heading", ["Members by measure", "Who improved most", "Missing data"])
def test_coordinator_overview_sections(portal, world, heading):
    assert heading in _text(portal.as_user("coordinator").get("/results"))


def test_overview_names_the_member_with_missing_periods(portal, world):
    page = portal.as_user("coordinator").get("/results")
    missing = page.html.select_one("#missing").find_next("table").get_text(" ")
    assert world.names[world.member_ids[-1]] in missing


def test_members_cannot_see_the_overview(portal, world):
    portal.as_user("officer").get("/results", status=403)


# --- exports -------------------------------------------------------------------------------------


def _csv_rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


def test_member_csv_blinds_peers(portal, world):
    rows = _csv_rows(portal.as_user("officer").get(f"/members/{world.member}/results.csv").body)
    members = {row["member"] for row in rows if row["own"] == "no"}
    assert members <= set(world.blinded.values())


def test_member_csv_names_only_the_member(portal, world):
    body = portal.as_user("officer").get(f"/members/{world.member}/results.csv").body.decode()
    others = [name for m, name in world.names.items() if m != world.member]
    assert world.names[world.member] in body
    assert [name for name in others if name in body] == []


def test_member_csv_suppresses_small_peer_counts(portal, world):
    rows = _csv_rows(portal.as_user("officer").get(f"/members/{world.member}/results.csv").body)
    code_of = {code: member for member, code in world.blinded.items()}
    small_rows = [
        row for row in rows if (code_of.get(row["member"]), row["measure"]) in world.small
    ]
    assert small_rows
    assert all(
        row["observed"] == row["value"] == row["denominator"] == "suppressed" for row in small_rows
    )


def test_member_csv_has_no_small_count_in_count_columns(portal, world):
    rows = _csv_rows(portal.as_user("officer").get(f"/members/{world.member}/results.csv").body)
    peers = [row for row in rows if row["own"] == "no"]
    small = [
        (row["member"], column, row[column])
        for row in peers
        for column in ("observed", "denominator")
        if row[column] not in {"", "suppressed"} and 1 <= float(row[column]) < 11
    ]
    assert small == []


def test_member_xlsx_matches_the_csv(portal, world):
    browser = portal.as_user("officer")
    rows = _csv_rows(browser.get(f"/members/{world.member}/results.csv").body)
    workbook = openpyxl.load_workbook(
        io.BytesIO(browser.get(f"/members/{world.member}/results.xlsx").body)
    )
    sheet = list(workbook.active.iter_rows(values_only=True))
    assert len(sheet) == len(rows) + 1


def test_exports_escape_formulas(portal, world, db_session):
    db_session.execute(
        sa.update(Member).where(Member.id == world.member).values(name='=HYPERLINK("x")')
    )
    db_session.commit()
    browser = portal.as_user("officer")
    body = browser.get(f"/members/{world.member}/results.csv").body.decode("utf-8-sig")
    workbook = openpyxl.load_workbook(
        io.BytesIO(browser.get(f"/members/{world.member}/results.xlsx").body)
    )
    cells = [c for row in workbook.active.iter_rows(values_only=True) for c in row]
    assert "'=HYPERLINK" in body
    assert all(not (isinstance(c, str) and c.startswith("=")) for c in cells)


def test_exports_are_audited(portal, world, db_session):
    portal.as_user("officer").get(f"/members/{world.member}/results.csv")
    actions = db_session.scalars(
        sa.select(AuditEvent.action).where(AuditEvent.member_id == world.member)
    ).all()
    assert "results.exported" in actions


def test_member_cannot_export_another_members_results(portal, world):
    portal.as_user("officer").get(f"/members/{world.other}/results.csv", status=403)


def test_coordinator_export_is_identified(portal, world):
    body = portal.as_user("coordinator").get("/results.csv").body.decode("utf-8-sig")
    assert all(name in body for name in world.names.values())


# --- FHIR ----------------------------------------------------------------------------------------


def test_fhir_bundle_has_a_measure_report_per_measure(portal, world, run_data):
    bundle = portal.as_user("officer").get(f"/api/members/{world.member}/measure-reports").json
    kinds = [entry["resource"]["resourceType"] for entry in bundle["entry"]]
    assert kinds == ["MeasureReport"] * len(run_data.measures)


def test_fhir_bundle_validates(portal, world):
    from fhir.resources.R4B.bundle import Bundle

    bundle = portal.as_user("officer").get(f"/api/members/{world.member}/measure-reports").json
    assert Bundle.model_validate(bundle).type == "collection"


def test_fhir_scores_match_the_stored_results(portal, world, run_data):
    bundle = (
        portal.as_user("officer")
        .get(f"/api/members/{world.member}/measure-reports?run={world.run_id}")
        .json
    )
    scores = {
        entry["resource"]["group"][0]["code"]["coding"][0]["code"]: entry["resource"]["group"][0][
            "measureScore"
        ]["value"]
        for entry in bundle["entry"]
    }
    expected = {
        m.code: round(run_data.results[(world.member, m.id)].value * m.multiplier, 6)
        for m in run_data.measures
    }
    assert scores == pytest.approx(expected)


def test_fhir_reports_are_summary_reports_of_the_member(portal, world):
    bundle = portal.as_user("officer").get(f"/api/members/{world.member}/measure-reports").json
    reports = [entry["resource"] for entry in bundle["entry"]]
    assert {(r["type"], r["reporter"]["display"]) for r in reports} == {
        ("summary", world.names[world.member])
    }


def test_fhir_is_forbidden_for_another_member(portal, world):
    portal.as_user("officer").get(f"/api/members/{world.other}/measure-reports", status=403)


# --- targets -------------------------------------------------------------------------------------


def test_targets_are_shown_on_the_display_scale(portal, world):
    # The catalogue stores 0.0008 events per line-day and 0.9 for 90 %.
    member = _text(portal.as_user("officer").get(results_url(world)))
    assert "target 0.80 per 1,000 line-days" in member
    assert "target 90.0 %" in member
    overview = _text(portal.as_user("coordinator").get("/results"))
    assert "0.80 per 1,000 line-days" in overview
    assert "0.0008" not in member + overview


def _figures(page) -> list[str]:
    return [str(svg) for svg in page.html.select("svg.qc-chart")]


def test_a_repeat_visit_serves_the_same_page(portal, world):
    viewer = portal.as_user("viewer")
    first = viewer.get(results_url(world))
    again = viewer.get(results_url(world))
    assert _figures(first) == _figures(again)
    assert _text(first) == _text(again)


def test_a_new_annotation_shows_on_the_next_visit(portal, world, db_session):
    viewer = portal.as_user("viewer")
    viewer.get(results_url(world))
    db_session.add(
        Annotation(
            collaborative_id=world.collaborative_id,
            member_id=world.member,
            occurred_on=dt.date(2024, 5, 1),
            kind=AnnotationKind.CHANGE,
            label="Sepsis bundle started",
        )
    )
    db_session.commit()
    assert "Sepsis bundle started" in _text(viewer.get(results_url(world)))


def test_a_renamed_peer_shows_on_the_coordinators_next_visit(portal, world, db_session):
    coordinator = portal.as_user("coordinator")
    shown = _text(coordinator.get(results_url(world)))
    peer = next(
        member_id
        for member_id, name in world.names.items()
        if member_id != world.member and name in shown
    )
    db_session.get(Member, peer).name = "Renamed Regional Hospital"
    db_session.commit()
    assert "Renamed Regional Hospital" in _text(coordinator.get(results_url(world)))


def test_a_coordinators_visit_never_serves_a_member_the_identified_page(portal, world):
    coordinator_page = portal.as_user("coordinator").get(results_url(world))
    names = [name for member_id, name in world.names.items() if member_id != world.member]
    assert any(name in _text(coordinator_page) for name in names)
    member_page = _text(portal.as_user("viewer").get(results_url(world)))
    assert not any(name in member_page for name in names)
