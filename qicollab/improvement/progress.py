"""Progress scores on the IHI Assessment Scale and the monthly team report.

Each month a team scores itself and the faculty (the coordinators) score it too, from 1.0
(forming team) to 5.0 (outstanding sustainable results) in half steps. The team's monthly report
says what it tested, learned and struggled with; it is submitted with the month's self-score, and
coordinators see which teams have not reported.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from qicollab.audit.services import record
from qicollab.db import utcnow
from qicollab.improvement.models import MonthlyReport, ProgressScore, Scorer
from qicollab.improvement.text import ImprovementError, first_of_month, screened
from qicollab.members.models import Member

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qicollab.accounts.models import User


@dataclass(frozen=True, slots=True)
class ScaleLevel:
    """One step of the assessment scale with what a team at that step has shown."""

    score: float
    name: str
    definition: str


#: The IHI Assessment Scale for Collaboratives, in our words.
SCALE: tuple[ScaleLevel, ...] = (
    ScaleLevel(
        1.0,
        "Forming team",
        "The team is formed, its target population is named, its aim is set and baseline "
        "measurement has started.",
    ),
    ScaleLevel(
        1.5,
        "Planning has begun",
        "The team meets and discusses the project; plans are made.",
    ),
    ScaleLevel(
        2.0,
        "Activity, but no changes",
        "The team is engaged in research, discussion and development, but has tested no change.",
    ),
    ScaleLevel(
        2.5,
        "Changes tested, no improvement",
        "The model for improvement is in use: key measures are reported, a baseline exists, the "
        "aim is clear and tests are under way; measures have not improved yet.",
    ),
    ScaleLevel(
        3.0,
        "Modest improvement",
        "First test cycles are complete and implementation has begun for several changes; "
        "process measures show moderate improvement.",
    ),
    ScaleLevel(
        3.5,
        "Improvement",
        "Outcome measures improve somewhat while process measures keep improving; most of the "
        "change package has been tested and many changes are in place.",
    ),
    ScaleLevel(
        4.0,
        "Significant improvement",
        "Most of the change package is implemented; outcome measures show sustained improvement "
        "and about half the aim's goals are met.",
    ),
    ScaleLevel(
        4.5,
        "Sustainable improvement",
        "Key measures show improvement held over time; most goals are met and plans to spread "
        "the changes are in place.",
    ),
    ScaleLevel(
        5.0,
        "Outstanding sustainable results",
        "The whole change package is implemented, every goal of the aim is met, outcomes reach "
        "benchmark levels and the changes are spreading.",
    ),
)
SCALE_BY_SCORE = {level.score: level for level in SCALE}


def halves_of(score: object) -> int:
    """Twice a score on the scale, refusing anything off its half steps."""
    try:
        value = float(str(score).strip())
    except ValueError as error:
        msg = "the score is a number from 1.0 to 5.0"
        raise ImprovementError(msg, field="score") from error
    if value not in SCALE_BY_SCORE:
        msg = "the score is one of 1.0, 1.5, ... 5.0 (half steps of the assessment scale)"
        raise ImprovementError(msg, field="score")
    return round(value * 2)


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """A month of a team's trend: its own score and the faculty's (None: not scored)."""

    month: dt.date
    team: float | None
    faculty: float | None


@dataclass(frozen=True, slots=True)
class Distribution:
    """How many teams sit at each step of the scale in a month, by scorer."""

    month: dt.date
    team: dict[float, int]
    faculty: dict[float, int]
    teams: int

    @property
    def team_scored(self) -> int:
        """Teams that scored themselves this month."""
        return sum(self.team.values())

    @property
    def faculty_scored(self) -> int:
        """Teams the faculty scored this month."""
        return sum(self.faculty.values())


@dataclass
class ProgressService:
    """Scores and monthly reports of a collaborative's teams, in the caller's transaction."""

    db: Session
    collaborative_id: int

    def _member(self, member_id: int) -> Member:
        member = self.db.get(Member, member_id)
        if member is None or member.collaborative_id != self.collaborative_id:
            msg = "unknown member"
            raise ImprovementError(msg, field="member")
        return member

    def score(
        self,
        member_id: int,
        month: dt.date,
        scorer: Scorer | str,
        score: object,
        *,
        comment: str = "",
        actor: User | str | None,
    ) -> ProgressScore:
        """Record (or replace) a team's or the faculty's score for a month (audited)."""
        self._member(member_id)
        month = first_of_month(month)
        scorer = Scorer(scorer)
        halves = halves_of(score)
        comment = screened(comment, field="comment", label="comment", max_chars=2000)
        row = self.db.scalar(
            sa.select(ProgressScore).where(
                ProgressScore.member_id == member_id,
                ProgressScore.month == month,
                ProgressScore.scorer == scorer,
            )
        )
        if row is None:
            row = ProgressScore(member_id=member_id, month=month, scorer=scorer)
            self.db.add(row)
        row.halves, row.comment = halves, comment
        row.scored_by_id = getattr(actor, "id", None)
        self.db.flush()
        record(
            self.db,
            "progress.scored",
            actor=actor,
            object_type="progress_score",
            object_id=row.id,
            collaborative_id=self.collaborative_id,
            member_id=member_id,
            details={"month": month.isoformat(), "scorer": scorer.value, "score": row.score},
        )
        return row

    def trend(self, member_id: int) -> list[TrendPoint]:
        """The team's scores month by month, oldest first."""
        rows = self.db.execute(
            sa.select(ProgressScore.month, ProgressScore.scorer, ProgressScore.halves)
            .where(ProgressScore.member_id == member_id)
            .order_by(ProgressScore.month)
        )
        months: dict[dt.date, dict[Scorer, float]] = {}
        for month, scorer, halves in rows:
            months.setdefault(month, {})[scorer] = halves / 2
        return [TrendPoint(m, s.get(Scorer.TEAM), s.get(Scorer.FACULTY)) for m, s in months.items()]

    def latest_month(self) -> dt.date | None:
        """The latest month any team of the collaborative was scored."""
        return self.db.scalar(
            sa.select(sa.func.max(ProgressScore.month))
            .join(Member, Member.id == ProgressScore.member_id)
            .where(Member.collaborative_id == self.collaborative_id)
        )

    def distribution(self, month: dt.date) -> Distribution:
        """Teams per step of the scale in the month, by scorer."""
        month = first_of_month(month)
        rows = self.db.execute(
            sa.select(ProgressScore.scorer, ProgressScore.halves)
            .join(Member, Member.id == ProgressScore.member_id)
            .where(
                Member.collaborative_id == self.collaborative_id,
                Member.active.is_(True),
                ProgressScore.month == month,
            )
        )
        counts: dict[Scorer, Counter[float]] = {Scorer.TEAM: Counter(), Scorer.FACULTY: Counter()}
        for scorer, halves in rows:
            counts[scorer][halves / 2] += 1
        teams = self.db.scalar(
            sa.select(sa.func.count(Member.id)).where(
                Member.collaborative_id == self.collaborative_id, Member.active.is_(True)
            )
        )
        return Distribution(
            month,
            {level.score: counts[Scorer.TEAM][level.score] for level in SCALE},
            {level.score: counts[Scorer.FACULTY][level.score] for level in SCALE},
            teams or 0,
        )

    # --- monthly team reports -----------------------------------------------------------------

    def report(self, member_id: int, month: dt.date) -> MonthlyReport | None:
        """The team's report for the month, if written."""
        return self.db.scalar(
            sa.select(MonthlyReport).where(
                MonthlyReport.member_id == member_id,
                MonthlyReport.month == first_of_month(month),
            )
        )

    def reports(self, member_id: int) -> list[MonthlyReport]:
        """The team's reports, newest first."""
        return list(
            self.db.scalars(
                sa.select(MonthlyReport)
                .where(MonthlyReport.member_id == member_id)
                .order_by(MonthlyReport.month.desc())
            )
        )

    def submit_report(
        self,
        member_id: int,
        month: dt.date,
        *,
        tested: str,
        learned: str,
        barriers: str,
        score: object,
        actor: User | str | None,
    ) -> MonthlyReport:
        """Save the team's account of the month with its self-score (audited)."""
        self._member(member_id)
        month = first_of_month(month)
        texts = {
            "tested": screened(tested, field="tested", label="account of what was tested"),
            "learned": screened(learned, field="learned", label="account of what was learned"),
            "barriers": screened(barriers, field="barriers", label="barriers"),
        }
        if not any(texts.values()):
            msg = "say in a few words what the team tested, learned or struggled with"
            raise ImprovementError(msg, field="tested")
        self.score(member_id, month, Scorer.TEAM, score, actor=actor)
        report = self.report(member_id, month)
        if report is None:
            report = MonthlyReport(member_id=member_id, month=month)
            self.db.add(report)
        for name, value in texts.items():
            setattr(report, name, value)
        report.submitted_by_id = getattr(actor, "id", None)
        report.updated_at = utcnow()
        self.db.flush()
        record(
            self.db,
            "monthly_report.submitted",
            actor=actor,
            object_type="monthly_report",
            object_id=report.id,
            collaborative_id=self.collaborative_id,
            member_id=member_id,
            details={"month": month.isoformat()},
        )
        return report

    def not_reported(self, month: dt.date) -> list[Member]:
        """Active teams without a report for the month, by code."""
        reported = sa.select(MonthlyReport.member_id).where(
            MonthlyReport.month == first_of_month(month)
        )
        return list(
            self.db.scalars(
                sa.select(Member)
                .where(
                    Member.collaborative_id == self.collaborative_id,
                    Member.active.is_(True),
                    Member.id.not_in(reported),
                )
                .order_by(Member.code)
            )
        )
