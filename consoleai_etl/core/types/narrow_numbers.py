"""smallint, integer and real: numbers narrower than the wire kinds they travel as (bigint,
double precision). The converter refuses what the narrower type cannot hold unchanged (an
integer out of its range; a number that float4 would round), so retyping the staged
column afterwards changes no value, and the checksum, which reads the retyped column back
as bigint or double precision, proves it."""

from __future__ import annotations

import struct

from consoleai_etl.core.encode.convert import refuse, to_bigint, to_double
from consoleai_etl.core.errors import ConversionError
from consoleai_etl.core.types.family import Converter, Family, Options, fixed, retyped
from consoleai_etl.core.types.pgtype import PgType

RANGES = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1)}


def make_integer(sql: str) -> Converter:
    low, high = RANGES[sql]

    def to_integer(value: object) -> int:
        try:
            number = to_bigint(value)
        except ConversionError:
            raise refuse(value, sql) from None
        if not low <= number <= high:
            raise refuse(value, sql, f"out of range ({low} .. {high})")
        return number

    return to_integer


def to_real(value: object) -> float:
    try:
        number = to_double(value)
    except ConversionError:
        raise refuse(value, "real") from None
    try:
        single = struct.unpack("<f", struct.pack("<f", number))[0]
    except OverflowError:
        single = None
    if single != number and number == number:  # NaN is NaN in both
        raise refuse(value, "real", "float4 would round it (its column is real)")
    return number


def _integer(pg_type: PgType, options: Options) -> Converter:
    return make_integer(pg_type.sql)


_NUMBERS = frozenset({"integer", "real"})
FAMILIES = (
    Family(
        "smallint", names=("smallint", "int2"), takes=_NUMBERS,
        **retyped("smallint", "bigint", _integer),
    ),
    Family(
        "integer", names=("integer", "int", "int4"), takes=_NUMBERS,
        **retyped("integer", "bigint", _integer),
    ),
    Family(
        "real", names=("real", "float4"), takes=_NUMBERS,
        **retyped("real", "double", fixed(to_real)),
    ),
)  # fmt: skip
