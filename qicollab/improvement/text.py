"""Checks on the free text teams and coordinators write (PDSA notes, monthly reports, titles).

Teams describe their own calendar ("from March the night shift..."), so dates and month names
are allowed; every other identifier kind of the submission PHI screen is refused, because a PDSA
note is where a patient's name, record number or telephone number could slip in.
"""

from __future__ import annotations

import datetime as dt

from qicollab.submissions import identifiers


class ImprovementError(ValueError):
    """Input that cannot be saved, with the field it concerns and the reason."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def screened(text: str | None, *, field: str, label: str, max_chars: int | None = None) -> str:
    """``text`` stripped, refused when it looks identifying or is too long."""
    value = (text or "").strip()
    if max_chars is not None and len(value) > max_chars:
        msg = f"the {label} is longer than {max_chars} characters"
        raise ImprovementError(msg, field=field)
    for finding in identifiers.screen_text(value, dates=False)[:1]:
        msg = f"the {label} {finding.message}: {finding.fix}"
        raise ImprovementError(msg, field=field)
    return value


def required(text: str | None, *, field: str, label: str, max_chars: int) -> str:
    """A screened one-line text that must not be empty (inner whitespace collapsed)."""
    value = screened(" ".join((text or "").split()), field=field, label=label, max_chars=max_chars)
    if not value:
        msg = f"the {label} is required"
        raise ImprovementError(msg, field=field)
    return value


def first_of_month(day: dt.date, *, field: str = "month") -> dt.date:
    """The month a date falls in, as its first day."""
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        msg = "the month must be a calendar date"
        raise ImprovementError(msg, field=field)
    return day.replace(day=1)
