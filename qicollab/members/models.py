"""The collaborative, its member organizations and the peer groups they are compared within."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qicollab.db import Base, CreatedAtMixin, enum_column


class DeidProfile(enum.StrEnum):
    """How much detail patient-level rows may carry (HIPAA de-identification routes)."""

    SAFE_HARBOR = "safe-harbor"
    LIMITED_DATA_SET = "limited-data-set"


class OrgType(enum.StrEnum):
    """Kinds of member organization that peer groups are commonly built from."""

    ACUTE_HOSPITAL = "acute-hospital"
    CRITICAL_ACCESS = "critical-access"
    CHILDRENS = "childrens-hospital"
    SPECIALTY = "specialty-hospital"
    CLINIC = "clinic"
    PRACTICE = "practice"


class BedSizeBand(enum.StrEnum):
    """Bed-size bands as hospital registries usually report them."""

    UNDER_100 = "<100"
    FROM_100_TO_299 = "100-299"
    FROM_300_TO_499 = "300-499"
    OVER_500 = "500+"
    NOT_APPLICABLE = "n/a"


class Rurality(enum.StrEnum):
    """Urban or rural location."""

    URBAN = "urban"
    RURAL = "rural"


class Collaborative(CreatedAtMixin, Base):
    """A QI collaborative and its settings: de-identification, cell size, default methods."""

    __tablename__ = "collaboratives"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    deid_profile: Mapped[DeidProfile] = mapped_column(
        enum_column(DeidProfile, name="deid_profile"), default=DeidProfile.SAFE_HARBOR
    )
    #: Counts from 1 to ``min_cell_size - 1`` are suppressed in anything shown about peers.
    min_cell_size: Mapped[int] = mapped_column(default=11)
    #: Figures about peers need at least this many contributing members (else withheld).
    min_contributors: Mapped[int] = mapped_column(default=5, server_default="5")
    #: Method defaults for benchmark runs (funnel method, shrinkage, SPC mode, ...).
    default_methods: Mapped[dict[str, Any]] = mapped_column(default=dict)

    members: Mapped[list[Member]] = relationship(back_populates="collaborative")

    __table_args__ = (
        sa.CheckConstraint("min_cell_size >= 1", name="min_cell_size_positive"),
        sa.CheckConstraint("min_contributors >= 1", name="min_contributors_positive"),
    )


class Member(CreatedAtMixin, Base):
    """A member organization (hospital, clinic, practice) with a stable blinded code."""

    __tablename__ = "members"

    id: Mapped[int] = mapped_column(primary_key=True)
    collaborative_id: Mapped[int] = mapped_column(
        sa.ForeignKey("collaboratives.id", ondelete="RESTRICT"), index=True
    )
    code: Mapped[str] = mapped_column(sa.String(32))
    name: Mapped[str] = mapped_column(sa.String(200))
    #: What peers see instead of the name; never reused, never derived from the name.
    blinded_code: Mapped[str] = mapped_column(sa.String(16))
    org_type: Mapped[OrgType] = mapped_column(enum_column(OrgType, name="org_type"))
    bed_size_band: Mapped[BedSizeBand] = mapped_column(
        enum_column(BedSizeBand, name="bed_size_band")
    )
    beds: Mapped[int | None]
    teaching: Mapped[bool] = mapped_column(default=False)
    rurality: Mapped[Rurality] = mapped_column(enum_column(Rurality, name="rurality"))
    region: Mapped[str] = mapped_column(sa.String(64))
    #: A data use agreement on file allows month of event under a limited data set.
    has_data_use_agreement: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)
    joined_on: Mapped[dt.date | None]

    collaborative: Mapped[Collaborative] = relationship(back_populates="members")
    peer_groups: Mapped[list[PeerGroup]] = relationship(
        secondary="peer_group_members", back_populates="members"
    )

    __table_args__ = (
        sa.UniqueConstraint("collaborative_id", "code"),
        sa.UniqueConstraint("collaborative_id", "blinded_code"),
    )


class PeerGroup(CreatedAtMixin, Base):
    """A coordinator-defined set of members compared with each other."""

    __tablename__ = "peer_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    collaborative_id: Mapped[int] = mapped_column(
        sa.ForeignKey("collaboratives.id", ondelete="RESTRICT"), index=True
    )
    code: Mapped[str] = mapped_column(sa.String(32))
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    #: The attribute filter the group was built from, e.g. ``{"teaching": true}``.
    criteria: Mapped[dict[str, Any]] = mapped_column(default=dict)

    members: Mapped[list[Member]] = relationship(
        secondary="peer_group_members", back_populates="peer_groups"
    )

    __table_args__ = (sa.UniqueConstraint("collaborative_id", "code"),)


peer_group_members = sa.Table(
    "peer_group_members",
    Base.metadata,
    sa.Column(
        "peer_group_id",
        sa.ForeignKey("peer_groups.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("member_id", sa.ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
)
