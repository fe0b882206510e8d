"""The ceiling for `make bench`: plain sqlite3 -> psycopg COPY write_row, nothing else.

    python benchmarks/raw_copy.py SOURCE.sqlite DSN

Every table is created with all-text columns and copied in text format, with no
conversion, no checks and no constraints: the fastest a single Python process moves rows.
"""

from __future__ import annotations

import sqlite3
import sys

import psycopg
from psycopg import sql


def main(source: str, dsn: str) -> int:
    src = sqlite3.connect(source)
    src.text_factory = lambda raw: raw.decode("utf-8", "replace")
    tables = [
        name
        for (name,) in src.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    with psycopg.connect(dsn) as pg:
        for table in tables:
            columns = [row[1] for row in src.execute(f'PRAGMA table_info("{table}")')]
            pg.execute(
                sql.SQL("CREATE TABLE {} ({})").format(
                    sql.Identifier(table),
                    sql.SQL(", ").join(
                        sql.SQL("{} text").format(sql.Identifier(c)) for c in columns
                    ),
                )
            )
            cursor = src.execute(f'SELECT * FROM "{table}"')
            with pg.cursor().copy(
                sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(table))
            ) as copy:
                while batch := cursor.fetchmany(5_000):
                    for row in batch:
                        copy.write_row(row)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
