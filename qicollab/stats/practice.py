"""Best-practice comparison: which changes the best performers and the improvers made.

For one measure the contributing members fall into groups: those at or better than the
achievable benchmark (ABC), those with a significant improvement (a special-cause improvement on
their control chart), and the rest (neither). For each change idea the comparison counts, in each
group, the members that tested it in a PDSA cycle and those that adopted it, with the shares of
the group. A group with fewer members than the minimum number of contributors is withheld (its
counts and shares are None), as any figure about peers is. Members are never named: the inputs
are ids, the outputs counts.

Pure: sets and mappings in, frozen results out; no database, no web.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

#: Below this many members a group's figures are withheld (the platform's default k).
MIN_CONTRIBUTORS = 5


@dataclass(frozen=True, slots=True)
class GroupUse:
    """How many members of a group tested and adopted a change idea (None: withheld)."""

    members: int
    tested: int | None
    adopted: int | None

    @property
    def withheld(self) -> bool:
        """The group is too small to show."""
        return self.tested is None

    @property
    def tested_share(self) -> float | None:
        """Share of the group that tested the idea."""
        return None if self.tested is None or not self.members else self.tested / self.members

    @property
    def adopted_share(self) -> float | None:
        """Share of the group that adopted the idea."""
        return None if self.adopted is None or not self.members else self.adopted / self.members


@dataclass(frozen=True, slots=True)
class IdeaComparison:
    """One change idea across the groups of one measure."""

    idea: int
    best: GroupUse
    improved: GroupUse
    rest: GroupUse

    @property
    def adopted_difference(self) -> float | None:
        """Share of the best performers that adopted it minus the rest's (None if withheld)."""
        best, rest = self.best.adopted_share, self.rest.adopted_share
        return None if best is None or rest is None else best - rest


@dataclass(frozen=True, slots=True)
class PracticeComparison:
    """The comparison for one measure, ideas ordered by how much more the best adopted them."""

    contributors: int
    best: int
    improved: int
    rest: int
    min_contributors: int
    ideas: tuple[IdeaComparison, ...]

    @property
    def withheld(self) -> bool:
        """Too few contributors for any comparison."""
        return self.contributors < self.min_contributors


def _use(
    group: frozenset[int],
    idea: int,
    tested: Mapping[int, Collection[int]],
    adopted: Mapping[int, Collection[int]],
    k: int,
) -> GroupUse:
    if len(group) < k:
        return GroupUse(len(group), None, None)
    return GroupUse(
        len(group),
        sum(1 for m in group if idea in tested.get(m, ()) or idea in adopted.get(m, ())),
        sum(1 for m in group if idea in adopted.get(m, ())),
    )


def compare_practice(
    contributors: Collection[int],
    best: Collection[int],
    improved: Collection[int],
    *,
    tested: Mapping[int, Collection[int]],
    adopted: Mapping[int, Collection[int]],
    ideas: Collection[int],
    min_contributors: int = MIN_CONTRIBUTORS,
) -> PracticeComparison:
    """Compare the change ideas of the best performers and the improvers with the rest's.

    ``contributors`` are the members with a result for the measure; ``best`` and ``improved``
    are subsets of them (a member may be in both); ``tested`` and ``adopted`` map a member to the
    ideas it tested (any PDSA cycle) and adopted. An adopted idea counts as tested too.
    """
    if min_contributors < 1:
        msg = "the minimum number of contributors is at least 1"
        raise ValueError(msg)
    everyone = frozenset(contributors)
    best_group = frozenset(best) & everyone
    improved_group = frozenset(improved) & everyone
    rest_group = everyone - best_group - improved_group
    k = min_contributors
    if len(everyone) < k:
        return PracticeComparison(
            len(everyone), len(best_group), len(improved_group), len(rest_group), k, ()
        )
    rows = [
        IdeaComparison(
            idea,
            _use(best_group, idea, tested, adopted, k),
            _use(improved_group, idea, tested, adopted, k),
            _use(rest_group, idea, tested, adopted, k),
        )
        for idea in ideas
    ]
    rows.sort(
        key=lambda r: (
            r.adopted_difference is None,
            -(r.adopted_difference or 0.0),
            -(r.best.adopted or 0),
            r.idea,
        )
    )
    return PracticeComparison(
        len(everyone), len(best_group), len(improved_group), len(rest_group), k, tuple(rows)
    )
