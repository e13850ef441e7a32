"""Benchmark runs over a locked snapshot, and the results they stored."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from qicollab.db import Base, CreatedAtMixin, enum_column


class RunStatus(enum.StrEnum):
    """Lifecycle of a run; only a succeeded run's results are shown."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ResultScope(enum.StrEnum):
    """Whom a stored summary describes."""

    COLLABORATIVE = "collaborative"
    PEER_GROUP = "peer-group"


run_submissions = sa.Table(
    "benchmark_run_submissions",
    Base.metadata,
    sa.Column("run_id", sa.ForeignKey("benchmark_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column(
        "submission_id", sa.ForeignKey("submissions.id", ondelete="RESTRICT"), primary_key=True
    ),
)


class BenchmarkRun(CreatedAtMixin, Base):
    """One computation over an exact set of submission versions with stated settings."""

    __tablename__ = "benchmark_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    collaborative_id: Mapped[int] = mapped_column(
        sa.ForeignKey("collaboratives.id", ondelete="RESTRICT"), index=True
    )
    cycle_id: Mapped[int | None] = mapped_column(sa.ForeignKey("learning_cycles.id"), index=True)
    status: Mapped[RunStatus] = mapped_column(
        enum_column(RunStatus, name="run_status"), default=RunStatus.QUEUED
    )
    #: Method settings used (funnel method, trim, shrinkage, SPC mode, suppression ...).
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: SHA-256 over the sorted submission ids and the settings: equal hashes, equal numbers.
    snapshot_hash: Mapped[str | None] = mapped_column(sa.String(64))
    job_id: Mapped[int | None] = mapped_column(sa.ForeignKey("jobs.id"))
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(sa.Text)


class RiskModelFitRecord(Base):
    """The fitted risk model of a patient-level measure in a run (coefficients, diagnostics)."""

    __tablename__ = "risk_model_fits"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(
        sa.ForeignKey("benchmark_runs.id", ondelete="CASCADE"), index=True
    )
    measure_id: Mapped[int] = mapped_column(sa.ForeignKey("measures.id"))
    family: Mapped[str] = mapped_column(sa.String(16))
    n: Mapped[int]
    events: Mapped[float]
    specification: Mapped[dict[str, Any]]
    coefficients: Mapped[list[Any]]
    diagnostics: Mapped[dict[str, Any]]

    __table_args__ = (sa.UniqueConstraint("run_id", "measure_id"),)


class MeasureSummary(Base):
    """Collaborative or peer-group summary of a measure in a run: distribution, ABC, funnel."""

    __tablename__ = "measure_summaries"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(
        sa.ForeignKey("benchmark_runs.id", ondelete="CASCADE"), index=True
    )
    measure_id: Mapped[int] = mapped_column(sa.ForeignKey("measures.id"))
    scope: Mapped[ResultScope] = mapped_column(enum_column(ResultScope, name="result_scope"))
    peer_group_id: Mapped[int | None] = mapped_column(sa.ForeignKey("peer_groups.id"))
    n_members: Mapped[int]
    observed: Mapped[float | None]
    expected: Mapped[float | None]
    denominator: Mapped[float | None]
    rate: Mapped[float | None]
    abc: Mapped[float | None]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: ``host:pid`` of the process that computed the measure.
    worker: Mapped[str | None] = mapped_column(sa.String(200))

    __table_args__ = (
        sa.Index("ix_measure_summaries_lookup", "run_id", "measure_id", "scope", "peer_group_id"),
        sa.CheckConstraint(
            "(scope = 'peer-group') = (peer_group_id IS NOT NULL)", name="peer_scope_has_group"
        ),
    )


class MemberResult(Base):
    """A member's result for a measure in a run: whole cycle (no period) or one period."""

    __tablename__ = "member_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("benchmark_runs.id", ondelete="CASCADE"))
    measure_id: Mapped[int] = mapped_column(sa.ForeignKey("measures.id"))
    member_id: Mapped[int] = mapped_column(sa.ForeignKey("members.id"))
    period_id: Mapped[int | None] = mapped_column(sa.ForeignKey("reporting_periods.id"))
    observed: Mapped[float | None]
    expected: Mapped[float | None]
    denominator: Mapped[float | None]
    #: The headline value: risk-adjusted rate, or the crude rate of an aggregate measure.
    value: Mapped[float | None]
    ci95_low: Mapped[float | None]
    ci95_high: Mapped[float | None]
    ci998_low: Mapped[float | None]
    ci998_high: Mapped[float | None]
    #: Empirical-Bayes (or reliability-weighted) estimate on the same scale as ``value``.
    shrunk_value: Mapped[float | None]
    #: "worse", "as-expected", "better" (direction-aware) at the alarm limit, or None.
    outlier_status: Mapped[str | None] = mapped_column(sa.String(16))
    decile: Mapped[int | None]
    distance_to_abc: Mapped[float | None]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (
        sa.Index("ix_member_results_lookup", "run_id", "member_id", "measure_id"),
        sa.Index("ix_member_results_measure", "run_id", "measure_id"),
    )


class StoredChart(Base):
    """A computed chart (control chart, CUSUM, VLAD) as JSON, so pages never recompute it."""

    __tablename__ = "stored_charts"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("benchmark_runs.id", ondelete="CASCADE"))
    measure_id: Mapped[int] = mapped_column(sa.ForeignKey("measures.id"))
    member_id: Mapped[int] = mapped_column(sa.ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(sa.String(16))
    payload: Mapped[dict[str, Any]]

    __table_args__ = (sa.UniqueConstraint("run_id", "measure_id", "member_id", "kind"),)
