"""Live progress on a terminal: a bar per table being loaded, a line per table done.

Fed by the core's progress events (``core.run.progress``), published by the staging
threads of the job running in this process. A table gets its bar when its rows start
flowing (rows done/total, rows/s, ETA), then shows the phase it is in (keys, foreign keys,
checks) or what it waits for (a lock another session holds, a lost connection); when it
is done the bar gives way to one line that stays (``finished_line``). A row of the run's
own says what the run does between tables: starting, promoting, then recording the
tables' results in Dagster (``recording``).
Drawn with rich, the library dagster already installs: its ``Progress`` keeps several bars
live at once and prints lines above them, so the finished tables scroll while the others
keep updating.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.text import Text

from consoleai_etl.core.run.progress import (
    Event,
    PhaseStarted,
    Recorded,
    RowsDone,
    TableFinished,
    Waiting,
    listening,
)
from consoleai_etl.core.run.report import TableReport

RUN = "run"  # the label of the row of the run's own phases (promotion, merge)
# The run's row until its step starts: Dagster creates the run and writes its planned
# events (one per table and per check), seconds with many tables.
STARTING = "starting the Dagster run"


class RowsColumn(ProgressColumn):
    """``1,200 / 5,000 rows  3,100 rows/s  ETA 1 s``, once the table's total is known."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        text = f"{int(task.completed):,} / {int(task.total):,} rows"
        speed = task.finished_speed or task.speed
        if speed:
            text += f"  {speed:,.0f} rows/s"
        if task.time_remaining is not None and not task.finished:
            text += f"  ETA {task.time_remaining:,.0f} s"
        return Text(text)


def finished_line(report: TableReport) -> Text:
    """The line a table's bar collapses to: its rows, time, rate, quarantine and checks;
    ``✓`` clean, ``⚠`` a WARN check failed (a fact to read, not a failure), ``✗`` not."""
    failed = [c.name for c in report.checks if c.failed]
    warned = [c.name for c in report.checks if c.warned]
    if report.error:
        return Text(f"✗ {report.table}: load failed: {report.error}", style="red")
    parts = []
    if report.loaded_rows is not None and report.seconds is not None:
        rate = f" ({report.rows_per_second:,.0f} rows/s)" if report.rows_per_second else ""
        parts.append(f"{report.loaded_rows:,} rows in {report.seconds:.1f} s{rate}")
    elif report.source_rows is not None:
        parts.append(f"{report.source_rows:,} source rows")
    parts.append(f"{report.quarantined_rows:,} quarantined")
    passed = sum(c.passed for c in report.checks)
    parts.append(f"{passed}/{len(report.checks)} checks passed")
    if failed:
        parts.append(f"failed: {', '.join(failed)}")
    if warned:
        parts.append(f"warned: {', '.join(warned)}")
    mark, style = ("⚠", "yellow") if warned else ("✓", "green")
    if failed or report.quarantined_rows:
        mark, style = "✗", "red"
    return Text(f"{mark} {report.table}: {', '.join(parts)}", style=style)


def recording(event: Recorded) -> str:
    """The run's row while Dagster records the tables' results: the data is in, the run is
    not done, and with many tables this is the longest wait (no table bar moves then)."""
    return f"recording {event.total:,} tables' results in Dagster: {event.done:,} done"


class LiveProgress:
    """A context manager: while it is open, the bars are drawn and the run's events
    update them. Events come from the staging threads, hence the lock around the map
    of tables to bars."""

    def __init__(self, console: Console) -> None:
        self.bars = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            RowsColumn(),
            TextColumn("{task.fields[phase]}", markup=False),
            console=console,
            transient=True,  # the bars go at the end; the finished lines stay
        )
        self.tasks: dict[str | None, TaskID] = {}  # by table name; None: the run's row
        self.totals: dict[str, int] = {}  # each table's rows to load, once known
        self.lock = threading.Lock()
        self.opened = ExitStack()

    def __enter__(self) -> LiveProgress:
        self.opened.enter_context(self.bars)
        self.opened.enter_context(listening(self.handle))
        self.bars.update(self._task(None), phase=STARTING)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.opened.close()

    def handle(self, event: Event) -> None:
        with self.lock:
            if isinstance(event, RowsDone):
                self._rows(event)
            elif isinstance(event, PhaseStarted):
                self.bars.update(self._task(event.table), phase=event.phase)
            elif isinstance(event, Waiting):  # a lock, a server restarting: what and who
                self.bars.update(self._task(event.table), phase=event.reason)
                self.bars.refresh()
            elif isinstance(event, TableFinished):
                self._finished(event.report)
            elif isinstance(event, Recorded):
                self.bars.update(self._task(None), phase=recording(event))
                if event.done == 0:  # drawn at once: the tables' lines are all out already
                    self.bars.refresh()

    def _task(self, table: str | None, total: int | None = None) -> TaskID:
        """The bar of ``table`` (None: the run's), drawn at once when new: a small table
        may be done before the next automatic refresh, and its bar should still be seen."""
        if table not in self.tasks:
            label = RUN if table is None else table
            self.tasks[table] = self.bars.add_task(label, total=total, phase="")
            self.bars.refresh()
        return self.tasks[table]

    def _rows(self, event: RowsDone) -> None:
        task = self._task(event.table, event.total)
        self.totals[event.table] = event.total
        if event.done == 0:  # the rows start flowing (again): the rate starts now
            self.bars.reset(task, total=event.total, phase="loading")
        else:
            self.bars.update(task, completed=event.done, total=event.total)

    def _finished(self, report: TableReport) -> None:
        task = self.tasks.pop(report.table, None)
        if task is not None:
            if report.table in self.totals:  # the full bar, drawn once
                self.bars.update(task, completed=self.totals[report.table], phase="done")
                self.bars.refresh()
            self.bars.remove_task(task)
        self.bars.console.print(finished_line(report))
