"""The wire kinds' own types (bigint, double precision, numeric, text and varchar(n),
bytea, boolean, date, timestamp, timestamptz and jsonb): the types a SQLite
declaration suggests and the load sends natively, their names and converters
(``encode/convert``). Widening between them is the planner's (``planner.WIDER``)."""

from __future__ import annotations

from consoleai_etl.core.encode import convert
from consoleai_etl.core.types.family import Converter, Family
from consoleai_etl.core.types.pgtype import PgType

TEMPORAL_KINDS = frozenset({"date", "timestamp", "timestamptz"})
_BY_KIND = {
    "bigint": convert.to_bigint,
    "double": convert.to_double,
    "bytea": convert.to_bytea,
    "boolean": convert.to_boolean,
    "jsonb": convert.to_json_text,
}


def converter(pg_type: PgType, date_encoding: str = "auto") -> Converter:
    """The converter of a wire kind's type (a date encoding reads numbers as dates)."""
    if pg_type.kind == "numeric":
        return convert.make_numeric(pg_type.precision, pg_type.scale)
    if pg_type.kind == "text":
        return convert.make_text(pg_type.length)
    if pg_type.kind in TEMPORAL_KINDS:
        return convert.make_temporal(pg_type.kind, date_encoding)
    return _BY_KIND[pg_type.kind]


def _plain(kind: str, sql: str):
    def make(name: str, modifiers: tuple[int, ...]) -> PgType | None:
        return None if modifiers else PgType(kind, sql)

    return make


def _numeric(name: str, modifiers: tuple[int, ...]) -> PgType | None:
    if not modifiers:
        return PgType("numeric", "numeric")
    precision, scale = modifiers[0], modifiers[1] if len(modifiers) > 1 else 0
    if len(modifiers) > 2 or not 1 <= precision <= 1000 or not 0 <= scale <= precision:
        return None
    return PgType("numeric", f"numeric({precision},{scale})", None, precision, scale)


def _varchar(name: str, modifiers: tuple[int, ...]) -> PgType | None:
    if not modifiers:
        return PgType("text", "text")
    if len(modifiers) > 1 or not 1 <= modifiers[0] <= 10_485_760:
        return None
    return PgType("text", f"varchar({modifiers[0]})", modifiers[0])


_NUMBERS = frozenset({"integer", "real"})
_ALL = frozenset({"integer", "real", "text", "blob"})
_SCALARS = frozenset({"integer", "real", "text"})
FAMILIES = (
    Family("bigint", "bigint", ("bigint", "int8"), _NUMBERS, _plain("bigint", "bigint")),
    Family(
        "double precision", "double", ("double precision", "float8", "float"), _NUMBERS,
        _plain("double", "double precision"),
    ),
    Family("numeric", "numeric", ("numeric", "decimal"), _NUMBERS, _numeric),
    Family("text", "text", ("text",), _SCALARS, _plain("text", "text")),
    Family("character varying", "text", ("character varying", "varchar"), _SCALARS, _varchar),
    Family("bytea", "bytea", ("bytea",), _ALL, _plain("bytea", "bytea")),
    Family("boolean", "boolean", ("boolean", "bool"), _SCALARS, _plain("boolean", "boolean")),
    Family("date", "date", ("date",), _SCALARS, _plain("date", "date")),
    Family(
        "timestamp", "timestamp", ("timestamp without time zone", "timestamp"), _SCALARS,
        _plain("timestamp", "timestamp"),
    ),
    Family(
        "timestamptz", "timestamptz", ("timestamp with time zone", "timestamptz"), _SCALARS,
        _plain("timestamptz", "timestamptz"),
    ),
    Family("jsonb", "jsonb", ("jsonb",), _SCALARS, _plain("jsonb", "jsonb")),
)  # fmt: skip
