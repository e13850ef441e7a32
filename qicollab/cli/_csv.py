"""Reading and validating CSV input for the ``analyze`` commands, with row-precise errors.

Shared by every ``qicollab analyze`` command: read a file with pandas (all cells as text, so
nothing is silently converted), require columns, coerce a column to numbers, and check that
counts are non-negative (optionally whole numbers). Every error is a :class:`CsvError` (a
``click.ClickException``, so the command exits with status 1) whose message names the file, the
**data row** (1-based, the header is not counted) with its line in the file, and the column::

    data.csv: data row 3 (line 4), column 'observed': 'abc' is not a number

Line numbers account for quoted cells that contain line breaks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pandas as pd


class CsvError(click.ClickException):
    """A CSV input problem, reported with file, row and column."""


@dataclass(frozen=True, slots=True)
class CsvTable:
    """A CSV file read as text, with helpers that report errors by file, row and column.

    Parameters
    ----------
    path : str
        File name as given on the command line (used in messages).
    frame : pandas.DataFrame
        Every cell as a string ("" for an empty cell); columns as in the header.
    first_lines : numpy.ndarray
        Line number in the file on which each data row starts.
    """

    path: str
    frame: pd.DataFrame
    first_lines: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)

    def where(self, row: int, column: str | None = None) -> str:
        """``"file: data row 3 (line 4), column 'x'"`` for a 0-based row position."""
        text = f"{self.path}: data row {row + 1} (line {int(self.first_lines[row])})"
        return text if column is None else f"{text}, column {column!r}"

    def require(self, *columns: str) -> None:
        """Fail unless every column is in the header."""
        missing = [c for c in columns if c not in self.frame.columns]
        if missing:
            have = ", ".join(map(repr, self.frame.columns))
            msg = (
                f"{self.path}: missing column(s) {', '.join(map(repr, missing))} "
                f"(the header has {have})"
            )
            raise CsvError(msg)

    def text(self, column: str, *, allow_missing: bool = False) -> pd.Series:
        """A column as stripped strings; empty cells are an error unless allowed."""
        self.require(column)
        values = self.frame[column].str.strip()
        if not allow_missing:
            empty = np.flatnonzero((values == "").to_numpy())
            if empty.size:
                msg = f"{self.where(int(empty[0]), column)}: missing value"
                raise CsvError(msg)
        return values

    def numeric(
        self,
        column: str,
        *,
        non_negative: bool = False,
        integer: bool = False,
        allow_missing: bool = False,
    ) -> np.ndarray:
        """A column as float64, with row-precise errors for text, infinities, negatives.

        Empty cells are an error unless ``allow_missing`` (they become NaN).
        """
        raw = self.text(column, allow_missing=allow_missing)
        values = pd.to_numeric(raw.where(raw != "", None), errors="coerce").to_numpy(float)
        bad = np.flatnonzero(np.isnan(values) & (raw != "").to_numpy())
        if bad.size:
            row = int(bad[0])
            msg = f"{self.where(row, column)}: {raw.iloc[row]!r} is not a number"
            raise CsvError(msg)
        infinite = np.flatnonzero(np.isinf(values))
        if infinite.size:
            msg = f"{self.where(int(infinite[0]), column)}: value must be finite"
            raise CsvError(msg)
        if non_negative:
            negative = np.flatnonzero(values < 0)
            if negative.size:
                row = int(negative[0])
                msg = f"{self.where(row, column)}: {raw.iloc[row]} is negative; counts must be >= 0"
                raise CsvError(msg)
        if integer:
            fractional = np.flatnonzero(np.isfinite(values) & (values != np.floor(values)))
            if fractional.size:
                row = int(fractional[0])
                msg = f"{self.where(row, column)}: {raw.iloc[row]} is not a whole number"
                raise CsvError(msg)
        return values

    def check_not_above(self, small: str, large: str, a: np.ndarray, b: np.ndarray) -> None:
        """Fail at the first row where ``small`` exceeds ``large`` (numerator > denominator)."""
        rows = np.flatnonzero(a > b)
        if rows.size:
            row = int(rows[0])
            msg = f"{self.where(row, small)}: {a[row]:g} exceeds {large!r} ({b[row]:g})"
            raise CsvError(msg)


def read_csv(path: str | Path) -> CsvTable:
    """Read a CSV file as text; any unreadable or empty file is a :class:`CsvError`."""
    name = str(path)
    file = Path(path)
    if not file.is_file():
        msg = f"{name}: no such file"
        raise CsvError(msg)
    try:
        frame = pd.read_csv(
            file,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
            skip_blank_lines=False,
        )
    except pd.errors.EmptyDataError as error:
        msg = f"{name}: the file is empty"
        raise CsvError(msg) from error
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        msg = f"{name}: not a readable CSV file ({error})"
        raise CsvError(msg) from error
    if len(frame) == 0:
        msg = f"{name}: no data rows below the header"
        raise CsvError(msg)
    frame.columns = [str(c).strip() for c in frame.columns]
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        msg = f"{name}: duplicate column name(s) {duplicated}"
        raise CsvError(msg)
    breaks = np.zeros(len(frame), dtype=int)
    for column in frame.columns:
        breaks += frame[column].str.count("\n").to_numpy(dtype=int)
    header_lines = 1 + sum(str(c).count("\n") for c in frame.columns)
    first_lines = header_lines + 1 + np.concatenate([[0], np.cumsum(breaks[:-1] + 1)])
    blank = (frame.apply(lambda column: column.str.strip()) == "").all(axis=1).to_numpy()
    frame = frame.loc[~blank].reset_index(drop=True)
    if len(frame) == 0:
        msg = f"{name}: no data rows below the header"
        raise CsvError(msg)
    return CsvTable(name, frame, first_lines[~blank].astype(int))


def json_number(value: object) -> object:
    """A JSON-safe scalar: NaN and infinities become None, NumPy scalars Python ones."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
