"""Blinding and small-cell suppression for everything the reporting domain shows.

Every page, export and report is built for an :class:`Audience`. A coordinator's audience is
identified: names, every number. A member's audience sees its own name and numbers, and every
other member only under its blinded code, with peer numbers passed through the small-cell rule:
a count from 1 to ``min_cell_size - 1`` is hidden, and so is every number from which it could
be worked out (the peer's rate, O/E and interval, since rate x denominator gives the count back,
and collaborative totals whose difference from the member's own count would give the peers'
sum). The blinded collaborative summary is the audience of every member at once: no one's own.

Which members are hidden is decided once per run and measure by the stats core's suppressor
(:func:`suppressed_members`); :meth:`Audience.hides` then applies it for one reader.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from qicollab.reporting.formatting import is_number


class Reader(StrEnum):
    """Who reads: decides names versus codes and whether peer numbers are suppressed."""

    COORDINATOR = "coordinator"  # identified, nothing suppressed
    MEMBER = "member"  # own identity; peers blinded and suppressed
    EVERY_MEMBER = "every-member"  # blinded summary: everyone blinded and suppressed


class NamedMember(Protocol):
    """What blinding needs to know about a member."""

    id: int
    name: str
    blinded_code: str


@dataclass(frozen=True, slots=True)
class Audience:
    """The reader of a page or report, and the collaborative's small-cell threshold."""

    reader: Reader
    min_cell_size: int
    member_id: int | None = None

    @classmethod
    def coordinator(cls, min_cell_size: int) -> Audience:
        """Identified: coordinators and admins."""
        return cls(Reader.COORDINATOR, min_cell_size)

    @classmethod
    def member(cls, member_id: int, min_cell_size: int) -> Audience:
        """One member: its own identity, peers blinded."""
        return cls(Reader.MEMBER, min_cell_size, member_id)

    @classmethod
    def every_member(cls, min_cell_size: int) -> Audience:
        """The blinded collaborative summary: everyone blinded."""
        return cls(Reader.EVERY_MEMBER, min_cell_size)

    def as_peers_see(self) -> Audience:
        """The reader as it sees every member but its own. A member sees its peers exactly as
        the blinded summary's reader sees everyone (codes, small cells hidden), so what peers
        look like can be built once for all members; other readers are returned as they are."""
        if self.reader is Reader.MEMBER:
            return Audience.every_member(self.min_cell_size)
        return self

    @property
    def identified(self) -> bool:
        """Names and every number shown."""
        return self.reader is Reader.COORDINATOR

    def is_own(self, member_id: int) -> bool:
        """The reader's own member (never true for coordinators or the summary)."""
        return self.reader is Reader.MEMBER and member_id == self.member_id

    def label(self, member: NamedMember) -> str:
        """The name for coordinators and for the member itself, else the blinded code."""
        if self.identified or self.is_own(member.id):
            return member.name
        return member.blinded_code

    def short_label(self, member: NamedMember, code: str) -> str:
        """A short label for charts: the member's code for coordinators, "You", or the code."""
        if self.is_own(member.id):
            return "You"
        if self.identified:
            return code
        return member.blinded_code

    def hides(self, member_id: int, suppressed: frozenset[int]) -> bool:
        """Hide every number of this member's row? Only for peers the suppressor flagged;
        never the reader's own row, never for coordinators."""
        if self.identified or self.is_own(member_id):
            return False
        return member_id in suppressed

    def total_hidden(self, total: object, own: object = None) -> bool:
        """Hide a collaborative or group total? It is a peer sum once the reader's own count is
        taken away, so the check is on ``total - own``."""
        if self.identified:
            return False
        if not is_number(total):
            return False
        remainder = float(total) - (float(own) if is_number(own) else 0.0)  # type: ignore[arg-type]
        return is_small(remainder, self.min_cell_size)


def is_small(value: object, min_cell_size: int) -> bool:
    """A count in 1..min_cell_size-1 (zero is not disclosive and is shown)."""
    if not is_number(value):
        return False
    rounded = round(float(value))  # type: ignore[arg-type]
    return 1 <= rounded < min_cell_size


def suppressed_members(
    rows: Sequence[tuple[int, float | None, float | None]],
    *,
    min_cell_size: int,
    complement: bool,
) -> frozenset[int]:
    """Members whose numbers of one measure may not be shown to peers.

    ``rows`` are (member id, events, cases). The stats core's suppressor decides
    (:func:`qicollab.stats.suppression.suppress_small_cells`, threshold ``min_cell_size - 1``):
    events and cases are counts, the value is derived from both, and for proportions (and
    binary patient outcomes) ``cases - events`` is a protected complement. Peer tables carry
    no totals, so rows are independent and only rows with some count, or complement, in the
    sensitive range can be affected: those are the rows handed to the suppressor (the same
    answer as the whole table, without solving a 1,000-row linear system per measure).
    """
    threshold = min_cell_size - 1
    if threshold < 1:
        return frozenset()

    def candidate(observed: float | None, cases: float | None) -> bool:
        values = [observed, cases]
        if complement and observed is not None and cases is not None:
            values.append(cases - observed)
        return any(is_small(v, min_cell_size) for v in values)

    chosen = [row for row in rows if candidate(row[1], row[2])]
    if not chosen:
        return frozenset()
    import pandas as pd  # noqa: PLC0415 - only when something may need suppressing

    from qicollab.stats.suppression import Complement, suppress_small_cells  # noqa: PLC0415

    frame = pd.DataFrame(
        {
            "observed": [math.nan if r[1] is None else float(r[1]) for r in chosen],
            "cases": [math.nan if r[2] is None else float(r[2]) for r in chosen],
            "value": [0.0] * len(chosen),
        },
        index=[r[0] for r in chosen],
    )
    result = suppress_small_cells(
        frame,
        counts=["observed", "cases"],
        derived={"value": ["observed", "cases"]},
        complements=[Complement("observed", "cases")] if complement else [],
        threshold=threshold,
    )
    hidden = result.mask.any(axis=1)
    return frozenset(int(member) for member, flag in hidden.items() if flag)
