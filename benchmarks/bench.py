"""`make bench`: this product against a raw COPY ceiling and pgloader, on the same SQLite file.

    python benchmarks/bench.py [--scale 20] [--memory-scales 1,4] [--repeat 3] [--pg-dsn DSN]
    python benchmarks/bench.py --huge-mb 200 [--pg-dsn DSN]   (peak RSS with huge values only)

Each measurement runs in its own process against a fresh database, and its peak RSS is that
process's own (GNU time). The host is a noisy VM, so every tool runs ``--repeat`` times,
interleaved, and the run with the median wall time is kept. Results are printed and written to
``benchmarks/results/latest.json``. This is run by hand, never by the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from consoleai_etl.core.plan.planner import plan_source
from consoleai_etl.core.source.catalog import introspect
from consoleai_etl.core.source.connection import open_source
from consoleai_etl.core.target.ddl import create_table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "work"
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


TIME = shutil.which("time", path="/usr/bin:/bin")


def run_measured(command: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``command``; return its wall seconds, peak RSS (MB) and exit code.

    The peak RSS comes from GNU time, which forks the command from its own small process:
    a child forked from this (larger) script would report this script's size as its peak
    when it is smaller (Linux counts the pre-exec image in the child's ``ru_maxrss``).
    """
    with tempfile.NamedTemporaryFile("r") as rss:
        wrapped = [TIME, "-q", "-f", "%M", "-o", rss.name, *command] if TIME else command
        started = time.perf_counter()
        process = subprocess.Popen(
            wrapped, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        peak_kb = int(rss.read().split()[-1]) if TIME else usage.ru_maxrss
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"  ! {command[0]} exited {code}: {stderr[-800:]}", file=sys.stderr)
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak_kb / 1024, 1),
            "exit_code": code}  # fmt: skip


def median_run(runs: list[dict]) -> dict:
    """The run with the median wall time, plus every run's seconds (this VM is noisy)."""
    ordered = sorted(runs, key=lambda run: run["seconds"])
    return {**ordered[len(ordered) // 2], "all_seconds": [run["seconds"] for run in runs]}


class Databases:
    """Fresh databases on one server. Each is dropped before the next is made: left in
    place, a measured run's tables would be autovacuumed during the next measurement."""

    def __init__(self, server: str) -> None:
        self.server, self.names = server, []

    def new(self) -> str:
        self.drop_all()
        name = f"consoleai_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.names.append(name)
        return make_conninfo(self.server, dbname=name)

    def drop_all(self) -> None:
        with psycopg.connect(self.server, autocommit=True) as conn:
            for name in self.names:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        self.names = []


def sample(scale: float) -> Path:
    path = WORK / f"bench-scale{scale:g}.sqlite"
    if not path.exists():
        subprocess.run(
            [sys.executable, "-m", "consoleai_etl.demo.sample", "--out", str(path), "--scale",
             f"{scale:g}"],
            check=True, cwd=REPO,
        )  # fmt: skip
    return path


def source_rows(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return sum(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables)


def product(path: Path, dsn: str, home: Path) -> dict[str, object]:
    """The migration job through the CLI, with ``home`` as its ``DAGSTER_HOME``."""
    reports = Path(tempfile.mkdtemp(dir=home))
    env = {**os.environ, "CONSOLEAI_SQLITE_PATH": str(path), "CONSOLEAI_PG_DSN": dsn,
           "CONSOLEAI_REPORT_DIR": str(reports), "DAGSTER_HOME": str(home)}  # fmt: skip
    measured = run_measured(
        [str(BIN / "dagster"), "job", "execute", "-m", "consoleai_etl", "-j",
         "legacy_migration_job"],
        env,
    )  # fmt: skip
    report = json.loads((reports / "latest.json").read_text())
    # The load phase is the wall time during which some table was loading (profile, stream,
    # keys, foreign keys): the union of the tables' load windows. Two tables are staged at
    # once, so the work done (the sum of the tables' own seconds, waits excluded; hashing
    # the stream counted as verification) can exceed the time elapsed.
    hashing = sum(t["checksum_seconds"] or 0 for t in report["tables"])
    work = sum(t["seconds"] or 0 for t in report["tables"]) - hashing
    verify = sum(t["check_seconds"] or 0 for t in report["tables"]) + hashing
    load = union_seconds([t["load_window"] for t in report["tables"] if t.get("load_window")])
    return {**measured, "status": report["status"], "load_seconds": round(load, 2),
            "load_work_seconds": round(work, 2), "verify_seconds": round(verify, 2)}  # fmt: skip


def union_seconds(windows: list[list[float]]) -> float:
    """Seconds covered by at least one of the [start, end] ``windows``."""
    covered, reach = 0.0, float("-inf")
    for start, end in sorted(windows):
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    return covered


def ceiling(path: Path, dsn: str, *, typed: bool) -> dict[str, object]:
    """Plain sqlite3 -> COPY write_row (text format), no conversion, no checks, no keys.

    ``typed``: into the tables this product creates (their DDL is run here, untimed), so
    PostgreSQL parses every value into its type as any typed migration must; otherwise into
    all-text tables (a reference: the transport alone).
    """
    if typed:
        with closing(open_source(path)) as src, psycopg.connect(dsn) as pg:
            for table in introspect(src).tables:
                pg.execute(create_table(plan_source(src, table, ()), "public"))
    return run_measured([sys.executable, str(HERE / "raw_copy.py"), str(path), dsn])


def pgloader(path: Path, dsn: str) -> dict[str, object] | None:
    binary = shutil.which("pgloader")
    if binary is None:
        print("pgloader is not installed (apt-get install pgloader): its column is skipped")
        return None
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    url = (
        f"pgsql://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}:"
        f"{info.get('port', 5432)}/{info['dbname']}"
    )
    return run_measured([binary, "--quiet", f"sqlite://{path}", url])


MB = 1024 * 1024


def blob_table(path: Path, sizes: list[int]) -> Path:
    """A SQLite file whose table ``blobs`` (id INTEGER PRIMARY KEY, data BLOB) holds one
    random BLOB of each size, in bytes."""
    if not path.exists():
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
            for size in sizes:
                conn.execute("INSERT INTO blobs (data) VALUES (?)", (os.urandom(size),))
    return path


def huge_values(mb: int, databases: Databases, home: Path) -> None:
    """The job's peak RSS on a table of one ``mb`` MB BLOB, then three of a third of it,
    against a tiny table's run (Dagster and the imports), as multiples of the largest value."""
    cases = {"tiny": [16], f"1x{mb}MB": [mb * MB], f"3x{mb // 3}MB": [mb // 3 * MB] * 3}
    baseline = None
    for name, sizes in cases.items():
        run = product(blob_table(WORK / f"huge-values-{name}.sqlite", sizes), databases.new(), home)
        peak, value = run["peak_rss_mb"], max(sizes) / MB
        if baseline is None:
            baseline = peak
            print(f"{name:>10}: {run['status']}, {run['seconds']} s, peak RSS {peak} MB")
            continue
        print(
            f"{name:>10}: {run['status']}, {run['seconds']} s, peak RSS {peak} MB "
            f"({peak / value:.2f}x the value), {peak - baseline:.0f} MB over the tiny table's "
            f"({(peak - baseline) / value:.2f}x the value)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=20.0, help="20 = about 2M rows")
    parser.add_argument("--memory-scales", default="1,4", help="scales for the RSS comparison")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is kept")
    parser.add_argument("--pg-dsn", default=os.environ.get("CONSOLEAI_BENCH_PG_DSN", DEFAULT_DSN))
    parser.add_argument("--huge-mb", type=int, help="only the peak RSS with a BLOB this big")
    args = parser.parse_args(argv)
    WORK.mkdir(exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    databases = Databases(args.pg_dsn)
    # One Dagster instance for the whole bench, as a project keeps its DAGSTER_HOME: the
    # first run creates its storage (timed apart, as "first_run"), the rounds reuse it.
    home = Path(tempfile.mkdtemp(prefix="bench-dagster-home-"))
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    try:
        if args.huge_mb:
            huge_values(args.huge_mb, databases, home)
            return 0
        path = sample(args.scale)
        rows = source_rows(path)
        print(f"benchmark DB {path.name}: {rows:,} rows")
        first_run = product(path, databases.new(), home)
        runs: dict[str, list] = {"product": [], "ceiling": [], "text": [], "pgloader": []}
        for attempt in range(1, args.repeat + 1):  # interleaved, so drift hits all alike
            print(f"round {attempt} of {args.repeat}")
            runs["product"].append(product(path, databases.new(), home))
            runs["ceiling"].append(ceiling(path, databases.new(), typed=True))
            runs["text"].append(ceiling(path, databases.new(), typed=False))
            loader_run = pgloader(path, databases.new())
            if loader_run is not None:
                runs["pgloader"].append(loader_run)
        ours, raw, text = (median_run(runs[k]) for k in ("product", "ceiling", "text"))
        loader = median_run(runs["pgloader"]) if runs["pgloader"] else None
        memory = {}
        for scale in (float(s) for s in args.memory_scales.split(",")):
            memory[f"{scale:g}"] = product(sample(scale), databases.new(), home)["peak_rss_mb"]
    finally:
        databases.drop_all()
        shutil.rmtree(home, ignore_errors=True)
    load_rate = rows / ours["load_seconds"] if ours["load_seconds"] else 0
    results = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "scale": args.scale,
        "rows": rows,
        "rounds": args.repeat,
        "product": {**ours, "rows_per_second": round(rows / ours["seconds"])},
        "product_first_run": first_run,  # the same job creating its Dagster storage
        "product_load_rows_per_second": round(load_rate),
        "verify_share_of_wall": round(ours["verify_seconds"] / ours["seconds"], 3),
        "ceiling": {**raw, "rows_per_second": round(rows / raw["seconds"])},
        "load_vs_ceiling": round(load_rate / (rows / raw["seconds"]), 3),
        "text_ceiling": {**text, "rows_per_second": round(rows / text["seconds"])},
        "load_vs_text_ceiling": round(load_rate / (rows / text["seconds"]), 3),
        "pgloader": loader and {**loader, "rows_per_second": round(rows / loader["seconds"])},
        "product_vs_pgloader_wall": loader and round(ours["seconds"] / loader["seconds"], 3),
        "peak_rss_mb_by_scale": memory,
    }
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
