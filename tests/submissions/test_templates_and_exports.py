"""Templates round-trip through the parser; exports defuse formulas; error reports locate."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest

from qicollab.exports import csv_bytes, escape_formula
from qicollab.members.models import DeidProfile
from qicollab.submissions import phi, templates
from qicollab.submissions.parsing import parse_upload
from tests.submissions.conftest import aggregate_csv
from tests.submissions.pure import layout


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+2", "'=1+2"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("", ""),
        (-5, -5),
        (None, None),
    ],
)
def test_escape_formula(value, expected):
    assert escape_formula(value) == expected


def test_csv_bytes_escapes_every_cell():
    body = csv_bytes(["=h"], [["=cmd|' /C calc'!A0", 1, None]]).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(body)))
    assert rows == [["'=h"], ["'=cmd|' /C calc'!A0", "1", ""]]


def test_csv_template_is_the_header():
    shape = layout()
    body = templates.csv_template(shape).decode("utf-8-sig")
    assert body.strip() == "period,numerator,denominator,exclusions,comment"


def test_mean_and_patient_templates_follow_the_definition():
    from qicollab.measures.models import MeasureType

    assert layout(MeasureType.MEAN).names == ("period", "value", "denominator", "comment")
    assert layout(patient=True).names == (
        "case_key",
        "event_year",
        "event_month",
        "age_band",
        "sex",
        "asa_class",
        "emergency",
        "bmi",
        "died_30d",
    )
    assert "event_month" not in layout(patient=True, profile=DeidProfile.SAFE_HARBOR).names
    assert "event_month" not in layout(patient=True, dua=False).names


def test_xlsx_template_has_typed_columns_dropdowns_and_protected_guidance():
    shape = layout(patient=True)
    body = templates.xlsx_template(shape, definitions={"Numerator": "deaths"})
    workbook = openpyxl.load_workbook(io.BytesIO(body))
    data = workbook["Data"]
    assert [cell.value for cell in data[1]] == list(shape.names)
    letters = {name: openpyxl.utils.get_column_letter(i + 1) for i, name in enumerate(shape.names)}
    for name in ("case_key", "age_band", "sex", "asa_class"):
        assert data.column_dimensions[letters[name]].number_format == "@"
    validations = {str(dv.sqref).split(":")[0]: dv for dv in data.data_validations.dataValidation}
    sex = validations[f"{letters['sex']}2"]
    assert sex.type == "list"
    lists = workbook["Lists"]
    sheet_ref = sex.formula1.split("!")[1].replace("$", "")
    assert [c.value for c in lists[sheet_ref.split(":")[0][0]] if c.value] == ["F", "M"]
    asa = validations[f"{letters['asa_class']}2"]
    asa_col = asa.formula1.split("!")[1].replace("$", "")[0]
    assert [c.value for c in lists[asa_col] if c.value] == ["01", "02", "03"]
    assert validations[f"{letters['emergency']}2"].formula1 == '"0,1"'
    assert validations[f"{letters['bmi']}2"].type == "decimal"
    guidance = workbook["Guidance"]
    assert guidance.protection.sheet
    text = " ".join(str(c.value) for row in guidance.iter_rows() for c in row if c.value)
    assert "deaths" in text
    assert "90+" in text


def test_an_untouched_template_with_example_rows_uploads_cleanly():
    shape = layout(patient=True)
    workbook = openpyxl.load_workbook(io.BytesIO(templates.xlsx_template(shape)))
    data = workbook["Data"]
    for row in templates.example_rows(shape):
        data.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    table = phi.screen(parse_upload(buffer.getvalue(), "t.xlsx"), shape)
    assert table.frame["asa_class"].tolist() == ["01", "02"]


class TestErrorReport:
    def test_csv_report_adds_an_error_column_per_row(self, world, service):
        data = aggregate_csv("2026-01,45,50,,", "2026-02,60,50,,=HYPERLINK()", "2026-03,x,5,,")
        report = service.error_report(
            member=world.member, measure=world.hh, data=data, filename="hh.csv", fmt="csv"
        )
        assert report.filename == "hh-errors.csv"
        rows = list(csv.reader(io.StringIO(report.body.decode("utf-8-sig"))))
        assert rows[0][-1] == "errors"
        assert rows[1][-1] == ""
        assert "numerator" in rows[2][-1]
        assert "larger than denominator" in rows[2][-1]
        assert rows[2][4] == "'=HYPERLINK()"
        assert "whole number" in rows[3][-1]

    def test_xlsx_report_and_reupload_of_the_fixed_report(self, world, service, db_session):
        data = aggregate_csv("2026-01,45,50,,", "2026-02,60,50,,")
        report = service.error_report(
            member=world.member, measure=world.hh, data=data, filename="hh.csv", fmt="xlsx"
        )
        workbook = openpyxl.load_workbook(io.BytesIO(report.body))
        sheet = workbook["Data"]
        assert sheet["F1"].value == "errors"
        assert sheet["F3"].value
        sheet["B3"].value = "40"  # the officer fixes the numerator, keeps the error column
        buffer = io.BytesIO()
        workbook.save(buffer)
        result = service.preview(
            member=world.member, measure=world.hh, data=buffer.getvalue(), filename="fixed.xlsx"
        )
        assert result.ok
        assert result.rows_read == 2
