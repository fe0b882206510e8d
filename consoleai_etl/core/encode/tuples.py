"""Binary COPY tuples: how rows are sent, and what the content checksum hashes.

A row is encoded once, into the binary COPY tuple PostgreSQL receives (field count, then
each field as length + the type's binary ``send`` form, or -1 for NULL): by the compiled
stream (``rowcopy``) or by psycopg's C formatter. The checksum hashes that row as
PostgreSQL hashes a stored one with ``hash_array_extended(ARRAY[record_send(ROW(...))], 0)``:
the row's record form (the same fields, each preceded by its type oid) under PostgreSQL's
64-bit byte hash, computed in C (``_rowcopy``), with no per-value Python work (or, without
the extension, by its pure-Python mirror ``rowhash``, batch by batch). The stored
columns are first cast to the planned types, so a target loaded by another tool (say, with
``real`` where ``double precision`` was due) is read the same way and any narrowing shows.
A table's checksum is the sum of its row hashes modulo 2**64, so it does not depend on
row order.

The loader sends jsonb as text in PostgreSQL's own output form and numerics at the
column's scale, which is what ``jsonb_send`` and ``numeric_send`` return for the stored
values (checked by the tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import psycopg
from psycopg import sql
from psycopg._copy_base import format_row_binary  # C formatter (psycopg pinned in pyproject)
from psycopg.adapt import Dumper, Transformer
from psycopg.postgres import types as pg_types
from psycopg.pq import Format

from consoleai_etl.core.encode import compiled, rowhash

row_hashes = compiled.module.row_hashes if compiled.module else rowhash.row_hashes

MOD = 2**64
SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # header: no flags, no extension
TRAILER = b"\xff\xff"

COPY_TYPES = {  # kind -> the type whose binary format is sent, and stored values are read as
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


class JsonbTextDumper(Dumper):
    """Send JSON *text* as jsonb (version byte + text): no re-serialisation by psycopg."""

    format = Format.BINARY
    oid = pg_types["jsonb"].oid

    def dump(self, obj: str) -> bytes:
        return b"\x01" + obj.encode("utf-8")


class TupleEncoder:
    """Encodes converted rows of the given kinds as binary COPY tuples and sums their hashes.

    ``seconds`` is the time spent hashing alone, so reports can count it as verification.
    """

    def __init__(self, conn: psycopg.Connection, kinds: Sequence[str]) -> None:
        conn.adapters.register_dumper(None, JsonbTextDumper)  # by oid only: COPY use
        self.oids = tuple(pg_types[COPY_TYPES[k]].oid for k in kinds)
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
        return list(row_hashes(*self._tuples(rows), self.oids)) if rows else []

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
            self.total += sum(row_hashes(out, ends, self.oids))
            self.seconds += time.perf_counter() - started
        self.rows += len(rows)
        return out


def row_hash_sql(columns: Sequence[tuple[str, str]], alias: str = "") -> sql.Composable:
    """SQL for the hash of a stored row, given (kind, PostgreSQL column name) pairs."""
    fields = []
    for kind, name in columns:
        column = sql.Identifier(name)
        ref = sql.SQL("{}.{}").format(sql.Identifier(alias), column) if alias else column
        fields.append(sql.SQL("{}::{}").format(ref, sql.SQL(COPY_TYPES[kind])))
    return sql.SQL("hash_array_extended(ARRAY[record_send(ROW({}))], 0)").format(
        sql.SQL(", ").join(fields)
    )
