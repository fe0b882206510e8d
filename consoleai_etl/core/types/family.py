"""``Family``: what one family of PostgreSQL types knows, registered in one place each.

A family module (``uuids``, ``network``, ``intervals``...) builds one or more ``Family``
values: the names the type answers to (``format_type``'s spelling first), the wire kind its
values travel as, the SQLite storage classes whose values may become it, how a named type
(with its modifiers) becomes a ``PgType``, and the converter of one source value into the
exact form the type holds. ``registry`` collects them; nothing else needs to change to add
a type but a family module and its tests.

A converter returns what the wire kind sends (text in the type's own output form, an int,
a float) or raises ``ConversionError`` saying why (the row is quarantined with it): it never
rounds, truncates or reinterprets a value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from consoleai_etl.core.types.pgtype import STAGED_SQL, PgType

Converter = Callable[[object], object]


class Options(Protocol):
    """The column's casting rule, as far as a family reads it."""

    interval_unit: str | None


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # the wire kind it travels as (``pgtype.WIRE_KINDS``)
    names: tuple[str, ...]  # lower-case type names, format_type's spelling first
    takes: frozenset[str]  # storage classes whose values may become it
    # (type name, modifiers) -> the PgType, or None when the modifiers are not valid.
    make: Callable[[str, tuple[int, ...]], PgType | None]
    # (planned type, rule) -> the per-value converter; None: the wire kind's own converter
    # (``table_plan.converter_for``).
    converter: Callable[[PgType, Options], Converter] | None = None


def fixed(convert: Converter) -> Callable[[PgType, Options], Converter]:
    """The ``converter`` field of a family whose converter is the same for every column."""

    def converter(pg_type: PgType, options: Options) -> Converter:
        return convert

    return converter


def retyped(sql: str, kind: str, converter: Callable[[PgType, Options], Converter]) -> dict:
    """The fields of a family without modifiers, staged as ``kind`` and retyped to ``sql``
    (also its family name)."""

    def make(name: str, modifiers: tuple[int, ...]) -> PgType | None:
        return None if modifiers else PgType(kind, sql, family=sql, staged=STAGED_SQL[kind])

    return {"kind": kind, "make": make, "converter": converter}
