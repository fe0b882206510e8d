"""Measure what a SQLite table really stores: row count and storage classes per column.

SQLite's declared types are advice; ``typeof()`` tells what each value actually is. One
scan of the table counts every (column, storage class) pair.
"""

from __future__ import annotations

import sqlite3

from consoleai_etl.core.catalog import Table, sqlite_quote
from consoleai_etl.core.plan import STORAGE_CLASSES


def profile_table(conn: sqlite3.Connection, table: Table) -> tuple[int, dict[str, dict[str, int]]]:
    """(row count, {column: {storage class: count}}) with zero counts left out."""
    sums = [
        f"sum(typeof({sqlite_quote(c.name)}) = '{cls}')"
        for c in table.columns
        for cls in STORAGE_CLASSES
    ]
    row = conn.execute(
        f"SELECT count(*), {', '.join(sums)} FROM {sqlite_quote(table.name)}"
    ).fetchone()
    total, counts = row[0], row[1:]
    profile: dict[str, dict[str, int]] = {}
    for i, column in enumerate(table.columns):
        chunk = counts[i * len(STORAGE_CLASSES) : (i + 1) * len(STORAGE_CLASSES)]
        profile[column.name] = {
            cls: int(n) for cls, n in zip(STORAGE_CLASSES, chunk, strict=True) if n
        }
    return total, profile
