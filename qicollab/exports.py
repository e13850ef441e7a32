"""Safe spreadsheet exports: cells that a spreadsheet would run as formulas are defused.

Excel, LibreOffice and Google Sheets treat a cell that starts with ``=``, ``+``, ``-`` or ``@``
(and, after a tab or carriage return, the same) as a formula, so a value such as
``=HYPERLINK("http://evil", "click")`` typed into one system becomes live in another (CSV or
formula injection, OWASP). Every export of user-supplied text goes through :func:`escape_formula`,
which prefixes such cells with a single quote: the spreadsheet shows the text, runs nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

#: Leading characters that make a spreadsheet cell a formula (or smuggle one in).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(value: object) -> object:
    """``value`` made inert for spreadsheets; numbers and None pass through unchanged.

    Only text is escaped: a real negative number written as a number is not a formula, but the
    text ``-1+2`` is, so strings are always checked.
    """
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def escape_row(values: Iterable[object]) -> list[object]:
    """:func:`escape_formula` applied to every cell of a row."""
    return [escape_formula(value) for value in values]


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """A UTF-8 CSV (with a byte-order mark, so Excel reads the encoding) of escaped cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(escape_row(header))
    for row in rows:
        writer.writerow(escape_row("" if value is None else value for value in row))
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
