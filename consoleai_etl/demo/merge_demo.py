"""``make demo-merge``: merge the sample legacy database into the ConsoleAI application's schema.

    CONSOLEAI_SQLITE_PATH=data/consoleai_legacy.sqlite python -m consoleai_etl.demo.merge_demo

1. creates the application's own tables (``demo/app_schema.py``) in ``$CONSOLEAI_TARGET_SCHEMA``
   (default ``consoleai_app``, apart from the ``public`` tables ``make demo`` creates) when absent;
2. inserts a few rows the application wrote after the cutover (ids beyond the legacy range),
   once;
3. runs ``legacy_migration_job`` through Dagster's CLI, as a user would, with
   ``CONSOLEAI_MODE=merge``;
4. prints what the merge did to each table, from the run's JSON report.

Run it again and the merge finds nothing to change. The target is ``$CONSOLEAI_PG_DSN``, else
the embedded server ``make demo`` uses. Exits with the job's status.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from consoleai_etl.core.errors import MigrationError
from consoleai_etl.core.run.report import MERGE_COUNTS
from consoleai_etl.core.target.postgres import connect, embedded_dsn, redact
from consoleai_etl.defs.settings import EMBEDDED_DATA_DIR
from consoleai_etl.demo import summary
from consoleai_etl.demo.app_schema import create_app_schema, insert_post_cutover_rows

DEFAULT_APP_SCHEMA = "consoleai_app"
JOB = "legacy_migration_job"
NO_CHANGES = "no changes: the target already holds every legacy row"


def prepare_target(dsn: str, schema: str) -> None:
    """The application's state before the merge: its schema, and its post-cutover rows."""
    with connect(dsn, autocommit=True) as conn:
        created = create_app_schema(conn, schema)
        inserted = insert_post_cutover_rows(conn, schema)
    state = f"created {created} tables" if created else "already present"
    print(f"application schema {schema}: {state}; {inserted} post-cutover rows inserted")


def run_merge(dsn: str, schema: str) -> int:
    """Run the migration job in merge mode through the real CLI; return its exit status."""
    env = {
        **os.environ,
        "CONSOLEAI_MODE": "merge",
        "CONSOLEAI_TARGET_SCHEMA": schema,
        "CONSOLEAI_PG_DSN": dsn,
    }
    sys.stdout.flush()  # our lines first, then the CLI's, when the output is piped
    command = [sys.executable, "-m", "dagster", "job", "execute", "-m", "consoleai_etl", "-j", JOB]
    return subprocess.run(command, env=env, check=False).returncode


def merge_lines(report: dict) -> list[str]:
    """A table of the merge's counts per table, then the verdict on what changed (printed
    only when every table was merged)."""
    tables = report["tables"]
    headings = [count.replace("_", " ") for count in MERGE_COUNTS]
    width = max([len("table"), *(len(t["table"]) for t in tables)])
    cell = max(len(h) for h in headings)
    lines = [
        f"merge into {report['target_schema']}:",
        f"  {'table':<{width}}  " + "  ".join(f"{h:>{cell}}" for h in headings),
    ]
    for table in tables:
        counts = table.get("merge")
        cells = "  ".join(f"{counts[c]:>{cell},}" for c in MERGE_COUNTS) if counts else "not merged"
        lines.append(f"  {table['table']:<{width}}  {cells}")
    merged = [t["merge"] for t in tables if t.get("merge")]
    if len(merged) == len(tables):
        changed = sum(counts["inserted"] + counts["updated"] for counts in merged)
        lines.append(
            NO_CHANGES if changed == 0 else f"changed: {changed:,} rows inserted or updated"
        )
    return lines


def _report(path: Path, previous_run: str | None) -> dict | None:
    """The report this run wrote, or None when it wrote none (``latest.json`` is missing or
    still the previous run's)."""
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    return None if report["run_id"] == previous_run else report


def _run_id(path: Path) -> str | None:
    return json.loads(path.read_text())["run_id"] if path.is_file() else None


def main() -> int:
    schema = os.environ.get("CONSOLEAI_TARGET_SCHEMA") or DEFAULT_APP_SCHEMA
    latest = Path(os.environ.get("CONSOLEAI_REPORT_DIR") or "reports") / "latest.json"
    try:
        dsn = os.environ.get("CONSOLEAI_PG_DSN") or embedded_dsn(EMBEDDED_DATA_DIR)
        prepare_target(dsn, schema)
    except (MigrationError, psycopg.Error) as exc:
        reason = redact(" ".join(str(exc).split()))
        print(f"error: cannot prepare the application schema {schema}: {reason}", file=sys.stderr)
        return 1
    previous_run = _run_id(latest)
    status = run_merge(dsn, schema)
    report = _report(latest, previous_run)
    if report is None:
        print(f"no report at {latest}: the run stopped before writing one (see the log above)")
        return status or 1
    print("\n".join(merge_lines(report)))
    summary.main([str(latest)])
    return status


if __name__ == "__main__":
    sys.exit(main())
