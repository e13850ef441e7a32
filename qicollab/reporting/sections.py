"""What a member's results say, measure by measure, for one audience: the one builder behind the
member results page and the member benchmark report, so both show the same numbers and charts.

Blinding and suppression happen here, once: peers are labelled through the audience (names for
coordinators, blinded codes otherwise), and a peer whose counts are small is left out of every
chart and shown as "suppressed" in every table, for member audiences.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from qicollab.benchmarking.payloads import BenchmarkStanding, ChangePayload, MemberPayload
from qicollab.reporting import formatting
from qicollab.reporting.charts.bars import DistributionPoint, distribution_chart
from qicollab.reporting.charts.caterpillar import CaterpillarPoint, caterpillar_chart
from qicollab.reporting.charts.common import Chart
from qicollab.reporting.charts.control import render_stored, stored_info
from qicollab.reporting.charts.cusum import sequential_chart
from qicollab.reporting.charts.icons import Icon, assurance_icon, status_badge, variation_icon
from qicollab.reporting.charts.peer_funnel import FunnelPoint, funnel_of_points, funnel_point
from qicollab.reporting.privacy import Audience, Reader
from qicollab.reporting.results import (
    AnnotationView,
    MeasureView,
    MemberData,
    PeerGroupView,
    PeriodPoint,
    Result,
    RunData,
)
from qicollab.stats import calibration as stats_calibration
from qicollab.stats import change as stats_change
from qicollab.stats.funnel import DEFAULT_METHOD

#: Best-practice tables list at most this many peers (the count of all is given).
BEST_PRACTICE_ROWS = 5
#: Chart text alternatives list at most this many rows on a page; the CSV export has all.
ALT_ROWS = 60
#: Height of the control chart in pixels of a 720-wide drawing: short enough that a measure's
#: section (figures, funnel and caterpillar, control chart, period table) fits one A4 page.
CONTROL_HEIGHT = 240.0


@dataclass(frozen=True, slots=True)
class PeerStanding:
    """A peer (or the member) in a comparison table, already blinded and suppressed."""

    label: str
    own: bool
    suppressed: bool
    value: str
    interval: str
    status: formatting.StatusWords
    decile: int | None
    gap: str
    reaches_benchmark: bool


@dataclass(frozen=True, slots=True)
class Comparison:
    """The member against a set of peers (the collaborative or a peer group)."""

    scope_label: str
    n_members: int
    n_shown: int
    hidden: int
    rate: str
    median: str
    quartiles: str
    benchmark: str
    rank: int | None
    decile: int | None
    #: Why figures about peers are not given (fewer contributors than the minimum), or None.
    withheld: str | None = None


@dataclass(frozen=True, slots=True)
class PeriodGrid:
    """The member's values by period, laid out compactly: one row per year."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[str, ...]], ...]
    note: str


@dataclass
class MeasureSection:
    """Everything shown about one measure for one member and audience."""

    measure: MeasureView
    result: Result | None
    value: str
    interval95: str
    interval998: str
    observed: str
    denominator: str
    expected: str
    oe: str
    status: formatting.StatusWords
    status_badge: Any
    decile: int | None
    benchmark: str
    gap: str
    gap_relative: float | None
    #: The run's judgement: at or better than the benchmark (None: not judged or withheld).
    reaches: bool | None
    #: The shrunk estimate with its interval, as stored (None without shrinkage).
    shrunk: str | None
    target: str
    comparison: Comparison
    variation: Icon
    assurance: Icon
    chart_name: str
    signals: list[str]
    annotations: list[AnnotationView]
    grid: PeriodGrid | None
    best: list[PeerStanding] = field(default_factory=list)
    best_count: int = 0
    funnel: Chart | None = None
    caterpillar: Chart | None = None
    distribution: Chart | None = None
    control: Chart | None = None
    #: RA-CUSUM and VLAD of the member's own cases (patient-level binary measures).
    sequential: Chart | None = None
    #: The run's verdict on the change from the first year to the last (beyond chance or "no
    #: clear change") and its evidence (the move, the years, the test and its p-value).
    improvement: str = "Not assessed"
    improvement_detail: str = ""

    @property
    def signals_text(self) -> str:
        """Where the control chart signalled, short enough for one line."""
        if not self.signals:
            return "no special-cause signals"
        if len(self.signals) <= 4:
            return "signals in " + ", ".join(self.signals)
        return (
            f"signals in {len(self.signals)} periods between {self.signals[0]} "
            f"and {self.signals[-1]}"
        )

    @property
    def charts(self) -> list[Chart]:
        """The charts present, in page order."""
        charts = (self.funnel, self.caterpillar, self.control, self.sequential)
        return [c for c in charts if c is not None]

    @property
    def flagged(self) -> str | None:
        """ "concern", "improvement" or None: from the outlier status or the SPC icon."""
        if self.status.key == "worse" or self.variation.key.startswith("concern"):
            return "concern"
        if self.status.key == "better" or self.variation.key.startswith("improvement"):
            return "improvement"
        return None


def visible(
    run: RunData, measure: MeasureView, audience: Audience, results: Iterable[Result]
) -> tuple[list[Result], int]:
    """Results an audience may see individually, and how many peers were suppressed."""
    suppressed = run.suppressed(measure)
    shown: list[Result] = []
    hidden = 0
    for result in results:
        if result.value is None:
            continue
        if audience.hides(result.member_id, suppressed):
            hidden += 1
            continue
        shown.append(result)
    return shown, hidden


def benchmark_standing(
    run: RunData, measure_id: int, result: Result | None, group: PeerGroupView | None = None
) -> BenchmarkStanding:
    """The member's standing against the benchmark shown beside it, as the run judged it:
    the peer group's own benchmark when the group has a summary, else the collaborative's."""
    if result is None or not isinstance(result.payload, MemberPayload):
        return BenchmarkStanding()
    if group is not None and run.summary(measure_id, group.id) is not None:
        entry = result.payload.peers.get(group.code)
        return entry.benchmark if entry is not None else BenchmarkStanding()
    return result.payload.benchmark


def gap_words(measure: MeasureView, standing: BenchmarkStanding) -> str:
    """ "reaches the benchmark" or "x short", from the stored standing."""
    if standing.reaches is None:
        return formatting.MISSING
    if standing.reaches:
        return "reaches the benchmark"
    shown = formatting.scaled(standing.gap, measure.multiplier) or 0.0
    unit = " pts" if measure.unit == "%" else (f" {measure.unit}" if measure.unit else "")
    return f"{shown:,.{measure.digits}f}{unit} short"


def shrunk_text(measure: MeasureView, result: Result | None) -> str | None:
    """The stored shrunk (empirical-Bayes) estimate with its 95% interval: O/E for
    risk-adjusted measures, else the value; None without shrinkage."""
    if result is None or not isinstance(result.payload, MemberPayload):
        return None
    payload = result.payload
    if measure.risk_adjusted and payload.shrunk_oe is not None:
        text = f"O/E {formatting.ratio(payload.shrunk_oe)}"
        if payload.shrunk_oe_ci95 is not None:
            low, high = payload.shrunk_oe_ci95
            text += f" (95% {formatting.ratio(low)}–{formatting.ratio(high)})"
        return text
    if result.shrunk_value is None or payload.shrunk_ci95 is None:
        return None
    return (
        f"{measure.show(result.shrunk_value)} (95% {measure.show_interval(*payload.shrunk_ci95)})"
    )


def comparison(
    run: RunData,
    measure: MeasureView,
    audience: Audience,
    member_id: int | None,
    group: PeerGroupView | None,
) -> Comparison:
    """The member's standing within the collaborative or the chosen peer group, as the run
    stored it (or why figures about peers are withheld)."""
    member_ids = group.member_ids if group is not None else None
    results = [r for r in run.results_for(measure.id, member_ids) if r.value is not None]
    shown, hidden = visible(run, measure, audience, results)
    summary = run.summary(measure.id, group.id if group else None)
    quantiles = summary.quantiles() if summary is not None else {}
    standing = _standing(run, measure.id, member_id, group)
    return Comparison(
        scope_label=group.name if group is not None else "All members",
        n_members=summary.n_members if summary is not None else len(results),
        n_shown=len(shown),
        hidden=hidden,
        rate=measure.show(summary.rate if summary else None),
        median=measure.show(quantiles.get("p50")),
        quartiles=measure.show_interval(quantiles.get("p25"), quantiles.get("p75")),
        benchmark=measure.show(summary.abc if summary else None),
        rank=standing[0],
        decile=standing[1],
        withheld=summary.withheld if summary is not None else None,
    )


def _standing(
    run: RunData, measure_id: int, member_id: int | None, group: PeerGroupView | None
) -> tuple[int | None, int | None]:
    """(rank, decile) the run stored for the member, in the collaborative or a peer group."""
    result = run.results.get((member_id, measure_id)) if member_id is not None else None
    if result is None or not isinstance(result.payload, MemberPayload):
        return None, None
    if group is None:
        return result.payload.rank, result.decile
    entry = result.payload.peers.get(group.code)
    return (entry.rank, entry.decile) if entry is not None else (None, None)


def _label(run: RunData, audience: Audience, member_id: int) -> str:
    member = run.members.get(member_id)
    if member is None:
        return "?"
    return audience.label(member)


def _chart_label(run: RunData, audience: Audience, member_id: int) -> str:
    member = run.members.get(member_id)
    if member is None:
        return "?"
    return audience.short_label(member, member.code)


@dataclass(frozen=True, slots=True)
class _PeerPoints:
    """A peer chart's points as every member reader sees the other members, kept per run:
    blinded labels, small-cell peers left out, in member order."""

    points: tuple[Any, ...]
    #: Each point's place among the measure's valued results in the scope (ascending).
    places: tuple[int, ...]
    #: Member id -> its place among the valued results (whether shown or not).
    order: dict[int, int]
    #: Valued results the small-cell rule hides from peers.
    hidden: int


def peer_points(
    run: RunData,
    measure: MeasureView,
    audience: Audience,
    member_id: int | None,
    group: PeerGroupView | None,
    *,
    kind: str,
    build: Callable[[Result, str, bool], Any],
) -> tuple[list[Any], int]:
    """A peer chart's points for this audience (``build`` makes one from a visible result,
    its label and whether it is the member's own, or None to leave it out), and how many peers
    the small-cell rule hid.

    A member reader sees every other member exactly as the blinded summary's reader does
    (:meth:`Audience.as_peers_see`), so those points are built once per run, chart kind and
    scope, and each member's chart only puts its own point in: relabelled through its own
    audience and marked, or added where the small-cell rule hides it from peers but not from
    itself. Other readers' points are built directly."""
    own_id = audience.member_id if audience.reader is Reader.MEMBER else None
    if own_id is None or own_id != member_id:
        member_ids = group.member_ids if group is not None else None
        shown, hidden = visible(run, measure, audience, run.results_for(measure.id, member_ids))
        built = (
            build(r, _chart_label(run, audience, r.member_id), r.member_id == member_id)
            for r in shown
        )
        return [p for p in built if p is not None], hidden
    key = (kind, measure.id, group.id if group is not None else None, audience.min_cell_size)
    peers = run.peer_points.get(key)
    if peers is None:
        peers = run.peer_points[key] = _blinded_points(run, measure, audience, group, build)
    points = list(peers.points)
    hidden = peers.hidden
    place = peers.order.get(own_id)
    if place is None:  # no valued result of its own in this scope
        return points, hidden
    own = build(run.results[(own_id, measure.id)], _chart_label(run, audience, own_id), True)
    at = bisect.bisect_left(peers.places, place)
    if at < len(peers.places) and peers.places[at] == place:
        points[at] = own
    elif own_id in run.suppressed(measure):  # hidden from peers, never from itself
        hidden -= 1
        if own is not None:
            points.insert(at, own)
    return points, hidden


def _blinded_points(
    run: RunData,
    measure: MeasureView,
    audience: Audience,
    group: PeerGroupView | None,
    build: Callable[[Result, str, bool], Any],
) -> _PeerPoints:
    peers_see = audience.as_peers_see()
    member_ids = group.member_ids if group is not None else None
    valued = [r for r in run.results_for(measure.id, member_ids) if r.value is not None]
    order = {r.member_id: place for place, r in enumerate(valued)}
    shown, hidden = visible(run, measure, peers_see, valued)
    points: list[Any] = []
    places: list[int] = []
    for result in shown:
        point = build(result, _chart_label(run, peers_see, result.member_id), False)
        if point is not None:
            points.append(point)
            places.append(order[result.member_id])
    return _PeerPoints(tuple(points), tuple(places), order, hidden)


def _caterpillar_point(result: Result, label: str, own: bool) -> CaterpillarPoint | None:
    oe = result.oe()
    if oe is None:
        return None
    low, high = result.oe_interval()
    return CaterpillarPoint(label, oe, low, high, own=own)


def caterpillar_for(
    run: RunData,
    measure: MeasureView,
    audience: Audience,
    member_id: int | None,
    group: PeerGroupView | None = None,
) -> Chart | None:
    """O/E (or ratio to the collaborative value) of every visible member with its 95% interval,
    as the run stored them; none when figures about peers are withheld."""
    summary = run.summary(measure.id)
    if summary is None or summary.withheld:
        return None
    points, hidden = peer_points(
        run, measure, audience, member_id, group, kind="caterpillar", build=_caterpillar_point
    )
    if not points:
        return None
    scope = f" ({group.name})" if group is not None else ""
    return caterpillar_chart(
        points,
        title=f"{measure.code}: observed / expected by member{scope}",
        y_label="Observed / expected" if measure.risk_adjusted else "Ratio to collaborative",
        reference_label="collaborative = 1",
        higher_is_worse=not measure.higher_is_better,
        hidden=hidden,
        max_rows=ALT_ROWS,
    )


def distribution_for(
    run: RunData,
    measure: MeasureView,
    audience: Audience,
    member_id: int | None,
    group: PeerGroupView | None = None,
) -> Chart | None:
    """Every visible member's value over the quartile box, with benchmark and target; none
    when figures about peers are withheld."""
    summary = run.summary(measure.id, group.id if group else None)
    if summary is None or summary.withheld:
        return None
    member_ids = group.member_ids if group is not None else None
    shown, hidden = visible(run, measure, audience, run.results_for(measure.id, member_ids))
    points = [
        DistributionPoint(
            _chart_label(run, audience, r.member_id),
            measure.scaled(r.value) or 0.0,
            own=member_id is not None and r.member_id == member_id,
        )
        for r in shown
        if r.value is not None
    ]
    if not points:
        return None
    quantiles = {key: value * measure.multiplier for key, value in summary.quantiles().items()}
    scope = f" ({group.name})" if group is not None else ""
    return _trim_rows(
        distribution_chart(
            points,
            title=f"{measure.code}: distribution across members{scope}",
            x_label=measure.axis_label,
            benchmark=measure.scaled(summary.abc),
            target=measure.scaled(measure.target),
            quantiles=quantiles or None,
            higher_is_better=measure.higher_is_better,
            hidden=hidden,
            digits=measure.digits,
        )
    )


def funnel_for(
    run: RunData,
    measure: MeasureView,
    audience: Audience,
    member_id: int | None,
    group: PeerGroupView | None = None,
) -> Chart | None:
    """The funnel plot of the visible members against the run's limits."""
    summary = run.summary(measure.id)
    if summary is None or summary.payload.funnel is None:
        return None
    stored = summary.payload.funnel

    def point(result: Result, label: str, own: bool) -> FunnelPoint | None:
        return funnel_point(measure, stored, label, result, own)

    points, hidden = peer_points(
        run, measure, audience, member_id, group, kind="funnel", build=point
    )
    return funnel_of_points(measure, summary, points, hidden=hidden, max_rows=ALT_ROWS)


def _trim_rows(chart: Chart) -> Chart:
    """Keep the page light: at most ALT_ROWS rows of text alternative (the export has all)."""
    if len(chart.rows) <= ALT_ROWS:
        return chart
    return Chart(chart.svg, chart.title, chart.description, chart.columns, chart.rows[:ALT_ROWS])


def period_grid(
    measure: MeasureView, points: Sequence[PeriodPoint], signals: set[str]
) -> PeriodGrid | None:
    """Values by month (or quarter) in one row per year; years in one row for yearly data."""
    if not points:
        return None
    granularity = points[0].granularity
    if granularity == "year":
        columns = tuple(p.label for p in points)
        values = tuple(_cell(measure, p, signals) for p in points)
        return PeriodGrid(columns, (("", values),), "")
    size = 12 if granularity == "month" else 4
    columns = (
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
        if size == 12
        else ("Q1", "Q2", "Q3", "Q4")
    )
    years: dict[int, list[str]] = {}
    for point in points:
        slot = (point.start.month - 1) // (12 // size)
        row = years.setdefault(point.start.year, [""] * size)
        row[slot] = _cell(measure, point, signals)
    note = "* special-cause signal on the control chart" if signals else ""
    return PeriodGrid(columns, tuple((str(y), tuple(v)) for y, v in sorted(years.items())), note)


def _cell(measure: MeasureView, point: PeriodPoint, signals: set[str]) -> str:
    shown = formatting.scaled(point.result.value, measure.multiplier)
    if shown is None:
        return formatting.MISSING
    mark = "*" if point.label in signals else ""
    return f"{shown:,.{measure.digits}f}{mark}"


def _annotations_for(member: MemberData, measure_id: int) -> list[AnnotationView]:
    return [a for a in member.annotations if a.measure_id in (None, measure_id)]


def p_text(p_value: float | None) -> str:
    """A p-value as printed beside a test."""
    if p_value is None:
        return ""
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def change_text(measure: MeasureView, change: ChangePayload | None) -> tuple[str, str]:
    """The run's verdict on the member's change over the cycle, and its evidence: the move
    from the first to the last year and the test that judged it ("improved" or "worsened"
    only beyond chance, else "no clear change")."""
    if change is None:
        return "Not assessed", "no change test in this run"
    if change.verdict == "not assessed":
        return "Not assessed", change.reason or "the data cannot support the test"
    span = f"{change.first_label} to {change.last_label}"
    moved = (
        measure.show_difference(change.difference)
        if change.difference is not None
        else formatting.MISSING
    )
    beyond = " (beyond chance)" if change.verdict in {"improved", "worsened"} else ""
    evidence = "; ".join(part for part in (change.test, p_text(change.p_value)) if part)
    return (
        change.verdict.capitalize() + beyond,
        f"{moved}, {span} ({evidence})",
    )


def member_sections(
    run: RunData,
    member: MemberData,
    audience: Audience,
    *,
    group: PeerGroupView | None = None,
    measure_ids: set[int] | None = None,
    charts: bool = True,
) -> list[MeasureSection]:
    """One section per measure of the run (or the chosen ones), for this member and audience."""
    sections = []
    member_id = member.member.id
    for measure in run.measures:
        if measure_ids is not None and measure.id not in measure_ids:
            continue
        result = run.results.get((member_id, measure.id))
        summary = run.summary(measure.id, group.id if group else None) or run.summary(measure.id)
        control_payload = member.charts.get(measure.id)
        chart_info = stored_info(control_payload)
        notes = _annotations_for(member, measure.id)
        words = formatting.status(result.outlier_status if result else None)
        abc = summary.abc if summary else None
        value = result.value if result else None
        standing = benchmark_standing(run, measure.id, result, group)
        section = MeasureSection(
            measure=measure,
            result=result,
            value=measure.show(value),
            interval95=measure.show_interval(*result.ci95) if result else formatting.MISSING,
            interval998=measure.show_interval(*result.ci998) if result else formatting.MISSING,
            observed=formatting.count(result.observed) if result else formatting.MISSING,
            denominator=formatting.number(result.denominator) if result else formatting.MISSING,
            expected=formatting.number(result.expected, 1) if result else formatting.MISSING,
            oe=formatting.ratio(result.oe()) if result else formatting.MISSING,
            status=words,
            status_badge=status_badge(words.key, words.plain, words.mark),
            decile=result.decile if result and group is None else None,
            benchmark=measure.show(abc),
            gap=gap_words(measure, standing),
            gap_relative=standing.relative_gap,
            reaches=standing.reaches,
            shrunk=shrunk_text(measure, result),
            target=measure.show(measure.target),
            comparison=comparison(run, measure, audience, member_id, group),
            variation=variation_icon(chart_info.variation, measure.direction),
            assurance=assurance_icon(chart_info.assurance),
            chart_name=chart_info.name,
            signals=chart_info.signal_labels,
            annotations=notes,
            grid=period_grid(
                measure, member.periods.get(measure.id, []), set(chart_info.signal_labels)
            ),
        )
        if group is not None:
            section.decile = section.comparison.decile
        section.best, section.best_count = best_practice(run, measure, audience, member_id, group)
        if result is not None and isinstance(result.payload, MemberPayload):
            section.improvement, section.improvement_detail = change_text(
                measure, result.payload.change
            )
        if charts:
            section.funnel = funnel_for(run, measure, audience, member_id, group)
            section.caterpillar = caterpillar_for(run, measure, audience, member_id, group)
            if control_payload is not None:
                section.control = render_stored(
                    control_payload,
                    title=f"{measure.code}: control chart",
                    annotations=notes,
                    height=CONTROL_HEIGHT,
                )
            cases = member.sequential.get(measure.id, {})
            if "racusum" in cases:
                section.sequential = sequential_chart(
                    cases["racusum"],
                    cases.get("vlad"),
                    title=f"{measure.code}: risk-adjusted CUSUM and VLAD of your cases",
                    annotations=notes,
                )
        sections.append(section)
    return sections


def best_practice(
    run: RunData,
    measure: MeasureView,
    audience: Audience,
    member_id: int | None,
    group: PeerGroupView | None = None,
) -> tuple[list[PeerStanding], int]:
    """Peers the run judged at or better than the benchmark (best first), and how many there
    are in all."""
    member_ids = group.member_ids if group is not None else None
    shown, _hidden = visible(run, measure, audience, run.results_for(measure.id, member_ids))
    standings = {r.member_id: benchmark_standing(run, measure.id, r, group) for r in shown}
    at_benchmark = [r for r in shown if r.member_id != member_id and standings[r.member_id].reaches]
    at_benchmark.sort(
        key=lambda r: -(r.value or 0.0) if measure.higher_is_better else (r.value or 0.0)
    )
    rows = [
        PeerStanding(
            label=_label(run, audience, r.member_id),
            own=False,
            suppressed=False,
            value=measure.show(r.value),
            interval=measure.show_interval(*r.ci95),
            status=formatting.status(r.outlier_status),
            decile=r.decile,
            gap=gap_words(measure, standings[r.member_id]),
            reaches_benchmark=True,
        )
        for r in at_benchmark[:BEST_PRACTICE_ROWS]
    ]
    return rows, len(at_benchmark)


@dataclass(frozen=True, slots=True)
class Highlight:
    """A line of the executive summary."""

    code: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class ExecutiveSummary:
    """What a board member should read first."""

    concerns: list[Highlight]
    improvements: list[Highlight]
    gaps: list[Highlight]
    at_benchmark: int
    measures: int


def executive_summary(sections: Sequence[MeasureSection], *, largest: int = 3) -> ExecutiveSummary:
    """Measures flagged as concern or improvement, and the largest relative gaps to the ABC."""
    concerns, improvements = [], []
    for section in sections:
        reason = []
        if section.status.key in {"worse", "better"}:
            reason.append(f"{section.status.plain.lower()} ({section.status.nsqip.lower()})")
        if section.variation.key.startswith(("concern", "improvement")):
            reason.append(section.variation.words.lower())
        line = Highlight(
            section.measure.code,
            section.measure.title,
            f"{section.value}; " + "; ".join(reason) if reason else section.value,
        )
        if section.flagged == "concern":
            concerns.append(line)
        elif section.flagged == "improvement":
            improvements.append(line)
    ranked = sorted(
        (s for s in sections if s.gap_relative is not None and s.gap_relative > 0),
        key=lambda s: -(s.gap_relative or 0.0),
    )
    gaps = [
        Highlight(
            s.measure.code,
            s.measure.title,
            f"{s.value} against a benchmark of {s.benchmark}: {s.gap}",
        )
        for s in ranked[:largest]
    ]
    at_benchmark = sum(1 for s in sections if s.reaches)
    return ExecutiveSummary(concerns, improvements, gaps, at_benchmark, len(sections))


@dataclass(frozen=True, slots=True)
class CoefficientRow:
    """A risk-model coefficient as printed in the methods appendix."""

    term: str
    estimate: str
    odds_ratio: str
    interval: str


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """A fitted risk model for the methods appendix."""

    measure: MeasureView
    family: str
    n: str
    events: str
    c_statistic: str
    calibration: str
    brier: str
    coefficients: list[CoefficientRow]
    calibration_rows: list[tuple[str, str, str]]


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if isinstance(mapping, dict) and key in mapping and mapping[key] is not None:
            return mapping[key]
    return None


def model_summaries(run: RunData) -> list[ModelSummary]:
    """Coefficients, c-statistic and calibration of each fitted model of the run."""
    out = []
    for measure in run.measures:
        fit = run.fits.get(measure.id)
        if fit is None:
            continue
        rows = []
        for coefficient in fit.coefficients:
            if not isinstance(coefficient, dict):
                continue
            estimate = _get(coefficient, "estimate", "coef", "beta")
            low, high = (
                _get(coefficient, "ci_low", "conf_low", "lower"),
                _get(coefficient, "ci_high", "conf_high", "upper"),
            )
            ratio = _get(coefficient, "odds_ratio", "exp_estimate", "ratio")
            ratio_low = _get(coefficient, "or_ci_low", "odds_ratio_low")
            ratio_high = _get(coefficient, "or_ci_high", "odds_ratio_high")
            if ratio is None and formatting.is_number(estimate) and fit.family != "gaussian":
                ratio = math.exp(float(estimate))
            if ratio_low is None and formatting.is_number(low) and fit.family != "gaussian":
                ratio_low, ratio_high = math.exp(float(low)), math.exp(float(high))
            rows.append(
                CoefficientRow(
                    term=str(_get(coefficient, "term", "name", "label") or "?"),
                    estimate=formatting.number(estimate, 3),
                    odds_ratio=formatting.ratio(ratio),
                    interval=(
                        f"{formatting.ratio(ratio_low)}–{formatting.ratio(ratio_high)}"
                        if ratio_low is not None
                        else f"{formatting.number(low, 3)}–{formatting.number(high, 3)}"
                    ),
                )
            )
        diagnostics = fit.diagnostics
        c_stat = _get(diagnostics, "c_statistic", "auc", "c")
        c_low, c_high = None, None
        c_interval = _get(diagnostics, "c_statistic_ci", "c_ci", "auc_ci")
        if isinstance(c_interval, list | tuple) and len(c_interval) == 2:
            c_low, c_high = c_interval
        if isinstance(c_stat, dict):
            c_low, c_high = c_stat.get("low"), c_stat.get("high")
            c_stat = c_stat.get("value", c_stat.get("estimate"))
        c_text = formatting.number(c_stat, 3)
        if c_low is not None:
            c_text += f" (95% CI {formatting.number(c_low, 3)}–{formatting.number(c_high, 3)})"
        hl = _get(diagnostics, "hosmer_lemeshow", "hl")
        calibration = formatting.MISSING
        if isinstance(hl, dict):
            calibration = (
                f"Hosmer-Lemeshow chi² {formatting.number(_get(hl, 'statistic', 'chi2'), 2)}, "
                f"p = {formatting.number(_get(hl, 'pvalue', 'p_value', 'p'), 3)}"
            )
        deciles = _get(diagnostics, "calibration", "calibration_deciles") or []
        calibration_rows = []
        if isinstance(deciles, list):
            for index, row in enumerate(deciles, start=1):
                if isinstance(row, dict):
                    calibration_rows.append(
                        (
                            str(_get(row, "decile", "group") or index),
                            formatting.number(_get(row, "observed", "obs"), 1),
                            formatting.number(_get(row, "expected", "exp"), 1),
                        )
                    )
        out.append(
            ModelSummary(
                measure=measure,
                family=fit.family,
                n=formatting.count(fit.n),
                events=formatting.count(fit.events),
                c_statistic=c_text,
                calibration=calibration,
                brier=formatting.number(_get(diagnostics, "brier", "brier_score"), 4),
                coefficients=rows,
                calibration_rows=calibration_rows,
            )
        )
    return out


#: How the methods appendix names the funnel methods.
METHOD_NAMES = {
    "random-effects": "Random effects, exact predictive tails (default)",
    "shmi": "SHMI (log scale, 10% truncation)",
    "cqc": "CQC (additive, 10% winsorisation)",
    "spiegelhalter": "Spiegelhalter (multiplicative, 10% winsorisation)",
}


@dataclass(frozen=True, slots=True)
class CalibrationLine:
    """One funnel method's simulated flag rates (adjusted limits), for the methods appendix."""

    data_type: str
    method: str
    used: bool
    in_control_95: str
    in_control_998: str
    between_998: str
    power_998: str


def _rate(data_type: str, method: str, scenario: str, level: float) -> str:
    row = stats_calibration.lookup(data_type, method, scenario, level, adjusted=True)
    return f"{row.rate * 100:.2f}%"


def calibration_table(run: RunData) -> list[CalibrationLine]:
    """The stored simulation (:data:`qicollab.stats.calibration.CALIBRATION`) for the default
    method and the published variants, marking the ones this run used; never simulated here."""
    settings = run.run.settings
    used = {"ratio": settings.funnel_ratio, "proportion": settings.funnel_proportion}
    lines = []
    for data_type in ("ratio", "proportion"):
        methods = [DEFAULT_METHOD] + [
            m for m in METHOD_NAMES if m != DEFAULT_METHOD and (m != "shmi" or data_type == "ratio")
        ]
        for method in methods:
            lines.append(
                CalibrationLine(
                    "Ratios (O/E, rates)" if data_type == "ratio" else "Proportions",
                    METHOD_NAMES[method],
                    used[data_type] == method,
                    _rate(data_type, method, "in-control", 0.95),
                    _rate(data_type, method, "in-control", 0.998),
                    _rate(data_type, method, "sd-0.2", 0.998),
                    _rate(data_type, method, "rr3", 0.998),
                )
            )
    return lines


def calibration_text() -> str:
    """What the calibration table measured, and how to regenerate it."""
    return (
        "Flag rates at the overdispersion-adjusted limits, from seeded simulations of "
        f"collaboratives of {stats_calibration.MEMBERS:,} members "
        f"({stats_calibration.CALIBRATION[0].replicates} replicates; expected counts "
        "log-uniform from 0.5 to 200 for ratios, denominators from 5 to 2,000 for "
        f"proportions with p = {stats_calibration.PROPORTION_TARGET:g}). In control: no member "
        "differs (nominal 5% and 0.2%). Between-member SD 0.2: real variation that is not a "
        "signal (lognormal relative risk; logit-normal for proportions). Power: share of "
        f"{stats_calibration.OUTLIERS} true outliers (relative risk or odds "
        f"{stats_calibration.RELATIVE_RISK:g}, 30 or more expected events) flagged at 99.8%. "
        f"Regenerated by: {stats_calibration.COMMAND}."
    )


def methods_text(run: RunData) -> dict[str, str]:
    """The interval, outlier, benchmark and suppression rules of the run, in words."""
    settings = run.run.settings
    level_text = " and ".join(f"{level * 100:g}%" for level in settings.levels)
    ratio_words = _method_words(settings.funnel_ratio, settings.trim)
    proportion_words = _method_words(settings.funnel_proportion, settings.trim)
    odds = settings.cusum_odds_ratio
    shrinkage = (
        "Deciles rank members from 1 (best) to 10 on their empirical-Bayes (shrunk) values, so "
        "a small member does not reach the top or bottom by chance."
        if settings.shrinkage == "empirical-bayes"
        else "Deciles rank members from 1 (best) to 10 on their own values (no shrinkage)."
    )
    return {
        "intervals": (
            f"Intervals are given at {level_text}. Counts use exact Poisson intervals below 10 "
            "events and Byar's approximation above; proportions use Wilson intervals. "
            "Risk-adjusted rates are O/E multiplied by the collaborative rate (indirect "
            "standardisation), O being observed and E expected events from the risk model."
        ),
        "outliers": (
            f"Funnel limits at {level_text} around the collaborative value. Counts are judged "
            "by their exact tails (a member is low only if so few events are unlikely, "
            "high only if so many are), so a member with no events and few expected is never "
            "an outlier. Limits are adjusted for overdispersion (real differences between "
            f"members that are not a signal): ratios by {ratio_words}, "
            f"proportions by {proportion_words}; "
            "the adjustment only ever widens the limits. A member outside the "
            "99.8% limit is 'worse than expected' (needs improvement) or 'better than "
            "expected' (exemplary), honouring the measure's direction; inside it, 'as expected'. "
            "How often each method flags members is in the table below."
        ),
        "change": (
            "'Improved' and 'worsened' over the cycle mean a change beyond chance between a "
            "member's first and last calendar year of data (two-sided, 5% level): "
            f"{stats_change.PROPORTION_TEST} for proportions, "
            f"{stats_change.RATE_TEST} for rates and O/E, "
            f"{stats_change.MEAN_TEST} for means. Any other move is 'no clear change'."
        ),
        "benchmark": (
            "The Achievable Benchmark of Care (ABC) is the pared mean of the best-performing "
            "members that together cover at least "
            f"{settings.abc_fraction * 100:g}% of all cases, ranked by the "
            f"adjusted performance fraction. {shrinkage}"
        ),
        "charts": (
            f"Control charts use the '{settings.spc_mode}' rules: limits at three "
            "sigma, runs analysis, special-cause signals marked by rule; variation and "
            "assurance icons follow NHS Making Data Count. Where a member's cases can be put in "
            "order (a limited data set under a data use agreement), a risk-adjusted CUSUM "
            "(Steiner 2000) tests for odds of the outcome "
            f"{odds:g} times higher and {odds:g} times lower than the risk model "
            "predicts, with limits simulated for an in-control average run length of "
            f"{settings.cusum_arl:,.0f} cases, restarting after each "
            "signal; the VLAD beside it adds up expected minus observed events."
        ),
        "suppression": (
            f"Counts from 1 to {run.run.min_cell_size - 1} about other members are suppressed, "
            "together with every rate, ratio or interval from which such a count could be "
            "worked out; such members are left out of the charts and their number is given "
            "instead. Other members appear only under their blinded codes. Figures about peers "
            "(the collaborative's distribution, quartiles, benchmark and who reaches it, "
            "funnels, deciles and outlier statuses) are shown only when at least "
            f"{settings.min_contributors} members contributed to the measure; otherwise the "
            "reason is given instead."
        ),
    }


def _method_words(method: str, trim: float) -> str:
    """A run's funnel method in words."""
    if method == "random-effects":
        return (
            "a random-effects model (between-member variance by maximum likelihood, refitted "
            "without the members it flags; exact negative-binomial or beta-binomial "
            "predictive tails)"
        )
    how = {
        "shmi": "SHMI's log-scale method with {t} truncation",
        "cqc": "the CQC additive method with {t} winsorisation",
        "spiegelhalter": "Spiegelhalter's multiplicative method with {t} winsorisation",
    }[method]
    return how.format(t=f"{trim * 100:g}%")


@dataclass(frozen=True, slots=True)
class DataRow:
    """A line of the data appendix: the member's submissions used for a measure."""

    code: str
    title: str
    periods: str
    range: str
    corrected: str
    completeness: str


def data_appendix(run: RunData, member: MemberData) -> list[DataRow]:
    """Submission versions used and completeness, per measure."""
    rows = []
    for measure in run.measures:
        use = member.submissions.get(measure.id)
        if use is None:
            rows.append(
                DataRow(
                    measure.code, measure.title, "0", formatting.MISSING, "0", formatting.MISSING
                )
            )
            continue
        rows.append(
            DataRow(
                measure.code,
                measure.title,
                f"{use.periods} of {use.expected_periods}",
                f"{use.first_label}–{use.last_label}" if use.first_label else formatting.MISSING,
                f"{use.corrected} (highest version {use.max_version})" if use.max_version else "0",
                formatting.percent(use.completeness),
            )
        )
    return rows


def lock_text(run: RunData) -> str:
    """The data lock date in words."""
    lock = run.run.lock_date
    return formatting.date(lock) if lock else "not recorded"


def period_text(run: RunData) -> str:
    """The cycle's period range."""
    first, last = run.run.first_period, run.run.last_period
    if first is None or last is None:
        return formatting.MISSING
    return f"{first:%B %Y} to {last:%B %Y}"


def today() -> dt.date:
    """The report date (UTC)."""
    return dt.datetime.now(dt.UTC).date()
