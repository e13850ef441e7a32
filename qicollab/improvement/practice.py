"""The best-practice comparison of a benchmark run: what the best performers and the improvers
changed, against the rest (:func:`qicollab.stats.practice.compare_practice` computes it).

Run results are read through the stored payload classes (:mod:`qicollab.benchmarking.payloads`).
Per measure, a member is a best performer when the run judged its whole-cycle value at or better
than the achievable benchmark (``MemberPayload.benchmark``), and an improver when the run's test
of change over the cycle (:mod:`qicollab.stats.change`, ``MemberPayload.change``) says it
improved beyond chance.
Its change ideas are those of its PDSA cycles linked to the measure (adopted: Act = adopt).
Members whose figures are suppressed for the measure are left out, so the comparison never
stands on a small cell; groups below the minimum number of contributors are withheld.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from cachetools import LRUCache

from qicollab.benchmarking.payloads import MemberPayload
from qicollab.improvement.models import ActDecision, PdsaCycle, pdsa_measures
from qicollab.improvement.package import ChangePackageService, IdeaView
from qicollab.stats.practice import MIN_CONTRIBUTORS, GroupUse, PracticeComparison, compare_practice

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qicollab.reporting.results import MeasureView, RunData


@dataclass(frozen=True, slots=True)
class IdeaRow:
    """A change idea with its use in each group."""

    idea: IdeaView
    best: GroupUse
    improved: GroupUse
    rest: GroupUse


@dataclass(frozen=True, slots=True)
class MeasurePractice:
    """One measure's comparison, ready to show."""

    measure: MeasureView
    comparison: PracticeComparison
    rows: tuple[IdeaRow, ...]

    @property
    def used(self) -> tuple[IdeaRow, ...]:
        """Ideas some shown group tested (the rest would be rows of zeros)."""
        return tuple(r for r in self.rows if any(g.tested for g in (r.best, r.improved, r.rest)))


def _change_ideas_by_member(
    session: Session, collaborative_id: int, measure_id: int
) -> tuple[dict[int, set[int]], dict[int, set[int]]]:
    tested: dict[int, set[int]] = defaultdict(set)
    adopted: dict[int, set[int]] = defaultdict(set)
    rows = session.execute(
        sa.select(PdsaCycle.member_id, PdsaCycle.change_idea_id, PdsaCycle.decision)
        .join(pdsa_measures, pdsa_measures.c.pdsa_id == PdsaCycle.id)
        .where(
            PdsaCycle.collaborative_id == collaborative_id,
            PdsaCycle.change_idea_id.is_not(None),
            pdsa_measures.c.measure_id == measure_id,
        )
    )
    for member_id, idea_id, decision in rows:
        tested[member_id].add(idea_id)
        if decision is ActDecision.ADOPT:
            adopted[member_id].add(idea_id)
    return tested, adopted


def best_practice(
    session: Session, run: RunData, *, min_contributors: int = MIN_CONTRIBUTORS
) -> list[MeasurePractice]:
    """The comparison for every measure of the run (blinded: counts only)."""
    collaborative_id = run.run.collaborative_id
    ideas = ChangePackageService(session, collaborative_id).diagram().ideas
    by_id = {idea.id: idea for idea in ideas}
    out = []
    for measure in run.measures:
        summary = run.summary(measure.id)
        # The run's own minimum when it stored one (never below the caller's).
        stored = summary.payload.min_contributors if summary else 0
        k = max(min_contributors, stored or 0)
        hidden = run.suppressed(measure)
        contributors, best, improved = set(), set(), set()
        for (member_id, measure_id), result in run.results.items():
            if measure_id != measure.id or result.value is None or member_id in hidden:
                continue
            contributors.add(member_id)
            payload = result.payload
            if not isinstance(payload, MemberPayload):
                continue
            if payload.benchmark.reaches:
                best.add(member_id)
            change = payload.change
            if change is not None and change.verdict == "improved":
                improved.add(member_id)
        tested, adopted = _change_ideas_by_member(session, collaborative_id, measure.id)
        comparison = compare_practice(
            contributors,
            best,
            improved,
            tested=tested,
            adopted=adopted,
            ideas=list(by_id),
            min_contributors=k,
        )
        rows = tuple(IdeaRow(by_id[r.idea], r.best, r.improved, r.rest) for r in comparison.ideas)
        out.append(MeasurePractice(measure, comparison, rows))
    return out


_CACHE: LRUCache[tuple[object, ...], list[MeasurePractice]] = LRUCache(maxsize=8)
_LOCK = threading.Lock()


def cached_best_practice(session: Session, run: RunData) -> list[MeasurePractice]:
    """:func:`best_practice`, computed once per run while no PDSA cycle or change idea changes
    (a batch of member reports shares one comparison)."""
    stamp = session.execute(
        sa.select(sa.func.count(PdsaCycle.id), sa.func.max(PdsaCycle.updated_at)).where(
            PdsaCycle.collaborative_id == run.run.collaborative_id
        )
    ).one()
    package = ChangePackageService(session, run.run.collaborative_id).package()
    key = (run.run.id, *stamp, package.updated_at if package else None)
    with _LOCK:
        found = _CACHE.get(key)
    if found is None:
        found = best_practice(session, run)
        with _LOCK:
            _CACHE[key] = found
    return found
