"""What time it is for a request: the real UTC time, unless a test or demo pinned a clock."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qicollab.db import utcnow

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable

    from pyramid.request import Request

#: Tests and demos may pin "now" by registering a clock under this key.
CLOCK_KEY = "qicollab.clock"


def clock_of(request: Request) -> Callable[[], dt.datetime]:
    """The request's clock: the registered one, else the real UTC time."""
    return request.registry.get(CLOCK_KEY) or utcnow
