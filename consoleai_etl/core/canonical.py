"""Canonical text of converted values, produced identically in Python and in PostgreSQL SQL.

Checksums hash this text on both sides, so each rule below has a Python half (applied to
the values sent by COPY) and an SQL half (applied to the stored column, cast to the planned
type so a target loaded by another tool is read the same way):

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

A row's canonical text is each value as ``<length>:<text>`` (``~`` for NULL), concatenated;
its hash is the first 64 bits of its MD5, and a table's checksum is the sum of its row
hashes modulo 2**64, so it does not depend on row order.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from hashlib import md5

from psycopg import sql

MOD = 2**64
Canonical = Callable[[object], str]


def numeric_text(value: Decimal) -> str:
    """PostgreSQL's numeric_out for a Decimal: plain notation, no negative zero."""
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return "Infinity" if value > 0 else "-Infinity"
    text = format(value, "f")
    return text[1:] if value == 0 and text.startswith("-") else text


def _jsonb_key(item: tuple[str, object]) -> tuple[int, bytes]:
    key = item[0].encode()
    return len(key), key


def jsonb_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """``object_pairs_hook`` giving jsonb's key order (length, then bytes; last duplicate wins)."""
    return dict(sorted(dict(pairs).items(), key=_jsonb_key))


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


def row_text_sql(columns: Sequence[tuple[str, sql.Composable]]) -> sql.Composable:
    """SQL for a row's canonical text from (kind, column expression) pairs."""
    parts = []
    for kind, column in columns:
        text = value_sql(kind, column)
        parts.append(sql.SQL("coalesce(length({t})::text || ':' || {t}, '~')").format(t=text))
    return sql.SQL(" || ").join(parts) if parts else sql.SQL("''")


def hash_sql(text: sql.Composable) -> sql.Composable:
    """The signed 64-bit hash of a canonical text, in SQL."""
    return sql.SQL("('x' || substr(md5({}), 1, 16))::bit(64)::bigint").format(text)


def row_hash_sql(columns: Sequence[tuple[str, str]], alias: str = "") -> sql.Composable:
    """SQL for the hash of a row given (kind, PostgreSQL column name) pairs."""

    def ref(name: str) -> sql.Composable:
        column = sql.Identifier(name)
        return sql.SQL("{}.{}").format(sql.Identifier(alias), column) if alias else column

    return hash_sql(row_text_sql([(kind, ref(name)) for kind, name in columns]))


def hash_text(text: str) -> int:
    """The same hash in Python."""
    value = int.from_bytes(md5(text.encode("utf-8")).digest()[:8], "big")
    return value - MOD if value >= 2**63 else value


def row_text(canonicals: Sequence[Canonical], values: Sequence[object]) -> str:
    return "".join(
        [
            "~" if value is None else f"{len(text := canonical(value))}:{text}"
            for canonical, value in zip(canonicals, values, strict=True)
        ]
    )


class RowHasher:
    """Accumulates the order-independent checksum of a stream of converted rows."""

    def __init__(self, kinds: Sequence[str]) -> None:
        self.canonicals = [PYTHON[k] for k in kinds]
        self.rows = 0
        self.total = 0
        self.seconds = 0.0  # time spent in add_many

    def add(self, values: Sequence[object]) -> None:
        self.rows += 1
        self.total += hash_text(row_text(self.canonicals, values))

    def add_many(self, rows: Sequence[Sequence[object]]) -> None:
        started = time.perf_counter()
        canonicals = self.canonicals
        self.total += sum(hash_text(row_text(canonicals, values)) for values in rows)
        self.rows += len(rows)
        self.seconds += time.perf_counter() - started

    @property
    def checksum(self) -> int:
        return self.total % MOD
