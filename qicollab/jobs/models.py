"""Job records: long work (runs, report batches, big imports) with progress for the portal."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from qicollab.db import Base, CreatedAtMixin, enum_column


class JobStatus(enum.StrEnum):
    """Where a job is."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Job(CreatedAtMixin, Base):
    """One unit of long work; the worker updates progress, the portal and CLI read it."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    collaborative_id: Mapped[int | None] = mapped_column(sa.ForeignKey("collaboratives.id"))
    kind: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[JobStatus] = mapped_column(
        enum_column(JobStatus, name="job_status"), default=JobStatus.QUEUED
    )
    done: Mapped[int] = mapped_column(default=0)
    total: Mapped[int] = mapped_column(default=0)
    message: Mapped[str] = mapped_column(sa.String(500), default="")
    error: Mapped[str | None] = mapped_column(sa.Text)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None]
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    #: ``host:pid`` of the consumer running the job's handler (planning a fanned-out job).
    worker: Mapped[str | None] = mapped_column(sa.String(200))
    #: Renewed by that consumer while its handler runs; once it lapses, the reaper takes the
    #: consumer for dead (a job killed while planning would otherwise stay running forever).
    lease_until: Mapped[dt.datetime | None]

    @property
    def progress(self) -> float:
        """Fraction done, 0 to 1."""
        return min(1.0, self.done / self.total) if self.total else 0.0


class TaskStatus(enum.StrEnum):
    """Where one fanned-out task of a job is."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JobTask(Base):
    """One piece of a fanned-out job (a report, a measure), run by any worker.

    ``(job_id, key)`` is unique, so a piece is planned once; a worker claims it by a
    conditional update (queued, or running with an expired lease -> running, ``attempt`` + 1),
    and records its outcome only while its claim still holds, so a retried piece is recorded
    exactly once. The claimant renews ``lease_until`` while it works; a killed worker's lease
    runs out and any consumer's reaper puts the piece back on the queue.
    """

    __tablename__ = "job_tasks"
    __table_args__ = (sa.UniqueConstraint("job_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    #: What the piece is, unique within the job (``member:12``, ``measure:3``).
    key: Mapped[str] = mapped_column(sa.String(100))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[TaskStatus] = mapped_column(
        enum_column(TaskStatus, name="task_status"), default=TaskStatus.QUEUED, index=True
    )
    #: Claims so far; the current claim's number, checked when the outcome is recorded.
    attempt: Mapped[int] = mapped_column(default=0)
    #: ``host:pid`` of the worker that holds (or last held) the claim.
    worker: Mapped[str | None] = mapped_column(sa.String(200))
    lease_until: Mapped[dt.datetime | None]
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    seconds: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(sa.Text)
    #: The piece's staged result (JSON text), read by the job's final step.
    output: Mapped[str | None] = mapped_column(sa.Text)


class WorkerHeartbeat(Base):
    """A job consumer that is alive: it stamps ``beat_at`` every few seconds while running.

    The portal warns coordinators when jobs wait and no consumer has beaten recently.
    """

    __tablename__ = "worker_heartbeats"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: ``host:pid`` of the consumer process.
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    #: ``embedded`` (beside the web server) or ``worker`` (``qicollab worker``).
    mode: Mapped[str] = mapped_column(sa.String(16))
    started_at: Mapped[dt.datetime]
    beat_at: Mapped[dt.datetime] = mapped_column(index=True)
    stopped_at: Mapped[dt.datetime | None]
