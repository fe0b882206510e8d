"""Which date encoding, if any, explains the numbers a date column stores.

SQLite has no date type: applications store dates as ISO text, or as numbers in an encoding
only they know (unix seconds or milliseconds, Julian days, Core Data's seconds since
2001-01-01...). A number is not a date unless every value says so: ``auto`` reads a column's
numbers as dates only when *all* of them are plausible under *one* encoding, otherwise it
keeps them as numbers, and the report suggests a casting rule with the dates each encoding
would give. The plausible ranges are disjoint, so at most one encoding can explain a
column:

| encoding | stored as | plausible from | to |
| --- | --- | --- | --- |
| ``unix_seconds`` | integers | 315,532,800 (1980-01-01) | 4,102,444,800 (2100-01-01) |
| ``unix_ms`` | integers | 315,532,800,000 (1980-01-01) | 4,102,444,800,000 (2100-01-01) |
| ``julian_day`` | integers or reals | 2,378,496.5 (1800-01-01) | 2,488,069.5 (2100-01-01) |

``core_data_seconds`` (Apple's reference date 2001-01-01) overlaps ``unix_seconds``, so it is
never guessed: it is only suggested, and used when a casting rule names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

UNIX_EPOCH = datetime(1970, 1, 1)
CORE_DATA_EPOCH = datetime(2001, 1, 1)
JULIAN_UNIX_EPOCH = 2440587.5  # Julian day number of 1970-01-01 00:00 UTC

_FROM, _TO = datetime(1980, 1, 1), datetime(2100, 1, 1)
_UNIX_FROM = int((_FROM - UNIX_EPOCH).total_seconds())
_UNIX_TO = int((_TO - UNIX_EPOCH).total_seconds())
PLAUSIBLE = {  # encoding: (low, high, integers only)
    "unix_seconds": (_UNIX_FROM, _UNIX_TO, True),
    "unix_ms": (_UNIX_FROM * 1000, _UNIX_TO * 1000, True),
    "julian_day": (2378496.5, 2488069.5, False),
}
SUGGESTED = ("unix_seconds", "unix_ms", "julian_day", "core_data_seconds")


@dataclass(frozen=True)
class NumberRange:
    """What a column's numeric values span: how many, the extremes, and whether all are
    integers (measured in SQL over the whole column, see ``planner``)."""

    count: int
    low: float
    high: float
    integers_only: bool


def auto_encoding(numbers: NumberRange) -> str | None:
    """The one encoding under which every number of the column is a plausible date."""
    for encoding, (low, high, integers_only) in PLAUSIBLE.items():
        if (
            numbers.integers_only or not integers_only
        ) and low <= numbers.low <= numbers.high <= high:
            return encoding
    return None


def as_datetime(value: float, encoding: str) -> datetime:
    """``value`` read in a numeric ``encoding``; raises OverflowError/ValueError when the
    result is outside Python's years 1..9999."""
    if encoding == "julian_day":
        return UNIX_EPOCH + timedelta(days=value - JULIAN_UNIX_EPOCH)
    if encoding == "unix_ms":
        return UNIX_EPOCH + timedelta(seconds=value / 1000)
    if encoding == "core_data_seconds":
        return CORE_DATA_EPOCH + timedelta(seconds=value)
    return UNIX_EPOCH + timedelta(seconds=value)


def suggestion(numbers: NumberRange) -> str:
    """What each encoding would make of the column's extremes, for the report: the user
    decides with a casting rule, the tool does not guess."""
    readings = []
    for encoding in SUGGESTED:
        try:
            low, high = as_datetime(numbers.low, encoding), as_datetime(numbers.high, encoding)
        except (OverflowError, ValueError):
            continue
        readings.append(f"{encoding} {low:%Y-%m-%d}..{high:%Y-%m-%d}")
    read = "; as " + ", ".join(readings) if readings else ""
    return (
        f"{numbers.count} numbers from {numbers.low!r} to {numbers.high!r} are not plausible "
        f"dates in one encoding, kept as numbers{read}: if they are dates, add a casting rule "
        "with that date_encoding"
    )
