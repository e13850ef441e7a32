"""What the PDFs say, read back with pypdf: sections, numbers, blinding and suppression."""

from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup

from qicollab.reporting.sections import gap_words


def _flat(text: str) -> str:
    """PDF text with line breaks and hyphenation noise folded into single spaces."""
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize(
    "heading",
    [
        "Benchmark report",
        "Executive summary",
        "Measures of concern",
        "Largest gaps to the benchmark",
        "All measures at a glance",
        "Best-practice comparison",
        "Methods",
        "Small-cell suppression and blinding",
        "Risk model: SURG",
        "Data used",
    ],
)
def test_member_report_has_every_section(rendered, heading):
    assert heading in _flat(rendered.member.text)


def test_member_report_has_a_section_per_measure(rendered, run_data):
    text = _flat(rendered.member.text)
    assert all(f"{m.code}: {m.title}" in text for m in run_data.measures)


def test_member_report_cover_names_member_cycle_lock_and_run(rendered):
    text = _flat(rendered.member.text)
    world = rendered.world
    assert all(
        needle in text
        for needle in (world.names[world.member], "Cycle 2023-2025", "2026-02-01", "Run 1")
    )


def test_member_report_numbers_match_the_stored_results(rendered, run_data):
    text = _flat(rendered.member.text)
    member = rendered.world.member
    for measure in run_data.measures:
        result = run_data.results[(member, measure.id)]
        assert measure.show(result.value) in text, measure.code


def test_member_report_intervals_match_the_stored_results(rendered, run_data):
    text = _flat(rendered.member.text)
    member = rendered.world.member
    for measure in run_data.measures:
        result = run_data.results[(member, measure.id)]
        assert measure.show_interval(*result.ci95) in text, measure.code


def test_member_report_gaps_to_the_benchmark_are_the_stored_ones(rendered, run_data):
    """The report prints the run's judgement (reaches / how far short), never its own."""
    text = _flat(rendered.member.text)
    member = rendered.world.member
    for measure in run_data.measures:
        standing = run_data.results[(member, measure.id)].payload.benchmark
        assert standing.reaches is not None, measure.code
        if standing.reaches:
            assert "reaches the benchmark" in text
        else:
            shown = f"{standing.gap * measure.multiplier:,.{measure.digits}f}"
            assert f"{shown}" in text, measure.code
            assert gap_words(measure, standing) in text, measure.code


def test_member_report_has_page_x_of_y(rendered):
    pages = len(rendered.member.reader.pages)
    assert f"Page {pages} of {pages}" in rendered.member.text


def test_member_report_has_a_running_header(rendered):
    second = rendered.member.reader.pages[2].extract_text()
    assert rendered.world.names[rendered.world.member] in second


def test_member_report_has_bookmarks_for_every_measure(rendered, run_data):
    outline = rendered.member.reader.outline

    def titles(items):
        for item in items:
            if isinstance(item, list):
                yield from titles(item)
            else:
                yield item.title

    found = set(titles(outline))
    assert all(f"{m.code}: {m.title}" in found for m in run_data.measures)


def test_member_report_contents_give_page_numbers(rendered, run_data):
    """Each measure's entry is followed, in reading order, by the page its section starts on."""
    pages = [_flat(page.extract_text()) for page in rendered.member.reader.pages]
    for measure in run_data.measures:
        entry = f"{measure.code}: {measure.title}"
        found = re.search(rf"{re.escape(entry)} (\d+)\b", pages[1])
        assert found, f"{entry} has no page number after it on the contents page"
        starts = next(n for n, text in enumerate(pages[2:], start=3) if entry in text)
        assert int(found.group(1)) == starts


def test_member_report_has_at_least_ten_charts(rendered):
    assert rendered.member.html.count('<img src="data:image/svg+xml') >= 10


def test_every_chart_has_alternative_text(rendered):
    soup = BeautifulSoup(rendered.member.html, "html.parser")
    assert all(img.get("alt") for img in soup.find_all("img"))


def test_member_report_names_no_other_member(rendered):
    world = rendered.world
    text = _flat(rendered.member.text)
    html = rendered.member.html
    others = [name for member_id, name in world.names.items() if member_id != world.member]
    assert [name for name in others if name in text or name in html] == []


def test_member_report_shows_no_other_members_annotation(rendered):
    assert rendered.world.other_note not in rendered.member.html


def test_member_report_shows_its_own_annotation(rendered):
    assert rendered.world.own_note in rendered.member.html


def test_other_members_appear_under_blinded_codes(rendered):
    world = rendered.world
    codes = [code for member_id, code in world.blinded.items() if member_id != world.member]
    assert any(code in rendered.member.html for code in codes)


def _peer_tables(html: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every table about other members (a "Member" column): (header, body rows)."""
    soup = BeautifulSoup(html, "html.parser")
    tables = []
    for table in soup.find_all("table"):
        header = [th.get_text(strip=True) for th in table.find("thead").find_all("th")]
        if "Member" not in header:
            continue
        rows = [
            [cell.get_text(" ", strip=True) for cell in row.find_all(["td", "th"])]
            for row in table.find("tbody").find_all("tr")
        ]
        tables.append((header, rows))
    return tables


SMALL = re.compile(r"^(?:[1-9]|10)$")


def _small_counts(html: str) -> list[str]:
    """Cells that read as a count from 1 to 10, outside rank columns (deciles are ranks)."""
    found = []
    for header, rows in _peer_tables(html):
        for row in rows:
            for column, cell in zip(header, row, strict=True):
                if column != "Decile" and SMALL.match(cell.replace(",", "")):
                    found.append(f"{column}={cell}")
    return found


def test_member_report_has_peer_tables(rendered):
    assert _peer_tables(rendered.member.html)


def test_member_report_peer_tables_hold_no_small_counts(rendered):
    assert _small_counts(rendered.member.html) == []


def test_members_with_small_counts_are_left_out_of_peer_tables(rendered):
    world = rendered.world
    leaked = []
    for header, rows in _peer_tables(rendered.member.html):
        for row in rows:
            measure, members = row[header.index("Measure")], row[header.index("Member")]
            leaked += [
                (measure, code)
                for member_id, code in world.blinded.items()
                if code in members and (member_id, measure) in world.small
            ]
    assert leaked == []


def test_the_world_has_small_peers_to_suppress(rendered):
    assert {code for member, code in rendered.world.small if member != rendered.world.member}


def test_charts_say_how_many_members_were_suppressed(rendered):
    assert "not shown because their numbers are small" in rendered.member.html


def test_blinded_summary_names_no_member(rendered):
    text = _flat(rendered.summary.text)
    html = rendered.summary.html
    names = list(rendered.world.names.values())
    assert [name for name in names if name in text or name in html] == []


def test_blinded_summary_has_distributions_benchmarks_and_improvement(rendered, run_data):
    text = _flat(rendered.summary.text)
    assert all(
        needle in text
        for needle in ("Blinded collaborative summary", "Benchmark (ABC)", "Over the cycle")
    )


def test_blinded_summary_peer_tables_hold_no_small_counts(rendered):
    assert _small_counts(rendered.summary.html) == []


def test_collaborative_report_is_identified(rendered):
    text = _flat(rendered.collaborative.text)
    assert all(name in text for name in rendered.world.names.values())


def test_collaborative_report_lists_missing_data(rendered):
    text = _flat(rendered.collaborative.text)
    last = rendered.world.names[rendered.world.member_ids[-1]]
    assert "Missing data" in text
    assert re.search(rf"{re.escape(last)}.*HH: \d+ of \d+ periods", text)


def test_reports_show_targets_on_the_display_scale(rendered):
    # The catalogue stores the CLABSI target as 0.0008 events per line-day.
    member, collaborative = _flat(rendered.member.text), _flat(rendered.collaborative.text)
    assert "target 0.80 per 1,000 line-days" in member
    assert "0.80 per 1,000 line-days" in collaborative
    assert "0.0008" not in member + collaborative


def test_member_report_draws_its_cases_in_order(rendered):
    soup = BeautifulSoup(rendered.member.html, "html.parser")
    alts = [img["alt"] for img in soup.find_all("img") if "CUSUM and VLAD" in img.get("alt", "")]
    assert len(alts) == 1  # the one patient-level measure, the member's own cases
    assert "Upper chart signalled" in alts[0]  # the world's member worsens in its last year
    text = _flat(rendered.member.text)
    assert "risk-adjusted CUSUM (left" in text
    assert "risk-adjusted CUSUM (Steiner 2000)" in text  # the methods appendix says how
