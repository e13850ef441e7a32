"""The learning-cycle workflow: windows, open/close/lock, review, reopenings, completeness.

Coordinators drive a cycle through ``planned -> open -> closed -> locked -> published``; members
submit while the window is open. Whether one member x measure x period takes submissions now is
decided by :func:`submission_window_status`, which wraps the submission pipeline's own decision
(:mod:`qicollab.submissions.windows`) so the portal, the API and the validator never disagree,
and adds the human reason a member reads. Every state change here is audited in the caller's
transaction: a refused change raises :class:`CycleError` before anything is written.
"""

from __future__ import annotations

import calendar
import datetime as dt
import enum
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa

from qicollab.audit.services import record
from qicollab.cycles.models import (
    CycleReopening,
    CycleStatus,
    Granularity,
    LearningCycle,
    LearningSession,
    ReportingPeriod,
)
from qicollab.db import utcnow
from qicollab.measures.models import DataLevel, Measure
from qicollab.members.models import Member
from qicollab.submissions import phi
from qicollab.submissions.errors import WindowReason
from qicollab.submissions.models import Submission, SubmissionStatus
from qicollab.submissions.windows import (
    CycleWindow,
    Reopening,
    WindowStatus,
    load_windows,
    window_status,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qicollab.accounts.models import User

CODE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
MAX_TITLE = 200
#: A reason (return, reopening) must say something; three letters is the form's floor.
MIN_REASON_CHARS = 5
MAX_REASON_CHARS = 2000
WHEN = "%Y-%m-%d %H:%M UTC"


class CycleError(ValueError):
    """A workflow change that cannot be made, with the reason to show."""


# --- submission windows ------------------------------------------------------------------------


class WindowState(enum.StrEnum):
    """Whether a member can submit a measure's period now; the values are the API's words."""

    OPEN = "open"
    NOT_YET_OPEN = "not-yet-open"
    CLOSED_AFTER_DEADLINE = "closed-after-deadline"
    LOCKED = "locked"
    REOPENED_UNTIL = "reopened-until"
    NO_CYCLE = "no-cycle"

    @property
    def is_open(self) -> bool:
        """Submissions are accepted."""
        return self in {WindowState.OPEN, WindowState.REOPENED_UNTIL}


_STATE_OF_REASON = {
    WindowReason.OPEN: WindowState.OPEN,
    WindowReason.REOPENED: WindowState.REOPENED_UNTIL,
    WindowReason.BEFORE_WINDOW: WindowState.NOT_YET_OPEN,
    WindowReason.AFTER_DEADLINE: WindowState.CLOSED_AFTER_DEADLINE,
    WindowReason.CYCLE_LOCKED: WindowState.LOCKED,
    WindowReason.NO_CYCLE: WindowState.NO_CYCLE,
}


@dataclass(frozen=True, slots=True)
class SubmissionWindow:
    """The window of one member x measure x period at a moment, and why it is (not) open."""

    state: WindowState
    reason: str
    cycle_code: str | None = None
    opens_at: dt.datetime | None = None
    deadline: dt.datetime | None = None
    #: For ``reopened-until``: when the reopening closes (None: until further notice).
    until: dt.datetime | None = None

    @property
    def is_open(self) -> bool:
        """Submissions are accepted."""
        return self.state.is_open


def _human_reason(
    status: WindowStatus,
    label: str,
    cycle: CycleWindow | None,
    reopening: Reopening | None,
    now: dt.datetime,
) -> str:
    """The sentence a member reads; says who closed what and what to do next."""
    reason = status.reason
    if reason is WindowReason.OPEN:
        return f"{label} is open for submissions until {status.deadline:{WHEN}}"
    if reason is WindowReason.REOPENED:
        why = f" ({reopening.reason})" if reopening and reopening.reason else ""
        if status.deadline:
            return f"{label} was reopened by a coordinator until {status.deadline:{WHEN}}{why}"
        return f"{label} was reopened by a coordinator{why}"
    if reason is WindowReason.BEFORE_WINDOW:
        if cycle is not None and cycle.status is CycleStatus.PLANNED and status.opens_at:
            return (
                f"the submission window for {label} has not opened yet: learning cycle "
                f"{status.cycle_code} is planned to open on {status.opens_at:{WHEN}}"
            )
        return f"the submission window for {label} opens on {status.opens_at:{WHEN}}"
    if reason is WindowReason.AFTER_DEADLINE:
        if cycle is not None and cycle.status is CycleStatus.CLOSED and cycle.deadline > now:
            return (
                f"the coordinators closed learning cycle {status.cycle_code} before its "
                f"deadline; ask them to reopen {label} if you still need to submit"
            )
        return (
            f"the submission deadline for {label} passed on {status.deadline:{WHEN}}; "
            "ask a coordinator to reopen the period if you need to submit late"
        )
    if reason is WindowReason.CYCLE_LOCKED:
        return (
            f"{label} is locked in learning cycle {status.cycle_code} (data frozen for "
            "benchmarking); a coordinator can reopen it for you with a reason"
        )
    return f"no learning cycle collects {label} for this measure"


@dataclass(frozen=True, slots=True)
class WindowCalendar:
    """A collaborative's cycles and reopenings, loaded once, asked many times (completeness)."""

    cycles: tuple[CycleWindow, ...]
    reopenings: tuple[Reopening, ...]
    #: Answers already given. Members no reopening names share theirs, so a grid of 40 members
    #: decides each measure x period once instead of forty times.
    _memo: dict[tuple[int | None, int, int, dt.datetime], SubmissionWindow] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def load(cls, db: Session, collaborative_id: int) -> WindowCalendar:
        """Read the handful of cycle and reopening rows."""
        cycles, reopenings = load_windows(db, collaborative_id)
        return cls(tuple(cycles), tuple(reopenings))

    def status(
        self, member_id: int, measure_id: int, period: ReportingPeriod, now: dt.datetime
    ) -> SubmissionWindow:
        """The window of one member x measure x period at ``now``."""
        named = any(r.member_id == member_id for r in self.reopenings)
        key = (member_id if named else None, measure_id, period.id, now)
        if key not in self._memo:
            self._memo[key] = self._decide(member_id, measure_id, period, now)
        return self._memo[key]

    def _decide(
        self, member_id: int, measure_id: int, period: ReportingPeriod, now: dt.datetime
    ) -> SubmissionWindow:
        decided = window_status(
            period.id,
            period.start_date,
            period.end_date,
            member_id,
            measure_id,
            self.cycles,
            self.reopenings,
            now,
        )
        cycle = next((c for c in self.cycles if c.code == decided.cycle_code), None)
        reopening = None
        if decided.reason is WindowReason.REOPENED and cycle is not None:
            reopening = next(
                (
                    r
                    for r in self.reopenings
                    if r.cycle_id == cycle.id
                    and r.member_id in (None, member_id)
                    and r.measure_id in (None, measure_id)
                    and r.period_id in (None, period.id)
                    and r.closes_at == decided.deadline
                ),
                None,
            )
        return SubmissionWindow(
            state=_STATE_OF_REASON[decided.reason],
            reason=_human_reason(decided, period.label, cycle, reopening, now),
            cycle_code=decided.cycle_code,
            opens_at=decided.opens_at,
            deadline=decided.deadline if decided.reason is not WindowReason.REOPENED else None,
            until=decided.deadline if decided.reason is WindowReason.REOPENED else None,
        )


def submission_window_status(
    db: Session,
    member: Member,
    measure: Measure,
    period: ReportingPeriod,
    now: dt.datetime | None = None,
) -> SubmissionWindow:
    """Can ``member`` submit ``measure`` for ``period`` at ``now`` (default: the current time)?

    Returns the state (open, not-yet-open, closed-after-deadline, locked, reopened-until,
    no-cycle) with a human reason; shared by the portal pages, the API and validation.
    """
    calendar_ = WindowCalendar.load(db, member.collaborative_id)
    return calendar_.status(member.id, measure.id, period, now or utcnow())


# --- due dates ---------------------------------------------------------------------------------


def days_until(deadline: dt.datetime, now: dt.datetime) -> int:
    """Calendar days (UTC) from today to the deadline's day; negative once it has passed.

    Counted by dates, not hours, because "due in 10 days" means ten midnights away to the
    person reading it, whatever the time of day.
    """
    return (deadline.astimezone(dt.UTC).date() - now.astimezone(dt.UTC).date()).days


def due_text(deadline: dt.datetime, now: dt.datetime) -> str:
    """The due date as members read it: due in N days, due today, or N days past it."""
    days = days_until(deadline, now)
    if deadline >= now:
        if days <= 0:
            return "due today"
        return f"due in {days} day{'s' if days != 1 else ''}"
    if days >= 0:
        return "the deadline passed today"
    return f"{-days} day{'s' if days != -1 else ''} past the deadline"


# --- completeness ------------------------------------------------------------------------------


class CellStatus(enum.StrEnum):
    """Where one member x measure x period stands."""

    MISSING = "missing"
    DRAFT = "draft"
    SUBMITTED = "submitted"
    RETURNED = "returned"
    ACCEPTED = "accepted"


CELL_ORDER = (
    CellStatus.MISSING,
    CellStatus.DRAFT,
    CellStatus.RETURNED,
    CellStatus.SUBMITTED,
    CellStatus.ACCEPTED,
)


@dataclass(frozen=True, slots=True)
class Cell:
    """One member x measure x period: its status, current version and window."""

    member_id: int
    measure_id: int
    period_id: int
    period_label: str
    status: CellStatus
    window: SubmissionWindow
    submission_id: int | None = None
    version: int | None = None
    review_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Completeness:
    """The completeness grid of one cycle, for some members."""

    cycle: LearningCycle
    now: dt.datetime
    members: tuple[Member, ...]
    measures: tuple[Measure, ...]
    periods: dict[int, tuple[ReportingPeriod, ...]]
    cells: dict[tuple[int, int, int], Cell] = field(repr=False)
    #: Status counts per (member, measure), built once: the coordinators' page asks for
    #: every pair, and scanning all cells for each would be quadratic.
    _pairs: dict[tuple[int, int], Counter[CellStatus]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        for (member, measure, _), cell in self.cells.items():
            self._pairs.setdefault((member, measure), Counter())[cell.status] += 1

    @property
    def due(self) -> str:
        """The cycle's deadline as "due in N days" (or days past it)."""
        return due_text(self.cycle.deadline, self.now)

    @property
    def days_left(self) -> int:
        """Days before the deadline (negative after)."""
        return days_until(self.cycle.deadline, self.now)

    def row(self, member_id: int, measure_id: int) -> list[Cell]:
        """The cells of one member and measure, period by period."""
        return [
            self.cells[(member_id, measure_id, period.id)] for period in self.periods[measure_id]
        ]

    def counts(
        self, *, member_id: int | None = None, measure_id: int | None = None
    ) -> dict[CellStatus, int]:
        """How many cells have each status (every status present, zero included)."""
        found: Counter[CellStatus] = Counter()
        for (member, measure), counter in self._pairs.items():
            if (member_id is None or member == member_id) and (
                measure_id is None or measure == measure_id
            ):
                found.update(counter)
        return {status: found.get(status, 0) for status in CELL_ORDER}

    @property
    def total(self) -> int:
        """Every expected cell."""
        return len(self.cells)


Version = tuple[int, int, SubmissionStatus, str | None]  # id, version, status, review reason


def _cell_status(
    versions: Sequence[Version],
) -> tuple[CellStatus, int | None, int | None, str | None]:
    """Status, submission id, version and review reason from a period's versions."""
    current = max(
        (v for v in versions if v[2] not in {SubmissionStatus.DRAFT, SubmissionStatus.SUPERSEDED}),
        key=lambda v: v[1],
        default=None,
    )
    if current is not None:
        return CellStatus(current[2].value), current[0], current[1], current[3]
    draft = max(
        (v for v in versions if v[2] is SubmissionStatus.DRAFT), key=lambda v: v[1], default=None
    )
    if draft is not None:
        return CellStatus.DRAFT, draft[0], draft[1], None
    return CellStatus.MISSING, None, None, None


# --- form input --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CycleDraft:
    """What a coordinator types to create or edit a cycle (already typed by the view)."""

    code: str
    title: str
    first_period: str  # YYYY-MM
    last_period: str  # YYYY-MM
    window_opens_at: dt.datetime
    deadline: dt.datetime
    lock_date: dt.datetime | None = None
    measure_codes: tuple[str, ...] = ()


MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")


def parse_month(text: str, *, field_name: str) -> dt.date:
    """``YYYY-MM`` as the first day of that month."""
    found = MONTH_PATTERN.match((text or "").strip())
    if not found or not 1 <= int(found.group(2)) <= 12 or not 2000 <= int(found.group(1)) <= 2100:
        msg = f"the {field_name} must be a month written YYYY-MM, e.g. 2026-01"
        raise CycleError(msg)
    return dt.date(int(found.group(1)), int(found.group(2)), 1)


def month_end(day: dt.date) -> dt.date:
    """The last day of ``day``'s month."""
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


#: Identifier sweeps for workflow reasons. Dates and month names are allowed: these reasons
#: talk about the collaborative's calendar ("the March count was late"), not about patients.
_REASON_SWEEP = tuple(
    (kind, re.compile(kind.pattern, re.IGNORECASE))
    for kind in phi.KINDS
    if kind.rule not in {"phi_month", "phi_date"}
)


def clean_reason(text: str | None, *, field_name: str = "reason", required: bool = True) -> str:
    """A stripped reason, long enough to mean something, and not identifying."""
    reason = " ".join((text or "").split())
    if not reason:
        if required:
            msg = f"a {field_name} is required"
            raise CycleError(msg)
        return ""
    if len(reason) < MIN_REASON_CHARS:
        msg = f"the {field_name} is too short: say briefly why"
        raise CycleError(msg)
    if len(reason) > MAX_REASON_CHARS:
        msg = f"the {field_name} is longer than {MAX_REASON_CHARS} characters"
        raise CycleError(msg)
    for kind, pattern in _REASON_SWEEP:
        if pattern.search(reason):
            msg = (
                f"the {field_name} {kind.message}; reasons stay on record and members read "
                "them, so keep identifiers out"
            )
            raise CycleError(msg)
    return reason


# --- the service -------------------------------------------------------------------------------


class ReviewDecision(enum.StrEnum):
    """A coordinator's verdict on a submitted version."""

    ACCEPT = "accept"
    RETURN = "return"


#: Which transitions each action makes (from -> to).
TRANSITIONS: dict[str, tuple[frozenset[CycleStatus], CycleStatus]] = {
    "open": (frozenset({CycleStatus.PLANNED, CycleStatus.CLOSED}), CycleStatus.OPEN),
    "close": (frozenset({CycleStatus.OPEN}), CycleStatus.CLOSED),
    "lock": (frozenset({CycleStatus.OPEN, CycleStatus.CLOSED}), CycleStatus.LOCKED),
    "publish": (frozenset({CycleStatus.LOCKED}), CycleStatus.PUBLISHED),
}


class CycleService:
    """One collaborative's learning cycles, in the caller's transaction (audited)."""

    def __init__(
        self,
        db: Session,
        collaborative_id: int,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = db
        self.collaborative_id = collaborative_id
        self.clock = clock
        self._cycles: list[LearningCycle] | None = None

    # --- reading --------------------------------------------------------------------------------

    def cycles(self) -> list[LearningCycle]:
        """Every cycle, newest periods first (read once per service)."""
        if self._cycles is None:
            self._cycles = list(
                self.db.scalars(
                    sa.select(LearningCycle)
                    .where(LearningCycle.collaborative_id == self.collaborative_id)
                    .order_by(LearningCycle.first_period_start.desc(), LearningCycle.code)
                )
            )
        return list(self._cycles)

    def by_code(self, code: str) -> LearningCycle | None:
        """One cycle by its code."""
        return self.db.scalar(
            sa.select(LearningCycle).where(
                LearningCycle.collaborative_id == self.collaborative_id,
                LearningCycle.code == code,
            )
        )

    def current_cycle(self) -> LearningCycle | None:
        """The cycle members care about now: open first, else the latest by periods."""
        cycles = self.cycles()
        for status in (CycleStatus.OPEN, CycleStatus.CLOSED, CycleStatus.PLANNED):
            found = [c for c in cycles if c.status is status]
            if found:
                return found[-1] if status is CycleStatus.PLANNED else found[0]
        return cycles[0] if cycles else None

    def measures(self, cycle: LearningCycle | None = None) -> list[Measure]:
        """The cycle's measures (every active measure when it lists none)."""
        if cycle is not None and cycle.measures:
            return sorted(cycle.measures, key=lambda m: m.code)
        return list(
            self.db.scalars(
                sa.select(Measure)
                .where(Measure.collaborative_id == self.collaborative_id, Measure.active.is_(True))
                .order_by(Measure.code)
            )
        )

    def members(self, member_ids: Iterable[int] | None = None) -> list[Member]:
        """Active members (or just those of ``member_ids``), by code."""
        query = sa.select(Member).where(
            Member.collaborative_id == self.collaborative_id, Member.active.is_(True)
        )
        if member_ids is not None:
            query = query.where(Member.id.in_(list(member_ids)))
        return list(self.db.scalars(query.order_by(Member.code)))

    def periods(
        self, cycle: LearningCycle, granularity: Granularity | None = None
    ) -> list[ReportingPeriod]:
        """The cycle's periods (of one granularity, or all), oldest first."""
        query = sa.select(ReportingPeriod).where(
            ReportingPeriod.collaborative_id == self.collaborative_id,
            ReportingPeriod.start_date >= cycle.first_period_start,
            ReportingPeriod.end_date <= cycle.last_period_end,
        )
        if granularity is not None:
            query = query.where(ReportingPeriod.granularity == granularity)
        return list(self.db.scalars(query.order_by(ReportingPeriod.start_date)))

    def reopenings(self, cycle: LearningCycle) -> list[CycleReopening]:
        """The cycle's reopenings, newest first."""
        return list(
            self.db.scalars(
                sa.select(CycleReopening)
                .where(CycleReopening.cycle_id == cycle.id)
                .order_by(CycleReopening.created_at.desc(), CycleReopening.id.desc())
            )
        )

    def sessions(self, cycle: LearningCycle) -> list[LearningSession]:
        """The cycle's learning sessions, by date."""
        return list(
            self.db.scalars(
                sa.select(LearningSession)
                .where(LearningSession.cycle_id == cycle.id)
                .order_by(LearningSession.held_on, LearningSession.id)
            )
        )

    def awaiting_review(self, cycle: LearningCycle | None = None) -> list[Submission]:
        """Submitted versions no coordinator has accepted or returned yet, oldest first."""
        query = (
            sa.select(Submission)
            .join(Member, Member.id == Submission.member_id)
            .where(
                Member.collaborative_id == self.collaborative_id,
                Submission.status == SubmissionStatus.SUBMITTED,
            )
            .order_by(Submission.submitted_at, Submission.id)
        )
        if cycle is not None:
            query = query.join(ReportingPeriod, ReportingPeriod.id == Submission.period_id).where(
                ReportingPeriod.start_date >= cycle.first_period_start,
                ReportingPeriod.end_date <= cycle.last_period_end,
            )
        return list(self.db.scalars(query.limit(500)))

    def completeness(
        self, cycle: LearningCycle, *, member_ids: Iterable[int] | None = None
    ) -> Completeness:
        """Missing / draft / submitted / returned / accepted per member x measure x period."""
        now = self.clock()
        members = self.members(member_ids)
        measures = self.measures(cycle)
        by_granularity: dict[Granularity, list[ReportingPeriod]] = {
            Granularity.MONTH: [],
            Granularity.YEAR: [],
        }
        for period in self.periods(cycle):
            by_granularity.setdefault(period.granularity, []).append(period)
        periods = {
            measure.id: tuple(
                by_granularity[
                    Granularity.YEAR if measure.level is DataLevel.PATIENT else Granularity.MONTH
                ]
            )
            for measure in measures
        }
        period_ids = {p.id for group in by_granularity.values() for p in group}
        versions: dict[tuple[int, int, int], list[Version]] = {}
        if members and measures and period_ids:
            rows = self.db.execute(
                sa.select(
                    Submission.member_id,
                    Submission.measure_id,
                    Submission.period_id,
                    Submission.id,
                    Submission.version,
                    Submission.status,
                    Submission.review_reason,
                ).where(
                    Submission.member_id.in_([m.id for m in members]),
                    Submission.measure_id.in_([m.id for m in measures]),
                    Submission.period_id.in_(period_ids),
                )
            )
            for member_id, measure_id, period_id, sid, version, status, why in rows:
                versions.setdefault((member_id, measure_id, period_id), []).append(
                    (sid, version, status, why)
                )
        windows = WindowCalendar.load(self.db, self.collaborative_id)
        cells: dict[tuple[int, int, int], Cell] = {}
        for member in members:
            for measure in measures:
                for period in periods[measure.id]:
                    key = (member.id, measure.id, period.id)
                    status, sid, version, why = _cell_status(versions.get(key, ()))
                    cells[key] = Cell(
                        member_id=member.id,
                        measure_id=measure.id,
                        period_id=period.id,
                        period_label=period.label,
                        status=status,
                        window=windows.status(member.id, measure.id, period, now),
                        submission_id=sid,
                        version=version,
                        review_reason=why,
                    )
        return Completeness(cycle, now, tuple(members), tuple(measures), periods, cells)

    # --- creating and editing -------------------------------------------------------------------

    def _measures_by_code(self, codes: Sequence[str]) -> list[Measure]:
        if not codes:
            return []
        found = {
            m.code: m
            for m in self.db.scalars(
                sa.select(Measure).where(
                    Measure.collaborative_id == self.collaborative_id, Measure.code.in_(codes)
                )
            )
        }
        unknown = sorted(set(codes) - set(found))
        if unknown:
            msg = f"unknown measure(s): {', '.join(unknown)}"
            raise CycleError(msg)
        return [found[code] for code in sorted(set(codes))]

    def _check_draft(self, draft: CycleDraft, *, editing: LearningCycle | None) -> tuple:
        title = " ".join((draft.title or "").split())
        if not title:
            msg = "a cycle needs a title"
            raise CycleError(msg)
        if len(title) > MAX_TITLE:
            msg = f"the title is longer than {MAX_TITLE} characters"
            raise CycleError(msg)
        first = parse_month(draft.first_period, field_name="first period")
        last = month_end(parse_month(draft.last_period, field_name="last period"))
        if last < first:
            msg = "the last period comes before the first"
            raise CycleError(msg)
        for name in ("window_opens_at", "deadline", "lock_date"):
            value = getattr(draft, name)
            if value is not None and value.tzinfo is None:
                msg = f"{name} must be timezone-aware (UTC)"
                raise CycleError(msg)
        if draft.deadline <= draft.window_opens_at:
            msg = "the deadline must come after the window opens"
            raise CycleError(msg)
        if draft.lock_date is not None and draft.lock_date < draft.deadline:
            msg = "the lock date cannot come before the deadline"
            raise CycleError(msg)
        measures = self._measures_by_code(draft.measure_codes)
        self._check_overlap(first, last, measures, editing)
        return title, first, last, measures

    def _check_overlap(
        self,
        first: dt.date,
        last: dt.date,
        measures: list[Measure],
        editing: LearningCycle | None,
    ) -> None:
        """Two cycles collecting the same measure for the same month would make windows moot."""
        wanted = {m.id for m in measures}
        for other in self.cycles():
            if editing is not None and other.id == editing.id:
                continue
            if other.last_period_end < first or other.first_period_start > last:
                continue
            theirs = {m.id for m in other.measures}
            if not wanted or not theirs or wanted & theirs:
                msg = (
                    f"learning cycle {other.code} already collects these measures for "
                    f"{other.first_period_start:%Y-%m} to {other.last_period_end:%Y-%m}"
                )
                raise CycleError(msg)

    def _ensure_periods(self, first: dt.date, last: dt.date) -> None:
        """Monthly periods for every month of the range, yearly ones for every whole year."""
        existing = set(
            self.db.scalars(
                sa.select(ReportingPeriod.label).where(
                    ReportingPeriod.collaborative_id == self.collaborative_id
                )
            )
        )
        day = first
        while day <= last:
            label = f"{day:%Y-%m}"
            if label not in existing:
                self.db.add(
                    ReportingPeriod(
                        collaborative_id=self.collaborative_id,
                        label=label,
                        granularity=Granularity.MONTH,
                        start_date=day,
                        end_date=month_end(day),
                    )
                )
                existing.add(label)
            if (
                day.month == 1
                and dt.date(day.year, 12, 31) <= last
                and str(day.year) not in existing
            ):
                self.db.add(
                    ReportingPeriod(
                        collaborative_id=self.collaborative_id,
                        label=str(day.year),
                        granularity=Granularity.YEAR,
                        start_date=dt.date(day.year, 1, 1),
                        end_date=dt.date(day.year, 12, 31),
                    )
                )
                existing.add(str(day.year))
            day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)

    def create(self, draft: CycleDraft, *, actor: User | str | None) -> LearningCycle:
        """A new cycle in ``planned`` status (audited); missing periods are created."""
        code = (draft.code or "").strip()
        if not CODE_PATTERN.match(code):
            msg = "the code must be 1-32 letters, digits, '-', '_' or '.', e.g. C2027"
            raise CycleError(msg)
        if self.by_code(code) is not None:
            msg = f"a learning cycle {code} already exists"
            raise CycleError(msg)
        title, first, last, measures = self._check_draft(draft, editing=None)
        self._ensure_periods(first, last)
        cycle = LearningCycle(
            collaborative_id=self.collaborative_id,
            code=code,
            title=title,
            status=CycleStatus.PLANNED,
            first_period_start=first,
            last_period_end=last,
            window_opens_at=draft.window_opens_at,
            deadline=draft.deadline,
            lock_date=draft.lock_date,
            measures=measures,
        )
        self.db.add(cycle)
        self.db.flush()
        self._audit("cycle.created", cycle, actor, details=self._describe(cycle))
        return cycle

    def update(
        self, cycle: LearningCycle, draft: CycleDraft, *, actor: User | str | None
    ) -> LearningCycle:
        """Change a cycle's title, periods, window, deadline, lock date or measures (audited).

        A locked or published cycle's data are frozen: it cannot be edited (reopen instead).
        """
        if cycle.status in {CycleStatus.LOCKED, CycleStatus.PUBLISHED}:
            msg = f"{cycle.code} is {cycle.status.value}: reopen periods instead of editing it"
            raise CycleError(msg)
        before = self._describe(cycle)
        title, first, last, measures = self._check_draft(draft, editing=cycle)
        self._ensure_periods(first, last)
        cycle.title = title
        cycle.first_period_start = first
        cycle.last_period_end = last
        cycle.window_opens_at = draft.window_opens_at
        cycle.deadline = draft.deadline
        cycle.lock_date = draft.lock_date
        cycle.measures = measures
        self.db.flush()
        after = self._describe(cycle)
        changed = {key: [before[key], after[key]] for key in after if before[key] != after[key]}
        self._audit("cycle.updated", cycle, actor, details={"changed": changed})
        return cycle

    def transition(
        self, cycle: LearningCycle, action: str, *, actor: User | str | None
    ) -> LearningCycle:
        """Open, close, lock or publish a cycle (audited)."""
        if action not in TRANSITIONS:
            msg = f"unknown action {action!r}"
            raise CycleError(msg)
        allowed, target = TRANSITIONS[action]
        if cycle.status not in allowed:
            msg = f"{cycle.code} is {cycle.status.value} and cannot be {_past(action)}"
            raise CycleError(msg)
        before = cycle.status
        cycle.status = target
        details: dict[str, object] = {"from": before.value, "to": target.value}
        if target is CycleStatus.LOCKED:
            cycle.locked_at = self.clock()
            cycle.locked_by_id = getattr(actor, "id", None)
            details["unreviewed"] = len(self.awaiting_review(cycle))
        self.db.flush()
        self._audit(f"cycle.{_past(action)}", cycle, actor, details=details)
        return cycle

    def reopen(
        self,
        cycle: LearningCycle,
        *,
        reason: str,
        closes_at: dt.datetime,
        actor: User | str | None,
        member: Member | None = None,
        measure: Measure | None = None,
        period: ReportingPeriod | None = None,
    ) -> CycleReopening:
        """Let a member (blank: every member) submit a measure's period again (audited).

        The reason stays on record beside the reopening and in the audit log.
        """
        reason = clean_reason(reason)
        now = self.clock()
        if cycle.status is CycleStatus.PLANNED:
            msg = f"{cycle.code} has not opened yet; open it instead"
            raise CycleError(msg)
        if cycle.status is CycleStatus.OPEN and cycle.window_opens_at <= now <= cycle.deadline:
            msg = f"the window of {cycle.code} is still open; nothing to reopen"
            raise CycleError(msg)
        if closes_at.tzinfo is None or closes_at <= now:
            msg = "a reopening must close in the future"
            raise CycleError(msg)
        for thing, label in ((member, "member"), (measure, "measure"), (period, "period")):
            if thing is not None and thing.collaborative_id != self.collaborative_id:
                msg = f"unknown {label}"
                raise CycleError(msg)
        if measure is not None and cycle.measures and measure not in cycle.measures:
            msg = f"{cycle.code} does not collect {measure.code}"
            raise CycleError(msg)
        if period is not None and not (
            cycle.first_period_start <= period.start_date
            and period.end_date <= cycle.last_period_end
        ):
            msg = f"{period.label} is not one of the periods of {cycle.code}"
            raise CycleError(msg)
        if getattr(actor, "id", None) is None:
            msg = "a reopening must be made by a signed-in coordinator"
            raise CycleError(msg)
        reopening = CycleReopening(
            cycle_id=cycle.id,
            member_id=member.id if member else None,
            measure_id=measure.id if measure else None,
            period_id=period.id if period else None,
            reason=reason,
            reopened_by_id=getattr(actor, "id", None),
            closes_at=closes_at,
            created_at=now,
        )
        self.db.add(reopening)
        self.db.flush()
        record(
            self.db,
            "cycle.reopened",
            actor=actor,
            object_type="cycle_reopening",
            object_id=reopening.id,
            collaborative_id=self.collaborative_id,
            member_id=reopening.member_id,
            details={
                "cycle": cycle.code,
                "member": member.code if member else None,
                "measure": measure.code if measure else None,
                "period": period.label if period else None,
                "closes_at": closes_at.isoformat(),
                "reason": reason,
            },
        )
        return reopening

    def add_session(
        self,
        cycle: LearningCycle,
        *,
        held_on: dt.date,
        title: str,
        notes: str = "",
        actor: User | str | None,
    ) -> LearningSession:
        """Record a learning session of the cycle (audited)."""
        title = " ".join((title or "").split())
        if not title:
            msg = "a learning session needs a title"
            raise CycleError(msg)
        if len(title) > MAX_TITLE:
            msg = f"the title is longer than {MAX_TITLE} characters"
            raise CycleError(msg)
        if not isinstance(held_on, dt.date) or isinstance(held_on, dt.datetime):
            msg = "the session date must be a calendar date"
            raise CycleError(msg)
        session = LearningSession(
            cycle_id=cycle.id, held_on=held_on, title=title, notes=(notes or "").strip()
        )
        self.db.add(session)
        self.db.flush()
        self._audit(
            "learning_session.created",
            cycle,
            actor,
            details={"session_id": session.id, "held_on": held_on.isoformat(), "title": title},
        )
        return session

    # --- review -----------------------------------------------------------------------------------

    def submission(self, submission_id: int) -> Submission | None:
        """A version of this collaborative's data, or None."""
        found = self.db.get(Submission, submission_id)
        if found is None:
            return None
        member = self.db.get(Member, found.member_id)
        if member is None or member.collaborative_id != self.collaborative_id:
            return None
        return found

    def review(
        self,
        submission: Submission,
        decision: ReviewDecision | str,
        *,
        reason: str | None,
        actor: User | str | None,
    ) -> Submission:
        """Accept or return a version (audited). Returning needs a reason the member reads.

        Only the current version of a period can be reviewed: drafts are unsent work and
        superseded versions have been replaced by the member.
        """
        try:
            decision = ReviewDecision(decision)
        except ValueError as error:
            msg = "the decision must be accept or return"
            raise CycleError(msg) from error
        text = clean_reason(reason, required=decision is ReviewDecision.RETURN)
        if submission.status in {SubmissionStatus.DRAFT, SubmissionStatus.SUPERSEDED}:
            msg = (
                f"version {submission.version} is {submission.status.value}; only the current "
                "version of a period can be reviewed"
            )
            raise CycleError(msg)
        target = (
            SubmissionStatus.ACCEPTED
            if decision is ReviewDecision.ACCEPT
            else SubmissionStatus.RETURNED
        )
        if submission.status is target:
            msg = f"version {submission.version} is already {target.value}"
            raise CycleError(msg)
        before = submission.status
        submission.status = target
        submission.reviewed_by_id = getattr(actor, "id", None)
        submission.reviewed_at = self.clock()
        submission.review_reason = text or None
        self.db.flush()
        measure = self.db.get(Measure, submission.measure_id)
        period = self.db.get(ReportingPeriod, submission.period_id)
        record(
            self.db,
            f"submission.{'accepted' if target is SubmissionStatus.ACCEPTED else 'returned'}",
            actor=actor,
            object_type="submission",
            object_id=submission.id,
            collaborative_id=self.collaborative_id,
            member_id=submission.member_id,
            details={
                "measure": measure.code if measure else None,
                "period": period.label if period else None,
                "version": submission.version,
                "from": before.value,
                "reason": text or None,
            },
        )
        return submission

    # --- helpers ----------------------------------------------------------------------------------

    def _describe(self, cycle: LearningCycle) -> dict[str, object]:
        return {
            "code": cycle.code,
            "title": cycle.title,
            "first_period": f"{cycle.first_period_start:%Y-%m}",
            "last_period": f"{cycle.last_period_end:%Y-%m}",
            "window_opens_at": cycle.window_opens_at.isoformat(),
            "deadline": cycle.deadline.isoformat(),
            "lock_date": cycle.lock_date.isoformat() if cycle.lock_date else None,
            "measures": sorted(m.code for m in cycle.measures),
        }

    def _audit(
        self,
        action: str,
        cycle: LearningCycle,
        actor: User | str | None,
        *,
        details: dict[str, object],
    ) -> None:
        record(
            self.db,
            action,
            actor=actor,
            object_type="learning_cycle",
            object_id=cycle.id,
            collaborative_id=self.collaborative_id,
            details={"cycle": cycle.code, **details},
        )


def _past(action: str) -> str:
    return {"open": "opened", "close": "closed", "lock": "locked", "publish": "published"}[action]
