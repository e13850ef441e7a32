"""Row validation before anything is stored: types, codes, ranges, windows, duplicates, history.

Every rule runs over whole columns at once (Arrow regular expressions, numpy comparisons); a
Python loop only builds the messages of the problems found, and stops building them after
``max_problems`` (they are still counted). Each problem names the file, the spreadsheet row, the
column, the value, the rule and how to fix it.

Errors block a submission. Warnings flag values far outside the member's own accepted history,
in the manner of DHIS2's data-quality checks, and need a short justification to proceed:

* ``history_range``: outside the min/max band derived from history, Tukey's far-out fences
  ``[Q1 - 3 IQR, Q3 + 3 IQR]`` of the member's previous accepted values;
* ``history_zscore``: a modified z-score ``|0.6745 (x - median) / MAD| > 3.5`` (Iglewicz and
  Hoaglin), on the rate and on the denominator (a misplaced digit in a count).

Both need at least :data:`HISTORY_MIN_POINTS` earlier accepted periods.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from qicollab.measures.models import MeasureType
from qicollab.reporting import formatting
from qicollab.schedule.windows import SubmissionWindow
from qicollab.submissions import arrow
from qicollab.submissions.errors import Problem, Severity
from qicollab.submissions.layout import (
    CASE_KEY_PATTERN,
    COMMENT_MAX_CHARS,
    Column,
    ColumnKind,
    Layout,
)
from qicollab.submissions.parsing import Table

HISTORY_MIN_POINTS = 6
ZSCORE_LIMIT = 3.5
FENCE_IQR = 3.0
#: Counts above this are typing slips, and would not fit the database's integer columns.
COUNT_MAX = 1_000_000_000
SHOWN_VALUE_CHARS = 24

_COUNT_PATTERN = r"[0-9]+(?:\.0*)?"
_NUMBER_PATTERN = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_PERIOD_PATTERN = r"([0-9]{4})[-/]([0-9]{1,2})(?:[-/]0?1(?:[ T]00:00(?::00)?)?)?"
_MONTH_NAME_PERIOD = (
    r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?[- /]?([0-9]{4}|[0-9]{2})"
)
_MONTH_NUMBERS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}


@dataclass(frozen=True, slots=True)
class PeriodInfo:
    """A reporting period that rows may name, with its window for this member and measure."""

    id: int
    label: str
    start: dt.date
    end: dt.date
    window: SubmissionWindow


@dataclass(frozen=True, slots=True)
class History:
    """The member's previous accepted values of this measure (other periods)."""

    rates: np.ndarray
    denominators: np.ndarray


@dataclass(frozen=True, slots=True)
class ValidationContext:
    """What the validator needs to know beyond the rows themselves."""

    periods: Mapping[str, PeriodInfo]
    now: dt.datetime
    history: History | None = None
    max_problems: int | None = 1000


@dataclass(frozen=True, slots=True)
class Validated:
    """The outcome of validation: typed rows, and the problems found.

    ``clean`` has one row per input row with typed values (NaN or None where invalid) and a
    ``period`` column holding the period label of each row (``""`` where unknown).
    """

    table: Table
    layout: Layout
    clean: pd.DataFrame
    problems: tuple[Problem, ...]
    error_count: int
    warning_count: int
    counts: Mapping[str, int]
    error_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    @property
    def ok(self) -> bool:
        """No errors (warnings may remain)."""
        return self.error_count == 0


class _Collector:
    """Problems, counted in full but built only up to ``limit``."""

    def __init__(self, table: Table, limit: int | None) -> None:
        self.table = table
        self.limit = limit
        self.problems: list[Problem] = []
        self.counts: Counter[str] = Counter()
        self.errors = 0
        self.warnings = 0
        self.error_rows = np.zeros(len(table), bool)

    def _room(self) -> int:
        return len(self.table) + 10 if self.limit is None else self.limit - len(self.problems)

    def add(
        self,
        mask: np.ndarray,
        rule: str,
        column: str | None,
        message: str | Callable[[int], str],
        fix: str,
        *,
        severity: Severity = Severity.ERROR,
        values: pd.Series | None = None,
    ) -> None:
        """One problem per True cell of ``mask`` (positions in the table)."""
        positions = np.flatnonzero(mask)
        if not len(positions):
            return
        self.counts[rule] += len(positions)
        if severity is Severity.ERROR:
            self.errors += len(positions)
            self.error_rows[positions] = True
        else:
            self.warnings += len(positions)
        room = self._room()
        for position in positions[: max(room, 0)]:
            shown = ""
            if values is not None:
                shown = _shown(values.iloc[position])
            elif column is not None and column in self.table.frame:
                shown = _shown(self.table.frame[column].iloc[position])
            self.problems.append(
                Problem(
                    severity,
                    rule,
                    message(int(position)) if callable(message) else message,
                    fix,
                    file=self.table.filename,
                    row=int(self.table.rows[position]),
                    column=column,
                    value=shown,
                )
            )

    def add_file(self, rule: str, column: str | None, message: str, fix: str) -> None:
        """A problem of the file as a whole (header row)."""
        self.counts[rule] += 1
        self.errors += 1
        if self._room() > 0:
            self.problems.append(
                Problem(
                    Severity.ERROR,
                    rule,
                    message,
                    fix,
                    file=self.table.filename,
                    row=1 if self.table.kind != "rows" else None,
                    column=column,
                )
            )


def _problem_order(problem: Problem) -> tuple[int, int]:
    """Problems read top to bottom: by row (file-level first), errors before warnings."""
    return (problem.row or 0, 0 if problem.severity is Severity.ERROR else 1)


def _shown(value: object) -> str:
    text = "" if value is None else str(value)
    if text == "nan":
        return ""
    return text if len(text) <= SHOWN_VALUE_CHARS else text[: SHOWN_VALUE_CHARS - 1] + "…"


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


# --- typing of single columns ----------------------------------------------------------------


def _type_column(series: pd.Series, column: Column, out: _Collector) -> pd.Series:
    """Typed values of one column (NaN/None where empty or invalid), reporting bad cells."""
    name = column.name
    empty = (series == "").to_numpy()
    if column.required:
        out.add(
            empty,
            "required",
            name,
            f"{column.label} is required",
            f"Enter {column.allowed_values()}.",
        )
    kind = column.kind
    if kind in {ColumnKind.COUNT, ColumnKind.NUMBER, ColumnKind.YEAR, ColumnKind.MONTH}:
        return _type_number(series, column, empty, out)
    if kind is ColumnKind.BINARY:
        valid = arrow.is_in(series, ("0", "1"))
        out.add(
            ~empty & ~valid,
            "not_binary",
            name,
            f"{column.label} must be 1 (yes) or 0 (no)",
            "Enter 1 for yes and 0 for no.",
        )
        return pd.Series(np.where(valid, series.to_numpy() == "1", np.nan), dtype=float)
    if kind is ColumnKind.CODE:
        valid = arrow.is_in(series, column.levels)
        bad = ~empty & ~valid
        if bad.any():
            out.add(
                bad,
                "unknown_code",
                name,
                lambda position: f"{series.iloc[position]!r} is not a code of {column.label}",
                _code_fix(column),
            )
        return series.where(valid, None).astype(object)
    if kind is ColumnKind.KEY:
        valid = arrow.fullmatch(series, CASE_KEY_PATTERN[1:-1])
        out.add(
            ~empty & ~valid,
            "bad_case_key",
            name,
            "case keys are 1-64 letters, digits, '-', '_', '.' or ':' and start with a letter "
            "or digit",
            "Use a short opaque code such as 7QF2K9.",
        )
        return series.where(valid, None).astype(object)
    if kind is ColumnKind.TEXT:
        too_long = arrow.lengths(series) > COMMENT_MAX_CHARS
        out.add(
            too_long,
            "text_too_long",
            name,
            f"{column.label} is longer than {COMMENT_MAX_CHARS} characters",
            "Shorten it to a sentence or two.",
        )
        return series.where(~empty & ~too_long, None).astype(object)
    return series.astype(object)  # PERIOD is typed by _period_labels


def _code_fix(column: Column) -> str:
    levels = ", ".join(column.levels)
    fix = f"Use one of: {levels} (exactly as written)."
    if any(level.startswith("0") and len(level) > 1 for level in column.levels):
        fix += (
            " Spreadsheets drop leading zeros: format the column as Text, or start from the "
            "template, where codes are stored as text."
        )
    return fix


def _type_number(
    series: pd.Series, column: Column, empty: np.ndarray, out: _Collector
) -> pd.Series:
    name, kind = column.name, column.kind
    is_number = arrow.fullmatch(series, _NUMBER_PATTERN)
    numbers = np.full(len(series), np.nan)
    if is_number.any():
        numbers[is_number] = arrow.to_float(series, is_number)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(numbers)
    not_number = ~empty & ~finite
    if not_number.any():
        has_separator = arrow.fullmatch(series, r"[-+]?[0-9]{1,3}(?:[, ][0-9]{3})+(?:\.[0-9]+)?")
        decimal_comma = arrow.fullmatch(series, r"[-+]?[0-9]+,[0-9]+")
        out.add(
            not_number & (has_separator | decimal_comma),
            "number_format",
            name,
            f"{column.label} must be a plain number",
            "Write numbers without thousands separators and with a decimal point: 1234.5.",
        )
        out.add(
            not_number & ~has_separator & ~decimal_comma,
            "not_a_number",
            name,
            f"{column.label} must be {column.allowed_values()}",
            f"Enter {column.allowed_values()}.",
        )
    whole = kind in {ColumnKind.COUNT, ColumnKind.YEAR, ColumnKind.MONTH}
    if whole:
        fraction = finite & (np.floor(np.nan_to_num(numbers)) != np.nan_to_num(numbers))
        out.add(
            fraction,
            "not_a_whole_number",
            name,
            f"{column.label} must be a whole number",
            "Counts are whole numbers: check for a misplaced decimal point.",
        )
        finite &= ~fraction
    if kind is ColumnKind.COUNT:
        negative = finite & (numbers < 0)
        out.add(
            negative, "negative", name, f"{column.label} cannot be negative", "Enter 0 or more."
        )
        huge = finite & (numbers > COUNT_MAX)
        out.add(
            huge,
            "too_large",
            name,
            f"{column.label} is implausibly large",
            "Check for extra digits.",
        )
        finite &= ~negative & ~huge
    if column.minimum is not None:
        low = finite & (numbers < column.minimum)
        if kind is not ColumnKind.COUNT:
            out.add(
                low,
                "below_minimum",
                name,
                lambda p: (
                    f"{column.label} {_fmt(numbers[p])} is below the minimum {_fmt(column.minimum)}"
                ),
                f"Enter {column.allowed_values()}.",
            )
        finite &= ~low
    if column.maximum is not None:
        high = finite & (numbers > column.maximum)
        out.add(
            high,
            "above_maximum",
            name,
            lambda p: (
                f"{column.label} {_fmt(numbers[p])} is above the maximum {_fmt(column.maximum)}"
            ),
            f"Enter {column.allowed_values()}.",
        )
        finite &= ~high
    return pd.Series(np.where(finite, numbers, np.nan), dtype=float)


# --- the whole table -----------------------------------------------------------------------------


def validate(table: Table, layout: Layout, context: ValidationContext) -> Validated:
    """Check every row of ``table`` (columns already resolved by the PHI screen)."""
    out = _Collector(table, context.max_problems)
    present = set(table.columns)
    for name in layout.required:
        if name not in present:
            column = layout.column(name)
            out.add_file(
                "missing_column",
                name,
                f"the required column {name!r} ({column.label}) is missing",
                "Add the column (start from the template) and fill it in for every row.",
            )
    clean = pd.DataFrame(index=range(len(table)))
    for column in layout.columns:
        if column.name not in present or column.kind is ColumnKind.PERIOD:
            continue
        clean[column.name] = _type_column(table.frame[column.name], column, out).to_numpy()
    if layout.is_patient:
        _validate_patient(table, context, clean, out)
    else:
        _validate_aggregate(table, layout, context, clean, out)
    return Validated(
        table=table,
        layout=layout,
        clean=clean,
        problems=tuple(sorted(out.problems, key=_problem_order)),
        error_count=out.errors,
        warning_count=out.warnings,
        counts=dict(out.counts),
        error_rows=out.error_rows,
    )


def _period_labels(table: Table, out: _Collector) -> np.ndarray:
    """``YYYY-MM`` labels; ``""`` if invalid.

    Excel's renderings of a month it took for a date are read back as that month:
    ``2026-03-01``, ``2026-03-01 00:00:00``, ``Mar-26``, ``March 2026``.
    """
    if "period" not in table.columns:
        return np.full(len(table), "", dtype=object)
    series = table.frame["period"]
    empty = (series == "").to_numpy()
    out.add(
        empty,
        "required",
        "period",
        "Period is required",
        "Enter the month the counts refer to, as YYYY-MM (e.g. 2026-03).",
    )
    parts = series.str.extract(f"^{_PERIOD_PATTERN}$")
    year = pd.to_numeric(parts[0], errors="coerce").to_numpy(dtype=float)
    month = pd.to_numeric(parts[1], errors="coerce").to_numpy(dtype=float)
    # Excel shows a month it has turned into a date as "Mar-26" and saves the CSV that way.
    named = series.str.lower().str.extract(f"^{_MONTH_NAME_PERIOD}$")
    named_month = named[0].str[:3].map(_MONTH_NUMBERS).to_numpy(dtype=float)
    named_year = pd.to_numeric(named[1], errors="coerce").to_numpy(dtype=float)
    named_year = np.where(named_year < 100, named_year + 2000, named_year)
    use_named = ~np.isfinite(year) & np.isfinite(named_month) & np.isfinite(named_year)
    year = np.where(use_named, named_year, year)
    month = np.where(use_named, named_month, month)
    good = np.isfinite(year) & np.isfinite(month) & (month >= 1) & (month <= 12)
    out.add(
        ~empty & ~good,
        "bad_period",
        "period",
        "Period must be a month written YYYY-MM",
        "Write the month as YYYY-MM (e.g. 2026-03); format the column as Text so the "
        "spreadsheet does not turn it into a date.",
    )
    labels = np.full(len(table), "", dtype=object)
    for position in np.flatnonzero(good):
        labels[position] = f"{int(year[position]):04d}-{int(month[position]):02d}"
    return labels


def _check_periods(
    labels: np.ndarray,
    context: ValidationContext,
    out: _Collector,
    column: str,
    *,
    per_period: bool,
) -> np.ndarray:
    """Known periods inside an open window; returns the labels with unknown ones blanked."""
    known = np.array([label in context.periods for label in labels], dtype=bool)
    unknown = (labels != "") & ~known
    out.add(
        unknown,
        "unknown_period",
        column,
        lambda p: f"there is no reporting period {labels[p]} in this collaborative",
        "Check the period; your coordinator sets up the reporting periods.",
    )
    labels = np.where(known, labels, "")
    for label in pd.unique(labels[labels != ""]):
        status = context.periods[label].window
        if status.is_open:
            continue
        rows = labels == label
        if per_period:
            # Patient files: one problem per period, on its first row, not one per case.
            first = np.zeros(len(labels), bool)
            first[np.flatnonzero(rows)[0]] = True
            count = int(rows.sum())
            out.add(
                first,
                "window_closed",
                column,
                f"{status.reason} ({count} row(s) of this file)",
                "Submit within the window, or ask a coordinator to reopen the period.",
            )
            out.error_rows[rows] = True
        else:
            out.add(
                rows,
                "window_closed",
                column,
                status.reason,
                "Submit within the window, or ask a coordinator to reopen the period.",
            )
    return labels


def window_problems(validated: Validated) -> tuple[Problem, ...]:
    """The problems that are closed windows (for :class:`WindowClosedError`)."""
    return tuple(problem for problem in validated.problems if problem.rule == "window_closed")


def _validate_aggregate(
    table: Table,
    layout: Layout,
    context: ValidationContext,
    clean: pd.DataFrame,
    out: _Collector,
) -> None:
    labels = _check_periods(_period_labels(table, out), context, out, "period", per_period=False)
    clean["period"] = labels
    dup = pd.Series(labels).duplicated(keep="first").to_numpy() & (labels != "")
    if dup.any():
        first_row = {}
        for position, label in enumerate(labels):
            first_row.setdefault(label, int(table.rows[position]))
        out.add(
            dup,
            "duplicate_period",
            "period",
            lambda p: f"{labels[p]} already appears in row {first_row[labels[p]]}",
            "Keep one row per period; to correct a period, edit its row.",
        )
    n = len(table)
    numerator = _col(clean, "numerator", n)
    denominator = _col(clean, "denominator", n)
    exclusions = _col(clean, "exclusions", n)
    value = _col(clean, "value", n)
    both = np.isfinite(numerator) & np.isfinite(denominator)
    if layout.measure_type is MeasureType.PROPORTION:
        out.add(
            both & (numerator > denominator),
            "numerator_exceeds_denominator",
            "numerator",
            lambda p: (
                f"numerator {_fmt(numerator[p])} is larger than denominator {_fmt(denominator[p])}"
            ),
            "The numerator counts cases from the denominator, so it cannot be larger: check "
            "whether the columns are swapped.",
        )
    if layout.measure_type in {MeasureType.PROPORTION, MeasureType.RATE, MeasureType.RATIO}:
        out.add(
            both & (denominator == 0) & (numerator > 0),
            "zero_denominator",
            "denominator",
            "the denominator is 0 but the numerator is not",
            "Enter the denominator (cases, days or expected events) for the period.",
        )
    has_ex = np.isfinite(exclusions) & np.isfinite(denominator)
    out.add(
        has_ex & (exclusions > denominator),
        "exclusions_exceed_denominator",
        "exclusions",
        lambda p: f"exclusions {_fmt(exclusions[p])} exceed the denominator {_fmt(denominator[p])}",
        "Exclusions are removed from the eligible cases: they cannot outnumber them.",
    )
    has_value = np.isfinite(value)
    out.add(
        has_value & np.isfinite(denominator) & (denominator == 0),
        "zero_denominator",
        "denominator",
        "a value is given for a period with no cases",
        "Enter the number of cases the value summarises, or leave the period out.",
    )
    if context.history is not None:
        if layout.measure_type in {MeasureType.MEAN, MeasureType.TIME_BETWEEN_EVENTS}:
            rate = value
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = np.where(both & (denominator > 0), numerator / denominator, np.nan)
        ok_rows = ~out.error_rows
        rate_column = "value" if np.isfinite(value).any() else "numerator"
        _history_warnings(
            rate,
            context.history.rates,
            ok_rows,
            rate_column,
            _RATE_WORDS.get(layout.measure_type, "value"),
            out,
            _display(layout, context.history.rates),
        )
        _history_warnings(
            denominator,
            context.history.denominators,
            ok_rows,
            "denominator",
            "count",
            out,
            _count_text,
        )


_RATE_WORDS = {MeasureType.PROPORTION: "proportion", MeasureType.RATE: "rate"}


def _display(layout: Layout, history: np.ndarray) -> Callable[[float], str]:
    """Rates as every page shows them: on the measure's scale, with its unit ("30.8 per 1,000
    line-days", "91.0 %"), with the decimals that tell the member's usual values apart."""
    usual = history[np.isfinite(history)]
    typical = float(np.median(usual)) if len(usual) else None
    digits = formatting.measure_digits(layout.multiplier, typical)
    return lambda x: formatting.value(x, layout.multiplier, digits, layout.unit)


def _count_text(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.3g}"


def _col(clean: pd.DataFrame, name: str, n: int) -> np.ndarray:
    if name in clean:
        return clean[name].to_numpy(dtype=float)
    return np.full(n, np.nan)


def _history_warnings(  # noqa: PLR0917 - private helper, called twice
    values: np.ndarray,
    history: np.ndarray,
    rows: np.ndarray,
    column: str,
    what: str,
    out: _Collector,
    shown: Callable[[float], str],
) -> None:
    history = history[np.isfinite(history)]
    if len(history) < HISTORY_MIN_POINTS:
        return
    usable = rows & np.isfinite(values)
    q1, median, q3 = np.percentile(history, [25, 50, 75])
    iqr = q3 - q1
    low, high = q1 - FENCE_IQR * iqr, q3 + FENCE_IQR * iqr
    mad = float(np.median(np.abs(history - median)))
    fix = (
        "Check the value. If it is right, give a short justification when you submit "
        "(e.g. a new unit opened, a coding change)."
    )

    outside = usable & ((values < low) | (values > high)) & (iqr > 0)
    out.add(
        outside,
        "history_range",
        column,
        lambda p: (
            f"the {what} {shown(values[p])} is outside the range expected from your "
            f"history ({shown(max(low, 0.0))} to {shown(high)})"
        ),
        fix,
        severity=Severity.WARNING,
    )
    if mad > 0:
        with np.errstate(invalid="ignore"):
            z = 0.6745 * (values - median) / mad
        far = usable & (np.abs(np.nan_to_num(z)) > ZSCORE_LIMIT) & ~outside
        out.add(
            far,
            "history_zscore",
            column,
            lambda p: (
                f"the {what} {shown(values[p])} is far from your usual {shown(median)} "
                f"(modified z-score {z[p]:.1f})"
            ),
            fix,
            severity=Severity.WARNING,
        )


def _validate_patient(
    table: Table,
    context: ValidationContext,
    clean: pd.DataFrame,
    out: _Collector,
) -> None:
    n = len(table)
    year = _col(clean, "event_year", n)
    known_year = np.isfinite(year)
    labels = np.full(n, "", dtype=object)
    if known_year.any():
        distinct, inverse = np.unique(year[known_year].astype(np.int64), return_inverse=True)
        labels[known_year] = np.array([str(value) for value in distinct], dtype=object)[inverse]
    labels = _check_periods(labels, context, out, "event_year", per_period=True)
    clean["period"] = labels
    now = context.now
    future = known_year & (year > now.year)
    if "event_month" in clean:
        month = _col(clean, "event_month", n)
        future |= known_year & np.isfinite(month) & (year == now.year) & (month > now.month)
    out.add(
        future,
        "event_in_future",
        "event_year",
        "the event is in the future",
        "Check the year (and month) of the event.",
    )
    if "case_key" in clean:
        keys = table.frame["case_key"]
        dup = keys.duplicated(keep="first").to_numpy() & (keys != "").to_numpy()
        if dup.any():
            first_row: dict[str, int] = {}
            values = keys.to_numpy()
            for position in np.flatnonzero(
                keys.duplicated(keep=False).to_numpy() & (keys != "").to_numpy()
            ):
                first_row.setdefault(values[position], int(table.rows[position]))
            out.add(
                dup,
                "duplicate_case_key",
                "case_key",
                lambda p: (
                    f"case key {_shown(values[p])} already appears in row {first_row[values[p]]}"
                ),
                "Each case appears once: remove the repeated row or give the case its own key.",
            )
