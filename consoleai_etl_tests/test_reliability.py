"""Crashes, lost connections and server restarts: the target is either as before or fully
migrated, a restart within the retry window is ridden out, and a rerun converges."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing, suppress
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from consoleai_etl.core.run.progress import Waiting, listening
from consoleai_etl.core.target.bookkeeping import ensure_bookkeeping
from consoleai_etl_tests.helpers import (
    checks_by_table,
    dagster_env,
    fetch,
    run_job,
    staged_tables,
    table_digest,
)

BIG_ROWS = 1_000_000  # a COPY long enough (~0.5 s) for the tests to catch it in flight


def big_source(path: Path, rows: int) -> Path:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DROP TABLE IF EXISTS big")
        conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, label TEXT, at DATETIME)")
        conn.executemany(
            "INSERT INTO big VALUES (?, ?, ?)",
            ((i, f"label {i}", "2024-01-01 00:00:00") for i in range(rows)),
        )
    return path


def wait_for_copy(dsn: str, timeout: float = 60, skip: list[int] | None = None) -> int:
    """The server pid of the first active COPY into this test's database, other than the
    ``skip`` ones (a terminated backend stays listed for a moment)."""
    database = conninfo_to_dict(dsn)["dbname"]
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
                "AND query LIKE 'COPY %%FROM STDIN%%' AND pid <> pg_backend_pid() "
                "AND pid <> ALL(%s)",
                (database, skip or []),
            ).fetchone()
            if row:
                return row[0]
            time.sleep(0.01)
    raise AssertionError("no COPY started")


def test_lost_connection_mid_table_is_retried_without_duplicates(
    tmp_path: Path, pg_dsn: str
) -> None:
    source = big_source(tmp_path / "big.sqlite", BIG_ROWS)
    killed: list[int] = []

    def terminate_first_copy() -> None:
        pid = wait_for_copy(pg_dsn)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        killed.append(pid)

    watcher = threading.Thread(target=terminate_first_copy)
    watcher.start()
    result, report = run_job(source, pg_dsn, tmp_path / "reports")
    watcher.join()

    assert killed and result.success and report["status"] == "success"
    [big] = report["tables"]
    assert big["warnings"][0].startswith("loaded again: attempt 1 lost its connection")
    assert fetch(pg_dsn, "SELECT count(*), count(DISTINCT id) FROM big") == [(BIG_ROWS, BIG_ROWS)]
    assert checks_by_table(report)["big"]["checksum"]["passed"]


def test_killed_run_leaves_the_target_as_before_and_a_rerun_converges(
    tmp_path: Path, pg_dsn: str
) -> None:
    source = big_source(tmp_path / "big.sqlite", 1_000)
    run_job(source, pg_dsn, tmp_path / "first")
    before = table_digest(pg_dsn, "public", "big", "id")
    big_source(source, BIG_ROWS)

    env = dagster_env(tmp_path, source, pg_dsn, reports="killed")
    # A reader of the target keeps the run from promoting however fast it loads, so the
    # kill lands somewhere between the first COPY and the promotion.
    with psycopg.connect(pg_dsn) as reader:
        reader.execute("LOCK TABLE big IN ACCESS SHARE MODE")
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster")), "job", "execute", "-m",
             "consoleai_etl", "-j", "legacy_migration_job"],
            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_copy(pg_dsn)
            time.sleep(0.3)  # inside the COPY of 1M rows, or waiting to promote
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        reader.rollback()

    assert table_digest(pg_dsn, "public", "big", "id") == before  # untouched by the dead run
    result, report = run_job(source, pg_dsn, tmp_path / "rerun")
    assert result.success and report["promoted"]
    assert fetch(pg_dsn, "SELECT count(*) FROM big") == [(BIG_ROWS,)]
    assert staged_tables(pg_dsn) == []  # the dead run's staged tables were cleaned up
    _, verified = run_job(source, pg_dsn, tmp_path / "verify", job="consistency_check_job")
    assert verified["status"] == "success"


def test_a_server_restart_of_three_seconds_is_ridden_out_and_said_on_screen(
    tmp_path: Path, pg_dsn: str, server_dsn: str
) -> None:
    """A restart as the run sees one: every session of its database ended (its locks' too)
    and new connections refused for 3 s, starting in the middle of a COPY."""
    source = big_source(tmp_path / "big.sqlite", BIG_ROWS)
    database = conninfo_to_dict(pg_dsn)["dbname"]

    def restart() -> None:
        wait_for_copy(pg_dsn)
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(
                sql.Identifier(database)))  # fmt: skip
            try:
                down = time.monotonic() + 3
                while time.monotonic() < down:
                    admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                        (database,),
                    )
                    time.sleep(0.05)
            finally:
                admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(
                    sql.Identifier(database)))  # fmt: skip

    server = threading.Thread(target=restart)
    server.start()
    waits: list[Waiting] = []
    with listening(lambda e: isinstance(e, Waiting) and waits.append(e)):
        result, report = run_job(source, pg_dsn, tmp_path / "reports")
    server.join()

    assert result.success and report["status"] == "success" and report["promoted"]
    [big] = report["tables"]
    retried = [w for w in big["warnings"] if w.startswith("loaded again: ")]
    assert retried[0].startswith("loaded again: attempt 1 lost its connection")
    assert any("not currently accepting connections" in w for w in retried)  # refused: retried
    assert fetch(pg_dsn, "SELECT count(*), count(DISTINCT id) FROM big") == [(BIG_ROWS, BIG_ROWS)]
    assert checks_by_table(report)["big"]["checksum"]["passed"]
    # Said while it happened: which table, why, and when it tries again.
    assert any(
        w.table == "big" and w.reason.startswith("lost the connection (")
        and w.reason.endswith("trying again in 1 s")
        for w in waits
    )  # fmt: skip


def test_a_connection_lost_for_longer_than_the_window_fails_the_table_clearly(
    tmp_path: Path, pg_dsn: str
) -> None:
    source = big_source(tmp_path / "big.sqlite", BIG_ROWS)
    over = threading.Event()

    def terminate_every_copy() -> None:
        terminated: list[int] = []
        while not over.is_set():
            with suppress(AssertionError):
                terminated.append(wait_for_copy(pg_dsn, timeout=0.5, skip=terminated))
                with psycopg.connect(pg_dsn, autocommit=True) as conn:
                    conn.execute("SELECT pg_terminate_backend(%s)", (terminated[-1],))

    watcher = threading.Thread(target=terminate_every_copy)
    watcher.start()
    try:
        result, report = run_job(source, pg_dsn, tmp_path / "reports", retry_seconds=2.5)
    finally:
        over.set()
        watcher.join()

    assert not result.success and report["status"] == "failure" and not report["promoted"]
    [big] = report["tables"]
    # Pauses of 1 s then 2 s: the third attempt would start after the 2.5 s window.
    assert big["error"].startswith("lost the connection to PostgreSQL 2 times in ")
    assert "(retry_seconds: 2.5), last: " in big["error"]
    assert len(big["warnings"]) == 1  # the earlier attempt
    assert fetch(pg_dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_an_sql_error_is_not_retried(tmp_path: Path, pg_dsn: str) -> None:
    """psycopg files many server errors under OperationalError, as it does a lost
    connection; a lock timeout (SQLSTATE 55P03) is one, and retrying would only repeat it."""
    source = big_source(tmp_path / "big.sqlite", 1_000)
    with psycopg.connect(pg_dsn) as conn:
        ensure_bookkeeping(conn)
    impatient = make_conninfo(pg_dsn, options="-c lock_timeout=200")
    with psycopg.connect(pg_dsn) as maintenance:  # e.g. a VACUUM FULL of the quarantine
        maintenance.execute("LOCK TABLE consoleai_etl.quarantine IN ACCESS EXCLUSIVE MODE")
        result, report = run_job(source, impatient, tmp_path / "reports")

    assert not result.success and report["status"] == "failure" and not report["promoted"]
    [big] = report["tables"]
    assert big["error"].startswith("canceling statement due to lock timeout")
    assert not any(w.startswith("loaded again") for w in big["warnings"])
