"""Submitted data as append-only versions: aggregate values and de-identified patient rows."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from qicollab.db import Base, CreatedAtMixin, enum_column


class SubmissionSource(enum.StrEnum):
    """The way the data came in."""

    FORM = "form"
    CSV = "csv"
    XLSX = "xlsx"
    API = "api"
    FHIR = "fhir"
    DEMO = "demo"


class SubmissionStatus(enum.StrEnum):
    """Review state of one version; an accepted version is what benchmark runs use."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    RETURNED = "returned"
    SUPERSEDED = "superseded"


class SubmissionBatch(CreatedAtMixin, Base):
    """One upload, form save or API call, which may create versions for several periods."""

    __tablename__ = "submission_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(sa.ForeignKey("members.id"), index=True)
    measure_id: Mapped[int] = mapped_column(sa.ForeignKey("measures.id"), index=True)
    source: Mapped[SubmissionSource] = mapped_column(
        enum_column(SubmissionSource, name="submission_source")
    )
    filename: Mapped[str | None] = mapped_column(sa.String(255))
    #: SHA-256 of the uploaded bytes: the same file posted twice returns the same versions.
    content_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    row_count: Mapped[int] = mapped_column(default=0)
    #: The officer's reason for proceeding despite warnings.
    warning_justification: Mapped[str | None] = mapped_column(sa.Text)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))


class Submission(CreatedAtMixin, Base):
    """One version of a member's data for a measure and period. Never updated in content."""

    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(sa.ForeignKey("members.id", ondelete="RESTRICT"))
    measure_id: Mapped[int] = mapped_column(sa.ForeignKey("measures.id", ondelete="RESTRICT"))
    period_id: Mapped[int] = mapped_column(
        sa.ForeignKey("reporting_periods.id", ondelete="RESTRICT")
    )
    version: Mapped[int]
    status: Mapped[SubmissionStatus] = mapped_column(
        enum_column(SubmissionStatus, name="submission_status")
    )
    #: SHA-256 of the version's canonical content (values or rows).
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    batch_id: Mapped[int | None] = mapped_column(sa.ForeignKey("submission_batches.id"), index=True)
    submitted_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    submitted_at: Mapped[dt.datetime | None]
    #: Why a correction was made (required from version 2 on).
    reason: Mapped[str | None] = mapped_column(sa.Text)
    predecessor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("submissions.id"))
    reviewed_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    reviewed_at: Mapped[dt.datetime | None]
    review_reason: Mapped[str | None] = mapped_column(sa.Text)
    #: The validation warnings the member justified when sending this version (their texts,
    #: as the member read them), so reviewers see what was flagged.
    warnings: Mapped[list[Any] | None]

    aggregate: Mapped[AggregateValue | None] = relationship(back_populates="submission")
    predecessor: Mapped[Submission | None] = relationship(remote_side=[id])

    __table_args__ = (
        sa.UniqueConstraint("member_id", "measure_id", "period_id", "version"),
        sa.Index("ix_submissions_lookup", "measure_id", "period_id", "member_id"),
        sa.CheckConstraint("version >= 1", name="version_positive"),
        sa.CheckConstraint(
            "version = 1 OR predecessor_id IS NOT NULL", name="corrections_have_predecessor"
        ),
    )


class AggregateValue(Base):
    """The counts of an aggregate submission: numerator over denominator, or a mean."""

    __tablename__ = "aggregate_values"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        sa.ForeignKey("submissions.id", ondelete="CASCADE"), unique=True
    )
    numerator: Mapped[float | None]
    denominator: Mapped[float | None]
    exclusions: Mapped[int | None]
    #: For mean measures: the mean (or median) value; ``denominator`` holds the case count.
    value: Mapped[float | None]
    comment: Mapped[str | None] = mapped_column(sa.Text)

    submission: Mapped[Submission] = relationship(back_populates="aggregate")

    __table_args__ = (
        sa.CheckConstraint("denominator IS NULL OR denominator >= 0", name="denominator_non_neg"),
        sa.CheckConstraint("numerator IS NULL OR numerator >= 0", name="numerator_non_neg"),
    )


class PatientRecord(Base):
    """One de-identified case: an opaque key, coarse time, the outcome and its risk factors."""

    __tablename__ = "patient_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Not indexed on its own: the unique (submission_id, case_key) index leads with it, and a
    #: second index would only slow bulk loads (about 5% of a million-row COPY).
    submission_id: Mapped[int] = mapped_column(sa.ForeignKey("submissions.id", ondelete="CASCADE"))
    #: Opaque to the collaborative; meaningful only to the member that made it.
    case_key: Mapped[str] = mapped_column(sa.String(64))
    event_year: Mapped[int]
    #: Only under a limited data set with a data use agreement.
    event_month: Mapped[int | None]
    #: Order of cases within the submission, for sequential charts where allowed.
    sequence: Mapped[int]
    outcome: Mapped[float]
    risk_factors: Mapped[dict[str, Any]]

    __table_args__ = (
        sa.UniqueConstraint("submission_id", "case_key"),
        sa.CheckConstraint(
            "event_month IS NULL OR (event_month BETWEEN 1 AND 12)", name="month_valid"
        ),
    )


class IdempotencyKey(CreatedAtMixin, Base):
    """An API client's ``Idempotency-Key``: a retried request gets the first response."""

    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(sa.String(128))
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    response_status: Mapped[int]
    response_body: Mapped[dict[str, Any]]

    __table_args__ = (sa.UniqueConstraint("user_id", "key"),)
