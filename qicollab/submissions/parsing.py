"""Reading uploaded CSV and XLSX files into a table of text, safely and fast.

Everything is read as text first (``dtype=str``, no NA guessing), so codes such as ``01`` keep
their leading zero and nothing is turned into a date behind the officer's back; the validator
types each column afterwards. CSV goes through pandas' C parser (design/PERFORMANCE.md section 4:
12-17x faster than the csv module); its strings are Arrow-backed, so the PHI sweeps and the
validator's regular expressions run vectorised in Arrow's RE2.

Untrusted files are capped before they are parsed: the upload size, and for XLSX (a zip of XML)
the number of zip entries, their declared uncompressed size and the compression ratio, which
stops zip bombs before a single byte is inflated. Macro-enabled workbooks are refused.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from qicollab.submissions import arrow
from qicollab.submissions.errors import ParseError

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on what an upload may contain; all configurable (``qicollab.upload_*``)."""

    max_bytes: int = 25 * MiB
    max_rows: int = 1_000_000
    max_columns: int = 100
    max_field_chars: int = 2_000
    xlsx_max_entries: int = 1_000
    xlsx_max_uncompressed: int = 256 * MiB
    #: Real sheets compress 5-30x; a bomb compresses 1000x and more.
    xlsx_max_ratio: float = 200.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Limits:
        """Limits from app settings, falling back to the defaults above."""
        default = cls()

        def read(key: str, fallback: float) -> Any:
            value = settings.get(f"qicollab.upload_{key}")
            if value in (None, ""):
                return fallback
            return type(fallback)(value)

        return cls(
            max_bytes=read("max_bytes", default.max_bytes),
            max_rows=read("max_rows", default.max_rows),
            max_columns=read("max_columns", default.max_columns),
            max_field_chars=read("max_field_chars", default.max_field_chars),
            xlsx_max_entries=read("xlsx_max_entries", default.xlsx_max_entries),
            xlsx_max_uncompressed=read("xlsx_max_uncompressed", default.xlsx_max_uncompressed),
            xlsx_max_ratio=read("xlsx_max_ratio", default.xlsx_max_ratio),
        )


@dataclass(frozen=True, slots=True)
class Table:
    """Submitted rows as text, with the spreadsheet row number of each.

    ``frame`` has one string column per normalised header name; cells are stripped and empty
    cells are ``""``. ``rows[i]`` is the row number users see for ``frame.iloc[i]``: for files
    the header is row 1; for row lists (form, API) the first row is 1.
    """

    filename: str
    kind: str  # "csv", "xlsx" or "rows"
    header: tuple[str, ...]
    frame: pd.DataFrame
    rows: np.ndarray

    @property
    def columns(self) -> tuple[str, ...]:
        """Normalised column names, in file order."""
        return tuple(str(name) for name in self.frame.columns)

    def __len__(self) -> int:
        return len(self.frame)

    def with_frame(self, frame: pd.DataFrame) -> Table:
        """The same table with renamed or reordered columns."""
        return Table(self.filename, self.kind, self.header, frame, self.rows)


_NON_WORD = re.compile(r"[^a-z0-9]+")


def normalise_header(name: object) -> str:
    """``" Event Year "`` -> ``"event_year"``: headers compare case- and spacing-blind."""
    text = "" if name is None else str(name)
    return _NON_WORD.sub("_", text.strip().lower()).strip("_")


_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls and other OLE files


def parse_upload(data: bytes, filename: str, limits: Limits | None = None) -> Table:
    """Read an uploaded file (CSV or XLSX, decided by its content) into a :class:`Table`."""
    limits = limits or Limits()
    name = filename or "upload"
    if len(data) > limits.max_bytes:
        raise ParseError(
            f"the file is {len(data) / MiB:.1f} MiB; uploads are limited to "
            f"{limits.max_bytes / MiB:.0f} MiB",
            file=name,
            rule="file_too_large",
            fix="Split the file by period, or send it through the API.",
        )
    if not data.strip():
        raise ParseError("the file is empty", file=name, rule="empty_file", fix="Add rows.")
    lowered = name.lower()
    if lowered.endswith((".xlsm", ".xltm", ".xlam", ".xlsb")):
        raise ParseError(
            "macro-enabled or binary workbooks are not accepted",
            file=name,
            rule="macro_workbook",
            fix="Save the workbook as .xlsx (Excel Workbook) or CSV.",
        )
    if data.startswith(_OLE_MAGIC) or lowered.endswith(".xls"):
        raise ParseError(
            "old-style .xls workbooks are not accepted",
            file=name,
            rule="legacy_xls",
            fix="Save the workbook as .xlsx (Excel Workbook) or CSV.",
        )
    if data.startswith(_ZIP_MAGIC):
        return parse_xlsx(data, name, limits)
    return parse_csv(data, name, limits)


# --- CSV -----------------------------------------------------------------------------------


def _decode(data: bytes, name: str) -> tuple[bytes, str]:
    """The bytes to parse and their encoding: UTF-8 (with or without BOM), UTF-16, cp1252."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16").encode("utf-8"), "utf-8"
        except UnicodeDecodeError as error:
            raise ParseError("the file is not valid UTF-16 text", file=name) from error
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\x00" in data:
        raise ParseError(
            "the file contains binary data (NUL bytes), not CSV text",
            file=name,
            rule="binary_file",
        )
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        # Excel on Windows saves "CSV" in the ANSI code page; latin-1 decodes anything.
        try:
            return data.decode("cp1252").encode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return data.decode("latin-1").encode("utf-8"), "utf-8"
    return data, "utf-8"


def _sniff_separator(data: bytes) -> str:
    """Comma, semicolon (European Excel) or tab, whichever the header line uses most."""
    first = data.split(b"\n", 1)[0]
    counts = {sep: first.count(sep.encode()) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


_QUOTED = re.compile(rb'"(?:[^"]|"")*"')


def _refuse_wide_lines(raw: bytes, sep: str, filename: str, limits: Limits) -> None:
    """Refuse a file with a line of more fields than the column cap, before any parse.

    Counted over the raw bytes: quoted values are blanked (a separator inside quotes is not a
    field), then the separators of each line are counted. A header of a million columns (2 MB) is
    refused in milliseconds instead of being parsed whole by pandas (72 s and 4 GB).
    """
    separator = sep.encode()
    first_line = raw[: raw.find(b"\n")] if b"\n" in raw else raw
    if (
        raw.count(separator) < limits.max_columns
        and first_line.count(separator) < limits.max_columns
    ):
        return
    unquoted = _QUOTED.sub(b"", raw) if b'"' in raw else raw
    for number, line in enumerate(unquoted.split(b"\n"), start=1):
        fields = line.count(separator) + 1
        if fields > limits.max_columns:
            raise ParseError(
                f"line {number} has {fields:,} fields; at most {limits.max_columns} columns "
                "are read",
                file=filename,
                row=number,
                rule="too_many_columns",
                fix="Use the template's columns only.",
            )


_FIELD_COUNT = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def parse_csv(data: bytes, filename: str, limits: Limits | None = None) -> Table:
    """Read CSV bytes; every cell stays text."""
    limits = limits or Limits()
    raw, encoding = _decode(data, filename)
    sep = _sniff_separator(raw)
    _refuse_wide_lines(raw, sep, filename, limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = pd.read_csv(
                io.BytesIO(raw),
                sep=sep,
                header=None,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                skip_blank_lines=False,
                engine="c",
                encoding=encoding,
                quoting=csv.QUOTE_MINIMAL,
                nrows=limits.max_rows + 2,
                index_col=False,
            )
    except pd.errors.EmptyDataError as error:
        raise ParseError("the file is empty", file=filename, rule="empty_file") from error
    except pd.errors.ParserError as error:
        match = _FIELD_COUNT.search(str(error))
        if match:
            expected, line, saw = (int(group) for group in match.groups())
            raise ParseError(
                f"row {line} has {saw} cells but the header has {expected}",
                file=filename,
                row=line,
                rule="ragged_row",
                fix="Check for an unquoted comma (or semicolon) inside a value; "
                "quote values that contain the separator.",
            ) from error
        raise ParseError(
            "the file could not be read as CSV (unbalanced quotes or a broken line)",
            file=filename,
            rule="unreadable",
        ) from error
    except (ValueError, UnicodeError, OverflowError, MemoryError) as error:
        raise ParseError("the file could not be read as CSV", file=filename) from error
    if frame.empty:
        raise ParseError("the file is empty", file=filename, rule="empty_file")
    header = [str(value) for value in frame.iloc[0].tolist()]
    body = frame.iloc[1:]
    return _table(filename, "csv", header, body, np.arange(2, len(frame) + 1), limits)


# --- shared ----------------------------------------------------------------------------------


def _table(  # noqa: PLR0917 - private; one call per format
    filename: str,
    kind: str,
    header: list[str],
    body: pd.DataFrame,
    rows: np.ndarray,
    limits: Limits,
) -> Table:
    """Checks common to every format: caps, header names, blank rows and columns."""
    if len(header) > limits.max_columns:
        raise ParseError(
            f"the file has {len(header)} columns; at most {limits.max_columns} are read",
            file=filename,
            row=1,
            rule="too_many_columns",
            fix="Use the template's columns only.",
        )
    body = body.copy()
    body.columns = range(body.shape[1])
    for position in body.columns:
        column = body[position]
        if column.dtype != "str":
            body[position] = column.astype(str)
        body[position] = arrow.strip(body[position])
    # Rows and columns that are entirely empty (Excel leaves plenty) are not data.
    empty = (body == "").all(axis=1).to_numpy() if body.shape[1] else np.ones(len(body), bool)
    body = body.loc[~empty]
    rows = rows[~empty]
    if len(body) > limits.max_rows:
        raise ParseError(
            f"the file has more than {limits.max_rows:,} rows",
            file=filename,
            rule="too_many_rows",
            fix="Split the file by period.",
        )
    names: list[str] = []
    keep: list[int] = []
    for position, title in enumerate(header):
        name = normalise_header(title)
        if not name:
            if (body[position] != "").any():
                first = int(rows[(body[position] != "").to_numpy().argmax()])
                raise ParseError(
                    f"column {_letter(position)} has values but no header",
                    file=filename,
                    row=first,
                    column=_letter(position),
                    rule="missing_header",
                    fix="Give every column a header from the template, or delete it.",
                )
            continue
        if name in names:
            raise ParseError(
                f"the column {name!r} appears twice",
                file=filename,
                row=1,
                column=name,
                rule="duplicate_column",
                fix="Keep one copy of each column.",
            )
        names.append(name)
        keep.append(position)
    if not names:
        raise ParseError(
            "the first row has no column headers",
            file=filename,
            row=1,
            rule="missing_header",
            fix="Start from the template: its first row names the columns.",
        )
    body = body[keep]
    body.columns = names
    if len(body):
        lengths = pd.DataFrame({name: body[name].str.len() for name in names})
        too_long = lengths > limits.max_field_chars
        if too_long.to_numpy().any():
            row_index, col_index = np.argwhere(too_long.to_numpy())[0]
            raise ParseError(
                f"a cell has more than {limits.max_field_chars:,} characters",
                file=filename,
                row=int(rows[row_index]),
                column=names[col_index],
                rule="field_too_long",
                fix="Shorten the cell; comments are limited to a few sentences.",
            )
    return Table(filename, kind, tuple(header), body.reset_index(drop=True), rows)


def _letter(position: int) -> str:
    """Spreadsheet column letters: 0 -> A, 27 -> AB."""
    letters = ""
    position += 1
    while position:
        position, remainder = divmod(position - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


# --- XLSX ------------------------------------------------------------------------------------


def check_zip(data: bytes, filename: str, limits: Limits) -> None:
    """Refuse zip bombs and macro workbooks by the zip directory alone, before inflating."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise ParseError("the file is not a valid .xlsx workbook", file=filename) from error
    with archive:
        entries = archive.infolist()
        if len(entries) > limits.xlsx_max_entries:
            raise ParseError(
                f"the workbook has {len(entries)} parts; at most {limits.xlsx_max_entries}",
                file=filename,
                rule="zip_too_many_entries",
            )
        declared = sum(entry.file_size for entry in entries)
        if declared > limits.xlsx_max_uncompressed:
            raise ParseError(
                f"the workbook would expand to {declared / MiB:,.0f} MiB; at most "
                f"{limits.xlsx_max_uncompressed / MiB:,.0f} MiB",
                file=filename,
                rule="zip_too_large",
            )
        for entry in entries:
            ratio = entry.file_size / max(entry.compress_size, 1)
            if entry.file_size > MiB and ratio > limits.xlsx_max_ratio:
                raise ParseError(
                    f"a part of the workbook is compressed {ratio:,.0f}:1, more than a "
                    "spreadsheet ever is (a zip bomb?)",
                    file=filename,
                    rule="zip_ratio",
                )
            lowered = entry.filename.lower()
            if lowered.endswith(("vbaproject.bin", ".bin")) or "macrosheets/" in lowered:
                raise ParseError(
                    "the workbook contains macros",
                    file=filename,
                    rule="macro_workbook",
                    fix="Save the workbook as .xlsx (Excel Workbook) or CSV.",
                )
        names = {entry.filename for entry in entries}
        if "[Content_Types].xml" not in names or not any(name.startswith("xl/") for name in names):
            raise ParseError("the file is not an Excel workbook", file=filename)
        _refuse_hidden_parts(archive, filename)


#: Parts of a workbook that are not its cells and could carry identifiers unseen.
_HIDDEN_PARTS = (
    (
        ("xl/media/", "xl/embeddings/"),
        "xlsx_images",
        "the workbook contains images or embedded objects (a photograph identifies)",
        "Delete the pictures and objects, or copy the template's columns into a new workbook.",
    ),
    (
        ("xl/comments", "xl/threadedComments/", "xl/persons/"),
        "xlsx_notes",
        "the workbook has cell notes or comments, which are not read and could hold identifiers",
        "Delete the notes (Review > Delete), or copy the cells into a new workbook.",
    ),
    (
        ("docProps/custom.xml",),
        "xlsx_properties",
        "the workbook has custom document properties, which could hold identifiers",
        "Remove them (File > Info > Properties), or save the data as CSV.",
    ),
)
_HIDDEN_SHEET = re.compile(rb"<(?:\w+:)?sheet\b[^>]*\bstate=\"(?:hidden|veryHidden)\"[^>]*>")
#: The hidden sheet the platform's own templates carry (the code lists behind the drop-downs);
#: its cells are screened like any typed text when a workbook is read.
TEMPLATE_LISTS_SHEET = "Lists"
_CORE_TEXT = re.compile(
    rb"<(?:\w+:)?(title|subject|description|keywords|category)>([^<]{1,2000})</", re.IGNORECASE
)


def _refuse_hidden_parts(archive: zipfile.ZipFile, filename: str) -> None:
    """Refuse what a reviewer would not see in the grid: pictures, notes, hidden sheets, and
    document properties; the refused workbook is neither stored nor kept pending."""
    from qicollab.submissions.identifiers import screen_text  # noqa: PLC0415

    names = archive.namelist()
    for prefixes, rule, message, fix in _HIDDEN_PARTS:
        if any(name.startswith(prefixes) for name in names):
            raise ParseError(message, file=filename, rule=rule, fix=fix)

    def small(name: str) -> bytes:
        entry = archive.getinfo(name)
        return archive.read(name) if entry.file_size <= MiB else b""

    hidden = _HIDDEN_SHEET.findall(small("xl/workbook.xml")) if "xl/workbook.xml" in names else []
    if any(f'name="{TEMPLATE_LISTS_SHEET}"'.encode() not in tag for tag in hidden):
        raise ParseError(
            "the workbook has hidden sheets, which are not read and could hold identifiers",
            file=filename,
            rule="xlsx_hidden_sheet",
            fix="Delete the hidden sheets (right-click a sheet tab > Unhide, then delete).",
        )
    if "docProps/core.xml" in names:
        for _, text in _CORE_TEXT.findall(small("docProps/core.xml")):
            if screen_text(text.decode("utf-8", "replace")):
                raise ParseError(
                    "the workbook's document properties (title, subject, keywords) look like "
                    "they hold an identifier",
                    file=filename,
                    rule="xlsx_properties",
                    fix="Clear them (File > Info > Properties), or save the data as CSV.",
                )

        try:
            content_types = archive.read("[Content_Types].xml")
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as error:
            raise ParseError("the workbook is damaged", file=filename) from error
        if b"macroEnabled" in content_types:
            raise ParseError(
                "the workbook is macro-enabled",
                file=filename,
                rule="macro_workbook",
                fix="Save the workbook as .xlsx (Excel Workbook) or CSV.",
            )


def _cell_text(value: object) -> str:
    """An Excel cell as the text the officer sees (whole numbers without ``.0``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _screen_lists(sheet: Any, filename: str, limits: Limits) -> None:
    """The template's hidden code lists hold codes only: any identifier there is refused."""
    from qicollab.submissions.identifiers import screen_text  # noqa: PLC0415

    seen: set[str] = set()
    for values in sheet.iter_rows(values_only=True, max_row=limits.max_rows):
        for value in values[: limits.max_columns]:
            text = _cell_text(value)
            if text and text not in seen:
                seen.add(text)
                if screen_text(text):
                    raise ParseError(
                        "the hidden Lists sheet holds something other than the template's "
                        "codes, which looks like an identifier",
                        file=filename,
                        rule="xlsx_hidden_sheet",
                        fix="Start from a fresh template, or delete the Lists sheet.",
                    )


def parse_xlsx(data: bytes, filename: str, limits: Limits | None = None) -> Table:
    """Read the "Data" sheet (or the first sheet) of an .xlsx workbook as text."""
    limits = limits or Limits()
    check_zip(data, filename, limits)
    import openpyxl  # noqa: PLC0415 - only uploads of workbooks need it

    try:
        with warnings.catch_warnings():
            # openpyxl warns about features it ignores (extensions, styles); not our concern.
            warnings.simplefilter("ignore")
            workbook = openpyxl.load_workbook(
                io.BytesIO(data), read_only=True, data_only=True, keep_links=False
            )
            try:
                names = workbook.sheetnames
                sheet = workbook["Data"] if "Data" in names else workbook.worksheets[0]
                if TEMPLATE_LISTS_SHEET in names and sheet.title != TEMPLATE_LISTS_SHEET:
                    _screen_lists(workbook[TEMPLATE_LISTS_SHEET], filename, limits)
                records: list[list[str]] = []
                width = 0
                for values in sheet.iter_rows(values_only=True):
                    cells = [_cell_text(value) for value in values]
                    records.append(cells)
                    width = max(width, len(cells))
                    if len(records) > limits.max_rows + 1:
                        break
                    if width > limits.max_columns * 4:
                        break
            finally:
                workbook.close()
    except ParseError:
        raise
    except Exception as error:  # openpyxl raises many kinds on malformed workbooks
        raise ParseError("the workbook could not be read", file=filename) from error
    if not records:
        raise ParseError("the workbook's first sheet is empty", file=filename, rule="empty_file")
    header = records[0]
    # Cells beyond the last header are tolerated only when empty.
    header_width = len(header)
    while header_width and not header[header_width - 1].strip():
        header_width -= 1
    for number, cells in enumerate(records[1:], start=2):
        if any(cell.strip() for cell in cells[header_width:]):
            raise ParseError(
                f"row {number} has values to the right of the last column header",
                file=filename,
                row=number,
                rule="ragged_row",
                fix="Delete the stray cells or give their column a header.",
            )
    padded = [(cells + [""] * header_width)[:header_width] for cells in records[1:]] or np.empty(
        (0, header_width), dtype=object
    )
    body = pd.DataFrame(padded, columns=range(header_width), dtype=str)
    return _table(
        filename,
        "xlsx",
        header[:header_width],
        body,
        np.arange(2, len(records) + 1),
        limits,
    )


# --- rows sent as data (form, API) -------------------------------------------------------------


def _value_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return _cell_text(value)


def table_from_rows(
    rows: Sequence[Mapping[str, object]], *, source: str = "rows", limits: Limits | None = None
) -> Table:
    """Rows already parsed by a form or the API, as a :class:`Table` for the same checks."""
    limits = limits or Limits()
    if not rows:
        raise ParseError("no rows were sent", file=source, rule="empty_file", fix="Send rows.")
    header: list[str] = []
    for row in rows:
        if not isinstance(row, Mapping):
            raise ParseError("each row must be an object of column values", file=source)
        for key in row:
            if str(key) not in header:
                header.append(str(key))
    records = [[_value_text(row.get(key)) for key in header] for row in rows]
    body = pd.DataFrame(records, columns=range(len(header)), dtype=str)
    return _table(source, "rows", header, body, np.arange(1, len(rows) + 1), limits)
