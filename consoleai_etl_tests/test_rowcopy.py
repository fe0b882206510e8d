"""The compiled load stream (``rowcopy``) against the Python one: the same bytes, the same
hashes, for every kind of column and the values at the edges of each."""

from __future__ import annotations

import random
import sqlite3
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from consoleai_etl.core.encode import _rowcopy, rowcopy
from consoleai_etl.core.encode.tuples import SIGNATURE, TRAILER, TupleEncoder, row_hash_sql
from consoleai_etl.core.plan.planner import plan_source
from consoleai_etl.core.run.load import (
    BATCH_ROWS,
    _python_tuples,
    _Stream,
    active_codecs,
)
from consoleai_etl.core.source.catalog import introspect
from consoleai_etl.core.source.connection import open_source, strict_text

COLUMNS = {  # declared type -> values, NULL included
    "INTEGER": [-(2**63), 2**63 - 1, 0, None],
    "REAL": [-0.0, 1e308, 5e-324, float("inf"), 0.1, None],
    "TEXT": ["", "ünï ☃ 𝄞", "x" * 10_000, None],
    "VARCHAR(8)": ["abc", "12345678", None],
    "BLOB": [b"", b"\x00\xff", None],
    "BOOLEAN": [0, 1, None, "true", "false"],
    "DATE": [
        "0001-01-01",
        "1999-12-31",
        "2000-01-01",
        "9999-12-31",
        "2024-02-29",
        None,
        "2024-01-01 00:00:00",
    ],
    "DATETIME": [
        "0001-01-01 00:00:00",
        "1970-01-01 00:00:00.000001",
        "2024-02-29T23:59:59.999999",
        "1999-12-31 23:59:59",
        1_700_000_000,
        None,
        " 2024-01-01 10:00:00 ",
        "2024-01-01 10:00:00.5",
        "2024-01-01T10:00:00.123",
        "2024-01-01 10:00:00+02:00",
        "2024-01-01",
        "9999-12-31 23:59:59.999999",
    ],
    "TIMESTAMPTZ": ["2024-01-01T10:00:00+02:00", "2024-01-01 10:00:00", None],
    "JSON": ['{"b": 1, "a": [1, 2.50]}', "[]", "null", '"\\u00e9"', None, '["' + "x" * 2000 + '"]'],
    "NUMERIC(12, 2)": [1, 2.5, "3.14", -0.0, -1234.5, 9999999999.99, 0.01, None],
    "NUMERIC": [
        "0.0001",
        "-12345678.90123",
        "1E+5",
        "100",
        "0",
        "-0.000",
        "1e-20",
        "12345678901234567890",
        "10000.0001",
        None,
    ],
    "": [1, "two", 3.5, None],  # no declared type: whatever is stored
}


def _source(path: Path, rows: int) -> None:
    """A table with one column per declared type, cycling through each column's values."""
    names = [f"c{i}" for i in range(len(COLUMNS))]
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, "
            + ", ".join(f"{n} {declared}" for n, declared in zip(names, COLUMNS, strict=True))
            + ")"
        )
        conn.executemany(
            f"INSERT INTO t VALUES (?, {', '.join('?' * len(names))})",
            (
                (row, *(values[row % len(values)] for values in COLUMNS.values()))
                for row in range(rows)
            ),
        )


def _both_streams(
    path: Path, pg: psycopg.Connection, pieces: list[bytes] | None = None
) -> tuple[tuple, tuple, list[str]]:
    """(COPY bytes, rows, hash sum) from each stream, and the columns' planned kinds; the
    compiled stream's pieces, as the loader writes them, are appended to ``pieces``."""
    with closing(open_source(path)) as src:
        plan = plan_source(src, introspect(src).table("t"), ())
        kinds = [c.pg_type.kind for c in plan.columns]
        active = active_codecs(plan, optimistic=True)
        compiled = TupleEncoder(pg, kinds)
        source = rowcopy.compiled_source(src)
        sent = list(rowcopy.tuples(source, plan, active, compiled, BATCH_ROWS))
        data = b"".join(sent)
        if pieces is not None:
            pieces += sent
        python = _Stream(TupleEncoder(pg, kinds))
        with strict_text(src):
            expected = b"".join(_python_tuples(src, plan, python, active))
    return (
        (data, compiled.rows, compiled.total % 2**64),
        (expected, python.encoder.rows, python.encoder.total % 2**64),
        kinds,
    )


def test_compiled_and_python_streams_send_and_hash_the_same_bytes(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = tmp_path / "kinds.sqlite"
    rows = BATCH_ROWS + 77  # two batches, the second partial
    _source(db, rows)
    with psycopg.connect(pg_dsn) as pg:
        compiled, python, kinds = _both_streams(db, pg)
    assert {"bigint", "double", "text", "bytea", "boolean", "date", "timestamp",
            "timestamptz", "jsonb", "numeric"} <= set(kinds)  # fmt: skip
    assert compiled[1:] == python[1:] == (rows, python[2])
    assert compiled[0] == python[0]


MIB = 2**20
# Sizes of huge values around the compiled reader's thresholds (``_rowcopy.c``: a value over
# BIG_FIELD, 1 MiB, stays in SQLite's memory and goes to COPY in 1 MiB pieces): at and just
# past the threshold, at and past a piece's edge, and at every offset of the hash's 12-byte
# blocks.
HUGE = [MIB, MIB + 1, 2 * MIB, 2 * MIB + 1, 3 * MIB - 1, *(MIB + 12_000 + k for k in range(12))]


def test_huge_values_stream_in_pieces_with_the_same_bytes_and_postgresqls_hashes(
    tmp_path: Path, pg_dsn: str
) -> None:
    """Huge BLOBs and texts, each ending its batch (short rows between them, a row with two,
    NULLs), are sent in pieces no bigger than the reader's, as the Python stream sends them
    whole, and their rows hash as PostgreSQL hashes the stored rows."""
    rng = random.Random(15)
    rows = []
    for i, size in enumerate(HUGE):
        rows += [(rng.randbytes(size), f"row {i}", None), (b"small", "x" * i, "y")]
    rows += [(rng.randbytes(2 * MIB + 5), "two", "é" * MIB), (None, "text", "z" * (MIB + 7))]
    db = tmp_path / "huge.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB, label TEXT, body TEXT)")
        conn.executemany("INSERT INTO t (data, label, body) VALUES (?, ?, ?)", rows)
    pieces: list[bytes] = []
    with psycopg.connect(pg_dsn) as pg:
        compiled, python, kinds = _both_streams(db, pg, pieces)
        assert kinds == ["bigint", "bytea", "text", "text"]
        assert compiled == python and compiled[1] == len(rows)
        assert max(map(len, pieces)) <= MIB + 1024 < 2 * MIB + 5  # never a whole huge value
        pg.execute("CREATE TABLE h (id bigint, data bytea, label text, body text)")
        with pg.cursor().copy("COPY h FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(SIGNATURE + compiled[0] + TRAILER)
        columns = list(zip(kinds, ["id", "data", "label", "body"], strict=True))
        stored = pg.execute(
            sql.SQL("SELECT id, data, label, body, {} FROM h ORDER BY id").format(
                row_hash_sql(columns)
            )
        ).fetchall()
        hashes = TupleEncoder(pg, kinds).hashes([row[:-1] for row in stored])
    assert [row[1:-1] for row in stored] == rows
    assert hashes == [row[-1] for row in stored]  # the hash of rows fed in pieces
    assert sum(hashes) % 2**64 == compiled[2]


def test_an_empty_table_streams_nothing(tmp_path: Path, pg_dsn: str) -> None:
    db = tmp_path / "empty.sqlite"
    _source(db, 0)
    with psycopg.connect(pg_dsn) as pg:
        compiled, python, _ = _both_streams(db, pg)
    assert compiled == python == (b"", 0, 0)


def test_a_value_the_plan_did_not_expect_is_refused_by_name(tmp_path: Path, pg_dsn: str) -> None:
    """The source changed after it was profiled: an INTEGER column now holds TEXT."""
    db = tmp_path / "changed.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)")
        conn.execute("INSERT INTO t VALUES (1, 10)")
    with closing(open_source(db)) as src, psycopg.connect(pg_dsn) as pg:
        plan = plan_source(src, introspect(src).table("t"), ())
        with closing(sqlite3.connect(db)) as conn, conn:
            conn.execute("INSERT INTO t VALUES (2, 'ten')")
        encoder = TupleEncoder(pg, [c.pg_type.kind for c in plan.columns])
        with pytest.raises(rowcopy.UnexpectedValue, match="column n holds a text value"):
            list(rowcopy.tuples(rowcopy.compiled_source(src), plan, [], encoder, BATCH_ROWS))


def test_row_hashes_are_the_ones_postgresql_computes(pg_dsn: str) -> None:
    """Every length of the hash's last block (0-11 bytes), NULL, and several columns."""
    rows = [(n, "é" * (n % 3) + "x" * n if n % 7 else None, -n * 1.5) for n in range(40)]
    with psycopg.connect(pg_dsn) as pg:
        pg.execute("CREATE TABLE h (n bigint, label text, f float8)")
        with pg.cursor().copy("COPY h FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        stored = dict(
            pg.execute(
                sql.SQL("SELECT n, {} FROM h").format(
                    row_hash_sql([("bigint", "n"), ("text", "label"), ("double", "f")])
                )
            ).fetchall()
        )
        hashes = TupleEncoder(pg, ["bigint", "text", "double"]).hashes(rows)
    assert hashes == [stored[n] for n, _, _ in rows]
    assert len(set(hashes)) == len(rows)


def test_numerics_are_encoded_as_psycopg_encodes_them(tmp_path: Path, pg_dsn: str) -> None:
    """Decimals in every notation str() gives them, at the edges of base-10000 digits."""
    values = ["0", "-0", "0.00", "0E-7", "1E+2", "1.5E-7", "-0.0001", "123456789.123456789",
              "9999.9999", "10000", "1E+10", "-5E+3", "1234.5678E-2", "1e-30", "7" * 900 + ".5",
              "NaN", "-Infinity"]  # fmt: skip
    db = tmp_path / "numbers.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [(v,) for v in values])
    with psycopg.connect(pg_dsn) as pg:
        encoder = TupleEncoder(pg, ["numeric"])
        dump = encoder.field_dumper(0)
        reader = _rowcopy.Reader(
            f"{db.as_uri()}?mode=ro", "SELECT x FROM t", ("x",), ("numeric",), encoder.oids,
            (rowcopy.CONVERTED,), (False,), (None,), (dump,), 1000,
        )  # fmt: skip
        (column,) = reader.read(100)
        data, _, _ = reader.encode([[Decimal(v) for v in column]])
    assert data == b"".join(b"\x00\x01" + dump(Decimal(v)) for v in values)
