"""A member's change over the cycle, from the run to every page and report.

The run tests each member's first against its last year (:mod:`qicollab.stats.change`) and
stores the verdict in ``MemberPayload.change``; the member page and PDF, the collaborative
report and the blinded summary read that verdict: "improved" / "worsened" only beyond chance,
else "no clear change", with the test named, and the same counts for every audience.
"""

from __future__ import annotations

import pytest

from qicollab.benchmarking.payloads import MemberPayload
from qicollab.benchmarking.services import BenchmarkRunService
from qicollab.db import get_session_factory
from qicollab.demo.loader import HISTORY_CYCLE
from qicollab.reporting.overview import build_overview
from qicollab.reporting.pdf import PdfRenderer
from qicollab.reporting.privacy import Audience
from qicollab.reporting.reports import collaborative_report_context, member_report_context
from qicollab.reporting.results import load_member, load_run
from qicollab.reporting.sections import member_sections
from qicollab.stats import calibration as stats_calibration
from qicollab.stats import change as stats_change
from qicollab.stats.funnel import DEFAULT_METHOD

TESTS = {stats_change.PROPORTION_TEST, stats_change.RATE_TEST, stats_change.MEAN_TEST}


@pytest.fixture
def run_data(small_engine):
    factory = get_session_factory(small_engine)
    service = BenchmarkRunService(factory)
    run = service.execute(service.create(cycle_code=HISTORY_CYCLE).id)
    with factory() as session:
        yield session, load_run(session, run.id)


def _verdicts(data, measure_id):
    out = {}
    for result in data.results_for(measure_id):
        assert isinstance(result.payload, MemberPayload)
        out[result.member_id] = result.payload.change
    return out


def test_every_member_gets_a_tested_verdict(run_data):
    _, data = run_data
    seen = set()
    for measure in data.measures:
        for change in _verdicts(data, measure.id).values():
            assert change is not None
            assert change.test in TESTS
            seen.add(change.verdict)
            if change.verdict != "not assessed":
                # What pages show and rank improvers by: stored, not recomputed by readers.
                assert change.difference == change.last - change.first
            if change.verdict in {"improved", "worsened"}:
                assert change.p_value is not None
                assert change.p_value < 0.05
                better = (change.last > change.first) == measure.higher_is_better
                assert better == (change.verdict == "improved")
            elif change.verdict == "no clear change":
                assert (
                    change.p_value is None
                    or change.p_value >= 0.05
                    or (change.first == change.last)
                )
            else:
                assert change.reason
    # The demo has real improvers and noise: both kinds of verdict occur.
    assert "no clear change" in seen
    assert seen & {"improved", "worsened"}


def test_reports_count_the_stored_verdicts_for_every_audience(run_data):
    session, data = run_data
    cell = data.run.min_cell_size
    identified = build_overview(session, data, Audience.coordinator(cell))
    blinded = build_overview(session, data, Audience.every_member(cell))
    for one, two in zip(identified.measures, blinded.measures, strict=True):
        verdicts = [c.verdict for c in _verdicts(data, one.measure.id).values() if c]
        assert (one.improved, one.worsened, one.assessed) == (
            two.improved,
            two.worsened,
            two.assessed,
        )
        if one.withheld:
            assert one.improved is None
            continue
        assert one.improved == verdicts.count("improved")
        assert one.worsened == verdicts.count("worsened")
        assert one.assessed == sum(1 for v in verdicts if v != "not assessed")
        # Only improvers beyond chance are listed, largest improvement first.
        assert len(one.improvers) == min(one.improved, 5)
        assert [i.change for i in one.improvers] == sorted(
            (i.change for i in one.improvers), reverse=True
        )
        assert all(i.change > 0 for i in one.improvers)


def test_member_page_says_what_the_test_says(run_data):
    session, data = run_data
    member_id = next(iter(sorted(data.members)))
    member = load_member(session, data, member_id)
    sections = member_sections(
        data, member, Audience.member(member_id, data.run.min_cell_size), charts=False
    )
    for section in sections:
        result = section.result
        if result is None:
            continue
        change = result.payload.change
        assert change is not None
        if change.verdict == "not assessed":
            assert section.improvement == "Not assessed"
            continue
        expected = {
            "improved": "Improved (beyond chance)",
            "worsened": "Worsened (beyond chance)",
            "no clear change": "No clear change",
        }[change.verdict]
        assert section.improvement == expected
        assert change.test in section.improvement_detail
        assert f"{change.first_label} to {change.last_label}" in section.improvement_detail


def test_reports_print_the_verdicts_and_the_stored_calibration(run_data):
    """The blinded summary and the collaborative report print the same counts; the member
    report states its verdicts and the test; every methods appendix prints the stored
    calibration table (the default's and the published variants' false-alarm rates)."""
    session, data = run_data
    renderer = PdfRenderer()
    blinded = collaborative_report_context(session, data, blinded=True)
    identified = collaborative_report_context(session, data, blinded=False)
    for context in (blinded, identified):
        html = renderer.html("collaborative.jinja2", context)
        for measure in context["overview"].measures:
            if measure.improved is not None:
                assert f"{measure.improved} improved" in html
                assert f"{measure.worsened} worsened" in html
        assert "no clear change" in html
    member_id = next(iter(sorted(data.members)))
    member = member_report_context(session, data, member_id)
    member_html = renderer.html("member.jinja2", member)
    assert any(s.improvement in member_html for s in member["sections"])
    assert stats_change.RATE_TEST in member_html
    blinded_html = renderer.html("collaborative.jinja2", blinded)
    for context, html in ((blinded, blinded_html), (member, member_html)):
        assert stats_calibration.COMMAND in html
        lines = context["calibration"]
        names = {line.method for line in lines}
        assert len(names) == 4  # the default and SHMI, CQC, Spiegelhalter
        default = next(line for line in lines if line.used and line.data_type.startswith("Ratio"))
        assert default.method.startswith("Random effects")
        stored = stats_calibration.lookup(
            "ratio", DEFAULT_METHOD, "in-control", 0.998, adjusted=True
        )
        assert default.in_control_998 == f"{stored.rate * 100:.2f}%"
        assert default.in_control_998 in html
        shmi = next(line for line in lines if line.method.startswith("SHMI"))
        stored = stats_calibration.lookup("ratio", "shmi", "sd-0.2", 0.998, adjusted=True)
        assert shmi.between_998 == f"{stored.rate * 100:.2f}%"
        assert shmi.between_998 in html
