"""Reviewing submitted versions: the queue, and accepting or returning with a reason."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import sqlalchemy as sa

from qicollab.audit.services import record
from qicollab.cycles.base import CycleBase
from qicollab.cycles.reasons import CycleError, clean_reason
from qicollab.measures.models import Measure
from qicollab.members.models import Member
from qicollab.notifications import events
from qicollab.schedule.calendar import LearningCycle
from qicollab.schedule.periods import ReportingPeriod
from qicollab.submissions.models import Submission, SubmissionStatus

if TYPE_CHECKING:
    from qicollab.accounts.models import User


class ReviewDecision(enum.StrEnum):
    """A coordinator's verdict on a submitted version."""

    ACCEPT = "accept"
    RETURN = "return"


#: The status each decision gives a version.
TARGET = {
    ReviewDecision.ACCEPT: SubmissionStatus.ACCEPTED,
    ReviewDecision.RETURN: SubmissionStatus.RETURNED,
}


class Review(CycleBase):
    """The review queue and the coordinators' verdicts."""

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
        target = TARGET[decision]
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
        if target is SubmissionStatus.RETURNED and self.notifier is not None:
            member = self.db.get(Member, submission.member_id)
            if member is not None and measure is not None and period is not None:
                events.submission_returned(
                    self.notifier,
                    submission=submission,
                    member=member,
                    measure=measure,
                    period=period,
                    reason=text,
                )
        return submission

    def review_many(
        self,
        submission_ids: list[int],
        decision: ReviewDecision | str,
        *,
        reason: str | None,
        actor: User | str | None,
    ) -> list[Submission]:
        """Accept or return several versions at once: all of them, or none (audited each)."""
        if not submission_ids:
            msg = "choose at least one submission"
            raise CycleError(msg)
        try:
            target = TARGET[ReviewDecision(decision)]
        except ValueError as error:
            msg = "the decision must be accept or return"
            raise CycleError(msg) from error
        clean_reason(reason, required=target is SubmissionStatus.RETURNED)
        chosen = []
        # Check every version before changing any, so a refusal leaves all of them as they were.
        for submission_id in dict.fromkeys(submission_ids):
            submission = self.submission(submission_id)
            if submission is None:
                msg = f"no submission {submission_id} in this collaborative"
                raise CycleError(msg)
            unreviewable = {SubmissionStatus.DRAFT, SubmissionStatus.SUPERSEDED, target}
            if submission.status in unreviewable:
                msg = (
                    f"version {submission.version} (submission {submission.id}) is "
                    f"{submission.status.value} and cannot be {target.value}"
                )
                raise CycleError(msg)
            chosen.append(submission)
        return [self.review(s, decision, reason=reason, actor=actor) for s in chosen]
