"""Run a job of the code location in this process, in the Dagster instance, and tell the end.

As ``dagster job execute -m consoleai_etl`` does: a reconstructable job executed with
``dg.execute_job`` in ``$DAGSTER_HOME``'s instance when it is set (so the run is in the web
UI's run list, with its config and event log), else in an ephemeral in-memory instance.
The job is rebuilt from SOURCE (``definitions.build_job``): the asset graph must be SOURCE's
tables, which the ``settings`` resource insists on, whatever CONSOLEAI_SQLITE_PATH names,
and its asset keys name the target the command names (so runs into different targets keep
histories of their own in one instance).
Both jobs use the in-process executor, so the staging threads publish their progress
(``core.run.progress``) to the display in this same process.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.definitions.repository_definition.valid_definitions import (
    SINGLETON_REPOSITORY_NAME,
)
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG
from rich.console import Console
from rich.text import Text

from consoleai_etl.cli.arguments import UsageError
from consoleai_etl.cli.interrupts import forwarded
from consoleai_etl.cli.memory_instance import in_memory_instance
from consoleai_etl.cli.progress import LiveProgress
from consoleai_etl.cli.summary import print_summary
from consoleai_etl.core.encode import compiled
from consoleai_etl.core.errors import OptionProblem, Spelling, in_words
from consoleai_etl.core.run.interrupt import left_behind
from consoleai_etl.defs.console_log import console_config
from consoleai_etl.defs.table_assets import MESSAGE_TEMPLATE, failed_options

# The code location workspace.yaml loads (its module's name) and its one repository: a run
# carrying this label is listed under its job in the web UI (the job's Runs tab filters on
# it), not only under Runs, although the command, not the code location, started it.
CODE_LOCATION = "consoleai_etl"
IN_CODE_LOCATION = {REPOSITORY_LABEL_TAG: f"{SINGLETON_REPOSITORY_NAME}@{CODE_LOCATION}"}


class RunInterrupted(Exception):
    """Ctrl-C stopped the run (exit 130); the message is one line: what it left behind."""


@dataclass(frozen=True)
class JobRequest:
    # ``definitions.build_job``'s arguments: SOURCE, the job, the target's database and schema
    graph: tuple[str, str, str, str]
    settings: dict[str, object]  # the ``settings`` resource's run config
    report_dir: Path  # where the run's report will be, as the settings resolve it
    # names an option the preflight refused by the file it came from (None: as the run did)
    describe: Callable[[OptionProblem], str | None]
    spelling: Spelling  # an option a message names, as the command line sets it


@contextmanager
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    """``$DAGSTER_HOME``'s instance, else one in memory (``memory_instance``), gone when the command
    exits. The run is still recorded there, its event log readable by the report step and
    ``why_failed``; what it saves is Dagster's per-event cost on disk. A temporary on-disk
    instance (what ``dagster job execute`` uses) opens, commits and closes a SQLite file or
    two per event: a run of 1,500 small tables writes about 17,000 events, which took longer
    than the migration itself (docs/performance.md, "Many small tables")."""
    try:
        if os.environ.get("DAGSTER_HOME"):
            instance = dg.DagsterInstance.get()
        else:
            instance = in_memory_instance()
    except dg.DagsterError as exc:  # e.g. DAGSTER_HOME is not a directory
        raise UsageError(" ".join(str(exc).split())) from None
    with instance:
        yield instance


def terminal() -> TextIO:
    """Stdout's terminal, on a file descriptor of its own. While a step runs, Dagster's
    compute-log capture points descriptor 1 at a file mirrored back to the terminal by a
    ``tail`` process: the bars' cursor moves would reach the screen late and out of order
    with the lines printed above them, leaving torn bars behind."""
    return os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")


def run(request: JobRequest, *, interactive: bool) -> int:
    """Run the job; then the summary of its report, or the one line saying why it stopped
    before writing one. ``interactive`` (stdout is a terminal): progress bars instead of
    the console log, which would tear them and then say again what the summary says (the
    log stays in the run's event log); the one log line a user must see there, that rows
    stream the slow way, is printed first. Ctrl-C (``interrupts``) stops the run with
    ``RunInterrupted``, unless it came too late to stop it: the run then ends as it
    would have."""
    console = Console(file=terminal() if interactive else None)
    # psycopg warns when it cannot end a COPY cut short by a lost connection, through
    # logging's last-resort handler, across the bars; the run retries the table and says so.
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    if interactive and (notice := compiled.notice()) is not None:
        console.print(Text(notice, style="yellow"))
    job = dg.build_reconstructable_job("consoleai_etl.definitions", "build_job", request.graph)
    frozen_before_run(job)
    run_config = {
        "resources": {"settings": {"config": request.settings}},
        # Said once, by the summary or the last line (below), not by three log events too.
        **console_config("CRITICAL" if interactive else "INFO", failures=False),
    }
    view = LiveProgress(console) if interactive else nullcontext()
    with dagster_instance() as instance, view, forwarded() as interrupts:
        try:
            result = dg.execute_job(job, instance, run_config=run_config, tags=IN_CODE_LOCATION)
        except dg.DagsterInvalidConfigError as exc:
            raise UsageError(" ".join(str(exc).split())) from None
        run_id, success = result.run_id, result.success
        stopped = None if success else why_failed(result, request)
    report = request.report_dir / f"migration-report-{run_id}.json"
    if interrupts.received and not success:
        raise RunInterrupted(left_behind(run_id))
    if report.is_file():
        print_summary(console, report)
    else:
        print(f"run {run_id} failed before writing a report: {stopped}", file=sys.stderr)
    return 0 if success else 1


def frozen_before_run(job: ReconstructableJob) -> None:
    """Build the job now (Dagster keeps it for the run), then move every object alive into the
    garbage collector's permanent generation (``gc.freeze``): Dagster, the imports and the
    definitions of every table live until the command exits, and the cyclic collector would
    otherwise walk them all again at each of its full passes while the run creates objects by
    the million. At 1,500 tables that walking was 10 to 15 s of a run, and the reason its time
    varied by as much from one run to the next (docs/performance.md, "Many small tables")."""
    job.get_definition()
    gc.collect()
    gc.freeze()


def why_failed(result: dg.JobExecutionResult, request: JobRequest) -> str:
    """The first failed step's one-line reason (a preflight refusal is a ``Failure``
    whose description is that line), in the command line's words: options it refused named
    by the file they came from where it can (``describe``), the options it tells the user
    to set spelled as flags (``spelling``)."""
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        failure = data.user_failure_data
        if failure and (refused := failed_options(failure.metadata)):
            return "; ".join(request.describe(problem) or said for problem, said in refused)
        if failure and (template := failure.metadata.get(MESSAGE_TEMPLATE)):
            return in_words(str(template.value), request.spelling)
        if failure and failure.description:
            return failure.description
        if data.error:
            return " ".join(data.error.message.split())
    return "see the run's event log"
