"""char(n) (``character(n)``, blank-padded) and citext: text types of an application's
schema, from the storage classes text takes (text, integers and reals as their text).

char(n): PostgreSQL pads a value with spaces to n and ignores trailing spaces in it (its
``::text`` cast drops them): a value is sent without them, and refused when more than n
characters are left (PostgreSQL would refuse it too). citext: any text, unchanged.
"""

from __future__ import annotations

from consoleai_etl.core.encode.convert import make_text, refuse
from consoleai_etl.core.types.family import Converter, Family, Options, retyped
from consoleai_etl.core.types.pgtype import PgType


def make_char(length: int) -> Converter:
    target = f"character({length})"
    text = make_text(None)

    def to_char(value: object) -> str:
        trimmed = str(text(value)).rstrip(" ")
        if len(trimmed) > length:
            raise refuse(value, target, f"{len(trimmed)} characters, longer than {length}")
        return trimmed

    return to_char


def _char(pg_type: PgType, options: Options) -> Converter:
    return make_char(pg_type.length or 1)


def _make_char(name: str, modifiers: tuple[int, ...]) -> PgType | None:
    if len(modifiers) > 1 or (modifiers and not 1 <= modifiers[0] <= 10_485_760):
        return None
    length = modifiers[0] if modifiers else 1
    return PgType("text", f"character({length})", length, family="character", staged="text")


def _citext(pg_type: PgType, options: Options) -> Converter:
    return make_text(None)


_TEXT = frozenset({"text", "integer", "real"})
FAMILIES = (
    Family("character", "text", ("character", "char", "bpchar"), _TEXT, _make_char, _char),
    Family("citext", names=("citext",), takes=_TEXT, **retyped("citext", "text", _citext)),
)
