"""The job consumer that runs inside ``qicollab serve`` and ``qicollab demo``.

A newcomer's portal must run the jobs its buttons queue, with nothing else to start: unless
``qicollab.queue.consumer`` says ``separate`` (production with ``qicollab worker`` processes),
the web server starts a huey consumer on threads beside waitress, with a heartbeat and the
periodic tasks (reminders).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qicollab.config import as_bool

if TYPE_CHECKING:
    import huey.consumer
    import sqlalchemy as sa

    from qicollab.jobs.queue import JobQueue
    from qicollab.jobs.workers import Heartbeat

log = logging.getLogger(__name__)

#: ``embedded`` (default) or ``separate``.
CONSUMER = "qicollab.queue.consumer"


def wants_embedded(settings: dict[str, Any]) -> bool:
    """The settings ask the web server to consume jobs itself."""
    mode = str(settings.get(CONSUMER) or "embedded").strip().lower()
    if mode not in {"embedded", "separate"}:
        msg = f"{CONSUMER} must be embedded or separate, not {mode!r}"
        raise ValueError(msg)
    return mode == "embedded" and not as_bool(settings.get("qicollab.queue.immediate"))


@dataclass
class EmbeddedConsumer:
    """A running consumer (threads) and its heartbeat; :meth:`stop` ends both."""

    queue: JobQueue
    consumer: huey.consumer.Consumer
    heartbeat: Heartbeat

    def stop(self) -> None:
        """Stop taking jobs (finishing the running ones) and stop beating."""
        self.consumer.stop(graceful=True)
        self.heartbeat.stop()
        self.queue.close()


def start_embedded(
    settings: dict[str, Any], *, engine: sa.Engine | None = None, workers: int = 2
) -> EmbeddedConsumer | None:
    """Start the consumer beside the web server, or None when the settings say separate."""
    if not wants_embedded(settings):
        return None
    from qicollab.jobs.queue import JobQueue  # noqa: PLC0415
    from qicollab.jobs.workers import Heartbeat  # noqa: PLC0415

    queue = JobQueue(settings, engine=engine)
    consumer = queue.create_consumer(workers=workers, worker_type="thread")
    # The web server owns this process's signals (Ctrl-C stops it, then us): huey's handlers
    # would swallow them.
    consumer._set_signal_handlers = lambda: None
    consumer.start()
    heartbeat = Heartbeat(
        queue.session_factory,
        mode="embedded",
        interval=queue.beat_seconds,
        on_beat=queue.reap_stale,
    ).start()
    log.info("embedded job consumer: %d thread(s) on %s", workers, type(queue.huey).__name__)
    return EmbeddedConsumer(queue, consumer, heartbeat)
