"""Binary COPY tuples: how rows are sent, and what the content checksum hashes.

A row is encoded once, by psycopg's C formatter, into the binary COPY tuple PostgreSQL
receives (field count, then each field as length + the type's binary ``send`` form, or -1
for NULL). The checksum hashes exactly those bytes, so hashing costs one MD5 per row and no
per-value Python work. PostgreSQL rebuilds the same bytes from the stored values with the
types' ``*send`` functions; the column is first cast to the planned type, so a target
loaded by another tool (say, with ``real`` where ``double precision`` was due) is read the
same way and any narrowing shows. A row's hash is the first 64 bits of the MD5 of its
tuple, signed; a table's checksum is the sum of its row hashes modulo 2**64, so it does not
depend on row order.

The loader sends jsonb as text in PostgreSQL's own output form and numerics at the
column's scale, which is what ``jsonb_send`` and ``numeric_send`` return for the stored
values (checked by the tests).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence
from operator import itemgetter, methodcaller

try:  # CPython's own MD5 is faster than OpenSSL's for short inputs (no EVP context per row)
    from _md5 import md5
except ImportError:  # pragma: no cover - CPython built without it
    from hashlib import md5

import psycopg
from psycopg import sql
from psycopg._copy_base import format_row_binary  # C formatter (psycopg pinned in pyproject)
from psycopg.adapt import Dumper, Transformer
from psycopg.postgres import types as pg_types
from psycopg.pq import Format

MOD = 2**64
SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # header: no flags, no extension
TRAILER = b"\xff\xff"

COPY_TYPES = {  # kind -> the type whose binary format is sent
    "bigint": "int8",
    "double": "float8",
    "numeric": "numeric",
    "text": "text",  # varchar(n) has the same binary format as text
    "bytea": "bytea",
    "boolean": "bool",
    "date": "date",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
    "jsonb": "jsonb",
}
_SEND = {
    "bigint": "int8send({}::bigint)",
    "double": "float8send({}::float8)",
    "numeric": "numeric_send({}::numeric)",
    "text": "textsend({}::text)",
    "bytea": "{}::bytea",
    "boolean": "boolsend({}::boolean)",
    "date": "date_send({}::date)",
    "timestamp": "timestamp_send({}::timestamp)",
    "timestamptz": "timestamptz_send({}::timestamptz)",
    "jsonb": "jsonb_send({}::jsonb)",
}


class JsonbTextDumper(Dumper):
    """Send JSON *text* as jsonb (version byte + text): no re-serialisation by psycopg."""

    format = Format.BINARY
    oid = pg_types["jsonb"].oid

    def dump(self, obj: str) -> bytes:
        return b"\x01" + obj.encode("utf-8")


_digest = methodcaller("digest")
_first_8 = itemgetter(slice(0, 8))


def _row_hashes(data: bytearray, ends: list[int]) -> tuple[int, ...]:
    """The hash of each row whose tuple ends at each of ``ends`` in ``data``: slicing,
    hashing and unpacking all run as C-level ``map``s, with no Python call per row."""
    with memoryview(data) as view:
        rows = map(view.__getitem__, map(slice, [0, *ends[:-1]], ends))
        heads = b"".join(map(_first_8, map(_digest, map(md5, rows))))
    return struct.unpack(f">{len(ends)}q", heads)


class TupleEncoder:
    """Encodes converted rows of the given kinds as binary COPY tuples and sums their hashes.

    ``seconds`` is the time spent hashing alone, so reports can count it as verification.
    """

    def __init__(self, conn: psycopg.Connection, kinds: Sequence[str]) -> None:
        conn.adapters.register_dumper(None, JsonbTextDumper)  # by oid only: COPY use
        self.oids = [pg_types[COPY_TYPES[k]].oid for k in kinds]
        self.tx = Transformer(conn)
        self.tx.set_dumper_types(self.oids, Format.BINARY)
        self.rows = 0
        self.total = 0
        self.seconds = 0.0

    def _tuples(self, rows: Sequence[Sequence[object]]) -> tuple[bytearray, list[int]]:
        out, ends = bytearray(), []
        for values in rows:
            format_row_binary(values, self.tx, out)  # appends to ``out``
            ends.append(len(out))
        return out, ends

    def hashes(self, rows: Sequence[Sequence[object]]) -> list[int]:
        """The hash of each row, in order."""
        return list(_row_hashes(*self._tuples(rows))) if rows else []

    def field_dumper(self, position: int) -> Callable[[object], bytes]:
        """One value's COPY field (length, then binary form) for the column at ``position``,
        as psycopg formats it: for values the compiled stream (``rowcopy``) leaves to it."""
        tx = Transformer(self.tx.connection)
        tx.set_dumper_types([self.oids[position]], Format.BINARY)

        def field(value: object) -> bytes:
            out = bytearray()
            format_row_binary((value,), tx, out)
            return bytes(out[2:])  # without the tuple's field count

        return field

    def count(self, rows: int, hash_sum: int, seconds: float) -> None:
        """Add rows encoded and hashed elsewhere (by the compiled stream)."""
        self.rows += rows
        self.total += hash_sum
        self.seconds += seconds

    def encode(self, rows: Sequence[Sequence[object]]) -> bytearray:
        """The COPY data for ``rows``; their hashes are added to the running checksum."""
        out, ends = self._tuples(rows)
        if ends:
            started = time.perf_counter()
            self.total += sum(_row_hashes(out, ends))
            self.seconds += time.perf_counter() - started
        self.rows += len(rows)
        return out


_FIXED_WIDTH = {"bigint": 8, "double": 8, "boolean": 1, "date": 4, "timestamp": 8,
                "timestamptz": 8}  # fmt: skip


def row_hash_sql(columns: Sequence[tuple[str, str]], alias: str = "") -> sql.Composable:
    """SQL for the hash of a stored row, given (kind, PostgreSQL column name) pairs.

    A fixed-width type's length prefix is a constant, so only variable-width values are
    sent twice (once to measure)."""
    fields = [sql.SQL("int2send({}::int2)").format(sql.Literal(len(columns)))]
    for kind, name in columns:
        column = sql.Identifier(name)
        ref = sql.SQL("{}.{}").format(sql.Identifier(alias), column) if alias else column
        sent = sql.SQL(_SEND[kind]).format(ref)
        width = _FIXED_WIDTH.get(kind)
        length = (
            sql.SQL("int4send(octet_length({}))").format(sent)
            if width is None
            else sql.SQL("{}::bytea").format(sql.Literal(f"\\x{width:08x}"))
        )
        fields.append(
            sql.SQL(
                "CASE WHEN {ref} IS NULL THEN '\\xffffffff'::bytea ELSE {length} || {sent} END"
            ).format(ref=ref, sent=sent, length=length)
        )
    return sql.SQL("('x' || substr(md5({}), 1, 16))::bit(64)::bigint").format(
        sql.SQL(" || ").join(fields)
    )
