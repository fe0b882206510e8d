"""`make bench`: this product against its peers and the COPY ceilings, on the same SQLite file.

    python benchmarks/bench.py [--scale 20] [--memory-scales 1,4] [--repeat 3]
                               [--linearity 10] [--many-tables 1500] [--pg-dsn DSN]
    python benchmarks/bench.py --huge-mb 200 [--pg-dsn DSN]   (peak RSS with huge values only)

Measured in each round, interleaved: the full migration job (replace mode) through the
product's own command, ``consoleai-etl migrate``, and once more through Dagster's CLI
(``dagster job execute``: the same job, its start-up and exit are Dagster's); a first
merge into an empty application schema and a no-change re-merge (``consoleai-etl migrate
--mode merge``), and the first merge's floor: a plain ``INSERT ... SELECT`` of the rows it
wrote into the same indexed tables; the typed and text COPY ceilings; pgloader; DuckDB with
its sqlite and postgres extensions (the ``bench`` extra).
Each measurement runs in its own process against a fresh database, and its peak RSS is that
process's own (GNU time). The host is a noisy VM, so every one runs ``--repeat`` times and
the run with the median wall time is kept. ``--linearity N`` also runs the full job once at
the bench scale and once at N times it; ``--many-tables N`` (default 1,500; 0: not) runs it,
and pgloader, once on a file of N tables of 3 rows (``demo/many_tables.py``). Results, with
each goal met or not (``goals``, issue 22), are printed and written to
``benchmarks/results/latest.json``. This is run by hand, never by the test suite.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
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
from timeline import LOAD_WORK, PHASES, STARTUP, breakdown, events, load_work, union_seconds

from consoleai_etl.core.plan.planner import plan_source
from consoleai_etl.core.source.catalog import introspect
from consoleai_etl.core.source.connection import open_source
from consoleai_etl.core.target.ddl import create_table
from consoleai_etl.demo.app_schema import APP_TABLES, create_app_schema
from consoleai_etl.demo.many_tables import generate

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "work"
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
APP_SCHEMA = "consoleai_app"  # the merge target: the application's schema (demo/app_schema.py)
RSS_LIMIT_MB = 300
FLAT_MEMORY = 1.25  # "memory stays flat": peak RSS at N times the rows / at 1x
MANY_TABLES_SECONDS = 60
# pgloader's default heap is exhausted by 1,500 tables (it dies, "Heap exhausted", having
# created the tables empty); 3 GB lets it finish.
PGLOADER_HEAP = ("--dynamic-space-size", "3072")


TIME = shutil.which("time", path="/usr/bin:/bin")


def run_measured(
    command: list[str], env: dict[str, str] | None = None
) -> tuple[dict[str, float], tuple[float, float]]:
    """Run ``command``; return its wall seconds, peak RSS (MB) and exit code, and the Unix
    times it started and ended.

    The peak RSS comes from GNU time, which forks the command from its own small process:
    a child forked from this (larger) script would report this script's size as its peak
    when it is smaller (Linux counts the pre-exec image in the child's ``ru_maxrss``).
    """
    with tempfile.NamedTemporaryFile("r") as rss, tempfile.TemporaryFile() as errors:
        wrapped = [TIME, "-q", "-f", "%M", "-o", rss.name, *command] if TIME else command
        began, started = time.time(), time.perf_counter()
        # stderr to a file: the job logs every event there, and a pipe nobody reads until
        # the exit would block it once full.
        process = subprocess.Popen(
            wrapped, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=errors
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds, ended = time.perf_counter() - started, time.time()
        peak_kb = int(rss.read().split()[-1]) if TIME else usage.ru_maxrss
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(f"  ! {command[0]} exited {code}: {stderr[-800:]}", file=sys.stderr)
    measured = {"seconds": round(seconds, 2), "peak_rss_mb": round(peak_kb / 1024, 1),
                "exit_code": code}  # fmt: skip
    return measured, (began, ended)


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


# The ``settings`` the bench sets, as ``consoleai-etl migrate`` options.
OPTIONS = {"mode": "--mode", "target_schema": "--schema", "report_dir": "--report-dir"}


def job_command(
    path: Path, dsn: str, settings: dict[str, str], *, dagster_cli: bool
) -> tuple[list[str], dict[str, str]]:
    """The command line and the variables added to the environment that run the migration
    job on ``path`` into ``dsn`` with ``settings`` (``OPTIONS``): the product's own command
    with options, or Dagster's CLI, which takes them as ``CONSOLEAI_*`` variables."""
    if not dagster_cli:
        options = [word for name, value in settings.items() for word in (OPTIONS[name], value)]
        return [str(BIN / "consoleai-etl"), "migrate", str(path), dsn, *options], {}
    variables = {"sqlite_path": str(path), "pg_dsn": dsn, **settings}
    return (
        [str(BIN / "dagster"), "job", "execute", "-m", "consoleai_etl", "-j",
         "legacy_migration_job"],
        {f"CONSOLEAI_{name.upper()}": value for name, value in variables.items()},
    )  # fmt: skip


def product(
    path: Path,
    dsn: str,
    home: Path,
    *,
    dagster_cli: bool = False,
    recorded: bool = True,
    **settings: str,
) -> dict[str, object]:
    """The migration job, with ``home`` as its ``DAGSTER_HOME`` (so its event log can be
    read afterwards; not ``recorded``: no ``DAGSTER_HOME``, the command's in-memory
    instance, and no breakdown) and ``settings`` (``OPTIONS``, e.g. ``mode="merge"``; else
    replace): through ``consoleai-etl migrate``, or with ``dagster_cli`` through ``dagster
    job execute``."""
    reports = Path(tempfile.mkdtemp(dir=home))
    settings = {"mode": "replace", **settings, "report_dir": str(reports)}
    command, variables = job_command(path, dsn, settings, dagster_cli=dagster_cli)
    environment = {**os.environ, **variables, "DAGSTER_HOME": str(home)}
    if not recorded:
        del environment["DAGSTER_HOME"]
    measured, (began, ended) = run_measured(command, environment)
    report = json.loads((reports / "latest.json").read_text())
    # The load phase is the wall time during which some table was loading (profile, stream,
    # keys, foreign keys): the union of the tables' load windows. Two tables are staged at
    # once, so the work done (the sum of the tables' own seconds, waits excluded; hashing
    # the stream counted as verification) can exceed the time elapsed.
    work = load_work(report)
    load = union_seconds([t["load_window"] for t in report["tables"] if t.get("load_window")])
    ok = measured["exit_code"] == 0 and recorded  # a failed run has no phases to compare
    spent = breakdown(began, ended, report, events(home, report["run_id"])) if ok else None
    through = "dagster job execute" if dagster_cli else "consoleai-etl migrate"
    result = {**measured, "command": through, "status": report["status"],
              "load_seconds": round(load, 2),
              "load_work_seconds": round(work["stream"] + work["keys"] + work["foreign_keys"], 2),
              "verify_seconds": work["checks"], "breakdown": spent, "load_work": work}  # fmt: skip
    if report["mode"] == "merge":
        merged = [t["merge"] or {} for t in report["tables"]]
        result["merged"] = {
            count: sum(m.get(count, 0) for m in merged)
            for count in ("inserted", "updated", "unchanged")
        }
    return result


def merges(path: Path, dsn: str, home: Path) -> tuple[dict, dict, dict]:
    """A first merge of ``path`` into the application's empty schema (its tables created
    beforehand, untimed), then a merge of the same file again, which changes nothing, then
    the first merge's floor (``insert_select``)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_app_schema(conn, APP_SCHEMA)
    first = product(path, dsn, home, mode="merge", target_schema=APP_SCHEMA)
    again = product(path, dsn, home, mode="merge", target_schema=APP_SCHEMA)
    return first, again, insert_select(dsn)


def insert_select(dsn: str, into: str = "insert_select") -> dict[str, float]:
    """The limit the application's indexes set on a first merge: the rows the merge wrote
    (in ``APP_SCHEMA``), copied by one plain ``INSERT ... SELECT`` per table, parents first,
    in one transaction, into the same application tables created empty in schema ``into``
    (untimed): the same keys, UNIQUEs, indexes and foreign keys to maintain, no staging,
    no comparison, no conversion."""
    with psycopg.connect(dsn) as conn:
        create_app_schema(conn, into)
        started = time.perf_counter()
        with conn.transaction():
            for table in APP_TABLES:
                conn.execute(
                    sql.SQL("INSERT INTO {} SELECT * FROM {}").format(
                        sql.Identifier(into, table), sql.Identifier(APP_SCHEMA, table)
                    )
                )
        return {"seconds": round(time.perf_counter() - started, 2)}


def many_tables(count: int, databases: Databases, home: Path) -> dict:
    """The full job, and pgloader, on a file of ``count`` tables of 3 rows each. The job
    runs as the command does without ``DAGSTER_HOME`` (an in-memory instance): with one,
    Dagster's own SQLite event log, one commit per event (9,000 planned at the run's
    creation, 16,500 more as it records the results), is most of the time (docs/performance.md)."""
    path = WORK / f"many-tables-{count}.sqlite"
    if not path.exists():
        generate(path, tables=count, rows=3)
    print(f"many tables: {count:,} tables of 3 rows")
    return {"tables": count, "product": product(path, databases.new(), home, recorded=False),
            "pgloader": pgloader(path, databases.new(), *PGLOADER_HEAP)}  # fmt: skip


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
    return run_measured([sys.executable, str(HERE / "raw_copy.py"), str(path), dsn])[0]


def pgloader(path: Path, dsn: str, *options: str) -> dict[str, object] | None:
    binary = shutil.which("pgloader")
    if binary is None:
        return None
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    url = (
        f"pgsql://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}:"
        f"{info.get('port', 5432)}/{info['dbname']}"
    )
    return run_measured([binary, "--quiet", *options, f"sqlite://{path}", url])[0]


def duckdb(path: Path, dsn: str) -> dict[str, object] | None:
    """DuckDB's copy of every table (``duckdb_copy.py``), in its own process."""
    if importlib.util.find_spec("duckdb") is None:
        return None
    return run_measured([sys.executable, str(HERE / "duckdb_copy.py"), str(path), dsn])[0]


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 3) if numerator and denominator else None


def goal(name: str, value: float | None, limit: float, *, at_least: bool = False) -> dict:
    """A ratio against its goal; ``met`` is None when it was not measured."""
    met = None if value is None else (value >= limit if at_least else value <= limit)
    return {"ratio": name, "value": value, "goal": f"{'≥' if at_least else '≤'} {limit:g}",
            "met": met}  # fmt: skip


def seconds(run: dict | None) -> float | None:
    """``run``'s wall seconds; infinite if it failed (a goal it cannot meet), None if it did
    not run."""
    return None if run is None else run["seconds"] if run["exit_code"] == 0 else math.inf


def goals(results: dict) -> list[dict]:
    """Issue 22's speed goals, each with its value from ``results`` (None: not measured).
    The first merge is held against its floor twice: the whole command, and its merge
    transaction alone (the breakdown's "promotion"), which is the same work as the floor."""
    scaled, many = results["linearity"], results["many_tables"]
    merged, floor = results["merge_first"], results["insert_select"]
    factor = scaled["factor"] if scaled else 10
    small, large = scaled["runs"].values() if scaled else ({}, {})
    transaction = (merged["breakdown"] or {}).get("promotion")
    ours, loader = (seconds(many["product"]), seconds(many["pgloader"])) if many else (None, None)
    tables = many["tables"] if many else 1500
    return [
        goal("full job / pgloader (wall)", results["product_vs_pgloader_wall"], 0.5),
        goal("full job / DuckDB (wall)", results["product_vs_duckdb_wall"], 3),
        goal(f"{factor:g}x rows: wall / 1x", scaled and scaled["wall_ratio"], factor),
        goal(
            f"{factor:g}x rows: peak RSS / 1x",
            ratio(large.get("peak_rss_mb"), small.get("peak_rss_mb")),
            FLAT_MEMORY,
        ),
        goal("full job's peak RSS, MB, every scale", results["peak_rss_mb"], RSS_LIMIT_MB),
        goal("first merge / INSERT ... SELECT", ratio(merged["seconds"], floor["seconds"]), 1.3),
        goal(
            "first merge's transaction / INSERT ... SELECT",
            ratio(transaction, floor["seconds"]),
            1.3,
        ),
        goal(f"{tables:,} tables: wall s", ours, MANY_TABLES_SECONDS),
        goal(
            f"{tables:,} tables / pgloader",
            ratio(ours, loader),
            1,
        ),
    ]


def read_through(path: Path) -> None:
    """Read ``path`` once, untimed, so that a run finds it in the page cache as the rounds
    do. Cold, this VM reads it at 10-15 MB/s (its cold pages are paged out after a few
    minutes unused), and the preflight's ``PRAGMA quick_check``, which reads the whole
    file, would then stand for most of a 2.7 GB file's run."""
    with path.open("rb") as file:
        while file.read(1 << 20):
            pass


def linearity(scale: float, factor: float, databases: Databases, home: Path) -> dict:
    """The full job once at ``scale`` and once at ``factor`` times it, back to back, each
    with its file in the page cache."""
    runs = {}
    for each in (scale, scale * factor):
        path = sample(each)
        rows = source_rows(path)
        read_through(path)
        print(f"linearity: scale {each:g} ({rows:,} rows)")
        runs[f"{each:g}"] = {"rows": rows, **product(path, databases.new(), home)}
    small, large = runs[f"{scale:g}"], runs[f"{scale * factor:g}"]
    return {"factor": factor, "runs": runs,
            "rows_ratio": ratio(large["rows"], small["rows"]),
            "wall_ratio": ratio(large["seconds"], small["seconds"])}  # fmt: skip


def phase_rows() -> list[tuple[str, str, tuple[str, ...]]]:
    """The breakdown's rows, (label, the run's key holding them, those summed): each phase
    (``breakdown``), the start-up's subtotal after its phases, under the load phase the
    work it is made of (``load_work``, summed over tables: not part of the wall time's
    partition), then the total."""
    rows = [(label, "breakdown", (key,)) for key, label in PHASES]
    rows.insert(len(STARTUP), ("= start-up: process start to the first table loading",
                               "breakdown", STARTUP))  # fmt: skip
    load = next(i for i, (_, _, keys) in enumerate(rows) if keys == ("load",)) + 1
    rows[load:load] = [
        ("  work seconds summed over the tables (2 at a time, not wall):", "load_work", ()),
        *((f"    {label}", "load_work", (key,)) for key, label in LOAD_WORK),
    ]
    return [*rows, ("= total: the wall time", "breakdown", tuple(key for key, _ in PHASES))]


def print_tables(results: dict) -> None:
    rows = results["rows"]
    print(f"\n{rows:,} rows, scale {results['scale']:g}, median of {results['rounds']} rounds")
    print(f"{'':<42} {'wall s':>7} {'rows/s':>10} {'peak RSS MB':>12}")
    for label, key in (
        ("full job (replace), consoleai-etl migrate", "product"),
        ("full job through Dagster's CLI", "product_dagster_cli"),
        ("full job's first run (new Dagster storage)", "product_first_run"),
        ("first merge into an empty app schema", "merge_first"),
        ("no-change re-merge", "merge_again"),
        ("ceiling: COPY into the typed tables", "ceiling"),
        ("text ceiling: COPY into text tables", "text_ceiling"),
        ("pgloader", "pgloader"),
        ("DuckDB (sqlite + postgres extensions)", "duckdb"),
    ):
        run = results[key]
        if run is None:
            print(f"{label:<42} {'not measured':>7}")
        else:
            print(f"{label:<42} {run['seconds']:>7.2f} {rows / run['seconds']:>10,.0f} "
                  f"{run['peak_rss_mb']:>12.1f}")  # fmt: skip
    print("\nwhere the job's time goes, seconds (each the median run):")
    columns = {"full job": "product", "Dagster CLI": "product_dagster_cli",
               "1st merge": "merge_first", "re-merge": "merge_again"}  # fmt: skip
    print(f"  {'':<64}" + "".join(f"{name:>12}" for name in columns))
    for label, part, keys in phase_rows():
        spent = [results[key].get(part) for key in columns.values()]
        cells = [f"{sum(p[k] for k in keys):>12.2f}" if p else f"{'-':>12}" for p in spent]
        print(f"  {label:<64}" + "".join(cells) if keys else f"  {label}")
    for label, spent in (("first merge's floor: INSERT ... SELECT",
                          results["insert_select"]["seconds"]),
                         *many_table_rows(results["many_tables"])):  # fmt: skip
        shown = {None: "not measured", math.inf: "failed"}.get(spent, f"{spent:.2f}")
        print(f"{label:<42} {shown:>7}")
    print("\ngoals (issue 22):")
    for each in results["goals"]:
        verdict = {True: "met", False: "NOT MET", None: "not measured"}[each["met"]]
        value = "-" if each["value"] is None else f"{each['value']:.3g}"
        print(f"  {each['ratio']:<44} {value:>7} {each['goal']:>7}  {verdict}")


def many_table_rows(many: dict | None) -> list[tuple[str, float | None]]:
    """The many-tables runs as (label, ``seconds``)."""
    if not many:
        return []
    name = f"{many['tables']:,} tables of 3 rows"
    return [(f"{name}: consoleai-etl", seconds(many["product"])),
            (f"{name}: pgloader", seconds(many["pgloader"]))]  # fmt: skip


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
    parser.add_argument("--linearity", type=float, default=0,
                        help="also run the job at this many times the scale (0: not)")  # fmt: skip
    parser.add_argument("--many-tables", type=int, default=1500,
                        help="also run the job on a file of this many tables (0: not)")  # fmt: skip
    parser.add_argument("--pg-dsn", default=os.environ.get("CONSOLEAI_BENCH_PG_DSN", DEFAULT_DSN))
    parser.add_argument("--huge-mb", type=int, help="only the peak RSS with a BLOB this big")
    args = parser.parse_args(argv)
    WORK.mkdir(exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    if shutil.which("pgloader") is None:
        print("pgloader is not installed (apt-get install pgloader): its column is skipped")
    if importlib.util.find_spec("duckdb") is None:
        print("DuckDB is not installed (pip install -e '.[bench]'): its column is skipped")
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
        peers = {"product": product,
                 "product_dagster_cli": lambda p, d, h: product(p, d, h, dagster_cli=True),
                 "ceiling": lambda p, d, _: ceiling(p, d, typed=True),
                 "text": lambda p, d, _: ceiling(p, d, typed=False),
                 "pgloader": lambda p, d, _: pgloader(p, d),
                 "duckdb": lambda p, d, _: duckdb(p, d)}  # fmt: skip
        merge_runs = ("merge_first", "merge_again", "insert_select")
        runs: dict[str, list] = {name: [] for name in [*peers, *merge_runs]}
        for attempt in range(1, args.repeat + 1):  # interleaved, so drift hits all alike
            print(f"round {attempt} of {args.repeat}")
            for name, measure in peers.items():
                if (run := measure(path, databases.new(), home)) is not None:
                    runs[name].append(run)
            for name, run in zip(merge_runs, merges(path, databases.new(), home), strict=True):
                runs[name].append(run)
        kept = {name: median_run(every) if every else None for name, every in runs.items()}
        memory = {}
        for scale in (float(s) for s in args.memory_scales.split(",")):
            memory[f"{scale:g}"] = product(sample(scale), databases.new(), home)["peak_rss_mb"]
        memory[f"{args.scale:g}"] = kept["product"]["peak_rss_mb"]
        scaled = linearity(args.scale, args.linearity, databases, home) if args.linearity else None
        many = many_tables(args.many_tables, databases, home) if args.many_tables else None
    finally:
        databases.drop_all()
        shutil.rmtree(home, ignore_errors=True)
    ours, raw, text = kept["product"], kept["ceiling"], kept["text"]
    through_dagster = kept["product_dagster_cli"]
    loader, duck = kept["pgloader"], kept["duckdb"]
    merged, again = kept["merge_first"], kept["merge_again"]
    load_rate = rows / ours["load_seconds"] if ours["load_seconds"] else 0
    scaled_runs = scaled["runs"].values() if scaled else ()
    peak = max([*memory.values(), *(run["peak_rss_mb"] for run in scaled_runs)])
    results = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "scale": args.scale,
        "rows": rows,
        "rounds": args.repeat,
        "product": {**ours, "rows_per_second": round(rows / ours["seconds"])},
        "product_first_run": first_run,  # the same job creating its Dagster storage
        # The same job through `dagster job execute`: Dagster's start-up and exit
        "product_dagster_cli": {
            **through_dagster,
            "rows_per_second": round(rows / through_dagster["seconds"]),
        },
        "product_load_rows_per_second": round(load_rate),
        "verify_share_of_wall": round(ours["verify_seconds"] / ours["seconds"], 3),
        "merge_first": merged,  # into the application's empty schema
        "merge_again": again,  # the same file merged again: nothing changes
        "ceiling": {**raw, "rows_per_second": round(rows / raw["seconds"])},
        "load_vs_ceiling": round(load_rate / (rows / raw["seconds"]), 3),
        "text_ceiling": {**text, "rows_per_second": round(rows / text["seconds"])},
        "load_vs_text_ceiling": round(load_rate / (rows / text["seconds"]), 3),
        "pgloader": loader and {**loader, "rows_per_second": round(rows / loader["seconds"])},
        "duckdb": duck and {**duck, "rows_per_second": round(rows / duck["seconds"])},
        "product_vs_pgloader_wall": loader and ratio(ours["seconds"], loader["seconds"]),
        "product_vs_duckdb_wall": duck and ratio(ours["seconds"], duck["seconds"]),
        "merge_first_vs_pgloader_wall": loader and ratio(merged["seconds"], loader["seconds"]),
        "merge_again_vs_first_wall": ratio(again["seconds"], merged["seconds"]),
        "insert_select": kept["insert_select"],  # the first merge's floor
        "peak_rss_mb_by_scale": memory,
        "peak_rss_mb": peak,
        "linearity": scaled,
        "many_tables": many,
    }
    results["goals"] = goals(results)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print_tables(results)
    print(f"\nwritten to {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
