"""The ceilings for `make bench`: plain sqlite3 -> psycopg COPY write_row, nothing else.

    python benchmarks/raw_copy.py SOURCE.sqlite DSN

Rows are copied in text format exactly as sqlite3 returns them: no conversion, no checks,
no keys or indexes. Tables that already exist in the target are copied into as they are
(``bench.py`` creates the product's typed tables beforehand, untimed, for the typed
ceiling); any other table is created with all-text columns (the text ceiling, where
PostgreSQL parses nothing). It imports nothing from the product (importing the package
loads Dagster), and relies on the sample's table and column names being valid PostgreSQL
names as they are.
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
            target = sql.Identifier(table)
            pg.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
                    target,
                    sql.SQL(", ").join(
                        sql.SQL("{} text").format(sql.Identifier(c)) for c in columns
                    ),
                )
            )
            names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
            cursor = src.execute(f'SELECT * FROM "{table}"')
            with pg.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(target, names)) as copy:
                while batch := cursor.fetchmany(5_000):
                    for row in batch:
                        copy.write_row(row)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
