"""The member report reads in words: what needs attention, the member's own blinded code,
diagnostics that say why they are absent, and no odds ratio printed as 0.00."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup


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
    soup = BeautifulSoup(rendered.member.html, "html.parser")
    for heading in soup.find_all("h2", string=re.compile("^Risk model")):
        table = heading.find_next("table")
        for row in table.tbody("tr"):
            cells = [td.get_text(" ", strip=True) for td in row("td")]
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
