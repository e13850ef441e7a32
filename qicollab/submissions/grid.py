"""The data entry grid: periods x fields of one aggregate measure, as DHIS2 users know it.

One row per period that is open or already holds data, newest first, with the values the member
last stored (its draft, else its current version). Each cell has a state: ``saved`` (what is
stored), ``invalid`` or ``warning`` (from the same validation an upload gets), ``locked`` (the
period's window is closed) or empty. Rows go to :class:`SubmissionService` like any other rows,
so the grid adds no rule of its own.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa

from qicollab.reporting import formatting
from qicollab.schedule.periods import ReportingPeriod
from qicollab.submissions.errors import Problem, Severity
from qicollab.submissions.models import AggregateValue, Submission, SubmissionStatus

if TYPE_CHECKING:
    from qicollab.measures.models import Measure
    from qicollab.members.models import Member
    from qicollab.schedule.windows import SubmissionWindow
    from qicollab.submissions.layout import Layout
    from qicollab.submissions.services import SubmissionService

#: The aggregate fields a grid row can hold, in the order the layout lists them.
AGGREGATE_FIELDS = ("numerator", "denominator", "exclusions", "value", "comment")
#: Versions whose values count as stored (a returned version is still the last one sent).
_SENT = (SubmissionStatus.SUBMITTED, SubmissionStatus.ACCEPTED, SubmissionStatus.RETURNED)


class CellState(enum.StrEnum):
    """What a cell's colour says."""

    EMPTY = "empty"
    SAVED = "saved"
    INVALID = "invalid"
    WARNING = "warning"
    LOCKED = "locked"


@dataclass(frozen=True, slots=True)
class GridRow:
    """One period of the grid."""

    period: str
    window: SubmissionWindow
    #: The values shown: the draft's, else the current version's ("" for none).
    values: Mapping[str, str]
    #: The current (sent) version's values, to tell what submitting would change.
    sent: Mapping[str, str]
    version: int | None = None
    status: SubmissionStatus | None = None
    has_draft: bool = False

    @property
    def locked(self) -> bool:
        """The window is closed: the row is read-only."""
        return not self.window.is_open

    @property
    def summary(self) -> str:
        """The row's state in words ("v2 accepted, draft saved")."""
        parts = []
        if self.version is not None and self.status is not None:
            parts.append(f"v{self.version} {self.status.value}")
        if self.has_draft:
            parts.append("draft saved")
        if not parts:
            parts.append("not entered")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Grid:
    """The rows of the grid, the fields (columns) shown, and per-cell problems to show."""

    fields: tuple[str, ...]
    rows: tuple[GridRow, ...]
    problems: Mapping[tuple[str, str], tuple[Problem, ...]] = field(default_factory=dict)
    #: Problems that belong to no cell (whole rows or the submission).
    general: tuple[Problem, ...] = ()

    def row(self, period: str) -> GridRow | None:
        """The row of a period, if the grid has it."""
        return next((row for row in self.rows if row.period == period), None)

    def state(self, row: GridRow, name: str, value: str) -> CellState:
        """A cell's state: problems first, then locked, then stored or empty."""
        found = self.problems.get((row.period, name), ())
        if any(problem.severity is Severity.ERROR for problem in found):
            return CellState.INVALID
        if found:
            return CellState.WARNING
        if row.locked:
            return CellState.LOCKED
        if value != "" and value == row.values.get(name, ""):
            return CellState.SAVED
        return CellState.EMPTY

    def with_problems(self, periods: Sequence[str], problems: Sequence[Problem]) -> Grid:
        """This grid with problems placed on cells; ``periods[i]`` was sent as row ``i + 1``."""
        cells: dict[tuple[str, str], list[Problem]] = {}
        general = []
        for problem in problems:
            index = (problem.row or 0) - 1
            if 0 <= index < len(periods) and problem.column in self.fields:
                cells.setdefault((periods[index], problem.column), []).append(problem)
            else:
                general.append(problem)
        return Grid(
            self.fields,
            self.rows,
            {key: tuple(found) for key, found in cells.items()},
            tuple(general),
        )


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _values(aggregate: AggregateValue | None, fields: Sequence[str]) -> dict[str, str]:
    return {name: _text(getattr(aggregate, name, None)) for name in fields}


def shown_value(layout: Layout, values: Mapping[str, str]) -> str:
    """The row's value as the portal will show it ("90.0 %", "1.25 per 1,000 line-days"), or ""
    while the row is incomplete: the officer sees at once what the counts amount to."""
    try:
        if "value" in values:
            rate = float(values["value"])
        else:
            numerator, denominator = float(values["numerator"]), float(values["denominator"])
            if denominator <= 0:
                return ""
            rate = numerator / denominator
    except (KeyError, ValueError):
        return ""
    if not math.isfinite(rate):
        return ""
    digits = formatting.measure_digits(layout.multiplier, rate)
    return formatting.value(rate, layout.multiplier, digits, layout.unit)


def grid_fields(layout: Layout) -> tuple[str, ...]:
    """The layout's aggregate fields, in template order."""
    return tuple(name for name in layout.names if name in AGGREGATE_FIELDS)


def load_grid(service: SubmissionService, member: Member, measure: Measure) -> Grid:
    """Every open period and every period with data of this member and measure, newest first."""
    layout = service.layout(member, measure)
    fields = grid_fields(layout)
    periods = service.periods(member, measure)
    stored = service.db.execute(
        sa.select(ReportingPeriod.label, Submission, AggregateValue)
        .join(Submission, Submission.period_id == ReportingPeriod.id)
        .outerjoin(AggregateValue, AggregateValue.submission_id == Submission.id)
        .where(Submission.member_id == member.id, Submission.measure_id == measure.id)
        .where(Submission.status.in_((*_SENT, SubmissionStatus.DRAFT)))
    ).all()
    drafts: dict[str, AggregateValue | None] = {}
    sent: dict[str, tuple[Submission, AggregateValue | None]] = {}
    for label, submission, aggregate in stored:
        if submission.status is SubmissionStatus.DRAFT:
            drafts[label] = aggregate
        elif label not in sent or submission.version > sent[label][0].version:
            sent[label] = (submission, aggregate)
    labels = {label for label, info in periods.items() if info.window.is_open}
    labels |= (set(drafts) | set(sent)) & set(periods)
    rows = []
    for label in sorted(labels, reverse=True):
        current = sent.get(label)
        sent_values = _values(current[1] if current else None, fields)
        rows.append(
            GridRow(
                period=label,
                window=periods[label].window,
                values=_values(drafts[label], fields) if label in drafts else sent_values,
                sent=sent_values,
                version=current[0].version if current else None,
                status=current[0].status if current else None,
                has_draft=label in drafts,
            )
        )
    return Grid(fields, tuple(rows))


def cell_name(period: str, name: str) -> str:
    """The form field of a cell: ``cell.2026-03.numerator``."""
    return f"cell.{period}.{name}"


def posted_rows(grid: Grid, params: Mapping[str, str], *, against: str) -> list[dict[str, object]]:
    """The rows of open periods whose posted values differ from the stored ones.

    ``against="values"`` compares with what is shown (drafts included: saving a draft);
    ``against="sent"`` with the current version (submitting sends drafts too). A row left empty
    where nothing was stored is not a row.
    """
    rows: list[dict[str, object]] = []
    for row in grid.rows:
        if row.locked:
            continue
        posted = {
            name: str(params.get(cell_name(row.period, name), row.values.get(name, ""))).strip()
            for name in grid.fields
        }
        stored = row.sent if against == "sent" else row.values
        if all(value == "" for value in posted.values()) and row.version is None:
            continue
        if posted != {name: stored.get(name, "") for name in grid.fields}:
            rows.append({"period": row.period, **posted})
    return rows
