"""The one place types are looked up: a type's name (as ``format_type`` prints it, or as a
casting rule writes it) to its ``PgType``, and a ``PgType`` to its family's facts and
converter. Each family module's ``FAMILIES`` are registered here; enums, domains and arrays
are built from the target's catalog (``target/existing``) or from their element's name.
"""

from __future__ import annotations

import re

from consoleai_etl.core.types import (
    arrays,
    builtin,
    chars,
    domains,
    enums,
    intervals,
    json_text,
    narrow_numbers,
    network,
    times,
    uuids,
)
from consoleai_etl.core.types.family import Converter, Family, Options
from consoleai_etl.core.types.pgtype import PgType

FAMILIES: dict[str, Family] = {}
_BY_NAME: dict[str, Family] = {}
for _module in (builtin, narrow_numbers, chars, json_text, times, intervals, uuids, network):
    for _family in _module.FAMILIES:
        FAMILIES[_family.name] = _family
        _BY_NAME.update(dict.fromkeys(_family.names, _family))

_NAME = re.compile(
    r"^\s*([a-z][a-z0-9_ ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?"
    r"(\s+with(?:out)?\s+time\s+zone)?\s*(\[\s*\])?\s*$",
    re.IGNORECASE,
)


def parse(name: str) -> PgType | None:
    """The type ``name`` spells (``uuid``, ``varchar(20)``, ``numeric(10,2)``, ``text[]``,
    ``time with time zone``...), or None when no registered family has that name or its
    modifiers are not valid (``timestamp(3)`` is refused: its precision would round)."""
    match = _NAME.match(name)
    if not match:
        return None
    base, first, second, zone, brackets = match.groups()
    spelled = " ".join(f"{base} {zone or ''}".lower().split())
    family = _BY_NAME.get(spelled)
    if family is None:
        return None
    modifiers = tuple(int(m) for m in (first, second) if m is not None)
    pg_type = family.make(spelled, modifiers)
    if pg_type is None or not brackets:
        return pg_type
    return arrays.array_type(pg_type)


def family(pg_type: PgType) -> Family | None:
    """The registered family of a type (None for enums, domains and arrays, which are
    built, not registered)."""
    if pg_type.family:
        return FAMILIES.get(pg_type.family)
    return _BY_NAME.get(pg_type.sql.split("(")[0])


def takes(pg_type: PgType) -> frozenset[str]:
    """The SQLite storage classes whose values may become ``pg_type``."""
    if pg_type.family == "domain":
        return takes(domains.base(pg_type))
    if pg_type.family == "enum":
        return enums.TAKES
    if pg_type.family == "array":
        return arrays.TAKES
    found = family(pg_type)
    return found.takes if found else frozenset()


def converter(pg_type: PgType, options: Options, date_encoding: str = "auto") -> Converter:
    """The per-value converter of ``pg_type`` (its family's, else its wire kind's)."""
    if pg_type.family == "domain":
        return converter(domains.base(pg_type), options, date_encoding)
    if pg_type.family == "enum":
        return enums.converter(pg_type, options)
    if pg_type.family == "array":
        element = pg_type.detail[0]
        return arrays.make_array(element, converter(element, options))
    found = FAMILIES.get(pg_type.family) if pg_type.family else None
    if found is not None and found.converter is not None:
        return found.converter(pg_type, options)
    return builtin.converter(pg_type, date_encoding)


def names() -> list[str]:
    """Every registered type name, for messages listing what is supported."""
    return sorted({f.names[0] for f in FAMILIES.values()})
