"""Parsing uploads: text stays text, Excel's habits are undone, hostile files are refused."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import openpyxl
import pytest

from qicollab.submissions.errors import ParseError
from qicollab.submissions.parsing import (
    Limits,
    normalise_header,
    parse_csv,
    parse_upload,
    parse_xlsx,
    table_from_rows,
)


def xlsx(rows, *, sheet="Data", number_format=None) -> bytes:
    workbook = openpyxl.Workbook()
    ws = workbook.active
    ws.title = sheet
    for row in rows:
        ws.append(row)
    if number_format:
        for row in ws.iter_rows():
            for cell in row:
                cell.number_format = number_format
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


class TestCsv:
    def test_codes_keep_leading_zeros_and_stay_text(self):
        table = parse_csv(b"asa_class,period,case_key\n01,2026-03,007\n", "f.csv")
        assert table.frame.iloc[0].tolist() == ["01", "2026-03", "007"]

    def test_nothing_is_guessed_as_missing(self):
        table = parse_csv(b"sex,comment\nNA,null\nN/A,None\n", "f.csv")
        assert table.frame["sex"].tolist() == ["NA", "N/A"]
        assert table.frame["comment"].tolist() == ["null", "None"]

    def test_row_numbers_count_the_header_and_skip_blank_lines(self):
        table = parse_csv(b"a,b\n1,2\n\n,\n3,4\n", "f.csv")
        assert table.rows.tolist() == [2, 5]
        assert table.frame["a"].tolist() == ["1", "3"]

    def test_headers_are_normalised(self):
        table = parse_csv(b" Event Year ,Case-Key\n2026,K1\n", "f.csv")
        assert table.columns == ("event_year", "case_key")
        assert normalise_header("  Period (YYYY-MM) ") == "period_yyyy_mm"

    def test_semicolon_and_bom_and_cp1252(self):
        text = "\ufeffperiod;comment\n2026-01;caf\u00e9\n".encode()
        assert parse_csv(text, "f.csv").frame["comment"].tolist() == ["caf\u00e9"]
        latin = "period,comment\n2026-01,caf\u00e9\n".encode("cp1252")
        assert parse_csv(latin, "f.csv").frame["comment"].tolist() == ["caf\u00e9"]

    def test_utf16_from_excel_unicode_text(self):
        data = "period\tnumerator\n2026-01\t5\n".encode("utf-16")
        assert parse_upload(data, "f.txt").frame["numerator"].tolist() == ["5"]

    def test_whitespace_is_stripped(self):
        table = parse_csv(b"a,b\n  1 , x \n", "f.csv")
        assert table.frame.iloc[0].tolist() == ["1", "x"]

    @pytest.mark.parametrize(
        ("data", "rule", "row"),
        [
            (b"", "empty_file", None),
            (b"a,b\n1,2,3\n", "ragged_row", 2),
            (b"a,a\n1,2\n", "duplicate_column", 1),
            (b"a,\n1,2\n", "missing_header", 2),
            (b"a\x00b\n", "binary_file", None),
        ],
    )
    def test_malformed_files_are_typed_errors(self, data, rule, row):
        with pytest.raises(ParseError) as caught:
            parse_upload(data, "f.csv")
        assert caught.value.rule == rule
        assert caught.value.row == row
        assert caught.value.problems[0].file == "f.csv"

    def test_caps(self):
        limits = Limits(max_bytes=100, max_rows=2, max_columns=3, max_field_chars=5)
        with pytest.raises(ParseError, match="MiB") as caught:
            parse_upload(b"a\n" + b"1\n" * 100, "f.csv", limits)
        assert caught.value.rule == "file_too_large"
        with pytest.raises(ParseError) as caught:
            parse_upload(b"a\n1\n2\n3\n", "f.csv", limits)
        assert caught.value.rule == "too_many_rows"
        with pytest.raises(ParseError) as caught:
            parse_upload(b"a,b,c,d\n1,2,3,4\n", "f.csv", limits)
        assert caught.value.rule == "too_many_columns"
        with pytest.raises(ParseError) as caught:
            parse_upload(b"a,b\n1,123456\n", "f.csv", limits)
        assert (caught.value.rule, caught.value.row, caught.value.column) == (
            "field_too_long",
            2,
            "b",
        )

    def test_limits_from_settings(self):
        limits = Limits.from_settings({"qicollab.upload_max_bytes": "1000", "other": 1})
        assert limits.max_bytes == 1000
        assert limits.max_rows == Limits().max_rows


class TestXlsx:
    def test_typed_cells_become_the_text_the_officer_sees(self):
        data = xlsx(
            [
                ["period", "numerator", "ratio", "flag", "when"],
                [dt.datetime(2026, 3, 1), 12.0, 0.25, True, dt.datetime(2026, 3, 1, 8, 30)],
            ]
        )
        table = parse_upload(data, "f.xlsx")
        assert table.kind == "xlsx"
        assert table.frame.iloc[0].tolist() == [
            "2026-03-01",
            "12",
            "0.25",
            "1",
            "2026-03-01 08:30:00",
        ]

    def test_codes_stored_as_text_keep_their_zeros(self):
        data = xlsx([["asa_class"], ["01"], ["02"]], number_format="@")
        assert parse_xlsx(data, "f.xlsx").frame["asa_class"].tolist() == ["01", "02"]

    def test_the_data_sheet_is_preferred_and_trailing_blanks_ignored(self):
        workbook = openpyxl.Workbook()
        workbook.active.title = "Notes"
        workbook.active.append(["ignore me"])
        data_sheet = workbook.create_sheet("Data")
        data_sheet.append(["a", "b", None])
        data_sheet.append(["1", "2", None])
        data_sheet.append([None, None, None])
        buffer = io.BytesIO()
        workbook.save(buffer)
        table = parse_xlsx(buffer.getvalue(), "f.xlsx")
        assert table.columns == ("a", "b")
        assert len(table) == 1

    def test_stray_cells_right_of_the_header_are_refused(self):
        with pytest.raises(ParseError) as caught:
            parse_xlsx(xlsx([["a"], ["1", "x"]]), "f.xlsx")
        assert (caught.value.rule, caught.value.row) == ("ragged_row", 2)

    def test_zip_bomb_is_refused_before_inflating(self):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("[Content_Types].xml", "<Types/>")
            archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (300 * 1024 * 1024))
        with pytest.raises(ParseError) as caught:
            parse_upload(buffer.getvalue(), "bomb.xlsx")
        assert caught.value.rule in {"zip_too_large", "zip_ratio"}

    def test_high_ratio_entry_is_refused(self):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("[Content_Types].xml", "<Types/>")
            archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (20 * 1024 * 1024))
        with pytest.raises(ParseError) as caught:
            parse_upload(buffer.getvalue(), "bomb.xlsx")
        assert caught.value.rule == "zip_ratio"

    def test_too_many_entries(self):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for i in range(20):
                archive.writestr(f"xl/{i}.xml", "x")
        with pytest.raises(ParseError) as caught:
            parse_upload(buffer.getvalue(), "f.xlsx", Limits(xlsx_max_entries=10))
        assert caught.value.rule == "zip_too_many_entries"

    @pytest.mark.parametrize("name", ["f.xlsm", "f.xlsb"])
    def test_macro_workbooks_by_name(self, name):
        with pytest.raises(ParseError) as caught:
            parse_upload(xlsx([["a"], ["1"]]), name)
        assert caught.value.rule == "macro_workbook"

    def test_macro_workbooks_by_content(self):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("[Content_Types].xml", "<Types/>")
            archive.writestr("xl/vbaProject.bin", b"macro")
        with pytest.raises(ParseError) as caught:
            parse_upload(buffer.getvalue(), "f.xlsx")
        assert caught.value.rule == "macro_workbook"

    def test_legacy_xls_and_broken_zip(self):
        with pytest.raises(ParseError) as caught:
            parse_upload(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"0" * 100, "f.xls")
        assert caught.value.rule == "legacy_xls"
        with pytest.raises(ParseError):
            parse_upload(b"PK\x03\x04garbage", "f.xlsx")


class TestRows:
    def test_values_become_text(self):
        table = table_from_rows([{"period": "2026-01", "numerator": 4, "denominator": 5.0}])
        assert table.frame.iloc[0].tolist() == ["2026-01", "4", "5"]
        assert table.rows.tolist() == [1]

    def test_rows_must_be_objects(self):
        with pytest.raises(ParseError):
            table_from_rows([1, 2])  # type: ignore[list-item]
        with pytest.raises(ParseError):
            table_from_rows([])
