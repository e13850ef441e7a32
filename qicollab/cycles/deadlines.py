"""Due dates as people read them: "due in 7 days", "3 days past the deadline"."""

from __future__ import annotations

import datetime as dt


def days_until(deadline: dt.datetime, now: dt.datetime) -> int:
    """Calendar days (UTC) from today to the deadline's day; negative once it has passed.

    Counted by dates, not hours, because "due in 10 days" means ten midnights away to the
    person reading it, whatever the time of day.
    """
    return (deadline.astimezone(dt.UTC).date() - now.astimezone(dt.UTC).date()).days


def due_text(deadline: dt.datetime, now: dt.datetime) -> str:
    """The due date as members read it: due in N days, due today, or N days past it."""
    days = days_until(deadline, now)
    if deadline >= now:
        if days <= 0:
            return "due today"
        return f"due in {days} day{'s' if days != 1 else ''}"
    if days >= 0:
        return "the deadline passed today"
    return f"{-days} day{'s' if days != -1 else ''} past the deadline"
