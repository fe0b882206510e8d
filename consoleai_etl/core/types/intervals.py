"""interval: from text PostgreSQL reads the same way (its own output, unit words, ISO 8601
durations, ``HH:MM:SS``) and from numbers in the unit a casting rule names
(``interval_unit``: Django's DurationField, for one, stores microseconds in SQLite);
sent as ``interval_out`` prints it (IntervalStyle ``postgres``, the default).

A value is kept as PostgreSQL keeps one: months, days and microseconds, each on its own
(``1 day`` is not ``24:00:00``). What PostgreSQL would round or spill into another field is
refused: a fraction of a year, month, week, day or hour... (``1.5 days`` becomes
``1 day 12:00:00`` there), or of a second beyond microseconds.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from consoleai_etl.core.encode.convert import refuse
from consoleai_etl.core.source.connection import InvalidText
from consoleai_etl.core.types.family import Converter, Family, Options, retyped
from consoleai_etl.core.types.pgtype import PgType

IntervalUnit = Literal["microseconds", "milliseconds", "seconds"]
INTERVAL_UNITS: tuple[IntervalUnit, ...] = get_args(IntervalUnit)
_PER_UNIT = {"microseconds": 1, "milliseconds": 1_000, "seconds": 1_000_000}
DAY = 86_400_000_000
INT32 = 2**31 - 1
INT64 = 2**63 - 1

# Unit words PostgreSQL reads, as (months, days, microseconds) per one.
_UNITS = {
    "year": (12, 0, 0), "month": (1, 0, 0), "mon": (1, 0, 0), "week": (0, 7, 0),
    "day": (0, 1, 0), "hour": (0, 0, 3_600_000_000), "minute": (0, 0, 60_000_000),
    "min": (0, 0, 60_000_000), "second": (0, 0, 1_000_000), "sec": (0, 0, 1_000_000),
    "y": (12, 0, 0), "d": (0, 1, 0), "h": (0, 0, 3_600_000_000), "m": (0, 0, 60_000_000),
    "s": (0, 0, 1_000_000),
}  # fmt: skip
_WORD = re.compile(r"([+-]?\d+(?:\.\d+)?)\s*([a-z]+?)s?\b")
_CLOCK = re.compile(r"([+-]?)(\d+):(\d{1,2})(?::(\d{1,2})(?:\.(\d+))?)?")
_ISO = re.compile(
    r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
    r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)(?:\.(\d+))?S)?)?"
)


class _Refused(Exception):
    """The text is not an interval this module reads exactly (the message says why)."""


def _micro(fraction: str | None) -> int:
    """Microseconds of a second's decimal fraction; more than six digits is refused,
    unless the extra ones are zeros."""
    digits = fraction or ""
    if digits[6:].strip("0"):
        raise _Refused("finer than microseconds, which PostgreSQL would round")
    return int((digits[:6] or "0").ljust(6, "0"))


def _clock(match: re.Match) -> int:
    sign, hours, minutes, seconds, fraction = match.groups()
    if int(minutes) > 59 or int(seconds or 0) > 59:
        raise _Refused("minutes and seconds run to 59")
    total = ((int(hours) * 60 + int(minutes)) * 60 + int(seconds or 0)) * 1_000_000
    total += _micro(fraction)
    return -total if sign == "-" else total


def _iso(match: re.Match) -> tuple[int, int, int]:
    years, months, weeks, days, hours, minutes, seconds, fraction = (
        match.group(i) for i in range(1, 9)
    )
    number = lambda text: int(text or 0)  # noqa: E731
    micros = ((number(hours) * 60 + number(minutes)) * 60 + number(seconds)) * 1_000_000
    return (
        number(years) * 12 + number(months),
        number(weeks) * 7 + number(days),
        micros + _micro(fraction),
    )


def _words(text: str) -> tuple[int, int, int]:
    """PostgreSQL's own form: ``[@] N unit ... [HH:MM[:SS[.f]]] [ago]``."""
    body = text.removeprefix("@").strip()
    ago = body.endswith(" ago")
    body = body.removesuffix(" ago").replace(",", " ")
    months = days = micros = 0
    clock = _CLOCK.search(body)
    if clock:
        if body[clock.end() :].strip():
            raise _Refused("the clock time must come last")
        micros += _clock(clock)
        body = body[: clock.start()]
    rest = _WORD.sub(" ", body).strip()
    if rest:
        raise _Refused(f"{rest!r} is not an interval part")
    for number, word in _WORD.findall(body):
        unit = _UNITS.get(word) or _UNITS.get(word.rstrip("s"))
        if unit is None:
            raise _Refused(f"unknown unit {word!r}")
        if "." in number and unit[2] != 1_000_000:
            raise _Refused("a fraction of a unit longer than a second, which PostgreSQL spills")
        if "." in number:
            whole, _, fraction = number.partition(".")
            amount = abs(int(whole)) * 1_000_000 + _micro(fraction)
            micros += -amount if number.startswith("-") else amount
            continue
        months += int(number) * unit[0]
        days += int(number) * unit[1]
        micros += int(number) * unit[2]
    if ago:
        months, days, micros = -months, -days, -micros
    return months, days, micros


def parse(text: str) -> tuple[int, int, int]:
    """(months, days, microseconds) of an interval's text; raises ``_Refused``."""
    text = " ".join(text.strip().lower().split())
    if not text:
        raise _Refused("empty")
    if text.startswith("p"):
        match = _ISO.fullmatch(text.upper())
        if not match or text in ("p", "pt") or text.endswith("t"):
            raise _Refused("not an ISO 8601 duration")
        return _iso(match)
    if clock := _CLOCK.fullmatch(text):
        return 0, 0, _clock(clock)
    return _words(text)


def _part(value: int, unit: str, before: bool) -> str:
    sign = "+" if before and value > 0 else ""
    return f"{sign}{value} {unit}{'s' if value != 1 else ''}"


def interval_text(months: int, days: int, micros: int) -> str:
    """``interval_out`` (IntervalStyle postgres) of the three fields."""
    parts, before = [], False
    years, mons = int(months / 12), months - int(months / 12) * 12  # C truncation
    for value, unit in ((years, "year"), (mons, "mon"), (days, "day")):
        if value:
            parts.append(_part(value, unit, before))
            before = before or value < 0
    if micros or not parts:
        sign = "-" if micros < 0 else ("+" if before else "")
        seconds, fraction = divmod(abs(micros), 1_000_000)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        clock = f"{sign}{hour:02d}:{minute:02d}:{second:02d}"
        if fraction:
            clock += f".{fraction:06d}".rstrip("0")
        parts.append(clock)
    return " ".join(parts)


def _checked(value: object, fields: tuple[int, int, int]) -> str:
    months, days, micros = fields
    if abs(months) > INT32 or abs(days) > INT32 or abs(micros) > INT64:
        raise refuse(value, "interval", "out of range")
    return interval_text(months, days, micros)


def make_interval(unit: str | None) -> Converter:
    """The converter: text always; numbers only in a named ``unit`` (``interval_unit``),
    split into days and the rest as a ``timedelta`` is, and refused when a real number has
    a fraction of a microsecond."""

    def to_interval(value: object) -> str:
        if type(value) is str and not isinstance(value, InvalidText):
            try:
                return _checked(value, parse(value))
            except _Refused as exc:
                raise refuse(value, "interval", str(exc)) from None
        if type(value) not in (int, float):
            raise refuse(value, "interval")
        if unit is None:
            raise refuse(
                value, "interval", "a number needs its unit: set interval_unit in a casting rule"
            )
        micros = value * _PER_UNIT[unit]
        if type(micros) is float and not micros.is_integer():
            raise refuse(value, "interval", "a fraction of a microsecond")
        micros = int(micros)
        days = int(micros / DAY)  # toward zero: -1 µs is -00:00:00.000001, not -1 day + ...
        return _checked(value, (0, days, micros - days * DAY))

    return to_interval


def _converter(pg_type: PgType, options: Options) -> Converter:
    return make_interval(options.interval_unit)


FAMILIES = (
    Family(
        "interval", names=("interval",), takes=frozenset({"text", "integer", "real"}),
        **retyped("interval", "text", _converter),
    ),
)  # fmt: skip
