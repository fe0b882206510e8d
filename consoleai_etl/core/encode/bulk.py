"""Column-at-a-time forms of the commonest converters, for clean batches.

A batch column of ISO timestamps, 0/1 booleans or short JSON documents is converted by one
C-level ``map`` over the whole column instead of one Python call per value. A bulk form
either returns exactly what the per-value converter would return for every value, or
returns None / raises, and the column is then converted value by value (which also explains
any refusal). The tests compare both forms on the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Context, Decimal, Inexact, InvalidOperation
from operator import attrgetter, methodcaller

from consoleai_etl.core.encode.convert import JSON_CACHE_CHARS, cached_jsonb_form
from consoleai_etl.core.errors import ConversionError
from consoleai_etl.core.types.pgtype import PgType

Bulk = Callable[[Sequence[object]], list | None]
REFUSALS = (ConversionError, ValueError, TypeError, OverflowError, ArithmeticError)

ISO_MICROSECONDS = len("2000-01-01 00:00:00.000000")
_tzinfo = attrgetter("tzinfo")
_as_utc = methodcaller("replace", tzinfo=UTC)


def _naive_moments(values: Sequence[object]) -> list[datetime] | None:
    """ISO text without an offset, parsed; None when any value carries an offset (the
    per-value converter shifts those to UTC) or may be finer than microseconds (longer
    than ``YYYY-MM-DD HH:MM:SS.ffffff``: the per-value converter refuses a rounding).
    Non-text values make ``len`` or ``fromisoformat`` raise."""
    if max(map(len, values), default=0) > ISO_MICROSECONDS:
        return None
    moments = list(map(datetime.fromisoformat, values))
    return None if any(map(_tzinfo, moments)) else moments


def _timestamptz(values: Sequence[object]) -> list[datetime] | None:
    moments = _naive_moments(values)
    return None if moments is None else list(map(_as_utc, moments))


def _date(values: Sequence[object]) -> list[date]:
    return list(map(date.fromisoformat, values))  # refuses any time of day, as wanted


def _boolean(values: Sequence[object]) -> list[bool] | None:
    # 0/1 as SQLite stores booleans; 1.0 == 1, which the per-value converter accepts too.
    return list(map(bool, values)) if set(values) <= {0, 1} else None


def _jsonb(values: Sequence[object]) -> list[str] | None:
    if max(map(len, values), default=0) > JSON_CACHE_CHARS:  # len() refuses non-text
        return None
    return list(map(cached_jsonb_form, values))


_is_finite = methodcaller("is_finite")


def numeric(precision: int | None, scale: int | None) -> Bulk | None:
    """numeric(p,s) from integers and reals: each value's shortest repr (as the per-value
    converter reads it), quantized to the scale in a context of ``precision`` digits that
    traps any rounding (too many decimals) and any overflow (too many integer digits)."""
    if precision is None:
        return None
    exact = Context(prec=precision, traps=[Inexact, InvalidOperation])
    quantize = methodcaller("quantize", Decimal(1).scaleb(-(scale or 0)), context=exact)

    def convert(values: Sequence[object]) -> list[Decimal] | None:
        if not set(map(type, values)) <= {int, float}:
            return None
        numbers = list(map(Decimal, map(repr, values)))
        return list(map(quantize, numbers)) if all(map(_is_finite, numbers)) else None

    return convert


BULK: dict[str, Bulk] = {
    "timestamp": _naive_moments,
    "timestamptz": _timestamptz,
    "date": _date,
    "boolean": _boolean,
    "jsonb": _jsonb,
}


def bulk_for(pg_type: PgType) -> Bulk | None:
    """The bulk form of a wire kind's own type (a retyped family converts value by value)."""
    if pg_type.retyped:
        return None
    if pg_type.kind == "numeric":
        return numeric(pg_type.precision, pg_type.scale)
    return BULK.get(pg_type.kind)
