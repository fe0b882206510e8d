"""One-dimensional arrays (``text[]``, ``integer[]``, ``uuid[]``, an enum's array...): from
JSON array text, the usual SQLite form (``["a", "b"]``, ``[1, 2]``, ``null`` elements);
sent as ``array_out`` prints them, each element converted by its own type's converter and
printed as that type prints it. A nested array, an object, or an element its type refuses
is refused, naming the element. Element types whose text depends on the session (dates
and times, intervals) or that have no text form here (bytea, json) are not supported.
"""

from __future__ import annotations

import json
import re
import struct
from decimal import Decimal

from consoleai_etl.core.encode.canonical import numeric_text
from consoleai_etl.core.encode.convert import refuse
from consoleai_etl.core.errors import ConversionError
from consoleai_etl.core.source.connection import InvalidText
from consoleai_etl.core.types.family import Converter
from consoleai_etl.core.types.pgtype import PgType

ELEMENT_KINDS = frozenset({"bigint", "double", "numeric", "text", "boolean"})
TAKES = frozenset({"text"})
_UNSUPPORTED = ("json", "domain", "interval", "time with time zone", "array")
_NEEDS_QUOTES = re.compile(r'[{}",\\\s]')


def array_type(element: PgType) -> PgType | None:
    """``element[]``, or None when arrays of that type are not supported."""
    if element.kind not in ELEMENT_KINDS or element.family in _UNSUPPORTED:
        return None
    return PgType("text", f"{element.sql}[]", family="array", detail=(element,), staged="text")


def float_text(number: float, single: bool) -> str:
    """``float8out``/``float4out``: the shortest digits that read back as the same value,
    in fixed notation for decimal exponents from -4 up to 14 (float4: 5), else
    scientific with a two-digit exponent at least."""
    if number != number:
        return "NaN"
    if number in (float("inf"), float("-inf")):
        return "Infinity" if number > 0 else "-Infinity"
    if single:
        digits = next(
            text
            for places in range(1, 10)
            if struct.unpack("<f", struct.pack("<f", float(text := f"{number:.{places}e}")))[0]
            == number
        )
    else:
        digits = next(
            text for places in range(0, 18) if float(text := f"{number:.{places}e}") == number
        )
    mantissa, exponent = digits.split("e")
    sign = "-" if mantissa.startswith("-") else ""
    figures = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    power = int(exponent)
    if -4 <= power < (6 if single else 15):
        if power >= 0:
            whole = figures[: power + 1].ljust(power + 1, "0")
            fraction = figures[power + 1 :]
        else:
            whole, fraction = "0", "0" * (-power - 1) + figures
        return sign + whole + (f".{fraction}" if fraction else "")
    body = figures[0] + (f".{figures[1:]}" if len(figures) > 1 else "")
    return f"{sign}{body}e{'-' if power < 0 else '+'}{abs(power):02d}"


def _element_text(element: PgType, value: object) -> str:
    if element.kind == "bigint":
        return str(value)
    if element.kind == "double":
        return float_text(value, element.sql == "real")  # type: ignore[arg-type]
    if element.kind == "numeric":
        return numeric_text(value)  # type: ignore[arg-type]
    if element.kind == "boolean":
        return "t" if value else "f"
    return str(value)


def _quoted(text: str) -> str:
    if text == "" or text.upper() == "NULL" or _NEEDS_QUOTES.search(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _source_form(element: PgType, item: object) -> object:
    """A JSON element as the SQLite value the element's converter reads: numbers as
    numbers (a fraction as a float for floating types, as exact text for numeric)."""
    if isinstance(item, Decimal):
        if item == item.to_integral_value() and "." not in str(item) and "E" not in str(item):
            return int(item)
        return float(item) if element.kind == "double" else str(item)
    if isinstance(item, bool):
        if element.kind != "boolean":
            raise ConversionError(f"{item!r} is not a {element.sql}")
        return int(item)
    if isinstance(item, list | dict):
        raise ConversionError("a nested array or object (one-dimensional arrays only)")
    return item


def make_array(element: PgType, convert: Converter) -> Converter:
    target = f"{element.sql}[]"

    def to_array(value: object) -> str:
        if type(value) is not str or isinstance(value, InvalidText):
            raise refuse(value, target, "an array is read from JSON array text")
        try:
            items = json.loads(value, parse_float=Decimal, parse_int=Decimal)
        except ValueError as exc:
            raise refuse(value, target, f"invalid JSON ({exc})") from None
        if not isinstance(items, list):
            raise refuse(value, target, "not a JSON array")
        texts = []
        for position, item in enumerate(items, 1):
            if item is None:
                texts.append("NULL")
                continue
            try:
                converted = convert(_source_form(element, item))
            except ConversionError as exc:
                raise refuse(value, target, f"element {position}: {exc}") from None
            texts.append(_quoted(_element_text(element, converted)))
        return "{" + ",".join(texts) + "}"

    return to_array
