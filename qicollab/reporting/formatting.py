"""Number, status and date wording shared by the portal pages and the printed reports.

One module so that a value reads the same on screen, in the PDF and in the exports: a member
comparing its board report with the portal should never find two roundings of one number.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

#: Shown wherever a number is hidden by the small-cell rule.
SUPPRESSED = "suppressed"
MISSING = "–"


@dataclass(frozen=True, slots=True)
class StatusWords:
    """How an outlier status is said: plainly, and in NSQIP's words."""

    key: str
    plain: str
    nsqip: str
    #: A one-letter mark that survives greyscale printing and screen readers.
    mark: str


STATUSES: dict[str, StatusWords] = {
    "worse": StatusWords("worse", "Worse than expected", "Needs improvement", "W"),
    "as-expected": StatusWords("as-expected", "As expected", "As expected", "="),
    "better": StatusWords("better", "Better than expected", "Exemplary", "B"),
}
UNKNOWN_STATUS = StatusWords("unknown", "Not assessed", "Not assessed", "?")


def status(key: str | None) -> StatusWords:
    """Words for a stored outlier status ("worse", "as-expected", "better", or None)."""
    if key is None:
        return UNKNOWN_STATUS
    normalised = key.strip().lower().replace("_", "-").replace(" ", "-")
    if normalised in {"as expected", "expected", "as-expected", "none", "within"}:
        normalised = "as-expected"
    return STATUSES.get(normalised, UNKNOWN_STATUS)


def is_number(value: object) -> bool:
    """A finite int or float (bool is not a number here)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def finite(value: object) -> float | None:
    """A finite float, or None (NaN and infinities never reach a page)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def decimals_for(magnitude: float) -> int:
    """Enough decimals to tell typical values apart, not so many they look precise."""
    magnitude = abs(magnitude)
    if magnitude >= 100:
        return 0
    if magnitude >= 10:
        return 1
    if magnitude >= 1:
        return 2
    return 3


def number(value: object, digits: int | None = None) -> str:
    """A plain number with thousands separators; the dash for missing."""
    if not is_number(value):
        return MISSING
    numeric = float(value)  # type: ignore[arg-type]
    if digits is None:
        digits = 0 if numeric == int(numeric) and abs(numeric) >= 1 else decimals_for(numeric)
    return f"{numeric:,.{digits}f}"


def count(value: object) -> str:
    """A count (whole number) with thousands separators."""
    if not is_number(value):
        return MISSING
    return f"{round(float(value)):,}"  # type: ignore[arg-type]


def scaled(value: object, multiplier: float) -> float | None:
    """A stored value on the display scale (x100 for percentages, x1000 per 1,000 days)."""
    if not is_number(value):
        return None
    return float(value) * multiplier  # type: ignore[arg-type]


def measure_digits(multiplier: float, typical: float | None) -> int:
    """Decimals for a measure, from a typical display value (the collaborative rate)."""
    if typical is None or not math.isfinite(typical) or typical == 0:
        return 1
    return min(2, decimals_for(typical * multiplier))


def value(raw: object, multiplier: float = 1.0, digits: int = 1, unit: str = "") -> str:
    """A measure value on its display scale, with its unit ("85.2 %", "1.3 per 1,000 line-days")."""
    shown = scaled(raw, multiplier)
    if shown is None:
        return MISSING
    text = f"{shown:,.{digits}f}"
    if unit == "%":
        return f"{text} %"
    return f"{text} {unit}".strip()


def interval(
    low: object, high: object, multiplier: float = 1.0, digits: int = 1, unit: str = ""
) -> str:
    """``low–high`` on the display scale; the dash when either end is missing."""
    lo, hi = scaled(low, multiplier), scaled(high, multiplier)
    if lo is None or hi is None:
        return MISSING
    suffix = " %" if unit == "%" else ""
    return f"{lo:,.{digits}f}–{hi:,.{digits}f}{suffix}"


def ratio(raw: object, digits: int = 2) -> str:
    """An O/E ratio or odds ratio; below 0.1 (or above 1,000) with three significant digits,
    so a small odds ratio never prints as 0.00."""
    if not is_number(raw):
        return MISSING
    value = float(raw)  # type: ignore[arg-type]
    if value != 0 and (abs(value) < 0.1 or abs(value) >= 1000):
        return f"{value:.3g}" if abs(value) >= 1e-4 else f"{value:.2e}"
    return f"{value:.{digits}f}"


def signed(raw: object, multiplier: float = 1.0, digits: int = 1, unit: str = "") -> str:
    """A difference with its sign (distance to the benchmark, change over the cycle)."""
    shown = scaled(raw, multiplier)
    if shown is None:
        return MISSING
    sign = "+" if shown > 0 else ("−" if shown < 0 else "±")
    text = f"{sign}{abs(shown):,.{digits}f}"
    if unit == "%":
        return f"{text} pts"
    return f"{text} {unit}".strip()


def date(value: dt.date | dt.datetime | None) -> str:
    """ISO date (unambiguous across the collaborative's countries)."""
    if value is None:
        return MISSING
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    return value.isoformat()


def datetime(value: dt.datetime | None) -> str:
    """Date and time to the minute, in UTC."""
    if value is None:
        return MISSING
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def percent(raw: object, digits: int = 0) -> str:
    """A fraction as a percentage (completeness)."""
    if not is_number(raw):
        return MISSING
    return f"{float(raw) * 100:.{digits}f} %"  # type: ignore[arg-type]


class Formatter:
    """The functions above as one object, handed to templates as ``fmt``."""

    status = staticmethod(status)
    number = staticmethod(number)
    count = staticmethod(count)
    value = staticmethod(value)
    interval = staticmethod(interval)
    ratio = staticmethod(ratio)
    signed = staticmethod(signed)
    date = staticmethod(date)
    datetime = staticmethod(datetime)
    percent = staticmethod(percent)
    SUPPRESSED = SUPPRESSED
    MISSING = MISSING


FMT = Formatter()


def install(environment: jinja2.Environment) -> None:
    """Make ``fmt`` available to every template of a Jinja2 environment."""
    environment.globals["fmt"] = FMT


def template_globals() -> dict[str, Any]:
    """What portal views add to their template context."""
    return {"fmt": FMT}
