"""Peak RSS of a migration of huge values: `python benchmarks/huge_value.py [--mb 200]`.

Builds SQLite files of one table (id INTEGER PRIMARY KEY, data BLOB) holding one random
BLOB of ``--mb`` MB, three of ``--mb``/3 MB, and a tiny one (the baseline: Dagster and the
imports), migrates each with the whole job through the CLI into a fresh database, and
prints each process's peak RSS (GNU time) and its excess over the baseline, as a multiple
of the largest value's size. Run by hand, never by the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
from contextlib import closing
from pathlib import Path

from bench import DEFAULT_DSN, REPO, WORK, Databases, product

MB = 1024 * 1024


def blob_table(path: Path, sizes: list[int]) -> Path:
    """A SQLite file whose table ``blobs`` holds one random BLOB of each size, in bytes."""
    if not path.exists():
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
            for size in sizes:
                conn.execute("INSERT INTO blobs (data) VALUES (?)", (os.urandom(size),))
            conn.commit()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=200, help="size of the one big value")
    parser.add_argument("--pg-dsn", default=os.environ.get("CONSOLEAI_BENCH_PG_DSN", DEFAULT_DSN))
    args = parser.parse_args(argv)
    WORK.mkdir(exist_ok=True)
    cases = {
        "tiny": [16],
        f"1x{args.mb}MB": [args.mb * MB],
        f"3x{args.mb // 3}MB": [args.mb // 3 * MB] * 3,
    }
    databases = Databases(args.pg_dsn)
    home = Path(tempfile.mkdtemp(prefix="huge-value-dagster-home-"))
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    try:
        baseline = None
        for name, sizes in cases.items():
            path = blob_table(WORK / f"huge-value-{name}.sqlite", sizes)
            run = product(path, databases.new(), home)
            peak = run["peak_rss_mb"]
            baseline = baseline or peak
            value = max(sizes) / MB
            print(
                f"{name:>10}: {run['status']}, {run['seconds']} s, peak RSS {peak} MB "
                f"({peak / value:.2f}x the value), {peak - baseline:.0f} MB over the baseline "
                f"({(peak - baseline) / value:.2f}x the value)"
            )
    finally:
        databases.drop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
