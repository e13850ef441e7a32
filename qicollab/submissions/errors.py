"""Problems found in submitted data, and the domain exceptions the services raise.

The services never raise HTTP errors: views and the API map these exceptions to responses.
Every problem names where it is (file, spreadsheet row, column) and how to fix it, because
"invalid file" with no location is the complaint users of import tools make most.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datetime as dt

    from qicollab.schedule.windows import WindowState


class Severity(enum.StrEnum):
    """Errors block a submission; warnings need a short justification to proceed."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem with submitted data.

    ``row`` is the spreadsheet row number (the header is row 1, so the first data row is 2)
    for files, and the 1-based position for rows sent as a list (form, API); None for problems
    of the file as a whole. ``value`` is masked where it may be identifying.
    """

    severity: Severity
    rule: str
    message: str
    fix: str
    file: str = ""
    row: int | None = None
    column: str | None = None
    value: str = ""

    def __post_init__(self) -> None:
        # Nothing the de-identification screen would refuse is ever quoted back: not in the
        # value, the message, the fix or the column name (which comes from the file's header).
        from qicollab.submissions.identifiers import safe_column, safe_value, scrub  # noqa: PLC0415

        object.__setattr__(self, "value", safe_value(self.value))
        object.__setattr__(self, "message", scrub(self.message))
        object.__setattr__(self, "fix", scrub(self.fix))
        if self.column:
            object.__setattr__(self, "column", safe_column(self.column))

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe form for the API and the as-you-type validation endpoint."""
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


class SubmissionError(Exception):
    """Base of every refusal of submitted data; carries the problems to show."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems: tuple[Problem, ...] = tuple(problems)

    @property
    def all_problems(self) -> tuple[Problem, ...]:
        """Everything to fix (a refusal for identifiers adds the file's other problems)."""
        return self.problems


class ParseError(SubmissionError):
    """The file could not be read as a table (format, encoding, size caps, zip checks)."""

    def __init__(
        self,
        reason: str,
        *,
        file: str = "",
        row: int | None = None,
        column: str | None = None,
        rule: str = "unreadable",
        fix: str = "Save the file as CSV (UTF-8) or as an Excel workbook (.xlsx) and try again.",
    ) -> None:
        problem = Problem(Severity.ERROR, rule, reason, fix, file=file, row=row, column=column)
        super().__init__(reason, [problem])
        self.file = file
        self.row = row
        self.column = column
        self.reason = reason
        self.rule = rule


class PHIRefusedError(SubmissionError):
    """The data looks identifying; it was neither stored nor logged, and values are masked.

    ``problems`` are the identifiers; ``others`` the file's ordinary problems, found with the
    identifying columns and cells left out, so that one answer lists everything to fix.
    """

    def __init__(
        self, message: str, problems: Sequence[Problem] = (), others: Sequence[Problem] = ()
    ) -> None:
        super().__init__(message, problems)
        self.others: tuple[Problem, ...] = tuple(others)

    @property
    def all_problems(self) -> tuple[Problem, ...]:
        """The identifiers first, then the other problems."""
        return self.problems + self.others


class InvalidSubmissionError(SubmissionError):
    """The data has errors (or unjustified warnings); nothing was stored."""


class JustificationRequiredError(InvalidSubmissionError):
    """Warnings were found and no justification was given."""


class ReasonRequiredError(InvalidSubmissionError):
    """The submission replaces an earlier version and no reason was given."""


class WindowClosedError(InvalidSubmissionError):
    """Every error is a closed submission window; ``reasons`` maps period label to why."""

    def __init__(
        self,
        message: str,
        problems: Sequence[Problem],
        reasons: dict[str, WindowState],
        deadlines: dict[str, dt.datetime | None] | None = None,
    ) -> None:
        super().__init__(message, problems)
        self.reasons = reasons
        self.deadlines = deadlines or {}


class DuplicateSubmissionError(SubmissionError):
    """The same content is already the current version (raised only when asked to).

    ``result`` is the :class:`~qicollab.submissions.services.CommitResult` describing the
    existing versions.
    """

    def __init__(self, message: str, result: object) -> None:
        super().__init__(message)
        self.result = result
