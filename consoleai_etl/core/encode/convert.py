"""Per-value conversion from SQLite storage classes to the planned PostgreSQL types.

A converter returns the Python value psycopg's binary COPY expects for the target type, or
raises ``ConversionError`` with a reason a person can act on. Converters never round,
truncate or narrow: a value that would change is refused, and its row is quarantined.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Context, Decimal, InvalidOperation
from functools import lru_cache

from consoleai_etl.core.encode.canonical import jsonb_object, jsonb_text, numeric_text
from consoleai_etl.core.errors import ConversionError
from consoleai_etl.core.plan.date_encodings import as_datetime
from consoleai_etl.core.source.connection import InvalidText

Converter = Callable[[object], object]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
JULIAN_MIN, JULIAN_MAX = 1721425.5, 5373484.5  # 0001-01-01 .. 9999-12-31, Python's range
TRUE_TEXT = frozenset({"1", "t", "true", "y", "yes", "on"})
FALSE_TEXT = frozenset({"0", "f", "false", "n", "no", "off"})


def describe(value: object) -> str:
    """A short, safe rendering of a source value for quarantine reasons."""
    if isinstance(value, InvalidText):
        return f"invalid UTF-8 text {bytes(value)[:40]!r}"
    if isinstance(value, bytes):
        return f"BLOB of {len(value)} bytes"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def refuse(value: object, target: str, why: str = "") -> ConversionError:
    return ConversionError(f"{describe(value)} cannot become {target}{': ' + why if why else ''}")


# (pattern, replacement) turning a refusal's reason into its class, "cannot become <target>":
# the reason names the refused value (and the why may too), so a run with thousands of
# refusals in one column would otherwise count thousands of "reasons". The value is a repr
# that may itself hold " cannot become ", hence the greedy start (the target holds no ':').
# The same syntax in Python's ``re`` and PostgreSQL's ``regexp_replace``.
REFUSAL_CLASS = (r"^.* cannot become ([^:]*)(: .*)?$", r"cannot become \1")


def to_bigint(value: object) -> int:
    if type(value) is int:
        return value
    if isinstance(value, float) and value.is_integer() and INT64_MIN <= value <= INT64_MAX:
        return int(value)
    raise refuse(value, "bigint")


def to_double(value: object) -> float:
    if type(value) is float:
        return value
    if type(value) is int:
        converted = float(value)
        if int(converted) == value:
            return converted
        raise refuse(value, "double precision", "integer too large to be exact")
    raise refuse(value, "double precision")


def _shape(number: Decimal) -> tuple[int, int]:
    """(significant decimal places, digits before the point) of a finite Decimal, exactly."""
    _sign, digit_tuple, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    if not digits:
        return 0, 0
    significant = digits.rstrip("0")
    places = max(0, -(exponent + len(digits) - len(significant)))
    return places, max(0, len(digits) + exponent)


_WIDE = Context(prec=2000)


def make_numeric(precision: int | None, scale: int | None) -> Converter:
    target = f"numeric({precision},{scale})" if precision is not None else "numeric"
    quantum = Decimal(1).scaleb(-(scale or 0))

    def to_numeric(value: object) -> Decimal:
        if type(value) is int:
            number = Decimal(value)
        elif type(value) is float:
            # repr() is the shortest decimal that round-trips: what the legacy app showed.
            number = Decimal(repr(value))
        elif isinstance(value, str) and not isinstance(value, InvalidText):
            try:
                number = Decimal(value.strip())
            except InvalidOperation:
                raise refuse(value, target) from None
        else:
            raise refuse(value, target)
        if not number.is_finite():
            if precision is None and not number.is_snan():
                return number
            raise refuse(value, target, "not a finite number")
        if precision is not None:
            places, integer_digits = _shape(number)
            if places > (scale or 0):
                raise refuse(value, target, "more decimal places than the column keeps")
            if integer_digits > precision - (scale or 0):
                raise refuse(value, target, "too many digits before the decimal point")
            # Exact (no digit is lost): sent at the column's scale, as PostgreSQL stores it.
            return number.quantize(quantum, context=_WIDE)
        return number

    return to_numeric


def make_text(max_length: int | None) -> Converter:
    target = f"varchar({max_length})" if max_length else "text"

    def to_text(value: object) -> str:
        if type(value) is str:
            text = value
        elif type(value) is int:
            text = str(value)
        elif type(value) is float:
            text = repr(value)
        else:
            raise refuse(value, target)
        if "\x00" in text:
            raise refuse(value, target, "contains a NUL byte, which PostgreSQL text cannot hold")
        if max_length is not None and len(text) > max_length:
            raise refuse(value, target, f"{len(text)} characters, longer than {max_length}")
        return text

    return to_text


def to_bytea(value: object) -> bytes:
    """BLOBs as they are; text and numbers as the bytes of their text form, which is what
    SQLite's own ``CAST(x AS BLOB)`` gives (the plan warns when a column holds any)."""
    if type(value) is bytes:
        return value
    if isinstance(value, InvalidText):
        return bytes(value)
    if type(value) is str:
        return value.encode("utf-8")
    if type(value) is int:
        return str(value).encode("ascii")
    if type(value) is float:
        return repr(value).encode("ascii")
    raise refuse(value, "bytea")


def to_boolean(value: object) -> bool:
    if type(value) in (int, float) and value in (0, 1):
        return bool(value)
    if type(value) is str:
        word = value.strip().lower()
        if word in TRUE_TEXT:
            return True
        if word in FALSE_TEXT:
            return False
    raise refuse(value, "boolean")


_SUB_MICROSECOND = re.compile(r"[.,]\d{6}(\d+)")


def _from_iso(text: str, target: str) -> datetime:
    """ISO-8601 text; a fraction finer than PostgreSQL's microseconds is refused unless its
    extra digits are zeros (Python would drop them, PostgreSQL would round: either way a
    silent change)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise refuse(text, target, "not an ISO-8601 date/time") from None
    if len(text) > 26 and (extra := _SUB_MICROSECOND.search(text)) and extra[1].strip("0"):
        raise refuse(text, target, "finer than microseconds, which PostgreSQL would round")
    return moment


def _parse_datetime(value: object, target: str, encoding: str) -> datetime:
    """ISO-8601 text always; numbers as the date encoding says (``iso`` refuses them).

    ``auto`` reads integers as unix seconds and reals as Julian days (SQLite's own two
    numeric date forms); the planner replaces it by one encoding that explains every
    number of the column, or by ``iso``, before any row is loaded (``date_encodings``)."""
    if type(value) is str:
        return _from_iso(value.strip(), target)
    if type(value) not in (int, float) or not math.isfinite(value) or encoding == "iso":
        raise refuse(value, target)
    if encoding == "auto":
        encoding = "julian_day" if type(value) is float else "unix_seconds"
    if encoding == "julian_day" and not JULIAN_MIN <= value <= JULIAN_MAX:
        raise refuse(value, target, "Julian day out of range")
    try:
        return as_datetime(value, encoding)
    except (OverflowError, ValueError):
        raise refuse(value, target, f"out of range as {encoding}") from None


def make_temporal(kind: str, encoding: str = "auto") -> Converter:
    """A converter to ``date``, ``timestamp`` or ``timestamptz`` for a date encoding."""

    def to_timestamp(value: object) -> datetime:
        moment = _parse_datetime(value, "timestamp", encoding)
        if moment.tzinfo is not None:
            # timestamp without time zone keeps the instant, expressed in UTC.
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return moment

    def to_timestamptz(value: object) -> datetime:
        moment = _parse_datetime(value, "timestamptz", encoding)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    def to_date(value: object) -> date:
        moment = _parse_datetime(value, "date", encoding)
        if moment.time() != time(0) or moment.tzinfo is not None:
            raise refuse(value, "date", "has a time of day that a date would drop")
        return moment.date()

    return {"timestamp": to_timestamp, "timestamptz": to_timestamptz, "date": to_date}[kind]


to_timestamp = make_temporal("timestamp")
to_timestamptz = make_temporal("timestamptz")
to_date = make_temporal("date")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _jsonb_refusal(node: object) -> str | None:
    """Why PostgreSQL jsonb would reject a parsed JSON value: a NUL or a lone surrogate."""
    if isinstance(node, dict):
        return next(filter(None, map(_jsonb_refusal, [*node.keys(), *node.values()])), None)
    if isinstance(node, list):
        return next(filter(None, map(_jsonb_refusal, node)), None)
    if isinstance(node, str):
        if "\x00" in node:
            return "\\u0000 is not allowed in PostgreSQL jsonb"
        try:
            node.encode("utf-8")
        except UnicodeEncodeError:
            return "a lone UTF-16 surrogate escape is not allowed in PostgreSQL jsonb"
    return None


_RISKY_ESCAPE = re.compile(r"\\u(0000|[dD][89a-fA-F])")


class _Fractional(Exception):
    """Raised by the integer-only JSON decoder at the first number with a fraction."""


def _no_fraction(text: str) -> object:
    raise _Fractional


# Built once: json.loads/dumps with options build a new decoder/encoder on every call.
_INTEGER_JSON = json.JSONDecoder(
    parse_constant=_reject_constant, object_pairs_hook=jsonb_object, parse_float=_no_fraction
)
_DECIMAL_JSON = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=Decimal, parse_int=Decimal
)
_C_JSONB_TEXT = json.JSONEncoder(ensure_ascii=False).encode


def _jsonb_form(value: str) -> str:
    # Without fractions or exponents every number is an int, and the C encoder can print
    # the jsonb form; otherwise numbers are parsed as Decimal and printed by hand.
    try:
        try:
            parsed, exact = _INTEGER_JSON.decode(value), True
        except _Fractional:
            parsed, exact = _DECIMAL_JSON.decode(value), False
    except ValueError as exc:
        raise refuse(value, "jsonb", f"invalid JSON ({exc})") from None
    # Only text with a \u0000 or surrogate escape needs the walk over the parsed value.
    if _RISKY_ESCAPE.search(value) and (why := _jsonb_refusal(parsed)):
        raise refuse(value, "jsonb", why)
    return _C_JSONB_TEXT(parsed) if exact else jsonb_text(parsed)


# Legacy JSON columns repeat the same small documents (event payloads, settings, tags), so
# short documents are converted once: a hit costs a C dict lookup instead of a parse and a
# print. Refusals raise and are never cached. At most 8,192 x 1 KiB documents are held.
JSON_CACHE_CHARS = 1024
cached_jsonb_form = lru_cache(maxsize=8192)(_jsonb_form)


def to_json_text(value: object) -> str:
    """JSON text for jsonb, in the form PostgreSQL prints it back (keys ordered, numbers
    parsed as Decimal so every digit is kept): what is sent is what the checksum sees."""
    if type(value) is str:
        if len(value) <= JSON_CACHE_CHARS:
            return cached_jsonb_form(value)
        return _jsonb_form(value)
    if type(value) is int:
        return str(value)
    if type(value) is float and math.isfinite(value):
        return numeric_text(Decimal(repr(value)))
    raise refuse(value, "jsonb")
