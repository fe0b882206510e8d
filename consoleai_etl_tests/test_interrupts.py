"""Ctrl-C at several moments of a real ``consoleai-etl`` run: SIGINT sent to its whole
process group, as a terminal does. Each time: exit 130, one line, no traceback (Dagster's
helper processes included), no table reported done after it, the target unchanged, and the
next run drops what it left in staging."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from consoleai_etl.core.run.report import MIGRATION_JOB
from consoleai_etl_tests.helpers import dagster_env, fetch, run_job, staged_tables, table_digest
from consoleai_etl_tests.test_cli import DAGSTER
from consoleai_etl_tests.test_console_script import SCRIPT, plain_env
from consoleai_etl_tests.test_lock_waits import idle_in_transaction
from consoleai_etl_tests.test_reliability import BIG_ROWS, big_source, wait_for_copy

INTERRUPTED = "consoleai-etl migrate: interrupted: target unchanged; run "


def interrupted(
    tmp_path: Path,
    source: Path,
    dsn: str,
    moment: Callable[[], object],
    command: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """``command`` (default: ``consoleai-etl migrate``) stopped by SIGINT to its process
    group once ``moment`` returns; its exit status and output."""
    default = [str(SCRIPT), "migrate", str(source), dsn, "--report-dir", str(tmp_path / "reports")]
    process = subprocess.Popen(
        command or default, cwd=tmp_path, env=env or plain_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        moment()
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def assert_staging_named(dsn: str, output: str) -> None:
    """The stop names the run's staged tables for the next run to drop; every table left
    in staging (none, when the stop rolled back the only one) is one of them."""
    said = re.search(
        r"staged tables consoleai_etl\.(stage_\w+?_)\* \(if any\) are dropped by "
        r"the next run",
        output,
    )
    assert said, output[-3000:]
    assert all(t.startswith(said[1]) for t in staged_tables(dsn))


def assert_one_clean_line(done: subprocess.CompletedProcess, first_words: str) -> str:
    output = done.stdout + done.stderr
    assert done.returncode == 130, output[-3000:]
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
    assert " rows in " not in output and "✓" not in output  # no table reported done
    last = done.stderr.splitlines()[-1]
    assert last.startswith(first_words), output[-3000:]
    return last


def test_ctrl_c_while_a_table_streams(tmp_path: Path, pg_dsn: str) -> None:
    source = big_source(tmp_path / "big.sqlite", 1_000)
    run_job(source, pg_dsn, tmp_path / "first")
    before = table_digest(pg_dsn, "public", "big", "id")
    big_source(source, BIG_ROWS)

    started = time.monotonic()
    done = interrupted(tmp_path, source, pg_dsn, lambda: wait_for_copy(pg_dsn))
    took = time.monotonic() - started

    line = assert_one_clean_line(done, INTERRUPTED)
    assert_staging_named(pg_dsn, line)
    assert done.stderr.count("\n") == 1  # the one line, nothing else (no log lines either)
    assert table_digest(pg_dsn, "public", "big", "id") == before
    assert took < 30
    result, report = run_job(source, pg_dsn, tmp_path / "next")
    assert result.success and report["promoted"] and staged_tables(pg_dsn) == []


def test_ctrl_c_while_the_promotion_waits_for_a_lock(tmp_path: Path, pg_dsn: str) -> None:
    source = big_source(tmp_path / "big.sqlite", 1_000)
    run_job(source, pg_dsn, tmp_path / "first")
    before = table_digest(pg_dsn, "public", "big", "id")
    big_source(source, 2_000)
    database = conninfo_to_dict(pg_dsn)["dbname"]

    def promotion_waiting() -> None:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            while not conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND wait_event_type = "
                "'Lock' AND query LIKE 'LOCK TABLE %%'",
                (database,),
            ).fetchone():
                time.sleep(0.01)

    with idle_in_transaction(pg_dsn, "SELECT count(*) FROM big WHERE id < 10"):
        done = interrupted(tmp_path, source, pg_dsn, promotion_waiting)
        assert table_digest(pg_dsn, "public", "big", "id") == before  # even before it ends

    assert_one_clean_line(done, INTERRUPTED)
    assert table_digest(pg_dsn, "public", "big", "id") == before
    result, report = run_job(source, pg_dsn, tmp_path / "next")
    assert result.success and report["promoted"] and staged_tables(pg_dsn) == []
    assert fetch(pg_dsn, "SELECT count(*) FROM big") == [(2_000,)]


def test_ctrl_c_while_the_command_starts(tmp_path: Path, pg_dsn: str) -> None:
    """Within the second or two Python takes to import Dagster, before any run."""
    source = big_source(tmp_path / "big.sqlite", 1_000)

    done = interrupted(tmp_path, source, pg_dsn, lambda: time.sleep(0.5))

    assert_one_clean_line(done, "consoleai-etl")
    assert "interrupted, no run in progress" in done.stderr
    assert fetch(pg_dsn, "SELECT count(*) FROM pg_namespace WHERE nspname = 'consoleai_etl'") == [
        (0,)
    ]


def test_ctrl_c_under_dagsters_own_command_stops_at_a_safe_point(
    tmp_path: Path, pg_dsn: str
) -> None:
    """``dagster job execute`` in the repository's instance set-up (dagster.yaml): the step
    stops before promoting and says so in one failure, and no helper process prints a
    traceback; the exit status and the run-failure lines are Dagster's."""
    source = big_source(tmp_path / "big.sqlite", 1_000)
    run_job(source, pg_dsn, tmp_path / "first")
    before = table_digest(pg_dsn, "public", "big", "id")
    big_source(source, BIG_ROWS)
    command = [str(DAGSTER), "job", "execute", "-m", "consoleai_etl", "-j", MIGRATION_JOB]

    done = interrupted(
        tmp_path, source, pg_dsn, lambda: wait_for_copy(pg_dsn), command,
        dagster_env(tmp_path, source, pg_dsn),
    )  # fmt: skip

    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
    assert " rows in " not in output  # no table reported done
    assert "Failure: interrupted: target unchanged; run " in output
    assert_staging_named(pg_dsn, output)
    assert table_digest(pg_dsn, "public", "big", "id") == before
