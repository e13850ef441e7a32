"""Member organizations and the peer groups they are compared within."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from qicollab.members.models import BedSizeBand, Member, OrgType, PeerGroup, Rurality

#: Member attributes a peer group may be built from, with the values each accepts.
CRITERIA_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "org_type": tuple(kind.value for kind in OrgType),
    "bed_size_band": tuple(band.value for band in BedSizeBand),
    "teaching": ("true", "false"),
    "rurality": tuple(kind.value for kind in Rurality),
}


class PeerGroupError(ValueError):
    """A peer group that cannot be saved, with the reason."""


@dataclass(frozen=True, slots=True)
class PeerGroupDraft:
    """What a coordinator entered for a peer group."""

    code: str
    name: str
    description: str
    #: attribute -> accepted values (any of); members must match every attribute given.
    criteria: dict[str, list[str]]
    #: Extra members added by hand, by member code.
    extra_member_codes: tuple[str, ...] = ()


def _matches(member: Member, criteria: dict[str, list[str]]) -> bool:
    for attribute, accepted in criteria.items():
        value = getattr(member, attribute)
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if text not in accepted:
            return False
    return True


class MemberService:
    """Reads members and maintains peer groups for one collaborative."""

    def __init__(self, db: Session, collaborative_id: int) -> None:
        self.db = db
        self.collaborative_id = collaborative_id

    def members(self) -> list[Member]:
        """Every member, by code, with its peer groups loaded."""
        return list(
            self.db.scalars(
                sa.select(Member)
                .where(Member.collaborative_id == self.collaborative_id)
                .options(selectinload(Member.peer_groups))
                .order_by(Member.code)
            )
        )

    def member(self, member_id: int) -> Member | None:
        """One member of this collaborative, or None."""
        member = self.db.get(Member, member_id)
        return member if member and member.collaborative_id == self.collaborative_id else None

    def peer_groups(self) -> list[PeerGroup]:
        """Every peer group with its members."""
        return list(
            self.db.scalars(
                sa.select(PeerGroup)
                .where(PeerGroup.collaborative_id == self.collaborative_id)
                .options(selectinload(PeerGroup.members))
                .order_by(PeerGroup.code)
            )
        )

    def save_peer_group(self, draft: PeerGroupDraft, group: PeerGroup | None = None) -> PeerGroup:
        """Create or update a group: members matching the criteria plus any added by hand."""
        code = draft.code.strip().upper()
        if not code or not code.replace("-", "").isalnum() or len(code) > 32:
            msg = "the code must be 1-32 letters, digits or dashes"
            raise PeerGroupError(msg)
        if not draft.name.strip():
            msg = "the group needs a name"
            raise PeerGroupError(msg)
        for attribute, accepted in draft.criteria.items():
            allowed = CRITERIA_ATTRIBUTES.get(attribute)
            if allowed is None:
                msg = f"members cannot be grouped by {attribute!r}"
                raise PeerGroupError(msg)
            unknown = sorted(set(accepted) - set(allowed))
            if unknown:
                msg = f"{attribute} has no value {', '.join(unknown)}"
                raise PeerGroupError(msg)
        clash = self.db.scalar(
            sa.select(PeerGroup.id).where(
                PeerGroup.collaborative_id == self.collaborative_id, PeerGroup.code == code
            )
        )
        if clash is not None and (group is None or clash != group.id):
            msg = f"a peer group with code {code} exists already"
            raise PeerGroupError(msg)
        members = self.members()
        by_code = {member.code: member for member in members}
        missing = [c for c in draft.extra_member_codes if c not in by_code]
        if missing:
            msg = f"no member with code {', '.join(missing)}"
            raise PeerGroupError(msg)
        chosen = [m for m in members if draft.criteria and _matches(m, draft.criteria)]
        chosen += [by_code[c] for c in draft.extra_member_codes if by_code[c] not in chosen]
        if len(chosen) < 2:
            msg = "a peer group needs at least two members to compare"
            raise PeerGroupError(msg)
        if group is None:
            group = PeerGroup(collaborative_id=self.collaborative_id, code=code)
            self.db.add(group)
        group.code = code
        group.name = draft.name.strip()
        group.description = draft.description.strip()
        group.criteria = {key: list(values) for key, values in draft.criteria.items()}
        group.members = chosen
        self.db.flush()
        return group

    def attribute_summary(self) -> dict[str, dict[str, Any]]:
        """How many members have each attribute value (for building groups)."""
        summary: dict[str, dict[str, Any]] = {}
        for member in self.members():
            for attribute in CRITERIA_ATTRIBUTES:
                value = getattr(member, attribute)
                text = str(value).lower() if isinstance(value, bool) else str(value)
                bucket = summary.setdefault(attribute, {})
                bucket[text] = bucket.get(text, 0) + 1
        return summary
