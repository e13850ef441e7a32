"""The collaborative as a whole: members x measures, who improved most, who is missing data.

Used by the coordinators' overview page and the collaborative report (identified), and, through
a blinded audience, by the summary every member may download (distributions, benchmark and
improvement over the cycle, with no member named).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from qicollab.benchmarking.models import StoredChart, run_submissions
from qicollab.benchmarking.payloads import MemberPayload
from qicollab.reporting import formatting
from qicollab.reporting.charts.bars import bar_chart, change_chart
from qicollab.reporting.charts.common import Chart
from qicollab.reporting.charts.icons import Icon, assurance_icon, status_badge, variation_icon
from qicollab.reporting.results import MeasureView, RunData
from qicollab.reporting.sections import (
    caterpillar_for,
    distribution_for,
    funnel_for,
    p_text,
)
from qicollab.submissions.models import Submission

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qicollab.reporting.privacy import Audience

#: Improvers listed per measure.
TOP_IMPROVERS = 5


@dataclass(frozen=True, slots=True)
class Cell:
    """One member x measure in the overview matrix."""

    value: str
    status: formatting.StatusWords
    badge: Any
    variation: Icon
    assurance: Icon
    missing: bool


@dataclass
class MemberRow:
    """A member's line of the matrix."""

    member_id: int
    label: str
    code: str
    cells: list[Cell]
    missing: list[str]
    completeness: float | None

    @property
    def flagged(self) -> bool:
        """Any measure worse or better than expected, or with a special-cause icon."""
        return any(
            c.status.key in {"worse", "better"}
            or c.variation.key.startswith(("concern", "improvement"))
            for c in self.cells
        )


@dataclass(frozen=True, slots=True)
class Improver:
    """A member whose change over the cycle in one measure is an improvement beyond chance."""

    member_id: int
    label: str
    first_year: str
    last_year: str
    #: The move from the first to the last year, positive for improvement.
    change: float
    text: str


@dataclass
class MeasureOverview:
    """One measure across the collaborative."""

    measure: MeasureView
    n_members: int
    rate: str
    median: str
    benchmark: str
    target: str
    worse: int
    better: int
    #: Members the run judged at or better than the benchmark (the dash when withheld).
    at_benchmark: str
    #: Members whose change from their first to their last year is beyond chance, and how many
    #: had two years to compare (None when figures about peers are withheld).
    improved: int | None
    worsened: int | None
    assessed: int | None
    improvers: list[Improver]
    years: list[tuple[int, float | None]]
    trend: Chart | None = None
    distribution: Chart | None = None
    funnel: Chart | None = None
    caterpillar: Chart | None = None
    change: Chart | None = None
    worse_labels: list[str] = field(default_factory=list)
    better_labels: list[str] = field(default_factory=list)
    #: Why figures about peers are not given (fewer contributors than the minimum), or None.
    withheld: str | None = None


@dataclass
class Overview:
    """The collaborative overview for one audience."""

    measures: list[MeasureOverview]
    rows: list[MemberRow]
    missing: list[MemberRow]


def chart_icons(session: Session, run_id: int) -> dict[tuple[int, int], tuple[Any, Any]]:
    """Variation and assurance icon names of every stored control chart, without loading the
    (large) chart payloads."""
    query = sa.select(
        StoredChart.member_id,
        StoredChart.measure_id,
        StoredChart.payload[("chart", "variation_icon")].as_string(),
        StoredChart.payload[("chart", "assurance_icon")].as_string(),
    ).where(StoredChart.run_id == run_id, StoredChart.kind == "control")
    return {(m, k): (v, a) for m, k, v, a in session.execute(query)}


def completeness(session: Session, run_id: int) -> dict[tuple[int, int], tuple[int, int]]:
    """Per member x measure: periods submitted, and the most periods any member submitted."""
    counts = session.execute(
        sa.select(
            Submission.member_id,
            Submission.measure_id,
            sa.func.count(sa.distinct(Submission.period_id)),
        )
        .join(run_submissions, run_submissions.c.submission_id == Submission.id)
        .where(run_submissions.c.run_id == run_id)
        .group_by(Submission.member_id, Submission.measure_id)
    ).all()
    most: dict[int, int] = defaultdict(int)
    for _member, measure, n in counts:
        most[measure] = max(most[measure], int(n))
    return {(member, measure): (int(n), most[measure]) for member, measure, n in counts}


def changes(
    run: RunData, measure: MeasureView, audience: Audience
) -> tuple[int, int, int, list[Improver]]:
    """Members improved, worsened and assessed over the cycle (the run's tests of change,
    :mod:`qicollab.stats.change`, on every member, so every audience reads the same counts), and
    the improvers this audience may see, largest improvement first."""
    improved = worsened = assessed = 0
    shown: list[Improver] = []
    hidden = run.suppressed(measure)
    for result in run.results_for(measure.id):
        payload = result.payload
        change = payload.change if isinstance(payload, MemberPayload) else None
        if change is None or change.verdict == "not assessed":
            continue
        assessed += 1
        if change.verdict == "worsened":
            worsened += 1
        if change.verdict != "improved":
            continue
        improved += 1
        member = run.members.get(result.member_id)
        if member is None or audience.hides(result.member_id, hidden):
            continue
        moved = change.difference or 0.0
        shown.append(
            Improver(
                member.id,
                audience.label(member) if audience.identified else member.blinded_code,
                change.first_label or "",
                change.last_label or "",
                measure.improvement(moved) or 0.0,
                f"{measure.show_difference(moved)} ({p_text(change.p_value)})",
            )
        )
    shown.sort(key=lambda i: (-i.change, i.label))
    return improved, worsened, assessed, shown


def build_overview(
    session: Session,
    run: RunData,
    audience: Audience,
    *,
    charts: bool = False,
) -> Overview:
    """The matrix, per-measure summaries (with charts when asked), improvers and missing data.

    For a blinded audience the matrix rows are left empty: the summary names no member.
    """
    run_id = run.run.id
    measures = []
    for measure in run.measures:
        summary = run.summary(measure.id)
        results = run.results_for(measure.id)
        withheld = summary.withheld if summary is not None else None
        improved, worsened, assessed, ranked = (
            (None, None, None, []) if withheld else changes(run, measure, audience)
        )
        statuses = [formatting.status(r.outlier_status).key for r in results]
        abc = summary.abc if summary else None
        overview = MeasureOverview(
            measure=measure,
            n_members=summary.n_members if summary else len(results),
            rate=measure.show(summary.rate if summary else None),
            median=measure.show(summary.quantiles().get("p50") if summary else None),
            benchmark=measure.show(abc),
            target=measure.show(measure.target),
            worse=statuses.count("worse"),
            better=statuses.count("better"),
            at_benchmark=formatting.count(summary.payload.at_benchmark if summary else None),
            improved=improved,
            worsened=worsened,
            assessed=assessed,
            improvers=ranked[:TOP_IMPROVERS],
            years=[(y.year, y.value) for y in summary.payload.years] if summary else [],
            withheld=withheld,
        )
        if audience.identified:
            for result in results:
                member = run.members.get(result.member_id)
                if member is None:
                    continue
                key = formatting.status(result.outlier_status).key
                if key == "worse":
                    overview.worse_labels.append(member.name)
                elif key == "better":
                    overview.better_labels.append(member.name)
        if charts:
            overview.distribution = distribution_for(run, measure, audience, None)
            if overview.years:
                overview.trend = bar_chart(
                    [str(y) for y, _ in overview.years],
                    [measure.scaled(v) for _, v in overview.years],
                    title=f"{measure.code}: collaborative value by year",
                    y_label=measure.axis_label,
                    benchmark=measure.scaled(abc),
                    target=measure.scaled(measure.target),
                    digits=measure.digits,
                    width=400.0,
                )
            if audience.identified:
                overview.funnel = funnel_for(run, measure, audience, None)
                overview.caterpillar = caterpillar_for(run, measure, audience, None)
                if ranked:
                    overview.change = change_chart(
                        [
                            (i.label, measure.scaled(i.change) or 0.0)
                            for i in ranked[:TOP_IMPROVERS]
                        ],
                        title=f"{measure.code}: largest improvements, first to last year",
                        x_label=f"Improvement ({measure.unit or 'value'})",
                        digits=measure.digits,
                        width=400.0,
                    )
        measures.append(overview)

    rows: list[MemberRow] = []
    missing: list[MemberRow] = []
    if audience.identified:
        icons = chart_icons(session, run_id)
        complete = completeness(session, run_id)
        for member in sorted(run.members.values(), key=lambda m: m.code):
            if not member.active and not any(
                (member.id, m.id) in run.results for m in run.measures
            ):
                continue
            cells = []
            gaps = []
            submitted = expected = 0
            for measure in run.measures:
                result = run.results.get((member.id, measure.id))
                words = formatting.status(result.outlier_status if result else None)
                variation, assurance = icons.get((member.id, measure.id), (None, None))
                have, most = complete.get((member.id, measure.id), (0, 0))
                submitted += have
                expected += max(most, have)
                absent = result is None or result.value is None
                if absent:
                    gaps.append(f"{measure.code}: no result")
                elif have < most:
                    gaps.append(f"{measure.code}: {have} of {most} periods")
                cells.append(
                    Cell(
                        value=measure.show(result.value if result else None),
                        status=words,
                        badge=status_badge(words.key, words.plain, words.mark),
                        variation=variation_icon(variation, measure.direction),
                        assurance=assurance_icon(assurance),
                        missing=absent,
                    )
                )
            row = MemberRow(
                member.id,
                member.name,
                member.code,
                cells,
                gaps,
                submitted / expected if expected else None,
            )
            rows.append(row)
            if gaps:
                missing.append(row)
    return Overview(measures, rows, missing)
