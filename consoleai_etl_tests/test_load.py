"""The core loader on its own (no Dagster): progress reporting and the streamed checksum."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg

from consoleai_etl.core.bookkeeping import ensure_bookkeeping
from consoleai_etl.core.catalog import introspect
from consoleai_etl.core.checksum import target_checksum
from consoleai_etl.core.load import BATCH_ROWS, load_table
from consoleai_etl.core.source import open_source


def test_progress_is_reported_per_batch_and_checksum_matches_sql(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = tmp_path / "big.sqlite"
    rows = BATCH_ROWS * 2 + 123
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, label TEXT, at DATETIME)")
        conn.executemany(
            "INSERT INTO big VALUES (?, ?, ?)",
            ((i, f"row {i}", "2024-01-01 00:00:00") for i in range(rows)),
        )
    calls: list[tuple[int, int]] = []
    with closing(open_source(db)) as src, psycopg.connect(pg_dsn) as pg:
        ensure_bookkeeping(pg)
        plan, result = load_table(
            src, pg, introspect(src).table("big"), schema="stage", target_schema="public",
            run_id="run-1", progress=lambda done, total: calls.append((done, total)),
        )  # fmt: skip
        stored = target_checksum(pg, plan, "stage")

    assert calls == [(BATCH_ROWS, rows), (2 * BATCH_ROWS, rows), (rows, rows)]
    assert result.loaded_rows == rows and result.checksum_seconds > 0
    assert (stored.rows, stored.value) == (rows, result.checksum)


def test_table_progress_reaches_the_dagster_run_log(
    tmp_path: Path, pg_dsn: str, monkeypatch
) -> None:
    import dagster as dg

    from consoleai_etl import table_assets
    from consoleai_etl.definitions import build_definitions

    monkeypatch.setattr(table_assets, "PROGRESS_EVERY_SECONDS", 0.0)
    db = tmp_path / "big.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT INTO big VALUES (?)", ((i,) for i in range(BATCH_ROWS * 2)))
    config = {"sqlite_path": str(db), "pg_dsn": pg_dsn, "report_dir": str(tmp_path / "r")}
    with dg.DagsterInstance.ephemeral() as instance:
        result = (
            build_definitions(db)
            .resolve_job_def("legacy_migration_job")
            .execute_in_process(
                run_config={"resources": {"settings": {"config": config}}}, instance=instance
            )
        )
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    progress = [m for m in messages if "rows/s, ETA" in m]
    assert progress[-1].startswith(f"big: {BATCH_ROWS * 2:,} / {BATCH_ROWS * 2:,} rows, ")
