"""time and timetz: from ``HH:MM[:SS[.ffffff]]`` text (timetz with an offset such as
``+02``, ``-03:30`` or ``Z``; none means UTC, as a timestamptz without one does here); sent
as their ``::text`` casts print them. ``24:00:00`` is PostgreSQL's own end of day; a leap
second (``:60``), which PostgreSQL would turn into the next minute, and a fraction finer
than microseconds, which it would round, are refused."""

from __future__ import annotations

import re

from consoleai_etl.core.encode.convert import refuse
from consoleai_etl.core.source.connection import InvalidText
from consoleai_etl.core.types.family import Family, fixed, retyped

_TIME = re.compile(
    r"(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(?:\s*(Z|[+-]\d{1,2}(?::?\d{2}(?::?\d{2})?)?))?"
)
MAX_OFFSET = 15 * 3600 + 59 * 60 + 59  # PostgreSQL's limit for a time zone offset


def _clock(value: object, target: str) -> tuple[str, str | None]:
    """(``HH:MM:SS[.f]`` as PostgreSQL prints it, the offset text or None)."""
    if type(value) is not str or isinstance(value, InvalidText):
        raise refuse(value, target)
    match = _TIME.fullmatch(value.strip())
    if not match:
        raise refuse(value, target, "not a time of day (HH:MM[:SS[.ffffff]])")
    hour, minute, second, fraction, offset = match.groups()
    second = second or "00"
    if int(minute) > 59 or int(second) > 59 or int(hour) > 24:
        raise refuse(value, target, "out of range")
    digits = fraction or ""
    if digits[6:].strip("0"):
        raise refuse(value, target, "finer than microseconds, which PostgreSQL would round")
    digits = digits[:6].rstrip("0")
    if int(hour) == 24 and (int(minute) or int(second) or digits):
        raise refuse(value, target, "out of range")
    clock = f"{int(hour):02d}:{minute}:{second}" + (f".{digits}" if digits else "")
    return clock, offset


def to_time(value: object) -> str:
    clock, offset = _clock(value, "time")
    if offset is not None:
        raise refuse(value, "time", "has a time zone offset that time would drop")
    return clock


def _offset(value: object, offset: str | None) -> str:
    """PostgreSQL's form of an offset: ``+HH``, ``+HH:MM`` or ``+HH:MM:SS``."""
    if offset in (None, "Z"):
        return "+00"
    digits = offset[1:].replace(":", "")
    hours = digits[:-4] if len(digits) > 4 else digits[:-2] if len(digits) > 2 else digits
    rest = digits[len(hours) :]
    minutes, seconds = int(rest[:2] or 0), int(rest[2:4] or 0)
    if minutes > 59 or seconds > 59 or int(hours) * 3600 + minutes * 60 + seconds > MAX_OFFSET:
        raise refuse(value, "timetz", "time zone offset out of range")
    text = f"{offset[0]}{int(hours):02d}"
    if minutes or seconds:
        text += f":{minutes:02d}"
    if seconds:
        text += f":{seconds:02d}"
    return text


def to_timetz(value: object) -> str:
    clock, offset = _clock(value, "timetz")
    return clock + _offset(value, offset)


_TEXT = frozenset({"text"})
FAMILIES = (
    Family(
        "time without time zone", names=("time without time zone", "time"), takes=_TEXT,
        **retyped("time without time zone", "text", fixed(to_time)),
    ),
    Family(
        "time with time zone", names=("time with time zone", "timetz"), takes=_TEXT,
        **retyped("time with time zone", "text", fixed(to_timetz)),
    ),
)  # fmt: skip
