"""Concurrent runs never harm each other: two migrations into different schemas of one
database both succeed, and a run's start-up drops only the staged tables of dead runs."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import psycopg
from psycopg import sql

from consoleai_etl.core.run.preflight import StagingLock
from consoleai_etl.core.source.catalog import sqlite_quote
from consoleai_etl.core.target.bookkeeping import ensure_bookkeeping
from consoleai_etl.core.target.staging import Staging
from consoleai_etl.demo.sample import generate
from consoleai_etl_tests.helpers import dagster_env, fetch, run_job, staged_tables

DAGSTER = Path(sys.executable).with_name("dagster")


def source_counts(path: Path) -> dict[str, int]:
    """Rows per table of the SQLite file."""
    tables = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    with closing(sqlite3.connect(path)) as conn:
        return {
            name: conn.execute(f"SELECT count(*) FROM {sqlite_quote(name)}").fetchone()[0]
            for (name,) in conn.execute(tables).fetchall()
        }


def start_run(workdir: Path, source: Path, dsn: str, schema: str) -> subprocess.Popen:
    """``dagster job execute`` of the migration into ``schema``, with its own DAGSTER_HOME
    and report directory; its output goes to ``workdir/cli.log``."""
    workdir.mkdir()
    env = {**dagster_env(workdir, source, dsn), "CONSOLEAI_TARGET_SCHEMA": schema}
    log = (workdir / "cli.log").open("w")
    return subprocess.Popen(
        [str(DAGSTER), "job", "execute", "-m", "consoleai_etl", "-j", "legacy_migration_job"],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_until(condition: Callable[[], bool], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def waiting_for_runs_table(dsn: str) -> int:
    """How many sessions wait for a lock on ``consoleai_etl.runs`` (a run's last step)."""
    return fetch(
        dsn,
        "SELECT count(*) FROM pg_locks WHERE NOT granted "
        "AND relation = 'consoleai_etl.runs'::regclass",
    )[0][0]


def test_two_cli_runs_into_different_schemas_both_succeed(tmp_path: Path, pg_dsn: str) -> None:
    source = tmp_path / "legacy.sqlite"
    generate(source, scale=0.5)
    expected = source_counts(source)
    with psycopg.connect(pg_dsn) as conn:
        ensure_bookkeeping(conn)
    # Holding the run history table keeps both runs from finishing (their last step writes
    # it), so whichever starts second surely starts while the other's staging is alive.
    with psycopg.connect(pg_dsn) as gate:
        gate.execute("LOCK TABLE consoleai_etl.runs IN ACCESS EXCLUSIVE MODE")
        runs = {s: start_run(tmp_path / s, source, pg_dsn, s) for s in ("alpha", "beta")}
        wait_until(
            lambda: (
                waiting_for_runs_table(pg_dsn) == 2
                or any(p.poll() is not None for p in runs.values())
            )
        )
        gate.rollback()

    for schema, process in runs.items():
        assert process.wait(timeout=300) == 0, (tmp_path / schema / "cli.log").read_text()[-3000:]
        report = json.loads((tmp_path / schema / "reports" / "latest.json").read_text())
        assert report["status"] == "success" and report["target_schema"] == schema
        counts = {
            table: fetch(pg_dsn, sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table)))[0][0]
            for table in expected
        }  # fmt: skip
        assert counts == expected


def test_only_the_staged_tables_of_dead_runs_are_dropped(pg_dsn: str) -> None:
    """Staged tables of a run whose lock is free go, with a staging schema an earlier
    version left; those of this run and of a run still going stay."""
    own, live, dead = (Staging(str(uuid.uuid4())) for _ in range(3))
    old = "consoleai_etl_stage_0123456789ab"  # an earlier version's staging of a dead run
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        ensure_bookkeeping(conn)
        for staging in (own, live, dead):
            conn.execute(
                sql.SQL("CREATE TABLE {} (id int PRIMARY KEY)").format(staging.qualified("t"))
            )
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(old)))
    StagingLock(pg_dsn, dead).release()  # a run that ended: its session is gone
    running = StagingLock(pg_dsn, live)  # a run still going (into any target schema)
    try:
        with psycopg.connect(pg_dsn) as conn, conn.transaction():
            dropped = own.drop_stale(conn)
    finally:
        running.release()
    assert dropped == [dead.relname("t"), old]
    assert staged_tables(pg_dsn) == sorted([own.relname("t"), live.relname("t")])
    assert fetch(pg_dsn, "SELECT 1 FROM pg_namespace WHERE nspname = %s", (old,)) == []


def test_a_replace_mode_verification_leaves_other_runs_staging_alone(
    tmp_path: Path, pg_dsn: str
) -> None:
    """``consistency_check_job`` in replace mode stages nothing, so it drops nothing: the
    staged table a dead run left stays for the next migration to drop."""
    db = tmp_path / "small.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT)")
        conn.execute("INSERT INTO t VALUES (1, 'one')")
    migrated, _ = run_job(db, pg_dsn, tmp_path / "reports")
    assert migrated.success
    dead = Staging(str(uuid.uuid4()))
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(dead.qualified("t")))
    verified, report = run_job(db, pg_dsn, tmp_path / "reports", job="consistency_check_job")
    assert verified.success and report["status"] == "success"
    assert staged_tables(pg_dsn) == [dead.relname("t")]
