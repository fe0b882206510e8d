"""Helpers for tests that run the real Dagster jobs against a real PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import dagster as dg
import psycopg
from dagster import DagsterEventType, ExecuteInProcessResult
from psycopg import sql

from consoleai_etl.core.target.bookkeeping import SCHEMA
from consoleai_etl.core.target.naming import TargetName
from consoleai_etl.core.target.staging import PREFIX
from consoleai_etl.definitions import build_definitions
from consoleai_etl.defs.checks import key_prefix
from consoleai_etl.defs.settings import target_of

REPO = Path(__file__).resolve().parents[1]


def dagster_env(tmp_path: Path, sqlite_path: Path, dsn: str, reports: str = "reports") -> dict:
    """Environment for a Dagster process (CLI or webserver) with its own DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CONSOLEAI_SQLITE_PATH": str(sqlite_path),
        "CONSOLEAI_PG_DSN": dsn,
        "CONSOLEAI_REPORT_DIR": str(tmp_path / reports),
    }


def staged_tables(dsn: str) -> list[str]:
    """The tables runs staged in consoleai_etl (``target.staging``) and left there."""
    rows = fetch(
        dsn,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND starts_with(c.relname, %s) "
        "ORDER BY 1",
        (SCHEMA, PREFIX),
    )
    return [name for (name,) in rows]


def broken_page_db(path: Path) -> Path:
    """A SQLite file whose schema reads fine but one of its table's pages is zeroed: only
    reading that table's pages (``PRAGMA quick_check``, the load) finds it."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", ((i, "x" * 100) for i in range(2000)))
    data = bytearray(path.read_bytes())
    data[20 * 4096 : 21 * 4096] = bytes(4096)
    path.write_bytes(data)
    return path


def fetch(dsn: str, query: str | sql.Composable, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params or None).fetchall()


def execute(dsn: str, query: str | sql.Composable, params: tuple = ()) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(query, params or None)


def run_raw(
    sqlite_path: Path,
    dsn: str,
    report_dir: Path,
    job: str = "legacy_migration_job",
    graph_from: Path | None = None,
    asset_selection: list[str] | None = None,
    instance: dg.DagsterInstance | None = None,
    graph_target: TargetName | None = None,
    **options: object,
) -> ExecuteInProcessResult:
    """Run ``job`` in process with the settings given as run config; no report is expected
    (a run stopped by its preflight writes none). The asset graph is built from
    ``graph_from`` (default: ``sqlite_path``, the file the run reads); ``asset_selection``
    runs a subset of the job's assets; ``instance``: the one to record the run in, for a
    test that reads its event log afterwards (default: an ephemeral one). The graph is the
    one the command would build for the run's target: ``asset_selection`` names its assets
    without the target's prefix (``users``, ``migration_run``). ``graph_target``: the graph's
    target instead, as a code location loaded for another target would build it."""
    config = {
        "sqlite_path": str(sqlite_path),
        "pg_dsn": dsn,
        "report_dir": str(report_dir),
        **options,
    }
    # The code location's graph for the run's target, as the command builds one.
    target = graph_target or target_of(config)
    defs = build_definitions(graph_from or sqlite_path, target=target)
    prefix = key_prefix(target)
    return defs.resolve_job_def(job).execute_in_process(
        run_config={"resources": {"settings": {"config": config}}},
        asset_selection=asset_selection and [dg.AssetKey([*prefix, n]) for n in asset_selection],
        instance=instance,
        raise_on_error=False,
    )


def run_job(
    sqlite_path: Path,
    dsn: str,
    report_dir: Path,
    job: str = "legacy_migration_job",
    **options: object,
) -> tuple[ExecuteInProcessResult, dict]:
    """Run ``job`` in process with the settings given as run config; return result + report."""
    result = run_raw(sqlite_path, dsn, report_dir, job, **options)
    report = json.loads((report_dir / f"migration-report-{result.run_id}.json").read_text())
    return result, report


def preflight_error(result: ExecuteInProcessResult, step: str = "legacy_tables") -> str:
    """The one-line reason of the run's only failed step (``step``: by default the table
    assets' step, whose preflight refused; or ``consistency_preflight``, or a step that
    refused the selection it was given)."""
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert [e.step_key for e in failures] == [step]
    return failures[0].event_specific_data.user_failure_data.description


def table_digest(dsn: str, schema: str, table: str, order_by: str) -> tuple[int, str]:
    """(row count, md5 of all rows in key order): equal digests mean equal content."""
    query = sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY {}), '')) FROM {}.{} t"
    ).format(sql.SQL(order_by), sql.Identifier(schema), sql.Identifier(table))
    count, digest = fetch(dsn, query)[0]
    return count, digest


def checks_by_table(report: dict) -> dict[str, dict[str, dict]]:
    return {t["table"]: {c["name"]: c for c in t["checks"]} for t in report["tables"]}


def materialization(result: ExecuteInProcessResult, asset: str) -> dg.AssetMaterialization:
    """The run's one materialization of the asset named ``asset`` (``named``)."""
    [found] = [m for m in result.get_asset_materialization_events() if named(m.asset_key) == asset]
    return found.materialization


def named(key: dg.AssetKey) -> str:
    """An asset key without the target's database and schema it begins with: the table's
    name in Dagster (or ``migration_run``, ``migration_report``)."""
    return key.path[-1]
