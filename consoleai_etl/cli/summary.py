"""The table printed when a run ends, read from the run's report file.

The JSON report is the one account of the run (the Markdown and HTML files, the run's
metadata and ``make demo``'s lines are made from the same record), so the command prints
from it rather than from what it saw go by: a table per row with its counts, the merge
counts in merge mode, time, rate and checks; then the status with its reasons, what to do
next and the path of the report to open. On a terminal rich colours it and it fits the
window: headers wrap, names fold, and when even that is too wide the columns go into more
tables, each led by the tables' names; a number is never cut. Written to a file or a pipe
it is plain text, one table as wide as it needs (rich would otherwise fold it into 80
columns).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rich import box
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from consoleai_etl.core.run.report import (
    FAILURE,
    MERGE_COUNTS,
    SUCCESS,
    MigrationReport,
    TableReport,
    next_steps,
    number,
)

ALLOW_DIVERGENCE = "--allow-divergence"  # the option, as this command spells it
WARNED = "⚠"  # marks a failed WARN check: a fact to read, not a failure
# The narrowest a text column gets before the columns go into more tables: a longer name
# (or check name) folds onto more lines.
TEXT_FLOOR = 12


@dataclass
class Column:
    """A column of the summary: its cells, and how narrow it can get without losing a
    character: as wide as its widest line (a number is never cut), its header wrapped at
    its spaces; a column that ``folds`` (the tables' names) down to ``TEXT_FLOOR``."""

    header: str
    footer: str
    cells: list[Text]
    justify: JustifyMethod = "right"
    folds: bool = False

    @property
    def widest(self) -> int:
        return max(Text(self.header).cell_len, self._widest_line)

    @property
    def narrowest(self) -> int:
        if self.folds:
            return min(self.widest, TEXT_FLOOR)
        return max(*(Text(word).cell_len for word in self.header.split()), self._widest_line)

    @property
    def _widest_line(self) -> int:
        texts = [Text(self.footer), *self.cells]
        return max(line.cell_len for text in texts for line in text.split())


def _problems(table: TableReport) -> Text:
    """The failed checks' names (red), then the warned ones marked ``⚠`` (yellow), one a
    line; or the load error."""
    if table.error:
        return Text("load failed", style="red")
    failed = [Text(c.name, style="red") for c in table.checks if c.failed]
    warned = [Text(f"{WARNED} {c.name}", style="yellow") for c in table.checks if c.warned]
    return Text("\n").join(failed + warned) if failed or warned else Text("—")


def summary_columns(report: MigrationReport) -> list[list[Column]]:
    """The summary's columns in groups that stay side by side when it must be split: the
    tables' names, their counts, the merge counts (merge mode), time and rate, checks.
    Columns nothing fills are left out: a verification times nothing, and only merge mode
    has merge counts. Rows a run did not promote are headed ``staged``, never ``loaded``
    (``MigrationReport.loaded_as``)."""
    tables, totals = report.tables, report.totals
    loaded = any(t.loaded_rows is not None for t in tables)
    timed = loaded and any(t.seconds is not None for t in tables)
    merging = any(t.merge is not None for t in tables)

    def column(header: str, footer: object, values: list[str]) -> Column:
        return Column(header, str(footer), [Text(v) for v in values])

    counts = [
        column("source rows", f"{totals['source_rows']:,}", [number(t.source_rows) for t in tables])
    ]
    if loaded:
        rows = [number(t.loaded_rows) for t in tables]
        counts.append(column(report.loaded_as, f"{totals['loaded_rows']:,}", rows))
    counts.append(
        column(
            "quarantined",
            f"{totals['quarantined_rows']:,}",
            [f"{t.quarantined_rows:,}" for t in tables],
        )
    )
    merge: list[Column] = []
    for name in MERGE_COUNTS if merging else ():
        values = [(t.merge or {}).get(name) for t in tables]
        total = sum(int(v or 0) for v in values)  # type: ignore[call-overload]
        merge.append(column(name.replace("_", " "), f"{total:,}", [number(v) for v in values]))  # type: ignore[arg-type]
    time: list[Column] = []
    if timed:
        time.append(column("seconds", "", [number(t.seconds, ".2f") for t in tables]))
        time.append(column("rows/s", "", [number(t.rows_per_second, ",.0f") for t in tables]))
    passed = totals["checks"] - totals["failed_checks"] - totals["warned_checks"]
    footer = f"{totals['failed_checks']}" + (
        f", {WARNED} {totals['warned_checks']}" if totals["warned_checks"] else ""
    )
    checks = [
        column(
            "checks",
            f"{passed}/{totals['checks']}",
            [f"{sum(c.passed for c in t.checks)}/{len(t.checks)}" for t in tables],
        ),
        Column("failed", footer, [_problems(t) for t in tables], justify="left"),
    ]
    names = Column("table", "total", [Text(t.table) for t in tables], justify="left", folds=True)
    return [g for g in ([names], counts, merge, time, checks) if g]


def summary_tables(report: MigrationReport, width: int | None = None) -> list[Table]:
    """The summary as one table, as wide as it needs (``width`` None) or fitted into
    ``width`` columns: as it is when it fits, else narrower (headers wrap, text folds,
    the columns closer together), else in as many tables as it takes, each led by the
    tables' names, a group of columns kept together where it fits."""
    names, *groups = summary_columns(report)
    columns = [*names, *(c for group in groups for c in group)]
    if width is None or _width(columns, [c.widest for c in columns], compact=False) <= width:
        return [_table(columns)]
    parts: list[list[Column]] = [[]]
    for group in groups:
        if parts[-1] and not _fits([*names, *parts[-1], *group], width):
            parts.append([])
        for column in group:  # a group wider than the terminal goes where it must
            if parts[-1] and not _fits([*names, *parts[-1], column], width):
                parts.append([])
            parts[-1].append(column)
    return [_table([*names, *part], _fitted([*names, *part], width)) for part in parts]


def _width(columns: list[Column], widths: list[int], *, compact: bool) -> int:
    """The width of a table of ``columns`` this wide: a space between two columns, and a
    space of padding each side of each column (``compact``: on one side, none at the
    edges)."""
    padding = 2 * len(columns) - 2 if compact else 3 * len(columns) - 1
    return sum(widths) + padding


def _fits(columns: list[Column], width: int) -> bool:
    return _width(columns, [c.narrowest for c in columns], compact=True) <= width


def _fitted(columns: list[Column], width: int) -> list[int]:
    """Each column's width in a compact table of ``width``: the narrowest each can be, then
    the room left given to the names first (a folded name costs a line per row; a wrapped
    header only one), then to the headers."""
    widths = [c.narrowest for c in columns]
    room = width - _width(columns, widths, compact=True)
    for i in sorted(range(len(columns)), key=lambda i: not columns[i].folds):
        more = max(0, min(room, columns[i].widest - widths[i]))
        widths[i] += more
        room -= more
    return widths


def _table(columns: list[Column], widths: list[int] | None = None) -> Table:
    """A rich table of ``columns``; with ``widths``, compact and each column that wide
    (rich's own narrowing would cut numbers short: ``2,0…``)."""
    compact = widths is not None
    table = Table(
        box=box.SIMPLE_HEAD,
        show_footer=True,
        show_edge=False,
        pad_edge=not compact,
        collapse_padding=compact,
    )
    for i, column in enumerate(columns):
        table.add_column(
            column.header,
            footer=column.footer,
            justify=column.justify,
            overflow="fold",
            width=widths[i] if widths else None,
        )
    for row in zip(*(c.cells for c in columns), strict=True):
        table.add_row(*row)
    return table


def report_path(json_path: Path) -> Path:
    """The report to open: the HTML one when the run wrote it, else the Markdown one."""
    html = json_path.with_suffix(".html")
    return html if html.is_file() else json_path.with_suffix(".md")


def print_summary(console: Console, json_path: Path) -> None:
    """The summary table(s), the verdict and its reasons, what to do next, the report."""
    report = MigrationReport.from_dict(json.loads(json_path.read_text()))
    # A terminal: the window's width; a file or a pipe: the table's.
    tables = summary_tables(report, console.width if console.is_terminal else None)
    if not console.is_terminal:
        unbounded = console.options.update_width(10_000)
        widest = max(console.measure(t, options=unbounded).maximum for t in tables)
        console.width = max(console.width, widest)
    for table in tables:
        console.print(table)
    style = "green" if report.status == SUCCESS else "red" if report.status == FAILURE else "yellow"
    dry = " (DRY RUN: target untouched)" if report.dry_run else ""
    console.print(Text(f"{report.what} {report.status}{dry}", style=f"bold {style}"))
    # A terminal wraps long lines at word boundaries; a log keeps each on one line.
    one_line = not console.is_terminal
    for reason in report.reasons:
        console.print(Text(f"  - {reason}"), soft_wrap=one_line)
    for step in next_steps(report, ALLOW_DIVERGENCE):
        console.print(Text(step), soft_wrap=one_line)
    console.print(Text(f"report: {report_path(json_path)}"), soft_wrap=one_line)
