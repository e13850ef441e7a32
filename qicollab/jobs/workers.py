"""Who consumes the queue: worker heartbeats, and the warning when jobs wait with no worker.

Every consumer (the one embedded beside ``qicollab serve``, or a ``qicollab worker``) stamps
its row in ``worker_heartbeats`` every :data:`BEAT_SECONDS`; one not heard from for
:data:`STALE_SECONDS` is taken for dead. Queued jobs and no live consumer means nothing will
ever run them, which the portal says to coordinators instead of showing "queued" forever.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from qicollab.db import session_scope, utcnow
from qicollab.jobs.models import Job, JobStatus, WorkerHeartbeat

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

BEAT_SECONDS = 10.0
STALE_SECONDS = 60.0
#: A job queued this recently may simply not have been picked up yet.
GRACE_SECONDS = 30.0


def consumer_name() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    """A daemon thread stamping this consumer's row until :meth:`stop`.

    ``on_beat`` runs after every beat (the queue's reaper of expired task claims)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        mode: str,
        interval: float = BEAT_SECONDS,
        clock: Callable[[], dt.datetime] = utcnow,
        on_beat: Callable[[], object] | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.on_beat = on_beat
        self.mode = mode
        self.interval = interval
        self.clock = clock
        self.name = consumer_name()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qicollab-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        """Register the consumer and start beating."""
        self.beat(started=True)
        self._thread.start()
        return self

    def beat(self, *, started: bool = False) -> None:
        """Stamp ``beat_at`` now (creating the row on the first beat)."""
        now = self.clock()
        with session_scope(self.session_factory) as session:
            row = session.scalar(
                sa.select(WorkerHeartbeat).where(WorkerHeartbeat.name == self.name)
            )
            if row is None:
                row = WorkerHeartbeat(name=self.name, mode=self.mode, started_at=now, beat_at=now)
                session.add(row)
            if started:
                row.started_at, row.mode = now, self.mode
            row.beat_at, row.stopped_at = now, None

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self.beat()
                if self.on_beat is not None:
                    self.on_beat()
            except Exception:  # a busy database must not kill the consumer's heartbeat
                log.exception("worker heartbeat failed")

    def stop(self) -> None:
        """Stop beating and mark the consumer stopped."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)
        try:
            with session_scope(self.session_factory) as session:
                session.execute(
                    sa.update(WorkerHeartbeat)
                    .where(WorkerHeartbeat.name == self.name)
                    .values(stopped_at=self.clock())
                )
        except Exception:
            log.exception("could not mark worker %s stopped", self.name)


@dataclass(frozen=True, slots=True)
class WorkerHealth:
    """Live consumers and waiting jobs, as the portal reports them."""

    live: tuple[str, ...]
    waiting: int
    oldest_wait_seconds: float

    @property
    def stalled(self) -> bool:
        """Jobs wait (past the grace period) and no consumer is alive to run them."""
        return self.waiting > 0 and not self.live and self.oldest_wait_seconds > GRACE_SECONDS

    @property
    def warning(self) -> str | None:
        """What coordinators read when nothing will run the queued jobs."""
        if not self.stalled:
            return None
        jobs = f"{self.waiting} job{'s' if self.waiting != 1 else ''}"
        return (
            f"{jobs} waiting and no worker is running: start one with `qicollab worker`, "
            "or serve with the embedded consumer (qicollab.queue.consumer = embedded)"
        )


def worker_health(
    db: Session, *, collaborative_id: int | None = None, now: dt.datetime | None = None
) -> WorkerHealth:
    """The consumers heard from recently, and the queued jobs (of one collaborative)."""
    now = now or utcnow()
    live = tuple(
        db.scalars(
            sa.select(WorkerHeartbeat.name)
            .where(
                WorkerHeartbeat.beat_at >= now - dt.timedelta(seconds=STALE_SECONDS),
                WorkerHeartbeat.stopped_at.is_(None),
            )
            .order_by(WorkerHeartbeat.name)
        )
    )
    query = sa.select(sa.func.count(), sa.func.min(Job.created_at)).where(
        Job.status == JobStatus.QUEUED
    )
    if collaborative_id is not None:
        query = query.where(Job.collaborative_id == collaborative_id)
    waiting, oldest = db.execute(query).one()
    wait = (now - oldest).total_seconds() if oldest is not None else 0.0
    return WorkerHealth(live=live, waiting=int(waiting or 0), oldest_wait_seconds=wait)
