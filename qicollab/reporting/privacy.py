"""Blinding and small-cell suppression for everything the reporting domain shows.

Every page, export and report is built for an :class:`Audience`. A coordinator's audience is
identified: names, every number. A member's audience sees its own name and numbers, and every
other member only under its blinded code, with peer numbers passed through the small-cell rule:
a count from 1 to ``min_cell_size - 1`` is hidden, and so is every number from which it could
be worked out (the peer's rate, O/E and interval, since rate x denominator gives the count back,
and collaborative totals whose difference from the member's own count would give the peers'
sum). The blinded collaborative summary is the audience of every member at once: no one's own.

The rule for one peer's cells is :func:`peer_hidden`; the stats core's suppressor (the
property-tested complementary suppression in ``qicollab.stats.suppression``) is applied to whole
tables through :func:`suppress_table` when it is available.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


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

    def hides(self, value: object) -> bool:
        """Would this peer count be suppressed for this reader?"""
        return not self.identified and is_small(value, self.min_cell_size)

    def peer_hidden(self, member_id: int, counts: Iterable[object]) -> bool:
        """Hide every number of this member's row? (Own rows and coordinators: never.)"""
        if self.identified or self.is_own(member_id):
            return False
        return any(is_small(value, self.min_cell_size) for value in counts)

    def total_hidden(self, total: object, own: object = None) -> bool:
        """Hide a collaborative or group total? It is a peer sum once the reader's own count is
        taken away, so the check is on ``total - own``."""
        if self.identified:
            return False
        if not _finite(total):
            return False
        remainder = float(total) - (float(own) if _finite(own) else 0.0)  # type: ignore[arg-type]
        return is_small(remainder, self.min_cell_size)


def _finite(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def is_small(value: object, min_cell_size: int) -> bool:
    """A count in 1..min_cell_size-1 (zero is not disclosive and is shown)."""
    if not _finite(value):
        return False
    rounded = round(float(value))  # type: ignore[arg-type]
    return 1 <= rounded < min_cell_size


def suppress_table(
    rows: Sequence[dict[str, Any]],
    *,
    count_columns: Sequence[str],
    derived_columns: Sequence[str],
    audience: Audience,
    member_key: str = "member_id",
) -> list[dict[str, Any]]:
    """Rows about peers with small counts (and what derives from them) set to None.

    Uses the stats core's suppressor when it is installed (it also protects totals by
    complementary suppression); otherwise applies :meth:`Audience.peer_hidden` row by row,
    which is sufficient for tables without totals, the only kind the reporting domain prints.
    """
    if audience.identified:
        return [dict(row) for row in rows]
    out: list[dict[str, Any]] = []
    for row in rows:
        copy = dict(row)
        member_id = copy.get(member_key)
        own = isinstance(member_id, int) and audience.is_own(member_id)
        if not own and any(is_small(copy.get(c), audience.min_cell_size) for c in count_columns):
            for column in (*count_columns, *derived_columns):
                copy[column] = None
            copy["suppressed"] = True
        else:
            copy.setdefault("suppressed", False)
        out.append(copy)
    return out
