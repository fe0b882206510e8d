"""json (not jsonb): PostgreSQL keeps a json value's text as it was written (key order,
spacing, duplicate keys), so the source's text is sent unchanged once it is known to be
JSON that PostgreSQL reads; numbers become their JSON text."""

from __future__ import annotations

import json
import math

from consoleai_etl.core.encode.convert import refuse
from consoleai_etl.core.source.connection import InvalidText
from consoleai_etl.core.types.family import Family, fixed, retyped


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def to_json(value: object) -> str:
    if type(value) is int:
        return str(value)
    if type(value) is float and math.isfinite(value):
        return repr(value)
    if type(value) is not str or isinstance(value, InvalidText):
        raise refuse(value, "json")
    if "\x00" in value:
        raise refuse(value, "json", "contains a NUL byte, which PostgreSQL text cannot hold")
    try:
        _DECODER.decode(value)
    except ValueError as exc:
        raise refuse(value, "json", f"invalid JSON ({exc})") from None
    return value


FAMILIES = (
    Family(
        "json", names=("json",), takes=frozenset({"text", "integer", "real"}),
        **retyped("json", "text", fixed(to_json)),
    ),
)  # fmt: skip
