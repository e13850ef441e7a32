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

from qicollab.members.models import DeidProfile
from qicollab.submissions import arrow
from qicollab.submissions.errors import PHIRefusedError, Problem, Severity
from qicollab.submissions.layout import ColumnKind, ColumnRole, Layout
from qicollab.submissions.parsing import Table, normalise_header

_NOT_DIGIT_BEFORE = r"(?:^|[^0-9])"
_NOT_DIGIT_AFTER = r"(?:[^0-9]|$)"
_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)"
_FULL_MONTHS = (
    r"(?:january|february|march|april|june|july|august|september|october|november|december)"
)


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of identifier, with the RE2/Python pattern that finds it."""

    rule: str
    message: str
    fix: str
    pattern: str
    #: The pattern used on case keys, which are letters and digits by design (None: same).
    key_pattern: str | None = None


_REMOVE = "Remove it: the collaborative must not receive identifiers."

KINDS: tuple[Kind, ...] = (
    Kind(
        "phi_ssn",
        "looks like a social security number",
        _REMOVE,
        _NOT_DIGIT_BEFORE + r"[0-9]{3}[- ][0-9]{2}[- ][0-9]{4}" + _NOT_DIGIT_AFTER,
    ),
    Kind(
        "phi_email",
        "looks like an e-mail address",
        _REMOVE,
        r"[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}",
    ),
    Kind(
        "phi_url",
        "looks like a web address (URL)",
        _REMOVE,
        r"(?:https?|ftp)://|\bwww\.|\b[a-z0-9-]+\.(?:com|org|net|edu|gov|info|biz|io)\b",
    ),
    Kind(
        "phi_ip",
        "looks like an IP address",
        _REMOVE,
        r"(?:^|[^0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?:[^0-9.]|$)"
        r"|(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}|[0-9a-f]{0,4}::[0-9a-f]{1,4}",
    ),
    Kind(
        "phi_phone",
        "looks like a telephone or fax number",
        _REMOVE,
        _NOT_DIGIT_BEFORE
        + r"(?:\+?1[ .-]?)?(?:\([0-9]{3}\)|[0-9]{3})[ .-]?[0-9]{3}[ .-][0-9]{4}"
        + _NOT_DIGIT_AFTER
        + r"|\+[0-9]{1,3}[ .-]?(?:[0-9][ .-]?){6,13}[0-9]",
    ),
    Kind(
        "phi_date",
        "looks like a full date",
        "Remove the date: patient rows carry the year only (and the month where allowed); "
        "periods are written YYYY-MM.",
        r"[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}"
        + "|"
        + _NOT_DIGIT_BEFORE
        + r"[0-9]{1,2}[-/.][0-9]{1,2}[-/.](?:[0-9]{4}|[0-9]{2})"
        + _NOT_DIGIT_AFTER
        + r"|\b[0-9]{1,2}(?:st|nd|rd|th)?[ -]?"
        + _MONTHS
        + r"[a-z]*\.?[ ,-]*[0-9]{2,4}\b"
        + r"|\b"
        + _MONTHS
        + r"[a-z]*\.? [0-9]{1,2}(?:st|nd|rd|th)?,? [0-9]{4}\b"
        + "|"
        + _NOT_DIGIT_BEFORE
        + r"(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])"
        + _NOT_DIGIT_AFTER,
    ),
    Kind(
        "phi_month",
        "contains a month name (a date element finer than the year)",
        "Remove the month: dates finer than the year are identifying on patient rows, and a "
        "period's month is already in its period column.",
        r"\b"
        + _FULL_MONTHS
        + r"\b|\b"
        + _MONTHS
        + r"\.?[ -]?[0-9]{1,4}\b|\b[0-9]{1,2}(?:st|nd|rd|th)?[ -]?(?:of )?"
        + _MONTHS
        + r"[a-z]*\b",
    ),
    Kind(
        "phi_age_over_89",
        "gives an age above 89",
        "Ages above 89 are identifying: report them as 90+.",
        r"\bage[ds]?[ :=]*(?:9[0-9]|1[0-9][0-9])(?:[^0-9+]|$)|"
        + _NOT_DIGIT_BEFORE
        + r"(?:9[0-9]|1[0-9][0-9]) ?(?:y/?o|yrs?|years?)\b",
    ),
    Kind(
        "phi_zip",
        "looks like a 5-digit ZIP code",
        "Remove it; if it is a count, write it with a thousands separator (12,345).",
        _NOT_DIGIT_BEFORE + r"[0-9]{5}(?:-[0-9]{4})?" + _NOT_DIGIT_AFTER,
        key_pattern=r"^[0-9]{5}(?:-[0-9]{4})?$",
    ),
    Kind(
        "phi_digits",
        "contains a long run of digits (a record, account or phone number?)",
        "Remove it. Case keys must be opaque codes made for the collaborative, not record numbers.",
        r"[0-9]{7,}",
        key_pattern=(
            r"^(?:mrn|mr|pt|pid|id|hn|urn|acct|acc|chart|rec)?[-_#: ]?[0-9][0-9 -]{5,}[0-9]$"
        ),
    ),
)

_COMPILED = {kind.rule: re.compile(kind.pattern, re.IGNORECASE) for kind in KINDS}
_COMPILED_KEY = {
    kind.rule: re.compile(kind.key_pattern or kind.pattern, re.IGNORECASE) for kind in KINDS
}
_COMBINED = "|".join(f"(?:{kind.pattern})" for kind in KINDS)
_COMBINED_KEY = "|".join(f"(?:{kind.key_pattern or kind.pattern})" for kind in KINDS)
_KIND_BY_RULE = {kind.rule: kind for kind in KINDS}
_PERIOD_KINDS = tuple(kind for kind in KINDS if kind.rule not in {"phi_month", "phi_date"})
_COMBINED_PERIOD = "|".join(f"(?:{kind.pattern})" for kind in _PERIOD_KINDS)

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

_MASKABLE = re.compile(r"[A-Za-z0-9]")
MASK_MAX_CHARS = 24


def mask(fragment: str) -> str:
    """The shape of ``fragment`` with every letter and digit hidden: ``***-**-****``."""
    shown = _MASKABLE.sub("*", fragment[:MASK_MAX_CHARS])
    return shown + ("…" if len(fragment) > MASK_MAX_CHARS else "")


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
    aliases: dict[str, str] = {}
    for column in layout.columns:
        aliases[column.name] = column.name
        aliases.setdefault(normalise_header(column.label), column.name)
    problems: list[Problem] = []
    renamed: dict[str, str] = {}
    for name in table.columns:
        target = aliases.get(name)
        if target is not None and target not in renamed.values():
            renamed[name] = target
            continue
        problems.append(_column_problem(name, layout, table.filename))
    if problems:
        raise PHIRefusedError(
            f"{len(problems)} column(s) are not part of the {layout.measure_code} template; "
            "the file was not stored",
            problems,
        )
    frame = table.frame.rename(columns=renamed)
    return table.with_frame(frame)


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
    for name in table.columns:
        column = layout.column(name)
        series = table.frame[name]
        nonempty = (series != "").to_numpy()
        if column.is_free_text:
            candidates = nonempty
        else:
            candidates = nonempty & ~_valid_mask(series, column.kind, column.levels)
        is_key = column.role is ColumnRole.CASE_KEY
        # A period column holds a month by design (Excel may write it "Mar-26").
        kinds = _PERIOD_KINDS if column.kind is ColumnKind.PERIOD else KINDS
        if candidates.any():
            subset = series[candidates]
            if is_key:
                pattern = _COMBINED_KEY
            elif kinds is _PERIOD_KINDS:
                pattern = _COMBINED_PERIOD
            else:
                pattern = _COMBINED
            hits = arrow.search(subset, pattern)
            if hits.any():
                positions = np.flatnonzero(candidates)[hits]
                problems += _name_hits(table, name, positions, is_key=is_key, kinds=kinds)
        if layout.is_patient and column.kind in {ColumnKind.NUMBER, ColumnKind.COUNT}:
            problems += _numeric_identifiers(table, name, nonempty)
    return problems


def _name_hits(
    table: Table,
    name: str,
    positions: np.ndarray,
    *,
    is_key: bool,
    kinds: tuple[Kind, ...] = KINDS,
) -> list[Problem]:
    patterns = _COMPILED_KEY if is_key else _COMPILED
    values = table.frame[name].to_numpy()
    problems = []
    for position in positions:
        text = str(values[position])
        for kind in kinds:
            found = patterns[kind.rule].search(text)
            if found:
                problems.append(
                    _refusal(
                        kind.rule,
                        kind.message,
                        kind.fix,
                        file=table.filename,
                        row=int(table.rows[position]),
                        column=name,
                        value=mask(found.group(0).strip(" ,-")),
                    )
                )
                break
    return problems


def _numeric_identifiers(table: Table, name: str, nonempty: np.ndarray) -> list[Problem]:
    """Numbers on patient rows: record-number-length digit runs, and ages above 89."""
    series = table.frame[name]
    problems = []
    long_digits = nonempty & arrow.search(series, r"[0-9]{7,}")
    for position in np.flatnonzero(long_digits):
        kind = _KIND_BY_RULE["phi_digits"]
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
        kind = _KIND_BY_RULE["phi_age_over_89"]
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


def sweep_text(text: str | None, *, field: str, file: str = "") -> list[Problem]:
    """Free text outside the file (a correction reason, a justification), swept the same way."""
    if not text:
        return []
    for kind in KINDS:
        found = _COMPILED[kind.rule].search(text)
        if found:
            return [
                _refusal(
                    kind.rule,
                    f"the {field.replace('_', ' ')} {kind.message}",
                    kind.fix,
                    file=file,
                    row=None,
                    column=field,
                    value=mask(found.group(0).strip(" ,-")),
                )
            ]
    return []


def refused_name(filename: str) -> str:
    """What a refused file is called in messages: its kind only (a name can identify too)."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return f"refused file (.{extension})" if extension.isalnum() else "refused file"


def screen(table: Table, layout: Layout) -> Table:
    """Resolve the columns and sweep the values; raise :class:`PHIRefusedError` on any hit.

    The refusal names neither the file nor the values: problems carry the masked shape and a
    generic file label.
    """
    try:
        resolved = resolve_columns(table, layout)
    except PHIRefusedError as error:
        raise PHIRefusedError(error.message, _anonymous(error.problems, table)) from None
    problems = sweep(resolved, layout)
    if problems:
        raise PHIRefusedError(
            f"{len(problems)} cell(s) look like identifiers; the file was refused and not stored",
            _anonymous(problems, table),
        )
    return resolved


def _anonymous(problems: list[Problem] | tuple[Problem, ...], table: Table) -> list[Problem]:
    name = refused_name(table.filename) if table.kind != "rows" else table.filename
    return [replace(problem, file=name) for problem in problems]
