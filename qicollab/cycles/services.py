"""The learning-cycle workflow: coordinators drive a cycle through its life, members submit.

A cycle moves ``planned -> open -> closed -> locked -> published`` (its pipeline adds
"computed" and "reports rendered" between locked and published); members submit while its
window is open (decided by :mod:`qicollab.schedule.windows`, shared with the submission
pipeline and the API). :class:`CycleService` composes the use cases, each in a module of its
own; every state change is audited in the caller's transaction, and a refused change raises
:class:`~qicollab.cycles.reasons.CycleError` before anything is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qicollab.cycles.jobs import CycleJobs
from qicollab.cycles.planning import Planning
from qicollab.cycles.reopenings import Reopenings
from qicollab.cycles.transitions import Transitions
from qicollab.schedule.clock import clock_of

if TYPE_CHECKING:
    from pyramid.request import Request


class CycleService(Planning, Transitions, Reopenings, CycleJobs):
    """One collaborative's learning cycles, in the caller's transaction (audited)."""


def factory(_context: object, request: Request) -> CycleService:
    """The cycle service of the signed-in user's collaborative, on the request's clock; its
    mail goes after commit."""
    from qicollab.notifications.services import request_notifier  # noqa: PLC0415

    clock = clock_of(request)
    return CycleService(
        request.db,
        request.identity.collaborative_id,
        clock=clock,
        notifier=request_notifier(request, clock),
    )
