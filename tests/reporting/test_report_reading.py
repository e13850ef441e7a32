"""The member report reads in words: what needs attention, the member's own blinded code,
diagnostics that say why they are absent, and no odds ratio printed as 0.00; the risk models'
tables, the same for every member, are printed once per run, in the summary reports."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup

from qicollab.reporting.sections import model_summaries


def _overview_rows(html: str) -> dict[str, list[str]]:
    """Measure code -> the cells of its row in "All measures at a glance"."""
    soup = BeautifulSoup(html, "html.parser")
    table = soup.find(id="overview").find_next("table")
    return {
        row.th.get_text(strip=True): [" ".join(td.get_text(" ").split()) for td in row("td")]
        for row in table.tbody("tr")
    }


def test_the_executive_summary_names_every_measure_needing_attention(rendered):
    html = rendered.member.html
    soup = BeautifulSoup(html, "html.parser")
    attention = " ".join(soup.find(id="attention").get_text(" ").split())
    rows = _overview_rows(html)
    expected = {
        code
        for code, cells in rows.items()
        if "Worse than expected" in cells[2]
        or cells[3] == "10"
        or "Special cause: concern" in cells[5]
        or "Consistently misses the target" in cells[6]
    }
    assert rows
    for code in rows:
        listed = re.search(rf"\b{re.escape(code)}\b", attention) is not None
        assert listed == (code in expected), (code, rows[code], attention)
    if not expected:
        assert attention.startswith("No measure is worse than expected")


def test_the_member_is_told_its_own_blinded_code(rendered):
    world = rendered.world
    member, other = world.blinded[world.member], world.blinded[world.other]
    cover = BeautifulSoup(rendered.member.html, "html.parser").find("section", class_="cover")
    told = cover.find("dt", string="Your blinded code").find_next("dd").get_text(" ")
    assert told.startswith(member)
    assert member in rendered.member.text
    cover = BeautifulSoup(rendered.other_member.html, "html.parser").find("section", class_="cover")
    told = cover.find("dt", string="Your blinded code").find_next("dd").get_text(" ")
    assert told.startswith(other)


def test_results_page_names_the_members_own_blinded_code(portal, world):
    page = portal.as_user("officer").get(f"/members/{world.member}/results")
    own = page.html.find(id="own-code").get_text(" ")
    assert world.blinded[world.member] in own


def test_odds_ratios_and_diagnostics_never_print_as_zeros_or_bare_dashes(rendered):
    text = " ".join(rendered.member.text.split())
    assert "0.00 0.00–0.00" not in text
    assert "0.00–0.00" not in text
    assert "C-statistic –" not in text
    assert "Brier score –" not in text
    for report in (rendered.summary, rendered.collaborative):  # the tables are printed there
        tables = _model_tables(report.html)
        assert tables
        for cells in (row for rows in tables.values() for row in rows):
            if cells[0].lower().strip("()") in {"intercept", "const"}:
                assert cells[2] == "–"
                assert "baseline" in cells[3]
            else:
                assert cells[2] != "0.00"


def _figures(reader) -> list[str]:
    """The /Alt text of every /Figure element in the PDF's structure tree."""
    found: list[str] = []

    def visit(node) -> None:
        node = node.get_object()
        if isinstance(node, list):
            for child in node:
                visit(child)
            return
        if not hasattr(node, "get"):
            return
        if node.get("/S") == "/Figure":
            found.append(str(node.get("/Alt", "")))
        kids = node.get("/K")
        if kids is not None:
            visit(kids)

    visit(reader.trailer["/Root"]["/StructTreeRoot"])
    return found


def test_every_chart_in_the_tagged_pdf_carries_its_alt_text(rendered):
    for report in (rendered.member, rendered.collaborative, rendered.summary):
        soup = BeautifulSoup(report.html, "html.parser")
        charts = [img["alt"] for img in soup.find_all("img") if "svg" in img["src"][:30]]
        assert charts
        assert all(alt.strip() for alt in charts)
        alts = _figures(report.reader)
        assert len([a for a in alts if a.strip()]) >= len(charts)
        for alt in charts:
            assert " ".join(alt.split())[:60] in {" ".join(a.split())[:60] for a in alts}


def _model_tables(html: str) -> dict[str, list[list[str]]]:
    """Measure code -> the rows of its risk model's coefficient table (term, estimate, ...)."""
    soup = BeautifulSoup(html, "html.parser")
    tables: dict[str, list[list[str]]] = {}
    for heading in soup.find_all(re.compile("^h[23]$"), string=re.compile("^Risk model: ")):
        table = heading.find_next(["table", "h1", "h2", "h3"])
        if table is not None and table.name == "table" and table.find("th", string="Term"):
            code = heading.get_text(strip=True).removeprefix("Risk model: ")
            tables[code] = [
                [td.get_text(" ", strip=True) for td in tr("td")] for tr in table.tbody("tr")
            ]
    return tables


def test_member_reports_give_each_models_fit_but_leave_its_tables_to_the_summary(
    rendered, run_data
):
    models = model_summaries(run_data)
    assert models  # the world has a risk-adjusted measure
    for report in (rendered.member, rendered.other_member):
        soup = BeautifulSoup(report.html, "html.parser")
        named = [
            h.get_text(strip=True) for h in soup.find_all("h3", string=re.compile("^Risk model"))
        ]
        assert named == [f"Risk model: {m.measure.code}" for m in models]
        assert _model_tables(report.html) == {}
        assert "Tenth of risk" not in report.html
        assert "blinded collaborative summary" in " ".join(report.text.split())


def test_the_summaries_print_every_models_coefficients_as_the_run_stored_them(rendered, run_data):
    models = model_summaries(run_data)
    for report in (rendered.summary, rendered.collaborative):
        tables = _model_tables(report.html)
        assert set(tables) == {m.measure.code for m in models if m.coefficients}
        for model in models:
            if model.coefficients:
                rows = tables[model.measure.code]
                assert [(r[0], r[1]) for r in rows] == [
                    (c.term, c.estimate) for c in model.coefficients
                ]
            if model.calibration_rows:
                assert "Calibration by tenth of predicted risk" in report.html
