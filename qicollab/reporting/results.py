"""Reading a benchmark run's stored results into plain values for pages, exports and reports.

Two reads, sized for their use: :func:`load_run` reads what every page about a run needs (the
measures, every member's whole-cycle result, the summaries, the fitted models), once per request
or once per report worker per run; :func:`load_member` reads one member's periods, charts,
annotations and submissions. Both use column selects, not ORM objects: a run of 1,000 members x
20 measures is 20,000 result rows, and the member's results page has a 300 ms budget.

Nothing here hides or blinds anything: that is :mod:`qicollab.reporting.privacy`'s job, applied
by the builders in :mod:`qicollab.reporting.sections`.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from cachetools import LRUCache

from qicollab.benchmarking.models import (
    BenchmarkRun,
    MeasureSummary,
    MemberResult,
    ResultScope,
    RiskModelFitRecord,
    RunStatus,
    StoredChart,
    run_submissions,
)
from qicollab.benchmarking.payloads import (
    ControlChartPayload,
    MemberPayload,
    PeriodPayload,
    RaCusumPayload,
    StalePayloadError,
    SummaryPayload,
    VladPayload,
)
from qicollab.benchmarking.settings import RunSettings, SettingsError
from qicollab.cycles.models import Annotation, CycleStatus, LearningCycle, ReportingPeriod
from qicollab.measures.models import Measure
from qicollab.members.models import Collaborative, Member, PeerGroup, peer_group_members
from qicollab.reporting import formatting
from qicollab.reporting.formatting import finite
from qicollab.reporting.privacy import suppressed_members
from qicollab.submissions.models import Submission

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class ResultsNotFoundError(LookupError):
    """No such run (or not a succeeded run of this collaborative, or not published to members)."""


#: A run stored by another payload version: pages answer 409 and say to recompute it.
StaleRunError = StalePayloadError


@dataclass(frozen=True, slots=True)
class MeasureView:
    """A measure as pages show it."""

    id: int
    code: str
    title: str
    description: str
    measure_type: str
    level: str
    direction: str
    unit: str
    multiplier: float
    #: On the data scale, like every stored value (:meth:`show` and :meth:`scaled` display it).
    target: float | None
    minimum_volume: int
    numerator_definition: str
    denominator_definition: str
    exclusion_definition: str
    risk_model: dict[str, Any] | None
    digits: int = 1

    @property
    def higher_is_better(self) -> bool:
        """Improvement direction as a flag."""
        return self.direction == "increase"

    @property
    def risk_adjusted(self) -> bool:
        """Patient-level measures are risk-adjusted; aggregate ones are crude rates."""
        return self.level == "patient"

    @property
    def binary(self) -> bool:
        """Events are a subset of cases (proportions, binary patient outcomes): then
        cases - events is a count too, and is protected like one."""
        if self.measure_type == "proportion":
            return True
        family = (self.risk_model or {}).get("family")
        return self.risk_adjusted and family == "binomial"

    @property
    def axis_label(self) -> str:
        """The value axis label with its unit."""
        return f"{self.code} ({self.unit})" if self.unit else self.code

    def show(self, value: object) -> str:
        """A stored value on the display scale with its unit."""
        return formatting.value(value, self.multiplier, self.digits, self.unit)

    def show_interval(self, low: object, high: object) -> str:
        """An interval on the display scale."""
        return formatting.interval(low, high, self.multiplier, self.digits, self.unit)

    def show_difference(self, value: object) -> str:
        """A signed difference on the display scale."""
        return formatting.signed(value, self.multiplier, self.digits, self.unit)

    def scaled(self, value: object) -> float | None:
        """A stored value on the display scale, for charts."""
        return formatting.scaled(value, self.multiplier)

    def improvement(self, change: float | None) -> float | None:
        """A change signed so that positive is always improvement."""
        if change is None:
            return None
        return change if self.higher_is_better else -change


@dataclass(frozen=True, slots=True)
class MemberView:
    """A member: its name (identifying) and its blinded code (what peers see)."""

    id: int
    code: str
    name: str
    blinded_code: str
    active: bool = True


@dataclass(frozen=True, slots=True)
class PeerGroupView:
    """A coordinator-defined peer group and its members."""

    id: int
    code: str
    name: str
    member_ids: frozenset[int]


@dataclass(frozen=True, slots=True)
class Result:
    """A member's stored result for a measure (whole cycle, or one period)."""

    member_id: int
    measure_id: int
    observed: float | None
    expected: float | None
    denominator: float | None
    value: float | None
    ci95: tuple[float | None, float | None]
    ci998: tuple[float | None, float | None]
    shrunk_value: float | None
    outlier_status: str | None
    decile: int | None
    distance_to_abc: float | None
    #: The typed payload the run stored (whole cycle: MemberPayload; a period: PeriodPayload).
    payload: MemberPayload | PeriodPayload
    period_id: int | None = None

    def oe(self) -> float | None:
        """Observed / expected as the run stored it (for aggregate measures: the value over
        the collaborative's)."""
        return self.payload.oe

    def oe_interval(self) -> tuple[float | None, float | None]:
        """The stored 95% interval of :meth:`oe`."""
        return self.payload.oe_ci.get("95", (None, None))


@dataclass(frozen=True, slots=True)
class Summary:
    """A collaborative (``peer_group_id`` None) or peer-group summary of a measure."""

    measure_id: int
    peer_group_id: int | None
    n_members: int
    observed: float | None
    expected: float | None
    denominator: float | None
    rate: float | None
    abc: float | None
    payload: SummaryPayload

    def quantiles(self) -> dict[str, float]:
        """The run's quantiles keyed p10..p90 (with p25/p50/p75); none when withheld."""
        return self.payload.quantiles()

    @property
    def withheld(self) -> str | None:
        """Why figures about peers are not given (too few contributors), or None."""
        return self.payload.withheld


@dataclass(frozen=True, slots=True)
class FitView:
    """A fitted risk model, for the methods appendix."""

    measure_id: int
    family: str
    n: int
    events: float
    specification: dict[str, Any]
    coefficients: list[Any]
    diagnostics: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunInfo:
    """The run and where its data came from (the cover page and the footers name it)."""

    id: int
    collaborative_id: int
    collaborative_name: str
    min_cell_size: int
    cycle_id: int | None
    cycle_code: str
    cycle_title: str
    first_period: dt.date | None
    last_period: dt.date | None
    lock_date: dt.datetime | None
    finished_at: dt.datetime | None
    snapshot_hash: str | None
    settings: RunSettings
    #: Its cycle's results are released to members (coordinators see a run before that).
    published: bool = False


@dataclass
class RunData:
    """Everything about a run that every page and report of it shares."""

    run: RunInfo
    measures: list[MeasureView]
    members: dict[int, MemberView]
    peer_groups: list[PeerGroupView]
    results: dict[tuple[int, int], Result]
    summaries: dict[tuple[int, int | None], Summary]
    fits: dict[int, FitView]

    #: measure id -> members whose numbers peers may not see (shared with the run's cache).
    suppression_cache: dict[int, frozenset[int]] = field(default_factory=dict, repr=False)
    #: measure id -> its results, in member order (filled on first use; shared likewise).
    by_measure: dict[int, list[Result]] = field(default_factory=dict, repr=False)
    #: Peer charts' points as member readers see their peers (``sections.peer_points``).
    peer_points: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)

    def suppressed(self, measure: MeasureView) -> frozenset[int]:
        """Members whose numbers of this measure peers may not see (small-cell rule),
        decided once per measure by the stats core's suppressor."""
        cached = self.suppression_cache.get(measure.id)
        if cached is None:
            rows = [(r.member_id, r.observed, r.denominator) for r in self.results_for(measure.id)]
            cached = self.suppression_cache[measure.id] = suppressed_members(
                rows, min_cell_size=self.run.min_cell_size, complement=measure.binary
            )
        return cached

    def measure(self, measure_id: int) -> MeasureView:
        """A measure of the run by id."""
        return next(m for m in self.measures if m.id == measure_id)

    def summary(self, measure_id: int, peer_group_id: int | None = None) -> Summary | None:
        """The collaborative summary, or a peer group's."""
        return self.summaries.get((measure_id, peer_group_id))

    def results_for(
        self, measure_id: int, member_ids: frozenset[int] | None = None
    ) -> list[Result]:
        """Every member's whole-cycle result of a measure (optionally within a peer group)."""
        by_measure = self.by_measure
        if not by_measure and self.results:
            for result in self.results.values():
                by_measure.setdefault(result.measure_id, []).append(result)
        everyone = by_measure.get(measure_id, [])
        if member_ids is None:
            return list(everyone)
        return [result for result in everyone if result.member_id in member_ids]

    def peer_group(self, code: str | None) -> PeerGroupView | None:
        """A peer group by code."""
        if not code:
            return None
        return next((group for group in self.peer_groups if group.code == code), None)


@dataclass(frozen=True, slots=True)
class PeriodPoint:
    """One period of a member's result (the period table and the trend)."""

    label: str
    start: dt.date
    granularity: str
    result: Result


@dataclass(frozen=True, slots=True)
class AnnotationView:
    """A dated note on the member's charts."""

    occurred_on: dt.date
    kind: str
    label: str
    body: str
    starts_phase: bool
    measure_id: int | None
    member_id: int | None


@dataclass(frozen=True, slots=True)
class SubmissionUse:
    """Which versions of a member's data the run used, per measure (data appendix)."""

    measure_id: int
    periods: int
    expected_periods: int
    corrected: int
    max_version: int
    first_label: str | None
    last_label: str | None

    @property
    def completeness(self) -> float | None:
        """Share of the collaborative's periods the member submitted."""
        return self.periods / self.expected_periods if self.expected_periods else None


@dataclass
class MemberData:
    """One member's periods, control charts, annotations and submissions in a run."""

    member: MemberView
    periods: dict[int, list[PeriodPoint]]
    #: measure id -> the stored control chart.
    charts: dict[int, ControlChartPayload]
    annotations: list[AnnotationView]
    submissions: dict[int, SubmissionUse]
    #: measure id -> {"racusum": ..., "vlad": ...}: the member's own case-order charts of
    #: patient-level binary measures (only where the de-identification profile keeps case order).
    sequential: dict[int, dict[str, RaCusumPayload | VladPayload]] = field(default_factory=dict)


def _result(row: Any, period_id: int | None = None) -> Result:
    decile = row.decile
    return Result(
        member_id=row.member_id,
        measure_id=row.measure_id,
        observed=finite(row.observed),
        expected=finite(row.expected),
        denominator=finite(row.denominator),
        value=finite(row.value),
        ci95=(finite(row.ci95_low), finite(row.ci95_high)),
        ci998=(finite(row.ci998_low), finite(row.ci998_high)),
        shrunk_value=finite(row.shrunk_value),
        outlier_status=row.outlier_status,
        decile=int(decile) if decile is not None else None,
        distance_to_abc=finite(row.distance_to_abc),
        payload=(PeriodPayload if period_id is not None else MemberPayload).from_json(row.payload),
        period_id=period_id,
    )


_RESULT_COLUMNS = (
    MemberResult.member_id,
    MemberResult.measure_id,
    MemberResult.period_id,
    MemberResult.observed,
    MemberResult.expected,
    MemberResult.denominator,
    MemberResult.value,
    MemberResult.ci95_low,
    MemberResult.ci95_high,
    MemberResult.ci998_low,
    MemberResult.ci998_high,
    MemberResult.shrunk_value,
    MemberResult.outlier_status,
    MemberResult.decile,
    MemberResult.distance_to_abc,
    MemberResult.payload,
)


@dataclass(frozen=True, slots=True)
class RunChoice:
    """A run in the run selector."""

    id: int
    finished_at: dt.datetime | None
    published: bool


def _succeeded(collaborative_id: int, *, published_only: bool) -> sa.Select[Any]:
    """The collaborative's succeeded runs with their cycle's status; with ``published_only``
    only runs of published cycles, the ones members may see (publishing a cycle is how the
    coordinators release its results; a run of an explicit snapshot has no cycle to publish)."""
    query = (
        sa.select(BenchmarkRun, LearningCycle.status)
        .outerjoin(LearningCycle, LearningCycle.id == BenchmarkRun.cycle_id)
        .where(
            BenchmarkRun.collaborative_id == collaborative_id,
            BenchmarkRun.status == RunStatus.SUCCEEDED,
        )
    )
    if published_only:
        query = query.where(LearningCycle.status == CycleStatus.PUBLISHED)
    return query.order_by(BenchmarkRun.id.desc())


def succeeded_runs(
    session: Session, collaborative_id: int, *, published_only: bool, limit: int = 20
) -> list[RunChoice]:
    """The runs the reader may choose from, newest first (the run selector)."""
    return [
        RunChoice(run.id, run.finished_at, status is CycleStatus.PUBLISHED)
        for run, status in session.execute(
            _succeeded(collaborative_id, published_only=published_only).limit(limit)
        )
    ]


def find_run(
    session: Session, collaborative_id: int, run_id: int | None, *, published_only: bool
) -> BenchmarkRun:
    """The asked-for succeeded run of this collaborative, or the newest; raises if none.

    Members pass ``published_only``: a run of a cycle not yet published is then no run at all
    for them (as if it did not exist), however its id was learnt.
    """
    query = _succeeded(collaborative_id, published_only=published_only)
    if run_id is not None:
        query = query.where(BenchmarkRun.id == run_id)
    run = session.scalar(query.limit(1))
    if run is None:
        msg = "no such benchmark run" if run_id is not None else "no benchmark run yet"
        raise ResultsNotFoundError(msg)
    return run


def _settings(run: BenchmarkRun) -> RunSettings:
    """The run's stored settings; settings this release cannot read make the run stale."""
    try:
        return RunSettings.from_json(run.settings)
    except SettingsError as error:
        msg = f"run {run.id}: {error}: recompute this run"
        raise StalePayloadError(msg) from error


def run_is_published(session: Session, run: BenchmarkRun) -> bool:
    """Its cycle's results are released to members."""
    cycle = session.get(LearningCycle, run.cycle_id) if run.cycle_id is not None else None
    return cycle is not None and cycle.status is CycleStatus.PUBLISHED


def _run_info(session: Session, run: BenchmarkRun) -> RunInfo:
    collaborative = session.get(Collaborative, run.collaborative_id)
    assert collaborative is not None
    cycle = session.get(LearningCycle, run.cycle_id) if run.cycle_id is not None else None
    return RunInfo(
        id=run.id,
        collaborative_id=collaborative.id,
        collaborative_name=collaborative.name,
        min_cell_size=collaborative.min_cell_size,
        cycle_id=run.cycle_id,
        cycle_code=cycle.code if cycle else "",
        cycle_title=cycle.title if cycle else "explicit snapshot",
        first_period=cycle.first_period_start if cycle else None,
        last_period=cycle.last_period_end if cycle else None,
        lock_date=(cycle.lock_date or cycle.locked_at) if cycle else None,
        finished_at=run.finished_at,
        snapshot_hash=run.snapshot_hash,
        settings=_settings(run),
        published=run_is_published(session, run),
    )


@dataclass
class _RunCore:
    """What a succeeded run stored: it never changes, so one process reads it once."""

    results: dict[tuple[int, int], Result]
    summaries: dict[tuple[int, int | None], Summary]
    fits: dict[int, FitView]
    #: min_cell_size -> measure id -> suppressed members (see RunData.suppressed).
    suppressed: dict[int, dict[int, frozenset[int]]] = field(default_factory=dict)
    by_measure: dict[int, list[Result]] = field(default_factory=dict)


CACHED_RUNS = 4
#: Recently read runs, keyed by database, run and its finishing stamp; waitress serves from
#: several threads and cachetools' caches are not thread-safe, hence the lock.
_CORES: LRUCache[tuple[str, int, str], _RunCore] = LRUCache(maxsize=CACHED_RUNS)
_CORES_LOCK = threading.Lock()


def _read_core(session: Session, run_id: int) -> _RunCore:
    results: dict[tuple[int, int], Result] = {}
    for row in session.execute(
        sa.select(*_RESULT_COLUMNS).where(
            MemberResult.run_id == run_id, MemberResult.period_id.is_(None)
        )
    ):
        results[(row.member_id, row.measure_id)] = _result(row)

    summaries: dict[tuple[int, int | None], Summary] = {}
    for row in session.execute(sa.select(MeasureSummary).where(MeasureSummary.run_id == run_id)):
        summary = row[0]
        key_group = summary.peer_group_id if summary.scope is ResultScope.PEER_GROUP else None
        summaries[(summary.measure_id, key_group)] = Summary(
            measure_id=summary.measure_id,
            peer_group_id=key_group,
            n_members=summary.n_members,
            observed=finite(summary.observed),
            expected=finite(summary.expected),
            denominator=finite(summary.denominator),
            rate=finite(summary.rate),
            abc=finite(summary.abc),
            payload=SummaryPayload.from_json(summary.payload),
        )

    fits = {
        fit.measure_id: FitView(
            fit.measure_id,
            fit.family,
            fit.n,
            fit.events,
            dict(fit.specification or {}),
            list(fit.coefficients or []),
            dict(fit.diagnostics or {}),
        )
        for fit in session.scalars(
            sa.select(RiskModelFitRecord).where(RiskModelFitRecord.run_id == run_id)
        )
    }
    return _RunCore(results, summaries, fits)


def _core(session: Session, run: BenchmarkRun) -> _RunCore:
    """The run's stored results, from this process's cache when it read them before.

    A succeeded run's rows are written once in one transaction and never updated, so caching
    them is safe; the key holds the database URL and the run's finishing time, so another
    database (or a run id reused after a rebuild) never hits a stale entry.
    """
    bind = session.get_bind()
    key = (str(bind.url), run.id, str(run.finished_at))
    with _CORES_LOCK:
        core = _CORES.get(key)
    if core is None:
        core = _read_core(session, run.id)
        with _CORES_LOCK:
            _CORES[key] = core
    return core


def load_run(session: Session, run_id: int) -> RunData:
    """A run's measures, members and peer groups (read fresh: names may change) with its
    whole-cycle results, summaries and fitted models (read once per process)."""
    run = session.get(BenchmarkRun, run_id)
    if run is None or run.status is not RunStatus.SUCCEEDED:
        msg = f"no succeeded benchmark run {run_id}"
        raise ResultsNotFoundError(msg)
    info = _run_info(session, run)
    core = _core(session, run)
    results, summaries, fits = core.results, core.summaries, core.fits

    measure_ids = {m for _, m in results} | {m for m, _ in summaries}
    measures = []
    for measure in session.scalars(
        sa.select(Measure).where(Measure.id.in_(measure_ids)).order_by(Measure.id)
    ):
        summary = summaries.get((measure.id, None))
        measures.append(
            MeasureView(
                id=measure.id,
                code=measure.code,
                title=measure.title,
                description=measure.description or "",
                measure_type=measure.measure_type.value,
                level=measure.level.value,
                direction=measure.direction.value,
                unit=measure.unit or "",
                multiplier=measure.multiplier or 1.0,
                target=measure.target,
                minimum_volume=measure.minimum_volume,
                numerator_definition=measure.numerator_definition or "",
                denominator_definition=measure.denominator_definition or "",
                exclusion_definition=measure.exclusion_definition or "",
                risk_model=measure.risk_model,
                digits=formatting.measure_digits(
                    measure.multiplier or 1.0, summary.rate if summary else None
                ),
            )
        )

    members = {
        row.id: MemberView(row.id, row.code, row.name, row.blinded_code, row.active)
        for row in session.execute(
            sa.select(
                Member.id, Member.code, Member.name, Member.blinded_code, Member.active
            ).where(Member.collaborative_id == run.collaborative_id)
        )
    }
    group_members: dict[int, set[int]] = defaultdict(set)
    for group_id, member_id in session.execute(
        sa.select(peer_group_members.c.peer_group_id, peer_group_members.c.member_id)
        .join(PeerGroup, PeerGroup.id == peer_group_members.c.peer_group_id)
        .where(PeerGroup.collaborative_id == run.collaborative_id)
    ):
        group_members[group_id].add(member_id)
    groups = [
        PeerGroupView(row.id, row.code, row.name, frozenset(group_members.get(row.id, ())))
        for row in session.execute(
            sa.select(PeerGroup.id, PeerGroup.code, PeerGroup.name)
            .where(PeerGroup.collaborative_id == run.collaborative_id)
            .order_by(PeerGroup.code)
        )
    ]

    return RunData(
        info,
        measures,
        members,
        groups,
        results,
        summaries,
        fits,
        suppression_cache=core.suppressed.setdefault(info.min_cell_size, {}),
        by_measure=core.by_measure,
    )


def load_member(
    session: Session,
    run: RunData,
    member_id: int,
    *,
    annotations: list[AnnotationView] | None = None,
) -> MemberData:
    """Read one member's period results, stored charts, annotations (unless given: already
    read) and submission use."""
    member = run.members.get(member_id)
    if member is None:
        msg = f"member {member_id} is not in this collaborative"
        raise ResultsNotFoundError(msg)
    run_id = run.run.id

    periods: dict[int, list[PeriodPoint]] = defaultdict(list)
    for row in session.execute(
        sa.select(
            *_RESULT_COLUMNS,
            ReportingPeriod.label,
            ReportingPeriod.start_date,
            ReportingPeriod.granularity,
        )
        .join(ReportingPeriod, ReportingPeriod.id == MemberResult.period_id)
        .where(MemberResult.run_id == run_id, MemberResult.member_id == member_id)
        .order_by(MemberResult.measure_id, ReportingPeriod.start_date)
    ):
        periods[row.measure_id].append(
            PeriodPoint(
                row.label, row.start_date, row.granularity.value, _result(row, row.period_id)
            )
        )

    charts: dict[int, ControlChartPayload] = {}
    sequential: dict[int, dict[str, RaCusumPayload | VladPayload]] = defaultdict(dict)
    for measure_id, kind, payload in session.execute(
        sa.select(StoredChart.measure_id, StoredChart.kind, StoredChart.payload).where(
            StoredChart.run_id == run_id,
            StoredChart.member_id == member_id,
            StoredChart.kind.in_(("control", "racusum", "vlad")),
        )
    ):
        if kind == "control":
            charts[measure_id] = ControlChartPayload.from_json(payload)
        elif kind == "racusum":
            sequential[measure_id]["racusum"] = RaCusumPayload.from_json(payload)
        else:
            sequential[measure_id]["vlad"] = VladPayload.from_json(payload)

    if annotations is None:
        annotations = load_annotations(session, run, member_id)
    return MemberData(
        member,
        dict(periods),
        charts,
        annotations,
        _submission_use(session, run_id, member_id),
        dict(sequential),
    )


def load_annotations(session: Session, run: RunData, member_id: int) -> list[AnnotationView]:
    """The member's dated notes and the collaborative-wide ones, oldest first (read fresh:
    coordinators and officers add them after a run)."""
    return [
        AnnotationView(
            note.occurred_on,
            note.kind.value,
            note.label,
            note.body or "",
            note.starts_phase,
            note.measure_id,
            note.member_id,
        )
        for note in session.scalars(
            sa.select(Annotation)
            .where(
                Annotation.collaborative_id == run.run.collaborative_id,
                sa.or_(Annotation.member_id == member_id, Annotation.member_id.is_(None)),
            )
            .order_by(Annotation.occurred_on, Annotation.id)
        )
    ]


def _submission_use(session: Session, run_id: int, member_id: int) -> dict[int, SubmissionUse]:
    """Versions used per measure, against the most periods any member supplied."""
    expected = dict(
        session.execute(
            sa.select(
                Submission.measure_id,
                sa.func.count(sa.distinct(Submission.period_id)),
            )
            .join(run_submissions, run_submissions.c.submission_id == Submission.id)
            .where(run_submissions.c.run_id == run_id)
            .group_by(Submission.measure_id)
        ).all()
    )
    rows = session.execute(
        sa.select(
            Submission.measure_id,
            sa.func.count(sa.distinct(Submission.period_id)).label("periods"),
            sa.func.sum(sa.case((Submission.version > 1, 1), else_=0)).label("corrected"),
            sa.func.max(Submission.version).label("max_version"),
            sa.func.min(ReportingPeriod.label).label("first_label"),
            sa.func.max(ReportingPeriod.label).label("last_label"),
        )
        .join(run_submissions, run_submissions.c.submission_id == Submission.id)
        .join(ReportingPeriod, ReportingPeriod.id == Submission.period_id)
        .where(run_submissions.c.run_id == run_id, Submission.member_id == member_id)
        .group_by(Submission.measure_id)
    )
    uses = {
        row.measure_id: SubmissionUse(
            row.measure_id,
            int(row.periods),
            int(expected.get(row.measure_id, 0)),
            int(row.corrected or 0),
            int(row.max_version or 0),
            row.first_label,
            row.last_label,
        )
        for row in rows
    }
    for measure_id, count in expected.items():
        uses.setdefault(measure_id, SubmissionUse(measure_id, 0, int(count), 0, 0, None, None))
    return uses
