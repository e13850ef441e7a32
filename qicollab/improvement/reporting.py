"""What the printed reports show of the improvement work.

The member report gets the team's own PDSA ramps (identified: it is the team's own report), its
progress-score trend and its latest monthly report. The collaborative report and the blinded
summary get the change package's driver diagram and the distribution of teams' progress scores,
which name no team.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qicollab.improvement.drawing import distribution_svg, driver_diagram_svg, progress_trend_svg
from qicollab.improvement.package import ChangePackageService, Diagram
from qicollab.improvement.pdsa import PdsaService, change_label, stage
from qicollab.improvement.progress import ProgressService, TrendPoint

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@dataclass(frozen=True, slots=True)
class PdsaLine:
    """One cycle of a ramp as the report lists it."""

    title: str
    starts_on: dt.date
    stage: str
    decision: str
    decided_on: dt.date | None
    measures: tuple[str, ...]
    starts_phase: bool


@dataclass(frozen=True, slots=True)
class RampView:
    """A ramp: the change tested and its cycles, oldest first."""

    change: str
    cycles: tuple[PdsaLine, ...]


@dataclass(frozen=True, slots=True)
class MonthlyView:
    """The team's latest monthly report."""

    month: dt.date
    tested: str
    learned: str
    barriers: str


@dataclass(frozen=True, slots=True)
class MemberImprovement:
    """The improvement part of a member's report."""

    ramps: tuple[RampView, ...]
    trend: tuple[TrendPoint, ...]
    trend_svg: str
    latest_report: MonthlyView | None

    @property
    def empty(self) -> bool:
        """Nothing recorded yet (the report then says so in one line)."""
        return not (self.ramps or self.trend or self.latest_report)


@dataclass(frozen=True, slots=True)
class CollaborativeImprovement:
    """The improvement part of the collaborative report and the blinded summary."""

    diagram: Diagram
    diagram_svg: str
    distribution_svg: str
    scored_month: dt.date | None
    team_scored: int
    faculty_scored: int
    teams: int


def member_improvement(
    session: Session, collaborative_id: int, member_id: int
) -> MemberImprovement:
    """The team's ramps, score trend and latest monthly report."""
    ramps = tuple(
        RampView(
            change_label(ramp[0]),
            tuple(
                PdsaLine(
                    c.title,
                    c.starts_on,
                    stage(c),
                    c.decision.value if c.decision else "",
                    c.decided_on,
                    tuple(m.code for m in c.measures),
                    c.starts_phase,
                )
                for c in ramp
            ),
        )
        for ramp in PdsaService(session, collaborative_id).ramps(member_id)
    )
    progress = ProgressService(session, collaborative_id)
    trend = tuple(progress.trend(member_id))
    reports = progress.reports(member_id)
    latest = (
        MonthlyView(reports[0].month, reports[0].tested, reports[0].learned, reports[0].barriers)
        if reports
        else None
    )
    return MemberImprovement(
        ramps,
        trend,
        progress_trend_svg(trend, title="Progress scores") if trend else "",
        latest,
    )


def collaborative_improvement(session: Session, collaborative_id: int) -> CollaborativeImprovement:
    """The driver diagram and the latest month's distribution of progress scores."""
    diagram = ChangePackageService(session, collaborative_id).diagram()
    progress = ProgressService(session, collaborative_id)
    month = progress.latest_month()
    distribution = progress.distribution(month) if month else None
    return CollaborativeImprovement(
        diagram,
        driver_diagram_svg(diagram) if diagram.aim else "",
        distribution_svg(distribution) if distribution else "",
        month,
        distribution.team_scored if distribution else 0,
        distribution.faculty_scored if distribution else 0,
        distribution.teams if distribution else 0,
    )
