"""Workbook parts nobody sees in the grid are refused (issue 14, item 4)."""

from __future__ import annotations

import io
import zipfile

import openpyxl
import pytest
from openpyxl.comments import Comment

from qicollab.submissions.errors import ParseError
from qicollab.submissions.parsing import parse_upload


def _workbook(change=None) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Data"
    sheet.append(["period", "numerator", "denominator"])
    sheet.append(["2026-01", "1", "2"])
    if change:
        change(workbook)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _with_part(data: bytes, name: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            target.writestr(item, source.read(item.filename))
        target.writestr(name, content)
    return out.getvalue()


def _hide(workbook):
    workbook.create_sheet("notes").append(["John Smith 123-45-6789"])
    workbook["notes"].sheet_state = "hidden"


def _note(workbook):
    workbook["Data"]["B2"].comment = Comment("pt John Smith", "nurse")


def _title(workbook):
    workbook.properties.title = "Falls for Mary Johnson, MRN 7788991"


def test_a_plain_workbook_is_read():
    assert parse_upload(_workbook(), "f.xlsx").columns == ("period", "numerator", "denominator")


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (_workbook(_hide), "xlsx_hidden_sheet"),
        (_workbook(_note), "xlsx_notes"),
        (_workbook(_title), "xlsx_properties"),
        (_with_part(_workbook(), "xl/media/image1.png", b"\x89PNG..."), "xlsx_images"),
        (_with_part(_workbook(), "docProps/custom.xml", b"<Properties/>"), "xlsx_properties"),
    ],
)
def test_hidden_sheets_notes_properties_and_images_are_refused(data, rule):
    with pytest.raises(ParseError) as caught:
        parse_upload(data, "f.xlsx")
    assert caught.value.rule == rule
    for secret in ("John", "Smith", "Mary", "7788991"):
        assert secret not in caught.value.message


def _lists(*cells):
    def change(workbook):
        lists = workbook.create_sheet("Lists")
        lists.append(list(cells))
        lists.sheet_state = "hidden"

    return change


def test_the_templates_hidden_code_list_is_read_and_screened():
    assert len(parse_upload(_workbook(_lists("18-49", "90+", "F", "M")), "f.xlsx")) == 1
    with pytest.raises(ParseError) as caught:
        parse_upload(_workbook(_lists("F", "John Smith 123-45-6789")), "f.xlsx")
    assert caught.value.rule == "xlsx_hidden_sheet"
