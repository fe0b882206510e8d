"""Measure what a SQLite table really stores: row count and storage classes per column.

SQLite's declared types are advice; ``typeof()`` tells what each value actually is. Counting
all five classes of every column costs five ``typeof`` comparisons per value, so the scan
first checks one guess per column (the class a 100-row sample holds most): when every
non-NULL value is of that class the column is known, and only the columns that surprise get
the full count, in a second scan.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

from consoleai_etl.core.plan.declared import STORAGE_CLASSES
from consoleai_etl.core.source.catalog import Column, Table, sqlite_quote
from consoleai_etl.core.source.connection import open_source

Profile = dict[str, dict[str, int]]
SAMPLE_ROWS = 100
SPLIT_ROWS = 100_000  # from this size the scan is split over two connections


def _guesses(conn: sqlite3.Connection, table: Table) -> list[str]:
    """The most common non-NULL storage class of each column in the first rows."""
    types = ", ".join(f"typeof({sqlite_quote(c.name)})" for c in table.columns)
    rows = conn.execute(
        f"SELECT {types} FROM {sqlite_quote(table.name)} LIMIT {SAMPLE_ROWS}"
    ).fetchall()
    guesses = []
    for classes in zip(*rows, strict=True) if rows else [()] * len(table.columns):
        seen = Counter(cls for cls in classes if cls != "null")
        guesses.append(seen.most_common(1)[0][0] if seen else "text")
    return guesses


def _full_counts(
    conn: sqlite3.Connection, table: Table, columns: list[Column]
) -> dict[str, dict[str, int]]:
    sums = [
        f"sum(typeof({sqlite_quote(c.name)}) = '{cls}')" for c in columns for cls in STORAGE_CLASSES
    ]
    counts = conn.execute(f"SELECT {', '.join(sums)} FROM {sqlite_quote(table.name)}").fetchone()
    width = len(STORAGE_CLASSES)
    return {
        column.name: {
            cls: int(n)
            for cls, n in zip(STORAGE_CLASSES, counts[i * width : (i + 1) * width], strict=True)
            if n
        }
        for i, column in enumerate(columns)
    }


def _guess_counts(
    conn: sqlite3.Connection, table: Table, pairs: list[tuple[Column, str]]
) -> list[tuple[int, int]]:
    """(non-NULL count, count of the guessed class) of each (column, guess)."""
    checks = [
        f"count({(name := sqlite_quote(c.name))}), sum(typeof({name}) = '{guess}')"
        for c, guess in pairs
    ]
    row = conn.execute(f"SELECT {', '.join(checks)} FROM {sqlite_quote(table.name)}").fetchone()
    return [(row[2 * i], row[2 * i + 1] or 0) for i in range(len(pairs))]


def _guess_counts_elsewhere(
    path: str, table: Table, pairs: list[tuple[Column, str]]
) -> list[tuple[int, int]]:
    with closing(open_source(path)) as conn:  # opened in the worker thread that uses it
        return _guess_counts(conn, table, pairs)


def _split_scan(
    conn: sqlite3.Connection, table: Table, pairs: list[tuple[Column, str]], rows: int
) -> list[tuple[int, int]]:
    """``_guess_counts``, on a large table split by columns over two connections: SQLite
    releases the GIL while it scans, and PostgreSQL is idle at this point, so the second
    core halves the scan."""
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    if rows < SPLIT_ROWS or len(pairs) < 2 or not path:
        return _guess_counts(conn, table, pairs)
    half = len(pairs) // 2
    with ThreadPoolExecutor(max_workers=1) as pool:
        second = pool.submit(_guess_counts_elsewhere, path, table, pairs[half:])
        return _guess_counts(conn, table, pairs[:half]) + second.result()


def sample_profile(conn: sqlite3.Connection, table: Table, rows: int) -> Profile:
    """The storage classes of the first ``rows`` rows: a guess, for a load that counts the
    real ones as it streams (``census_profile``) and starts over if the guess was wrong."""
    types = ", ".join(f"typeof({sqlite_quote(c.name)})" for c in table.columns)
    sample = conn.execute(f"SELECT {types} FROM {sqlite_quote(table.name)} LIMIT {rows}")
    counts = [Counter(classes) for classes in zip(*sample.fetchall(), strict=True)]
    return {
        c.name: dict(n)
        for c, n in zip(table.columns, counts or [{}] * len(table.columns), strict=True)
    }


def census_profile(table: Table, census: tuple[tuple[int, ...], ...]) -> Profile:
    """A profile from the compiled reader's counts (``STORAGE_CLASSES`` order per column)."""
    return {
        c.name: {cls: n for cls, n in zip(STORAGE_CLASSES, counts, strict=True) if n}
        for c, counts in zip(table.columns, census, strict=True)
    }


ESTIMATE_CAP = 1_000_000  # rows counted at most by ``size_estimate`` (WITHOUT ROWID tables)


def size_estimate(conn: sqlite3.Connection, table: Table) -> int:
    """About how many rows ``table`` holds, cheaply, to order work by: its largest rowid (one
    b-tree descent, however big the table), or for a WITHOUT ROWID table (or one whose
    columns hide the rowid) a count that stops at ``ESTIMATE_CAP``. Runs on every code
    location load, so never a full count."""
    name = sqlite_quote(table.name)
    if table.rowid_name is None:
        query = f"SELECT count(*) FROM (SELECT 1 FROM {name} LIMIT {ESTIMATE_CAP})"
    else:
        query = f"SELECT coalesce(max({table.rowid_name}), 0) FROM {name}"
    return int(conn.execute(query).fetchone()[0])


def row_count(conn: sqlite3.Connection, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {sqlite_quote(table)}").fetchone()[0]


def profile_table(conn: sqlite3.Connection, table: Table) -> tuple[int, Profile]:
    """(row count, {column: {storage class: count}}) with zero counts left out."""
    total = row_count(conn, table.name)
    pairs = list(zip(table.columns, _guesses(conn, table), strict=True))
    profile: Profile = {}
    surprising = []
    for (column, guess), (non_null, guessed) in zip(
        pairs, _split_scan(conn, table, pairs, total), strict=True
    ):
        if guessed == non_null:
            counts = {guess: non_null, "null": total - non_null}
            profile[column.name] = {cls: n for cls, n in counts.items() if n}
        else:
            surprising.append(column)
    if surprising:
        profile.update(_full_counts(conn, table, surprising))
    return total, {c.name: profile[c.name] for c in table.columns}
