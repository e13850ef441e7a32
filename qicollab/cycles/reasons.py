"""Free-text reasons (lock, unlock, return, reopening): the one place they are cleaned.

Reasons stay on record and members read them, so every reason any workflow step takes goes
through :func:`clean_reason` before it is stored or sent.
"""

from __future__ import annotations

from qicollab.submissions import identifiers

#: A reason must say something; five letters is the form's floor.
MIN_REASON_CHARS = 5
MAX_REASON_CHARS = 2000


class CycleError(ValueError):
    """A workflow change that cannot be made, with the reason to show."""


def clean_reason(text: str | None, *, field_name: str = "reason", required: bool = True) -> str:
    """A whitespace-normalised reason, long enough to mean something, and not identifying."""
    reason = " ".join((text or "").split())
    if not reason:
        if required:
            article = "an" if field_name[:1] in set("aeiou") else "a"
            msg = f"{article} {field_name} is required"
            raise CycleError(msg)
        return ""
    if len(reason) < MIN_REASON_CHARS:
        msg = f"the {field_name} is too short: say briefly why"
        raise CycleError(msg)
    if len(reason) > MAX_REASON_CHARS:
        msg = f"the {field_name} is longer than {MAX_REASON_CHARS} characters"
        raise CycleError(msg)
    # The de-identification screen; dates and month names are allowed: these reasons talk
    # about the collaborative's calendar ("the March count was late"), not about patients.
    for finding in identifiers.screen_text(reason, dates=False)[:1]:
        msg = (
            f"the {field_name} {finding.message}; reasons stay on record and members read "
            "them, so keep identifiers out"
        )
        raise CycleError(msg)
    return reason
