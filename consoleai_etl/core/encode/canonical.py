"""Canonical text of converted values, the same from Python and from PostgreSQL SQL.

The checksum itself hashes binary COPY tuples (``tuples``); this readable form is what the
divergence locator compares and shows for each differing column:

| kind | canonical text | SQL |
| --- | --- | --- |
| bigint | decimal digits | ``x::bigint::text`` |
| double | the 8 IEEE-754 bytes in hex (so float4 narrowing shows) | ``float8send`` |
| numeric | plain decimal at the column's scale | ``x::numeric::text`` |
| text | the text itself | ``x::text`` |
| bytea | hex | ``encode(x::bytea, 'hex')`` |
| boolean | ``t`` / ``f`` | ``CASE`` |
| date | ``YYYY-MM-DD`` | ``to_char`` |
| timestamp(tz) | ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC for tz) | ``to_char`` |
| jsonb | jsonb's own output (the converter sends that form) | ``x::jsonb::text`` |

It also holds jsonb's text form (``jsonb_text``), which the JSON converter sends.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from psycopg import sql

Canonical = Callable[[object], str]


def numeric_text(value: Decimal) -> str:
    """PostgreSQL's numeric_out for a Decimal: plain notation, no negative zero."""
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return "Infinity" if value > 0 else "-Infinity"
    text = format(value, "f")
    return text[1:] if value == 0 and text.startswith("-") else text


def _jsonb_key(item: tuple[str, object]) -> tuple[int, str]:
    # UTF-8 keeps code point order, so comparing str equals comparing bytes; only the
    # length must be counted in bytes.
    key = item[0]
    return (len(key) if key.isascii() else len(key.encode())), key


def jsonb_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """``object_pairs_hook`` giving jsonb's key order (length, then bytes; last duplicate wins)."""
    unique = dict(pairs)
    return dict(sorted(unique.items(), key=_jsonb_key)) if len(unique) > 1 else unique


def _json_node(node: object) -> str:
    if isinstance(node, dict):
        # jsonb orders keys by length, then bytewise.
        items = sorted(node.items(), key=_jsonb_key)
        return "{" + ", ".join(f"{_json_node(k)}: {_json_node(v)}" for k, v in items) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(map(_json_node, node)) + "]"
    if isinstance(node, str):
        return json.dumps(node, ensure_ascii=False)
    if isinstance(node, Decimal):
        return numeric_text(node)
    return {True: "true", False: "false", None: "null"}[node]  # type: ignore[index]


def jsonb_text(parsed: object) -> str:
    """The text PostgreSQL prints for this parsed JSON (numbers parsed as Decimal)."""
    return _json_node(parsed)


def _timestamp(value: datetime) -> str:
    return value.isoformat(" ", "microseconds")


def _timestamptz(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


PYTHON: dict[str, Canonical] = {
    "bigint": str,
    "double": lambda v: struct.pack(">d", v).hex(),
    "numeric": numeric_text,
    "text": str,
    "bytea": bytes.hex,
    "boolean": lambda v: "t" if v else "f",
    "date": lambda v: v.isoformat(),
    "timestamp": _timestamp,
    "timestamptz": _timestamptz,
    "jsonb": str,
}

_SQL = {
    "bigint": "{}::bigint::text",
    "double": "encode(float8send({}::float8), 'hex')",
    "numeric": "{}::numeric::text",
    "text": "{}::text",
    "bytea": "encode({}::bytea, 'hex')",
    "boolean": "CASE WHEN {}::boolean THEN 't' ELSE 'f' END",
    "date": "to_char({}::date, 'YYYY-MM-DD')",
    "timestamp": "to_char({}::timestamp, 'YYYY-MM-DD HH24:MI:SS.US')",
    "timestamptz": "to_char({}::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')",
    "jsonb": "{}::jsonb::text",
}


def value_sql(kind: str, column: sql.Composable) -> sql.Composable:
    return sql.SQL(_SQL[kind]).format(column)
