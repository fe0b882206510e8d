"""End to end through the real CLI: `dagster job execute -m consoleai_etl -j ...`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from psycopg.conninfo import make_conninfo

from consoleai_etl_tests.helpers import dagster_env, execute, fetch

DAGSTER = Path(sys.executable).with_name("dagster")


def dagster_cli(
    tmp_path: Path, sqlite_path: Path, dsn: str, *args: str
) -> subprocess.CompletedProcess:
    env = dagster_env(tmp_path, sqlite_path, dsn)
    return subprocess.run(
        [str(DAGSTER), "job", "execute", "-m", "consoleai_etl", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def latest_report(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "reports" / "latest.json").read_text())


def test_cli_migrates_then_consistency_job_exits_nonzero_on_divergence(
    sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    migrated = dagster_cli(tmp_path, sample_db, pg_dsn, "-j", "legacy_migration_job")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    report = latest_report(tmp_path)
    assert report["status"] == "success" and report["promoted"]
    assert report["totals"]["loaded_rows"] == report["totals"]["source_rows"] > 0

    verified = dagster_cli(tmp_path, sample_db, pg_dsn, "-j", "consistency_check_job")
    assert verified.returncode == 0, verified.stderr[-3000:]
    assert latest_report(tmp_path)["status"] == "success"

    execute(pg_dsn, "DELETE FROM workflow_runs WHERE id = 7")
    diverged = dagster_cli(tmp_path, sample_db, pg_dsn, "-j", "consistency_check_job")
    assert diverged.returncode != 0
    report = latest_report(tmp_path)
    assert report["status"] == "failure"
    assert [r.split(":")[0:2] for r in report["reasons"]] == [
        ["workflow_runs", " check row_count failed"],
        ["workflow_runs", " check checksum failed"],
    ]
    assert "{'id': 7}: missing in target" in report["reasons"][1]


def test_cli_dry_run_from_run_config_yaml(sample_db: Path, pg_dsn: str, tmp_path: Path) -> None:
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text("resources:\n  settings:\n    config:\n      dry_run: true\n")

    done = dagster_cli(
        tmp_path, sample_db, pg_dsn, "-j", "legacy_migration_job", "-c", str(run_yaml)
    )

    assert done.returncode == 0, done.stderr[-3000:]
    report = latest_report(tmp_path)
    assert report["dry_run"] and not report["promoted"] and report["status"] == "success"
    assert fetch(pg_dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    assert "DRY RUN" in (tmp_path / "reports" / "latest.md").read_text()


def test_cli_bad_input_is_one_line_without_traceback(tmp_path: Path, pg_dsn: str) -> None:
    missing = tmp_path / "missing.sqlite"
    done = dagster_cli(tmp_path, missing, pg_dsn, "-j", "legacy_migration_job")
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if " - ERROR - " in line]
    assert f"source SQLite file {missing} does not exist" in errors[0]
    assert "Traceback" not in done.stderr and "Stack Trace" not in done.stderr
    assert not (tmp_path / "reports").exists()


def test_cli_output_never_shows_the_password(sample_db: Path, pg_dsn: str, tmp_path: Path) -> None:
    secret = "Cli-S3cret-pw"
    done = dagster_cli(tmp_path, sample_db, make_conninfo(pg_dsn, password=secret), "-j",
                       "legacy_migration_job")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert secret not in done.stdout + done.stderr
    assert all(secret not in p.read_text() for p in (tmp_path / "reports").iterdir())


def test_cli_exits_nonzero_before_dropping_an_application_table(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = tmp_path / "src.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);")
    execute(pg_dsn, "CREATE TABLE public.notes (id int, app_body text)")
    execute(pg_dsn, "INSERT INTO public.notes VALUES (1, 'the application''s own row')")

    done = dagster_cli(tmp_path, db, pg_dsn, "-j", "legacy_migration_job")

    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if " - ERROR - " in line]
    assert "schema public already has table notes, not created by an earlier run" in errors[0]
    assert "replace_existing: true" in errors[0] and "Traceback" not in done.stderr
    assert fetch(pg_dsn, "SELECT * FROM public.notes") == [(1, "the application's own row")]


def test_cli_exits_zero_with_warnings_when_a_view_is_not_created(
    tmp_path: Path, pg_dsn: str
) -> None:
    """Every table is proven and promoted; the view that cannot be proven is left out, and
    the status (not a plain success) says so. Exit 0: the data migrated."""
    db = tmp_path / "src.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            "CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT);"
            "INSERT INTO books (title) VALUES ('Emma');"
            "CREATE VIEW sorted AS SELECT title_sort(title) AS s FROM books;"
        )

    done = dagster_cli(tmp_path, db, pg_dsn, "-j", "legacy_migration_job")

    assert done.returncode == 0, done.stderr[-3000:]
    report = latest_report(tmp_path)
    assert report["status"] == "success_with_warnings" and report["promoted"]
    assert report["reasons"] == [
        "view sorted not created: calls title_sort(), a function of the application, not of SQLite"
    ]
    assert fetch(pg_dsn, "SELECT title FROM public.books") == [("Emma",)]
