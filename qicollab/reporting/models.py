"""Rendered report files: where they are, their hash, and the run they describe."""

from __future__ import annotations

import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from qicollab.db import Base, CreatedAtMixin, enum_column


class ReportKind(enum.StrEnum):
    """The documents a run produces."""

    MEMBER = "member"  # one member's benchmark report, peers blinded
    COLLABORATIVE = "collaborative"  # identified, coordinators only
    BLINDED_SUMMARY = "blinded-summary"  # every member may download


class Report(CreatedAtMixin, Base):
    """A PDF in the file store (:mod:`qicollab.storage`); replaced atomically when re-rendered."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(
        sa.ForeignKey("benchmark_runs.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[ReportKind] = mapped_column(enum_column(ReportKind, name="report_kind"))
    member_id: Mapped[int | None] = mapped_column(sa.ForeignKey("members.id"))
    #: Its file store key (``reports/run-<id>/...``).
    path: Mapped[str] = mapped_column(sa.String(500))
    sha256: Mapped[str] = mapped_column(sa.String(64))
    size_bytes: Mapped[int]
    job_id: Mapped[int | None] = mapped_column(sa.ForeignKey("jobs.id"))
    #: ``host:pid`` of the process that rendered it.
    worker: Mapped[str | None] = mapped_column(sa.String(200))

    __table_args__ = (
        sa.UniqueConstraint("run_id", "kind", "member_id"),
        sa.CheckConstraint(
            "(kind = 'member') = (member_id IS NOT NULL)", name="member_report_has_member"
        ),
    )
