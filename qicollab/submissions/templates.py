"""Downloadable submission templates, generated from the measure's definition.

The CSV template is the header row, so it uploads as it is; its companion guide (plain text,
``HH-template-guide.txt``) lists every column with its meaning, whether it is required and the
values it allows, then example rows to copy.

The XLSX template has a Data sheet whose columns are typed (codes, periods and keys are Text
cells with number format ``@``, so Excel neither drops the leading zero of ``01`` nor turns
``2026-03`` into a date), with drop-downs for coded values and range checks for numbers, and a
protected Guidance sheet with the definitions and example rows.
"""

from __future__ import annotations

import io

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from qicollab.exports import csv_bytes, escape_formula
from qicollab.submissions.layout import Column, ColumnKind, Layout

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: Data validation reaches this far down the Data sheet.
DATA_ROWS = 100_000
_TEXT_KINDS = {ColumnKind.CODE, ColumnKind.PERIOD, ColumnKind.KEY, ColumnKind.TEXT}


def template_filename(layout: Layout, extension: str) -> str:
    """``HH-template.csv``."""
    return f"{layout.measure_code}-template.{extension}"


def csv_template(layout: Layout) -> bytes:
    """The header row, as UTF-8 CSV with a byte-order mark (Excel then reads it as UTF-8)."""
    return csv_bytes(list(layout.names), [])


def guide_filename(layout: Layout) -> str:
    """``HH-template-guide.txt``."""
    return f"{layout.measure_code}-template-guide.txt"


def csv_guide(layout: Layout, *, definitions: dict[str, str] | None = None) -> bytes:
    """The CSV template's companion: columns, allowed values and example rows, as UTF-8 text."""
    title = f"{layout.measure_code} template guide: {layout.measure_title}"
    rows = "one row per case" if layout.is_patient else "one row per reporting month"
    lines = [
        title,
        "=" * len(title),
        "",
        f"Fill in {template_filename(layout, 'csv')} with {rows}, keep its header row as it is,",
        "and upload it: a preview lists any problem by row and column before anything is stored.",
        "",
    ]
    for key, value in (definitions or {}).items():
        if value:
            lines += [f"{key}: {value}"]
    if definitions:
        lines.append("")
    lines += ["Columns", "-------"]
    for column in layout.columns:
        lines.append(f"{column.name} ({'required' if column.required else 'optional'})")
        lines.append(f"    {column.label}. {column.description}".rstrip())
        lines.append(f"    Allowed: {column.allowed_values()}")
        if column.example:
            lines.append(f"    Example: {column.example}")
    examples = csv_bytes(list(layout.names), example_rows(layout)).decode("utf-8-sig")
    lines += [
        "",
        "Example rows (the header, then two rows as they would appear in the file)",
        "-------------------------------------------------------------------------",
        *examples.splitlines(),
        "",
        "Never include names, record or account numbers, dates finer than allowed, addresses, ZIP",
        "codes, phone numbers, e-mail or web addresses, or ages above 89 (write 90+). Files that",
        "contain them are refused and not stored.",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


def example_rows(layout: Layout) -> list[list[str]]:
    """Two plausible rows for the Guidance sheet."""
    first = [column.example for column in layout.columns]
    second = []
    for column in layout.columns:
        if column.kind is ColumnKind.PERIOD:
            second.append("2026-02")
        elif column.kind is ColumnKind.KEY:
            second.append("B8M4TZ")
        elif column.kind is ColumnKind.CODE and len(column.levels) > 1:
            second.append(column.levels[1])
        elif column.kind is ColumnKind.BINARY:
            second.append("1")
        else:
            second.append(column.example)
    return [first, second]


def xlsx_template(layout: Layout, *, definitions: dict[str, str] | None = None) -> bytes:
    """The workbook: a typed Data sheet and a read-only Guidance sheet."""
    workbook = Workbook()
    data = workbook.active
    assert isinstance(data, Worksheet)
    data.title = "Data"
    bold = Font(bold=True)
    lists = workbook.create_sheet("Lists")
    lists.sheet_state = "hidden"
    list_column = 0
    for index, column in enumerate(layout.columns, start=1):
        letter = get_column_letter(index)
        header = data.cell(row=1, column=index, value=column.name)
        header.font = bold
        header.number_format = "@"
        dimension = data.column_dimensions[letter]
        dimension.width = max(12, min(40, len(column.name) + 4))
        if column.kind in _TEXT_KINDS:
            # A column style: cells typed into the column later are text, not dates/numbers.
            dimension.number_format = "@"
        validation = _validation(column, lists, list_column)
        if column.kind is ColumnKind.CODE:
            list_column += 1
        if validation is not None:
            data.add_data_validation(validation)
            validation.add(f"{letter}2:{letter}{DATA_ROWS}")
    data.freeze_panes = "A2"
    _guidance(workbook, layout, definitions or {})
    workbook.active = 0
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _validation(column: Column, lists: Worksheet, list_column: int) -> DataValidation | None:
    prompt = column.allowed_values()[:250]
    common = {
        "allow_blank": not column.required,
        "showErrorMessage": True,
        "showInputMessage": True,
        "promptTitle": column.name[:32],
        "prompt": prompt,
        "errorTitle": "Not allowed",
        "error": f"{column.label}: {prompt}"[:250],
    }
    if column.kind is ColumnKind.CODE:
        # Codes live in a hidden sheet so lists of any length (and commas) work.
        letter = get_column_letter(list_column + 1)
        for row, level in enumerate(column.levels, start=1):
            cell = lists.cell(row=row, column=list_column + 1, value=level)
            cell.number_format = "@"
        return DataValidation(
            type="list", formula1=f"Lists!${letter}$1:${letter}${len(column.levels)}", **common
        )
    if column.kind is ColumnKind.BINARY:
        return DataValidation(type="list", formula1='"0,1"', **common)
    if column.kind in {ColumnKind.COUNT, ColumnKind.YEAR, ColumnKind.MONTH}:
        low = int(column.minimum or 0)
        high = int(column.maximum) if column.maximum is not None else 1_000_000_000
        return DataValidation(
            type="whole", operator="between", formula1=str(low), formula2=str(high), **common
        )
    if column.kind is ColumnKind.NUMBER and (
        column.minimum is not None or column.maximum is not None
    ):
        low = column.minimum if column.minimum is not None else -1e12
        high = column.maximum if column.maximum is not None else 1e12
        return DataValidation(
            type="decimal", operator="between", formula1=str(low), formula2=str(high), **common
        )
    if column.kind is ColumnKind.PERIOD:
        return DataValidation(type="textLength", operator="equal", formula1="7", **common)
    if column.kind in {ColumnKind.KEY, ColumnKind.TEXT}:
        limit = 64 if column.kind is ColumnKind.KEY else 500
        return DataValidation(
            type="textLength", operator="lessThanOrEqual", formula1=str(limit), **common
        )
    return None


def _guidance(workbook: Workbook, layout: Layout, definitions: dict[str, str]) -> None:
    sheet = workbook.create_sheet("Guidance")
    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")
    lines: list[tuple[str, str]] = [
        (f"{layout.measure_code}: {layout.measure_title}", ""),
        ("", ""),
        *((key, value) for key, value in definitions.items() if value),
        (
            "How to submit",
            "Fill in the Data sheet, one row per period"
            + (" (patient-level: one row per case)" if layout.is_patient else "")
            + ", save as .xlsx (or CSV) and upload it. You will see a preview with any problems "
            "before anything is stored.",
        ),
        (
            "Never include",
            "Names, record or account numbers, dates finer than allowed, addresses, ZIP codes, "
            "phone numbers, e-mail or web addresses, or ages above 89 (use 90+). Files that "
            "contain them are refused and not stored.",
        ),
        ("", ""),
    ]
    for title, text in lines:
        sheet.append([escape_formula(title), escape_formula(text)])
        sheet.cell(row=sheet.max_row, column=1).font = bold
    sheet.append(["Column", "Meaning", "Required", "Allowed values"])
    for cell in sheet[sheet.max_row]:
        cell.font = bold
    for column in layout.columns:
        sheet.append(
            [
                column.name,
                escape_formula(f"{column.label}. {column.description}".strip()),
                "yes" if column.required else "no",
                escape_formula(column.allowed_values()),
            ]
        )
    sheet.append([])
    sheet.append(["Example rows"])
    sheet.cell(row=sheet.max_row, column=1).font = bold
    sheet.append(list(layout.names))
    for row in example_rows(layout):
        sheet.append([escape_formula(value) for value in row])
        for cell in sheet[sheet.max_row]:
            cell.number_format = "@"
    for row in sheet.iter_rows():
        for cell in row:
            cell.alignment = wrap
    sheet.column_dimensions["A"].width = 24
    sheet.column_dimensions["B"].width = 70
    sheet.column_dimensions["C"].width = 10
    sheet.column_dimensions["D"].width = 50
    # Read-only: the guidance is not a place to type data.
    sheet.protection.sheet = True
    sheet.protection.enable()
