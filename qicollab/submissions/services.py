"""Submitting data: dry-run previews and versioned, all-or-nothing commits.

One pipeline serves every way in (CSV and XLSX uploads, the web form, the JSON API, FHIR):
parse to text -> refuse PHI -> validate -> plan per period -> (commit) write. The API and the
form call :meth:`SubmissionService.submit_rows` with already-parsed rows, which goes through the
same screen, validation and versioning as a file.

Versions are never overwritten. A new version per member x measure x period gets ``version =
previous + 1`` and a ``predecessor``; the previous version's status becomes ``superseded`` and
its content stays. Content that equals the current version is not stored again, so the same file
posted twice returns the existing versions. Everything is written in the caller's transaction:
a refused or failing commit raises and the caller rolls back, so nothing is half-stored.

Concurrent submitters of one member are serialised by a row lock on the member (PostgreSQL; on
SQLite every writing transaction already starts with ``BEGIN IMMEDIATE``), so version numbers
are computed under the lock and each is stored exactly once.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from qicollab.accounts.models import User
from qicollab.audit.services import record
from qicollab.db import utcnow
from qicollab.exports import csv_bytes, escape_formula
from qicollab.measures.models import DataLevel, Measure, MeasureType
from qicollab.members.models import Collaborative, DeidProfile, Member
from qicollab.schedule.clock import clock_of
from qicollab.schedule.periods import Granularity, ReportingPeriod
from qicollab.schedule.windows import SubmissionWindow, WindowCalendar, WindowState
from qicollab.submissions import identifiers, phi
from qicollab.submissions.arrow import as_arrow
from qicollab.submissions.bulk import insert_patient_table
from qicollab.submissions.errors import (
    DuplicateSubmissionError,
    InvalidSubmissionError,
    JustificationRequiredError,
    PHIRefusedError,
    Problem,
    ReasonRequiredError,
    Severity,
    SubmissionError,
    WindowClosedError,
)
from qicollab.submissions.layout import Column, ColumnKind, ColumnRole, Layout, layout_for
from qicollab.submissions.models import (
    AggregateValue,
    Submission,
    SubmissionBatch,
    SubmissionSource,
    SubmissionStatus,
)
from qicollab.submissions.parsing import Limits, Table, parse_upload, table_from_rows
from qicollab.submissions.validation import (
    History,
    PeriodInfo,
    Validated,
    ValidationContext,
    validate,
)

if TYPE_CHECKING:
    from pyramid.request import Request
    from sqlalchemy.orm import Session

Actor = User | str | None

#: Statuses a "current" version can have (drafts and superseded versions never are).
CURRENT_STATUSES = (
    SubmissionStatus.SUBMITTED,
    SubmissionStatus.ACCEPTED,
    SubmissionStatus.RETURNED,
)
#: Draft saves may be incomplete; only these errors are tolerated in a draft.
DRAFT_TOLERATED_RULES = frozenset({"required", "missing_column", "window_closed"})
JUSTIFICATION_MIN_CHARS = 3


class PlanAction(enum.StrEnum):
    """What committing would do to a period."""

    ADD = "add"  # first version
    REPLACE = "replace"  # new version superseding the current one
    UNCHANGED = "unchanged"  # same content as the current version: nothing stored


@dataclass(frozen=True, slots=True)
class PeriodPlan:
    """The effect of a submission on one period."""

    period: str
    period_id: int
    action: PlanAction
    rows: int
    content_hash: str
    current_id: int | None = None
    current_version: int | None = None
    current_status: SubmissionStatus | None = None
    new_version: int | None = None


@dataclass(frozen=True, slots=True)
class PreviewResult:
    """A dry run: what would be stored, and the problems found. Nothing was written."""

    member_id: int
    measure_code: str
    filename: str
    source: SubmissionSource
    content_hash: str
    rows_read: int
    periods: tuple[PeriodPlan, ...]
    problems: tuple[Problem, ...]
    error_count: int
    warning_count: int
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No errors: the submission can be committed (with a justification for warnings)."""
        return self.error_count == 0

    @property
    def errors(self) -> tuple[Problem, ...]:
        """Blocking problems (as many as were kept)."""
        return tuple(p for p in self.problems if p.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        """Problems that need a justification."""
        return tuple(p for p in self.problems if p.severity is Severity.WARNING)

    @property
    def needs_justification(self) -> bool:
        """Warnings were found."""
        return self.warning_count > 0

    @property
    def needs_reason(self) -> bool:
        """Some period would get a correcting version."""
        return any(plan.action is PlanAction.REPLACE for plan in self.periods)

    def count(self, action: PlanAction) -> int:
        """Periods that would be added, replaced or left unchanged."""
        return sum(1 for plan in self.periods if plan.action is action)

    @property
    def truncated(self) -> bool:
        """More problems were found than are listed."""
        return len(self.problems) < self.error_count + self.warning_count


@dataclass(frozen=True, slots=True)
class VersionRef:
    """A stored version, as returned by a commit."""

    submission_id: int
    period: str
    version: int
    status: SubmissionStatus
    predecessor_id: int | None
    action: PlanAction
    rows: int


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What a commit stored (or found already stored, when ``duplicate``)."""

    batch_id: int | None
    versions: tuple[VersionRef, ...]
    duplicate: bool
    rows: int
    warnings: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """The uploaded rows with an ``errors`` column, as a download."""

    filename: str
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class _Prepared:
    member: Member
    measure: Measure
    layout: Layout
    validated: Validated
    periods: Mapping[str, PeriodInfo]
    source: SubmissionSource
    filename: str
    content_hash: str
    #: Per-period contents, computed once (hashing a million rows is not free).
    cache: dict[str, Any] = field(default_factory=dict, compare=False)


def content_hash(payload: object) -> str:
    """SHA-256 of a canonical JSON form (the demo loader's hash for aggregate values)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _number(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if np.isnan(number) else number


class SubmissionService:
    """Previews and commits of one collaborative's submissions, in the caller's transaction."""

    def __init__(
        self,
        db: Session,
        *,
        limits: Limits | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        max_problems: int = 1000,
    ) -> None:
        self.db = db
        self.limits = limits or Limits()
        self.clock = clock
        self.max_problems = max_problems

    # --- public API ---------------------------------------------------------------------------

    def layout(self, member: Member, measure: Measure) -> Layout:
        """The submission columns of ``measure`` for ``member`` (templates use this)."""
        self._check_pair(member, measure)
        return layout_for(measure, collaborative=self._collaborative(member), member=member)

    def preview(
        self, *, member: Member, measure: Measure, data: bytes, filename: str
    ) -> PreviewResult:
        """Dry-run an uploaded file: rows read, add/replace/unchanged per period, problems.

        Raises :class:`ParseError` for unreadable files and :class:`PHIRefusedError` for files
        that look identifying; nothing is written either way.
        """
        digest = _sha256(data)
        filename = _stored_filename(filename, digest)
        table = parse_upload(data, filename, self.limits)
        prepared = self._prepare(member, measure, table, _file_source(table), digest, filename)
        return self._preview(prepared, self._plan(prepared))

    def preview_rows(
        self,
        *,
        member: Member,
        measure: Measure,
        rows: Sequence[Mapping[str, object]],
        source: SubmissionSource = SubmissionSource.FORM,
    ) -> PreviewResult:
        """Dry-run already-parsed rows (the form's as-you-type checks, the API's dry run)."""
        table = table_from_rows(rows, source=source.value, limits=self.limits)
        prepared = self._prepare(member, measure, table, source, _rows_hash(rows), source.value)
        return self._preview(prepared, self._plan(prepared))

    def commit(
        self,
        *,
        member: Member,
        measure: Measure,
        data: bytes,
        filename: str,
        actor: Actor,
        reason: str | None = None,
        justification: str | None = None,
        ip_address: str | None = None,
        if_duplicate: Literal["return", "raise"] = "return",
    ) -> CommitResult:
        """Store an uploaded file as new versions, all or nothing, in the caller's transaction.

        Raises :class:`PHIRefusedError`, :class:`InvalidSubmissionError` (and its kinds
        :class:`WindowClosedError`, :class:`JustificationRequiredError`,
        :class:`ReasonRequiredError`) or :class:`ParseError`; the caller must then roll back.
        """
        digest = _sha256(data)
        filename = _stored_filename(filename, digest)
        table = parse_upload(data, filename, self.limits)
        prepared = self._prepare(member, measure, table, _file_source(table), digest, filename)
        return self._commit(
            prepared,
            actor=actor,
            reason=reason,
            justification=justification,
            ip_address=ip_address,
            if_duplicate=if_duplicate,
        )

    def submit_rows(
        self,
        *,
        member: Member,
        measure: Measure,
        rows: Sequence[Mapping[str, object]],
        source: SubmissionSource,
        actor: Actor,
        reason: str | None = None,
        justification: str | None = None,
        draft: bool = False,
        ip_address: str | None = None,
        if_duplicate: Literal["return", "raise"] = "return",
    ) -> CommitResult:
        """Store already-parsed rows (form, API, FHIR) through the same checks as a file.

        Rows are mappings of the layout's column names (``period``, ``numerator``, ...) to
        values (text, numbers or None). ``draft=True`` saves aggregate rows as drafts: they may
        be incomplete, skip the window and justification checks, are never current and are
        replaced in place by the next draft or submission of the period.
        """
        table = table_from_rows(rows, source=source.value, limits=self.limits)
        prepared = self._prepare(member, measure, table, source, _rows_hash(rows), source.value)
        if draft:
            return self._save_draft(prepared, actor=actor, ip_address=ip_address)
        return self._commit(
            prepared,
            actor=actor,
            reason=reason,
            justification=justification,
            ip_address=ip_address,
            if_duplicate=if_duplicate,
        )

    def error_report(
        self,
        *,
        member: Member,
        measure: Measure,
        data: bytes,
        filename: str,
        fmt: Literal["csv", "xlsx"],
    ) -> ErrorReport:
        """The uploaded rows with an ``errors`` column added; every cell formula-escaped."""
        digest = _sha256(data)
        filename = _stored_filename(filename, digest)
        table = parse_upload(data, filename, self.limits)
        prepared = self._prepare(
            member, measure, table, _file_source(table), digest, filename, max_problems=None
        )
        validated = prepared.validated
        messages: dict[int | None, list[str]] = {}
        for problem in validated.problems:
            where = f"{problem.column}: " if problem.column else ""
            label = "warning" if problem.severity is Severity.WARNING else "error"
            messages.setdefault(problem.row, []).append(
                f"{label}: {where}{problem.message}. {problem.fix}"
            )
        header = [*validated.table.columns, "errors"]
        frame = validated.table.frame
        file_level = messages.get(1 if validated.table.kind != "rows" else None, [])
        rows = [
            [*values, " | ".join(messages.get(int(number), []))]
            for values, number in zip(
                frame.itertuples(index=False, name=None), validated.table.rows, strict=True
            )
        ]
        stem = measure.code.lower()
        if file_level:
            header_note = " | ".join(file_level)
            header[-1] = "errors"
            rows.insert(0, ["" for _ in validated.table.columns] + [header_note])
        if fmt == "csv":
            return ErrorReport(
                f"{stem}-errors.csv", "text/csv; charset=utf-8", csv_bytes(header, rows)
            )
        return ErrorReport(
            f"{stem}-errors.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            _xlsx_bytes(header, rows),
        )

    def window(
        self, member: Member, measure: Measure, period_label: str
    ) -> SubmissionWindow | None:
        """The window of one period for this member and measure (None: no such period)."""
        periods = self._periods(member, measure, self.layout(member, measure))
        info = periods.get(period_label)
        return None if info is None else info.window

    def periods(self, member: Member, measure: Measure) -> dict[str, PeriodInfo]:
        """Every reporting period of the measure's granularity, with this member's window."""
        return self._periods(member, measure, self.layout(member, measure))

    def open_periods(self, member: Member, measure: Measure) -> list[str]:
        """Labels of the periods this member can submit for now, oldest first."""
        periods = self._periods(member, measure, self.layout(member, measure))
        return [label for label, info in sorted(periods.items()) if info.window.is_open]

    def versions(
        self, member: Member, measure: Measure | None = None
    ) -> list[tuple[Submission, str, str]]:
        """Every version of the member's submissions (newest first) with measure and period."""
        query = (
            sa.select(Submission, Measure.code, ReportingPeriod.label)
            .join(Measure, Measure.id == Submission.measure_id)
            .join(ReportingPeriod, ReportingPeriod.id == Submission.period_id)
            .where(Submission.member_id == member.id)
            .order_by(Submission.created_at.desc(), Submission.id.desc())
        )
        if measure is not None:
            query = query.where(Submission.measure_id == measure.id)
        return [(row[0], row[1], row[2]) for row in self.db.execute(query.limit(500))]

    def current_values(
        self, member: Member, measure: Measure, period_label: str
    ) -> tuple[Submission | None, Submission | None]:
        """The current version and the draft (if any) of an aggregate period."""
        period = self.db.scalar(
            sa.select(ReportingPeriod).where(
                ReportingPeriod.collaborative_id == member.collaborative_id,
                ReportingPeriod.label == period_label,
            )
        )
        if period is None:
            return None, None
        rows = self.db.scalars(
            sa.select(Submission)
            .where(
                Submission.member_id == member.id,
                Submission.measure_id == measure.id,
                Submission.period_id == period.id,
            )
            .order_by(Submission.version.desc())
        ).all()
        current = next((s for s in rows if s.status in CURRENT_STATUSES), None)
        draft = next((s for s in rows if s.status is SubmissionStatus.DRAFT), None)
        return current, draft

    # --- the pipeline -------------------------------------------------------------------------

    def _collaborative(self, member: Member) -> Collaborative:
        return member.collaborative

    def _check_pair(self, member: Member, measure: Measure) -> None:
        if measure.collaborative_id != member.collaborative_id:
            msg = "the measure belongs to another collaborative"
            raise InvalidSubmissionError(msg)

    def _prepare(  # noqa: PLR0917 - private; every entry point passes the same things
        self,
        member: Member,
        measure: Measure,
        table: Table,
        source: SubmissionSource,
        digest: str,
        filename: str,
        *,
        max_problems: int | Literal["default"] | None = "default",
    ) -> _Prepared:
        self._check_pair(member, measure)
        if not measure.active:
            msg = f"{measure.code} is retired and takes no submissions"
            raise InvalidSubmissionError(msg)
        layout = self.layout(member, measure)
        # Identifying columns and cells are left out before anything else reads the table.
        screened = phi.screen_all(_without_error_column(table), layout)
        periods = self._periods(member, measure, layout)
        history = None if layout.is_patient else self._history(member, measure)
        context = ValidationContext(
            periods=periods,
            now=self.clock(),
            history=history,
            max_problems=self.max_problems if max_problems == "default" else max_problems,
        )
        validated = validate(screened.table, layout, context)
        if screened.problems:
            raise PHIRefusedError(
                screened.message,
                screened.problems,
                _besides_identifiers(validated.problems, screened.problems),
            )
        return _Prepared(member, measure, layout, validated, periods, source, filename, digest)

    def _periods(self, member: Member, measure: Measure, layout: Layout) -> dict[str, PeriodInfo]:
        granularity = Granularity.YEAR if layout.is_patient else Granularity.MONTH
        periods = self.db.scalars(
            sa.select(ReportingPeriod).where(
                ReportingPeriod.collaborative_id == member.collaborative_id,
                ReportingPeriod.granularity == granularity,
            )
        ).all()
        calendar = WindowCalendar.load(self.db, member.collaborative_id)
        now = self.clock()
        return {
            period.label: PeriodInfo(
                id=period.id,
                label=period.label,
                start=period.start_date,
                end=period.end_date,
                window=calendar.status(member.id, measure.id, period, now),
            )
            for period in periods
        }

    def _history(self, member: Member, measure: Measure) -> History:
        rows = self.db.execute(
            sa.select(AggregateValue.numerator, AggregateValue.denominator, AggregateValue.value)
            .join(Submission, Submission.id == AggregateValue.submission_id)
            .where(
                Submission.member_id == member.id,
                Submission.measure_id == measure.id,
                Submission.status == SubmissionStatus.ACCEPTED,
            )
        ).all()
        values = np.array([[_nan(a), _nan(b), _nan(c)] for a, b, c in rows], dtype=float)
        if not len(values):
            return History(np.zeros(0), np.zeros(0))
        numerator, denominator, value = values.T
        if measure.measure_type in {MeasureType.MEAN, MeasureType.TIME_BETWEEN_EVENTS}:
            rates = value
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                rates = np.where(denominator > 0, numerator / denominator, np.nan)
        return History(rates, denominator)

    def _period_contents(self, prepared: _Prepared) -> dict[str, tuple[str, int, Any]]:
        """Per period label: content hash, row count, and the typed rows to store."""
        if "contents" not in prepared.cache:
            prepared.cache["contents"] = self._compute_contents(prepared)
        return prepared.cache["contents"]

    def _compute_contents(self, prepared: _Prepared) -> dict[str, tuple[str, int, Any]]:
        clean = prepared.validated.clean
        labels = clean["period"].to_numpy() if "period" in clean else np.zeros(0, object)
        contents: dict[str, tuple[str, int, Any]] = {}
        if not prepared.layout.is_patient:
            for position, label in enumerate(labels):
                if not label or label in contents:
                    continue
                payload = _aggregate_payload(clean, position)
                contents[label] = (content_hash(payload), 1, payload)
            return contents
        value_columns = [
            name for name in prepared.layout.names if name in clean and name != "period"
        ]
        for label, index in pd.Series(range(len(labels))).groupby(labels, sort=True):
            if not label:
                continue
            group = clean.iloc[index.to_numpy()][value_columns]
            digest = hashlib.sha256(",".join(value_columns).encode())
            digest.update(pd.util.hash_pandas_object(group, index=False).to_numpy().tobytes())
            contents[str(label)] = (digest.hexdigest(), len(group), index.to_numpy())
        return contents

    def _plan(self, prepared: _Prepared) -> list[PeriodPlan]:
        contents = self._period_contents(prepared)
        if not contents:
            return []
        period_ids = {label: prepared.periods[label].id for label in contents}
        existing = self.db.scalars(
            sa.select(Submission).where(
                Submission.member_id == prepared.member.id,
                Submission.measure_id == prepared.measure.id,
                Submission.period_id.in_(period_ids.values()),
            )
        ).all()
        by_period: dict[int, list[Submission]] = {}
        for submission in existing:
            by_period.setdefault(submission.period_id, []).append(submission)
        plans = []
        for label, (digest, count, _) in contents.items():
            versions = by_period.get(period_ids[label], [])
            current = max(
                (s for s in versions if s.status in CURRENT_STATUSES),
                key=lambda s: s.version,
                default=None,
            )
            top = max(
                (s.version for s in versions if s.status is not SubmissionStatus.DRAFT), default=0
            )
            if current is None:
                action = PlanAction.ADD
            elif current.content_hash == digest:
                action = PlanAction.UNCHANGED
            else:
                action = PlanAction.REPLACE
            plans.append(
                PeriodPlan(
                    period=label,
                    period_id=period_ids[label],
                    action=action,
                    rows=count,
                    content_hash=digest,
                    current_id=current.id if current else None,
                    current_version=current.version if current else None,
                    current_status=current.status if current else None,
                    new_version=None if action is PlanAction.UNCHANGED else top + 1,
                )
            )
        return plans

    def _preview(self, prepared: _Prepared, plans: list[PeriodPlan]) -> PreviewResult:
        validated = prepared.validated
        return PreviewResult(
            member_id=prepared.member.id,
            measure_code=prepared.measure.code,
            filename=prepared.filename,
            source=prepared.source,
            content_hash=prepared.content_hash,
            rows_read=len(validated.table),
            periods=tuple(plans),
            problems=validated.problems,
            error_count=validated.error_count,
            warning_count=validated.warning_count,
            counts=validated.counts,
        )

    def _refuse_errors(self, prepared: _Prepared) -> None:
        validated = prepared.validated
        if validated.ok:
            return
        errors = [p for p in validated.problems if p.severity is Severity.ERROR]
        window_only = set(validated.counts) - {"history_range", "history_zscore"} == {
            "window_closed"
        }
        if window_only:
            reasons: dict[str, WindowState] = {}
            deadlines: dict[str, dt.datetime | None] = {}
            for label in {str(x) for x in validated.clean.get("period", []) if x}:
                status = prepared.periods[label].window
                if not status.is_open:
                    reasons[label] = status.state
                    deadlines[label] = status.closes_at
            msg = "the submission window is closed for " + ", ".join(sorted(reasons))
            raise WindowClosedError(msg, errors, reasons, deadlines)
        msg = f"{validated.error_count} error(s) found; nothing was stored"
        raise InvalidSubmissionError(msg, errors)

    def _lock_member(self, member: Member) -> None:
        # PostgreSQL: serialise this member's writers; SQLite ignores FOR UPDATE and already
        # holds the database's write lock (BEGIN IMMEDIATE).
        self.db.execute(sa.select(Member.id).where(Member.id == member.id).with_for_update())

    def _commit(
        self,
        prepared: _Prepared,
        *,
        actor: Actor,
        reason: str | None,
        justification: str | None,
        ip_address: str | None,
        if_duplicate: Literal["return", "raise"],
    ) -> CommitResult:
        reason = (reason or "").strip() or None
        justification = (justification or "").strip() or None
        text_problems = phi.sweep_text(reason, field="reason") + phi.sweep_text(
            justification, field="justification"
        )
        if text_problems:
            msg = "the reason or justification looks identifying"
            raise PHIRefusedError(msg, text_problems)
        self._refuse_errors(prepared)
        self._lock_member(prepared.member)
        plans = self._plan(prepared)
        validated = prepared.validated
        warnings = tuple(p for p in validated.problems if p.severity is Severity.WARNING)
        if plans and all(plan.action is PlanAction.UNCHANGED for plan in plans):
            result = self._existing(prepared, plans)
            if if_duplicate == "raise":
                msg = "this content is already the current version"
                raise DuplicateSubmissionError(msg, result)
            return result
        if validated.warning_count and (
            justification is None or len(justification) < JUSTIFICATION_MIN_CHARS
        ):
            msg = f"{validated.warning_count} warning(s) need a short justification"
            raise JustificationRequiredError(msg, warnings)
        if reason is None and any(plan.action is PlanAction.REPLACE for plan in plans):
            replaced = ", ".join(p.period for p in plans if p.action is PlanAction.REPLACE)
            msg = f"a reason is required to replace the current version of {replaced}"
            problem = Problem(
                Severity.ERROR,
                "reason_required",
                msg,
                "Say briefly why the data are corrected (e.g. late cases found).",
                file=prepared.filename,
                column="reason",
            )
            raise ReasonRequiredError(msg, [problem])
        if not plans:
            msg = "there are no rows to store"
            raise InvalidSubmissionError(msg)
        batch = SubmissionBatch(
            member_id=prepared.member.id,
            measure_id=prepared.measure.id,
            source=prepared.source,
            filename=prepared.filename,
            content_hash=prepared.content_hash,
            row_count=len(validated.table),
            warning_justification=justification if validated.warning_count else None,
            created_by_id=actor.id if isinstance(actor, User) else None,
        )
        self.db.add(batch)
        self.db.flush()
        versions = self._write_versions(
            prepared,
            plans,
            batch=batch,
            status=SubmissionStatus.SUBMITTED,
            actor=actor,
            reason=reason,
            ip_address=ip_address,
        )
        return CommitResult(
            batch_id=batch.id,
            versions=tuple(versions),
            duplicate=False,
            rows=len(validated.table),
            warnings=warnings,
        )

    def _existing(self, prepared: _Prepared, plans: list[PeriodPlan]) -> CommitResult:
        current = {
            s.id: s
            for s in self.db.scalars(
                sa.select(Submission).where(
                    Submission.id.in_([p.current_id for p in plans if p.current_id])
                )
            )
        }
        earlier = self.db.scalar(
            sa.select(SubmissionBatch.id)
            .where(
                SubmissionBatch.member_id == prepared.member.id,
                SubmissionBatch.measure_id == prepared.measure.id,
                SubmissionBatch.content_hash == prepared.content_hash,
            )
            .order_by(SubmissionBatch.id.desc())
            .limit(1)
        )
        versions = []
        for plan in plans:
            submission = current[plan.current_id] if plan.current_id else None
            if submission is None:
                continue
            versions.append(
                VersionRef(
                    submission_id=submission.id,
                    period=plan.period,
                    version=submission.version,
                    status=submission.status,
                    predecessor_id=submission.predecessor_id,
                    action=PlanAction.UNCHANGED,
                    rows=plan.rows,
                )
            )
        return CommitResult(
            batch_id=earlier,
            versions=tuple(versions),
            duplicate=True,
            rows=len(prepared.validated.table),
        )

    def _write_versions(
        self,
        prepared: _Prepared,
        plans: list[PeriodPlan],
        *,
        batch: SubmissionBatch,
        status: SubmissionStatus,
        actor: Actor,
        reason: str | None,
        ip_address: str | None,
    ) -> list[VersionRef]:
        now = self.clock()
        contents = self._period_contents(prepared)
        member, measure = prepared.member, prepared.measure
        to_write = [plan for plan in plans if plan.action is not PlanAction.UNCHANGED]
        # Drafts of these periods give way to the submitted version.
        drafts = self.db.scalars(
            sa.select(Submission.id).where(
                Submission.member_id == member.id,
                Submission.measure_id == measure.id,
                Submission.period_id.in_([plan.period_id for plan in to_write]),
                Submission.status == SubmissionStatus.DRAFT,
            )
        ).all()
        if drafts:
            self.db.execute(
                sa.delete(AggregateValue).where(AggregateValue.submission_id.in_(drafts))
            )
            self.db.execute(sa.delete(Submission).where(Submission.id.in_(drafts)))
        warned = _warnings_by_period(prepared.validated)
        submissions: list[tuple[PeriodPlan, Submission]] = []
        for plan in to_write:
            submission = Submission(
                member_id=member.id,
                measure_id=measure.id,
                period_id=plan.period_id,
                version=plan.new_version,
                status=status,
                content_hash=plan.content_hash,
                batch_id=batch.id,
                submitted_by_id=actor.id if isinstance(actor, User) else None,
                submitted_at=now,
                created_at=now,
                reason=reason if plan.action is PlanAction.REPLACE else None,
                predecessor_id=plan.current_id,
                warnings=warned.get(plan.period) or None,
            )
            self.db.add(submission)
            submissions.append((plan, submission))
        superseded = [plan.current_id for plan in to_write if plan.current_id is not None]
        if superseded:
            self.db.execute(
                sa.update(Submission)
                .where(Submission.id.in_(superseded))
                .values(status=SubmissionStatus.SUPERSEDED)
                .execution_options(synchronize_session="fetch")
            )
        self.db.flush()
        if prepared.layout.is_patient:
            self._write_patient_rows(prepared, submissions, contents)
        else:
            for plan, submission in submissions:
                payload = contents[plan.period][2]
                self.db.add(_aggregate_value(submission.id, payload))
        refs = []
        for plan, submission in submissions:
            action = (
                "submission.corrected"
                if plan.action is PlanAction.REPLACE
                else ("submission.created")
            )
            record(
                self.db,
                action,
                actor=actor,
                object_type="submission",
                object_id=submission.id,
                collaborative_id=member.collaborative_id,
                member_id=member.id,
                ip_address=ip_address,
                details={
                    "measure": measure.code,
                    "period": plan.period,
                    "version": submission.version,
                    "predecessor_id": submission.predecessor_id,
                    "rows": plan.rows,
                    "batch_id": batch.id,
                    "source": prepared.source.value,
                    "reason": submission.reason,
                    "warnings": prepared.validated.warning_count,
                },
            )
            refs.append(
                VersionRef(
                    submission_id=submission.id,
                    period=plan.period,
                    version=submission.version,
                    status=submission.status,
                    predecessor_id=submission.predecessor_id,
                    action=plan.action,
                    rows=plan.rows,
                )
            )
        self.db.flush()
        return refs

    def _write_patient_rows(
        self,
        prepared: _Prepared,
        submissions: list[tuple[PeriodPlan, Submission]],
        contents: dict[str, tuple[str, int, Any]],
    ) -> None:
        """All cases of the new versions in one bulk insert, built column-wise in Arrow."""
        layout = prepared.layout
        clean = prepared.validated.clean
        outcome = layout.by_role(ColumnRole.OUTCOME)
        assert outcome is not None
        order = np.concatenate([contents[plan.period][2] for plan, _ in submissions])
        sizes = [len(contents[plan.period][2]) for plan, _ in submissions]
        take = pa.array(order)
        months = (
            clean["event_month"].to_numpy(dtype=float)[order] if "event_month" in clean else None
        )
        table = pa.table(
            {
                "submission_id": np.repeat([s.id for _, s in submissions], sizes),
                "case_key": as_arrow(prepared.validated.table.frame["case_key"]).take(take),
                "event_year": clean["event_year"].to_numpy(dtype=float)[order].astype(np.int64),
                "event_month": pa.array(
                    np.nan_to_num(months).astype(np.int64) if months is not None else None,
                    mask=np.isnan(months) if months is not None else None,
                    type=pa.int64(),
                )
                if months is not None
                else pa.nulls(len(order), pa.int64()),
                "sequence": np.concatenate([np.arange(1, n + 1) for n in sizes]),
                "outcome": clean[outcome.name].to_numpy(dtype=float)[order],
                "risk_factors": _risk_factor_json(clean, layout).take(take),
            }
        )
        insert_patient_table(self.db.connection(), table)

    def _save_draft(
        self, prepared: _Prepared, *, actor: Actor, ip_address: str | None
    ) -> CommitResult:
        if prepared.layout.is_patient:
            msg = "drafts are for aggregate values entered in the form"
            raise InvalidSubmissionError(msg)
        validated = prepared.validated
        blocking = (
            set(validated.counts) - DRAFT_TOLERATED_RULES - {"history_range", "history_zscore"}
        )
        if blocking:
            errors = [
                p
                for p in validated.problems
                if p.severity is Severity.ERROR and p.rule not in DRAFT_TOLERATED_RULES
            ]
            msg = "the draft has errors that must be fixed before it can be saved"
            raise InvalidSubmissionError(msg, errors)
        self._lock_member(prepared.member)
        plans = self._plan(prepared)
        if not plans:
            msg = "a draft needs a valid period"
            raise InvalidSubmissionError(msg, validated.problems)
        contents = self._period_contents(prepared)
        member, measure = prepared.member, prepared.measure
        now = self.clock()
        refs = []
        for plan in plans:
            payload = contents[plan.period][2]
            draft = self.db.scalar(
                sa.select(Submission).where(
                    Submission.member_id == member.id,
                    Submission.measure_id == measure.id,
                    Submission.period_id == plan.period_id,
                    Submission.status == SubmissionStatus.DRAFT,
                )
            )
            if draft is None:
                top = (
                    self.db.scalar(
                        sa.select(sa.func.max(Submission.version)).where(
                            Submission.member_id == member.id,
                            Submission.measure_id == measure.id,
                            Submission.period_id == plan.period_id,
                        )
                    )
                    or 0
                )
                draft = Submission(
                    member_id=member.id,
                    measure_id=measure.id,
                    period_id=plan.period_id,
                    version=top + 1,
                    status=SubmissionStatus.DRAFT,
                    content_hash=plan.content_hash,
                    submitted_by_id=actor.id if isinstance(actor, User) else None,
                    created_at=now,
                    predecessor_id=plan.current_id,
                )
                self.db.add(draft)
                self.db.flush()
            else:
                # A draft is unsent work, the one thing that is edited in place.
                draft.content_hash = plan.content_hash
                self.db.execute(
                    sa.delete(AggregateValue).where(AggregateValue.submission_id == draft.id)
                )
            self.db.add(_aggregate_value(draft.id, payload))
            record(
                self.db,
                "submission.draft_saved",
                actor=actor,
                object_type="submission",
                object_id=draft.id,
                collaborative_id=member.collaborative_id,
                member_id=member.id,
                ip_address=ip_address,
                details={"measure": measure.code, "period": plan.period},
            )
            refs.append(
                VersionRef(
                    submission_id=draft.id,
                    period=plan.period,
                    version=draft.version,
                    status=SubmissionStatus.DRAFT,
                    predecessor_id=draft.predecessor_id,
                    action=plan.action,
                    rows=1,
                )
            )
        self.db.flush()
        return CommitResult(batch_id=None, versions=tuple(refs), duplicate=False, rows=len(plans))


# --- helpers ------------------------------------------------------------------------------------


def _nan(value: object) -> float:
    return np.nan if value is None else float(value)  # type: ignore[arg-type]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _rows_hash(rows: Sequence[Mapping[str, object]]) -> str:
    return content_hash([dict(row) for row in rows])


def _file_source(table: Table) -> SubmissionSource:
    return SubmissionSource.XLSX if table.kind == "xlsx" else SubmissionSource.CSV


def _without_error_column(table: Table) -> Table:
    """Drop the ``errors`` column of our own error report, after sweeping it like a comment.

    Officers fix the downloaded error report and upload it again; the column is ours, but they
    may have typed in it, so it is screened before it is dropped.
    """
    if "errors" not in table.columns:
        return table
    note = Column("errors", ColumnKind.TEXT, ColumnRole.COMMENT, "Errors", required=False)
    probe = Layout(
        measure_code="errors",
        measure_title="",
        level=DataLevel.AGGREGATE,
        measure_type=MeasureType.PROPORTION,
        columns=(note,),
        allows_month=False,
        deid_profile=DeidProfile.SAFE_HARBOR,
    )
    problems = phi.sweep(table.with_frame(table.frame[["errors"]]), probe)
    if problems:
        msg = "the errors column looks identifying"
        raise PHIRefusedError(msg, problems)
    return table.with_frame(table.frame.drop(columns=["errors"]))


def _aggregate_payload(clean: pd.DataFrame, position: int) -> dict[str, Any]:
    def get(name: str) -> Any:
        return clean[name].iloc[position] if name in clean else None

    payload: dict[str, Any] = {
        "numerator": _number(get("numerator")),
        "denominator": _number(get("denominator")),
        "value": _number(get("value")),
    }
    exclusions = _number(get("exclusions"))
    if exclusions is not None:
        payload["exclusions"] = int(exclusions)
    comment = get("comment")
    if isinstance(comment, str) and comment:
        payload["comment"] = comment
    return payload


def _warnings_by_period(validated: Validated) -> dict[str, list[dict[str, Any]]]:
    """The warnings the member justified, per period label, as reviewers will read them.

    A warning on a row belongs to that row's period; one on the file as a whole to every
    period of the file.
    """
    periods = validated.clean.get("period")
    by_row: dict[int, str] = {}
    if periods is not None:
        for position, label in enumerate(periods):
            if label:
                by_row[int(validated.table.rows[position])] = str(label)
    everywhere = set(by_row.values())
    found: dict[str, list[dict[str, Any]]] = {}
    for problem in validated.problems:
        if problem.severity is not Severity.WARNING:
            continue
        text = {"rule": problem.rule, "message": problem.message, "column": problem.column}
        labels = [by_row[problem.row]] if problem.row in by_row else sorted(everywhere)
        for label in labels:
            found.setdefault(label, []).append(text)
    return found


def _aggregate_value(submission_id: int, payload: Mapping[str, Any]) -> AggregateValue:
    return AggregateValue(
        submission_id=submission_id,
        numerator=payload["numerator"],
        denominator=payload["denominator"],
        value=payload["value"],
        exclusions=payload.get("exclusions"),
        comment=payload.get("comment"),
    )


def _risk_factor_json(clean: pd.DataFrame, layout: Layout) -> pa.ChunkedArray | pa.Array:
    """The ``risk_factors`` JSON of every row, built column-wise in Arrow (no per-row dicts)."""
    pieces: list[Any] = []
    for column in layout.columns:
        if column.role is not ColumnRole.COVARIATE:
            continue
        pieces.append(("{" if not pieces else ",") + json.dumps(column.name) + ":")
        values = clean[column.name]
        if column.kind is ColumnKind.CODE:
            encoded = pa.array([json.dumps(level) for level in column.levels])
            index = pc.index_in(
                pa.array(values.to_numpy(dtype=object), type=pa.string()),
                value_set=pa.array(list(column.levels), type=pa.string()),
            )
            pieces.append(pc.fill_null(pc.take(encoded, index), "null"))
        elif column.kind is ColumnKind.BINARY:
            flags = values.to_numpy(dtype=float) == 1
            pieces.append(pc.if_else(pa.array(flags), "1", "0"))
        else:
            pieces.append(pc.cast(pa.array(values.to_numpy(dtype=float)), pa.string()))
    if not pieces:
        return pa.array(["{}"] * len(clean))
    return pc.binary_join_element_wise(*pieces, "}", "")


def _besides_identifiers(
    problems: Sequence[Problem], identifiers_found: Sequence[Problem]
) -> list[Problem]:
    """The ordinary problems, less those of cells emptied because they looked identifying,
    labelled with the refused file's anonymous name."""
    emptied = {(p.row, p.column) for p in identifiers_found}
    label = identifiers_found[0].file
    return [
        replace(problem, file=label)
        for problem in problems
        if problem.row is None or (problem.row, problem.column) not in emptied
    ]


def _stored_filename(filename: str, digest: str) -> str:
    """What an uploaded file is called from here on: ``upload-<digest>.<ext>``.

    A file name is typed by a person and can identify ("John Smith.csv"), so only the
    extension is kept; the digest prefix tells a member's uploads apart.
    """
    return identifiers.opaque_filename(filename or "upload", digest[:12])


def _xlsx_bytes(header: Sequence[str], rows: Sequence[Sequence[object]]) -> bytes:
    import openpyxl  # noqa: PLC0415
    from openpyxl.cell import WriteOnlyCell  # noqa: PLC0415
    from openpyxl.styles import Font  # noqa: PLC0415

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Data")
    bold = Font(bold=True)

    def cell(value: object, *, strong: bool = False) -> WriteOnlyCell:
        item = WriteOnlyCell(sheet, value=escape_formula("" if value is None else str(value)))
        item.number_format = "@"
        if strong:
            item.font = bold
        return item

    sheet.append([cell(name, strong=True) for name in header])
    for row in rows:
        sheet.append([cell(value, strong=index == len(row) - 1) for index, value in enumerate(row)])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def factory(_context: object, request: Request) -> SubmissionService:
    """The service for a request, on the request's clock and upload limits (pyramid_services)."""
    return SubmissionService(
        request.db,
        limits=Limits.from_settings(request.registry.settings),
        clock=clock_of(request),
    )


__all__ = [
    "CommitResult",
    "ErrorReport",
    "PeriodPlan",
    "PlanAction",
    "PreviewResult",
    "SubmissionError",
    "SubmissionService",
    "VersionRef",
    "factory",
]
