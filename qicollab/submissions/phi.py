"""Refusing protected health information at the door.

Two screens, both before anything is stored or logged:

1. **Columns.** A strict allow-list from the measure's definition (:mod:`.layout`): any other
   column is refused, and headers that look like identifiers (names, record numbers, dates of
   birth, addresses, phones, e-mails, ZIP codes, ...) are called out as such. Month of event is
   refused under the safe-harbor profile, and under a limited data set for members without a
   data use agreement.
2. **Values.** Every free-text cell (case keys, comments) and every cell that is not a valid
   value of its typed column is swept for SSNs, phone numbers, e-mail addresses, URLs, IP
   addresses, full dates in any common format, month names, 5-digit ZIP codes, long digit runs
   (record numbers) and ages above 89 (which must be reported as ``90+``). Cells that are a
   valid code, number or 0/1 cannot carry an identifier, except numbers, which are checked for
   record-number-length digit runs and ages above 89 where the column is an age.

Sweeps are vectorised: one combined RE2 pattern per column over Arrow arrays finds the few
suspicious cells; only those are looked at again, in Python, to name the kind and mask the
value. Messages never contain the value: they name the kind ("looks like an e-mail address")
and show the value's shape with every letter and digit replaced by ``*``.

Case keys are opaque codes of letters and digits by design, so in them only whole-key
patterns count: a key that is a 5-digit number (ZIP) or a 7+ digit number, bare or behind a
record-number prefix (``MRN0012345``); a random code that happens to contain digits passes.

Month names are refused as whole words (``March``), and abbreviations (``Mar``, ``Dec``) and
``May`` only next to a number (``3 May``, ``Mar-2024``), so that ordinary words ("staff may",
"MAR audit") in comments are not refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from qicollab.members.models import DeidProfile
from qicollab.submissions import arrow, identifiers
from qicollab.submissions.errors import PHIRefusedError, Problem, Severity
from qicollab.submissions.layout import ColumnKind, ColumnRole, Layout
from qicollab.submissions.parsing import Table, normalise_header

#: Header words that name identifiers; matched on whole words of the normalised header.
_IDENTIFYING_HEADER = re.compile(
    r"(?:^|_)(?:name|names|first|last|surname|given|fullname|firstname|lastname|patient|"
    r"patientname|pt|mrn|medical|record|recordnumber|chart|nhs|dob|birth|birthdate|"
    r"dateofbirth|born|ssn|social|sin|address|street|addr|city|town|county|postcode|postal|"
    r"zip|zipcode|phone|telephone|tel|mobile|cell|fax|email|mail|ip|url|web|website|account|"
    r"insurance|policy|licence|license|plate|vehicle|device|serial|photo|image|biometric|"
    r"fingerprint|date|dates|admitted|admission|discharge|discharged|death|time|timestamp|"
    r"age|month|day|week)(?:_|$)"
)

MASK_MAX_CHARS = identifiers.MASK_MAX_CHARS
mask = identifiers.mask


def _refusal(
    rule: str,
    message: str,
    fix: str,
    *,
    file: str,
    row: int | None,
    column: str | None,
    value: str = "",
) -> Problem:
    return Problem(
        Severity.ERROR, rule, message, fix, file=file, row=row, column=column, value=value
    )


# --- columns -----------------------------------------------------------------------------------


def resolve_columns(table: Table, layout: Layout) -> Table:
    """Map headers to the layout's names (labels are accepted too); refuse unknown columns."""
    resolved, problems = _resolve(table, layout)
    if problems:
        raise PHIRefusedError(_column_message(problems, layout), problems)
    return resolved


def _column_message(problems: list[Problem], layout: Layout) -> str:
    return (
        f"{len(problems)} column(s) are not part of the {layout.measure_code} template; "
        "the file was not stored"
    )


def _resolve(table: Table, layout: Layout) -> tuple[Table, list[Problem]]:
    """The template's columns renamed to the layout's names, and a problem per other column
    (those columns are left out of the table returned)."""
    aliases: dict[str, str] = {}
    for column in layout.columns:
        aliases[column.name] = column.name
        aliases.setdefault(normalise_header(column.label), column.name)
    problems: list[Problem] = []
    kept: list[int] = []
    names: list[str] = []
    for position, name in enumerate(table.columns):
        target = aliases.get(name)
        if target is not None and target not in names:
            kept.append(position)
            names.append(target)
            continue
        problems.append(_column_problem(name, layout, table.filename))
    return table.with_frame(table.frame.iloc[:, kept].set_axis(names, axis=1)), problems


def _column_problem(name: str, layout: Layout, file: str) -> Problem:
    shown = name[:40]
    if layout.is_patient and name in {"event_month", "month", "month_of_event"}:
        if layout.deid_profile is DeidProfile.SAFE_HARBOR:
            message = (
                "month of event is not allowed: the collaborative uses the safe-harbor "
                "profile, so patient rows carry the year only"
            )
        else:
            message = (
                "month of event is allowed only for members with a data use agreement on "
                "file, and none is recorded for yours"
            )
        return _refusal(
            "phi_month_not_allowed",
            message,
            "Delete the month column and submit the year only, or ask your coordinator about "
            "a data use agreement.",
            file=file,
            row=1,
            column=shown,
        )
    if _IDENTIFYING_HEADER.search(name):
        return _refusal(
            "phi_identifier_column",
            f"the column {shown!r} looks like an identifier (name, record number, date, "
            "address, contact detail or exact age) and is not part of the template",
            "Delete the column. The collaborative must never receive identifiers; use an "
            "opaque case key and the template's columns only.",
            file=file,
            row=1,
            column=shown,
        )
    return _refusal(
        "unknown_column",
        f"the column {shown!r} is not part of the template: unknown columns are refused "
        "because they could carry identifiers",
        "Delete the column, or rename it to one of: " + ", ".join(layout.names) + ".",
        file=file,
        row=1,
        column=shown,
    )


# --- values ------------------------------------------------------------------------------------

_NUMBER_PATTERN = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_PERIOD_PATTERN = r"[0-9]{4}[-/][0-9]{1,2}(?:[-/]0?1(?:[ T]00:00(?::00)?)?)?"
_AGE_COLUMN = re.compile(r"(?:^|_)age(?:_|$)")


def _valid_mask(series: pd.Series, kind: ColumnKind, levels: tuple[str, ...]) -> np.ndarray:
    """Cells that are a valid value of their column type, and so cannot hide an identifier."""
    if kind is ColumnKind.CODE:
        return arrow.is_in(series, levels)
    if kind is ColumnKind.BINARY:
        return arrow.is_in(series, ("0", "1"))
    if kind is ColumnKind.PERIOD:
        return arrow.fullmatch(series, _PERIOD_PATTERN)
    if kind in {ColumnKind.COUNT, ColumnKind.NUMBER, ColumnKind.YEAR, ColumnKind.MONTH}:
        return arrow.fullmatch(series, _NUMBER_PATTERN)
    return np.zeros(len(series), bool)


def sweep(table: Table, layout: Layout) -> list[Problem]:
    """Every identifier-looking cell of ``table`` (already resolved to the layout's names)."""
    problems: list[Problem] = []
    months = layout.is_patient
    for name in table.columns:
        column = layout.column(name)
        series = table.frame[name]
        nonempty = (series != "").to_numpy()
        if column.role is ColumnRole.CASE_KEY:
            problems += _screened(table, name, _key_candidates(series, nonempty), key=True)
        elif column.is_free_text:
            problems += _screened(table, name, np.flatnonzero(nonempty), months=months)
        else:
            candidates = nonempty & ~_valid_mask(series, column.kind, column.levels)
            positions = np.flatnonzero(candidates)[:_MAX_SCREENED_INVALID]
            # A period column holds a month by design (Excel may write it "Mar-26").
            period = column.kind is ColumnKind.PERIOD
            problems += _screened(
                table, name, positions, months=months and not period, dates=not period
            )
        if layout.is_patient and column.kind in {ColumnKind.NUMBER, ColumnKind.COUNT}:
            problems += _numeric_identifiers(table, name, nonempty)
    return problems


#: Invalid cells of typed columns screened one by one; past this the file is refused as
#: invalid anyway, and every value a message shows is screened again when it is quoted.
_MAX_SCREENED_INVALID = 20_000
#: Keys with something besides letters, digits, - and _, with mixed-case words, or with
#: digit groups: only these (and keys with a letter run that is a name) are screened one by one.
_KEY_SUSPECT = r"[^A-Za-z0-9_-]|[a-z][A-Z]|[A-Z][a-z]{2}|[0-9]{3}[-_][0-9]|^[0-9]{5,}"
_KEY_SUSPECT_LABEL = r"(?:^|[^a-z])(?:" + identifiers.KEY_LABELS + r")[-_#:]?[0-9]{3}"


def _key_candidates(series: pd.Series, nonempty: np.ndarray) -> np.ndarray:
    """Keys worth a closer look: RE2 over the whole column, then name look-ups in Arrow."""
    suspect = nonempty & (
        arrow.search(series, _KEY_SUSPECT, ignore_case=False)
        | arrow.search(series, _KEY_SUSPECT_LABEL)
        | ~arrow.fullmatch(series, r"[\x21-\x7e]*")
        | _key_runs_are_names(series)
    )
    return np.flatnonzero(suspect)


def _key_runs_are_names(series: pd.Series) -> np.ndarray:
    """Keys with a letter run of 4+ that is a name, or an initial and a surname (``jsmith``)."""
    found = np.zeros(len(series), bool)
    if not len(series):
        return found
    runs = pc.split_pattern_regex(arrow.as_arrow(series), r"[^A-Za-z]+")
    letters = pc.utf8_lower(pc.list_flatten(runs))
    owner = pc.list_parent_indices(runs).to_numpy()
    size = pc.utf8_length(letters).to_numpy(zero_copy_only=False)
    hex_only = pc.match_substring_regex(letters, r"^[a-f]+$").to_numpy(zero_copy_only=False)
    names, last = identifiers.key_name_lists()
    whole = pc.is_in(letters, value_set=names).to_numpy(zero_copy_only=False)
    tail = pc.is_in(pc.utf8_slice_codeunits(letters, 1), value_set=last)
    head = pc.is_in(pc.utf8_slice_codeunits(letters, 0, -1), value_set=last)
    initial = pc.or_(tail, head).to_numpy(zero_copy_only=False)
    hits = ~hex_only & (((size >= 4) & whole) | ((size >= 5) & initial))
    found[owner[hits]] = True
    return found


def _screened(
    table: Table,
    name: str,
    positions: np.ndarray,
    *,
    key: bool = False,
    months: bool = False,
    dates: bool = True,
) -> list[Problem]:
    """Screen the cells at ``positions`` (each distinct value once) with the one screen."""
    if not len(positions):
        return []
    values = table.frame[name].to_numpy()
    verdicts: dict[str, tuple[identifiers.Finding, ...]] = {}
    problems = []
    for position in positions:
        text = str(values[position])
        if text not in verdicts:
            verdicts[text] = (
                identifiers.screen_key(text)
                if key
                else identifiers.screen_text(text, months=months, dates=dates)
            )
        findings = verdicts[text]
        if findings:
            first = findings[0]
            problems.append(
                _refusal(
                    first.rule,
                    first.message,
                    first.fix,
                    file=table.filename,
                    row=int(table.rows[position]),
                    column=name,
                    value=first.shape,
                )
            )
    return problems


def _numeric_identifiers(table: Table, name: str, nonempty: np.ndarray) -> list[Problem]:
    """Numbers on patient rows: record-number-length digit runs, and ages above 89."""
    series = table.frame[name]
    problems = []
    long_digits = nonempty & arrow.search(series, r"[0-9]{7,}")
    for position in np.flatnonzero(long_digits):
        kind = identifiers.SHAPE_BY_RULE["phi_digits"]
        problems.append(
            _refusal(
                kind.rule,
                kind.message,
                "Check the column: a value this long is not a clinical measurement.",
                file=table.filename,
                row=int(table.rows[position]),
                column=name,
                value=mask(str(series.iloc[position])),
            )
        )
    if _AGE_COLUMN.search(name):
        numbers = pd.to_numeric(series.where(nonempty, None), errors="coerce").to_numpy(float)
        old = np.flatnonzero(np.nan_to_num(numbers, nan=0.0) > 89)
        kind = identifiers.SHAPE_BY_RULE["phi_age_over_89"]
        problems += [
            _refusal(
                kind.rule,
                kind.message,
                kind.fix,
                file=table.filename,
                row=int(table.rows[position]),
                column=name,
                value=mask(str(series.iloc[position])),
            )
            for position in old
        ]
    return problems


def sweep_text(
    text: str | None, *, field: str, file: str = "", months: bool = False
) -> list[Problem]:
    """Free text outside the file (a correction reason, a justification): the same screen."""
    findings = identifiers.screen_text(text, months=months)
    return [
        _refusal(
            finding.rule,
            f"the {field.replace('_', ' ')} {finding.message}",
            finding.fix,
            file=file,
            row=None,
            column=field,
            value=finding.shape,
        )
        for finding in findings[:1]
    ]


def refused_name(filename: str) -> str:
    """What a refused file is called in messages: its kind only (a name can identify too)."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return f"refused file (.{extension})" if extension.isalnum() else "refused file"


def screen(table: Table, layout: Layout) -> Table:
    """Resolve the columns and sweep the values; raise :class:`PHIRefusedError` on any hit.

    The refusal names neither the file nor the values: problems carry the masked shape and a
    generic file label.
    """
    screened = screen_all(table, layout)
    if screened.problems:
        raise PHIRefusedError(screened.message, screened.problems)
    return screened.table


@dataclass(frozen=True, slots=True)
class Screened:
    """A table with every identifier-looking column left out and cell emptied, and why.

    What is left can be validated safely, so one answer lists a file's identifiers and its
    other problems together instead of one round trip for each.
    """

    table: Table
    problems: tuple[Problem, ...]
    message: str


def screen_all(table: Table, layout: Layout) -> Screened:
    """Every identifier in ``table`` (columns and cells), without stopping at the first kind."""
    resolved, column_problems = _resolve(table, layout)
    cell_problems = sweep(resolved, layout)
    messages = []
    if column_problems:
        messages.append(_column_message(column_problems, layout))
    if cell_problems:
        messages.append(
            f"{len(cell_problems)} cell(s) look like identifiers; the file was refused and "
            "not stored"
        )
        resolved = resolved.with_frame(_emptied(resolved, cell_problems))
    return Screened(
        resolved, tuple(_anonymous(column_problems + cell_problems, table)), "; ".join(messages)
    )


def _emptied(table: Table, problems: list[Problem]) -> pd.DataFrame:
    """The frame with the cells the problems point at emptied (never read again)."""
    frame = table.frame.copy()
    position = {int(row): i for i, row in enumerate(table.rows)}
    for problem in problems:
        if problem.row in position and problem.column in frame.columns:
            frame.iloc[position[problem.row], frame.columns.get_loc(problem.column)] = ""
    return frame


def _anonymous(problems: list[Problem] | tuple[Problem, ...], table: Table) -> list[Problem]:
    name = refused_name(table.filename) if table.kind != "rows" else table.filename
    return [replace(problem, file=name) for problem in problems]
