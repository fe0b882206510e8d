"""The table printed when a run ends, read from the run's report file.

The JSON report is the one account of the run (the Markdown and HTML files, the run's
metadata and ``make demo``'s lines are made from the same record), so the command prints
from it rather than from what it saw go by: a table per row with its counts, the merge
counts in merge mode, time, rate and checks; then the status with its reasons and the
path of the report to open. On a terminal rich colours it; written to a file or a pipe it
is plain text, as wide as the table needs (rich would otherwise fold it into 80 columns).
"""

from __future__ import annotations

import json
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from consoleai_etl.core.run.report import (
    FAILURE,
    MERGE_COUNTS,
    SUCCESS,
    MigrationReport,
    TableReport,
    number,
)
from consoleai_etl.defs.consistency_job import CONSISTENCY_JOB

WHAT = {CONSISTENCY_JOB: "verification"}  # any other job: a migration


def _failed(table: TableReport) -> str:
    """The failed checks' names (a WARN check marked so), or the load error."""
    if table.error:
        return "load failed"
    names = [c.name for c in table.checks if c.failed]
    names += [f"{c.name} (warn)" for c in table.checks if c.warned]
    return ", ".join(names) or "—"


def summary_table(report: MigrationReport) -> Table:
    """A row per table. Columns nothing fills are left out: a verification loads nothing
    (no loaded rows, seconds, rate), and only merge mode has merge counts."""
    tables, totals = report.tables, report.totals
    loaded = any(t.loaded_rows is not None for t in tables)
    merging = any(t.merge is not None for t in tables)
    table = Table(box=box.SIMPLE_HEAD, show_footer=True, show_edge=False)
    # A narrow terminal folds a long name onto more lines rather than cutting it short.
    longest = max((len(t.table) for t in tables), default=5)
    table.add_column("table", footer="total", overflow="fold", min_width=min(longest, 32))
    table.add_column("source rows", footer=f"{totals['source_rows']:,}", justify="right")
    if loaded:
        table.add_column("loaded", footer=f"{totals['loaded_rows']:,}", justify="right")
    table.add_column("quarantined", footer=f"{totals['quarantined_rows']:,}", justify="right")
    for name in MERGE_COUNTS if merging else ():
        total = sum(int((t.merge or {}).get(name, 0)) for t in tables)  # type: ignore[call-overload]
        table.add_column(name.replace("_", " "), footer=f"{total:,}", justify="right")
    if loaded:
        table.add_column("seconds", justify="right")
        table.add_column("rows/s", justify="right")
    passed = totals["checks"] - totals["failed_checks"] - totals["warned_checks"]
    table.add_column("checks", footer=f"{passed}/{totals['checks']}", justify="right")
    table.add_column("failed", footer=str(totals["failed_checks"]))
    for t in tables:
        merge = (t.merge or {}) if merging else {}
        table.add_row(
            Text(t.table),
            number(t.source_rows),
            *([number(t.loaded_rows)] if loaded else []),
            f"{t.quarantined_rows:,}",
            *[number(merge.get(name)) for name in MERGE_COUNTS if merging],  # type: ignore[arg-type]
            *([number(t.seconds, ".2f"), number(t.rows_per_second, ",.0f")] if loaded else []),
            f"{sum(c.passed for c in t.checks)}/{len(t.checks)}",
            Text(_failed(t), style="red" if t.error or any(c.failed for c in t.checks) else ""),
        )
    return table


def report_path(json_path: Path) -> Path:
    """The report to open: the HTML one when the run wrote it, else the Markdown one."""
    html = json_path.with_suffix(".html")
    return html if html.is_file() else json_path.with_suffix(".md")


def print_summary(console: Console, json_path: Path) -> None:
    report = MigrationReport.from_dict(json.loads(json_path.read_text()))
    table = summary_table(report)
    if not console.is_terminal:
        unbounded = console.options.update_width(10_000)
        console.width = max(console.width, console.measure(table, options=unbounded).maximum)
    console.print(table)
    style = "green" if report.status == SUCCESS else "red" if report.status == FAILURE else "yellow"
    what = WHAT.get(report.job, "migration")
    dry = " (DRY RUN: target untouched)" if report.dry_run else ""
    console.print(Text(f"{what} {report.status}{dry}", style=f"bold {style}"))
    # A terminal wraps long reasons at word boundaries; a log keeps each on one line.
    one_line = not console.is_terminal
    for reason in report.reasons:
        console.print(Text(f"  - {reason}"), soft_wrap=one_line)
    console.print(Text(f"report: {report_path(json_path)}"), soft_wrap=one_line)
