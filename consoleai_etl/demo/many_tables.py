"""Generator of a legacy file with many small tables (issue 22's scale case).

    python -m consoleai_etl.demo.many_tables --out data/many.sqlite --tables 1500 --rows 3

Real application databases grow hundreds of tables (one per feature, per plug-in, per
tenant); the per-table cost of a run — DDL, checks, Dagster events — dominates there, not
the rows. Each table has an integer key, a text, a real, a timestamp and a JSON column, and
every tenth table references the one before it, so keys, foreign keys and checksums all run.
The same arguments always produce the same file.
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path


def table_name(index: int) -> str:
    """The name of table ``index`` (1-based): sorted order is creation order."""
    return f"feature_{index:05d}"


def generate(out: Path, tables: int = 1500, rows: int = 3) -> Path:
    """Write ``tables`` tables of ``rows`` rows each into a new SQLite file at ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with sqlite3.connect(out) as db:
        for index in range(1, tables + 1):
            name = table_name(index)
            parent = table_name(index - 1) if index % 10 == 0 else None
            reference = f", parent_id INTEGER REFERENCES {parent}(id)" if parent else ""
            db.execute(
                f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, label TEXT NOT NULL,"
                f" amount REAL, created_at TIMESTAMP, settings JSON{reference})"
            )
            values = [
                (
                    row,
                    f"{name} row {row}",
                    row * 1.5,
                    f"2024-01-{row % 28 + 1:02d} 10:00:00",
                    f'{{"row": {row}}}',
                )
                + ((row,) if parent else ())
                for row in range(1, rows + 1)
            ]
            marks = ", ".join("?" * (6 if parent else 5))
            db.executemany(f"INSERT INTO {name} VALUES ({marks})", values)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tables", type=int, default=1500)
    parser.add_argument("--rows", type=int, default=3)
    args = parser.parse_args()
    generate(args.out, args.tables, args.rows)
    print(f"{args.out}: {args.tables:,} tables of {args.rows:,} rows")


if __name__ == "__main__":
    main()
