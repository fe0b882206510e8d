"""Where a job run's wall time goes, for `make bench`: its phases, end to end.

The phases partition the run, from the bench starting the process to the process exiting,
so they add up to its wall time. Their boundaries come from three clocks that agree (Unix
time on one machine): the bench's own (process start and exit), Dagster's event log (each
event's timestamp) and the run's report (the tables' ``load_window``s and ``staged_at``).

Keys, indexes and foreign-key validation have no phase of their own: they run inside each
table's load window, between its COPY and its checks. Checks of one table run while others
load, so only the checks that outlast every load are a phase here. What the load phase is
made of is the work the report times per table (``LOAD_WORK``: streaming, keys and indexes,
foreign keys, checks), summed over the tables: two tables are staged at once, so these
are seconds of work, which can add up to more than the phase's wall time.
"""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterEventType, DagsterInstance

TABLES_STEP = "legacy_tables"
REPORT_STEP = "migration_report"

# (key, what the phase is): in the order they happen.
PHASES = (
    ("startup", "Dagster start-up: imports, definitions, the run created"),
    ("run_launch", "run planned (Dagster's planned events) and its step launched"),
    ("preflight", "preflight, lock, source snapshot, until the first table loads"),
    ("load", "load phase: streaming, keys, indexes, FKs (checks overlap)"),
    ("checks", "checks that outlast the loads"),
    ("promotion", "verdict, promotion (or merge), the run recorded"),
    ("result_events", "Dagster events of the results (materializations, check results)"),
    ("report", "report step: the files written"),
    ("exit", "run end and process exit"),
)
STARTUP = ("startup", "run_launch", "preflight")  # process start -> first table loading

# (key, what the work is): the tables' own seconds summed (``load_work``), waits excluded.
LOAD_WORK = (
    ("stream", "plan and COPY (the rest of the load's seconds)"),
    ("keys", "keys and indexes (out-of-range rows, duplicates)"),
    ("foreign_keys", "foreign-key validation (orphans)"),
    ("checks", "checks, stream hashing included"),
)


def events(home: Path, run_id: str) -> list[tuple[float, str, str | None]]:
    """The run's events in the Dagster instance ``home`` (a DAGSTER_HOME): (Unix time, event
    type, step)."""
    with DagsterInstance.from_config(str(home)) as instance:
        return [
            (entry.timestamp, entry.dagster_event_type.value if entry.is_dagster_event else "LOG",
             entry.step_key)
            for entry in instance.all_logs(run_id)
        ]  # fmt: skip


def union_seconds(windows: list[list[float]]) -> float:
    """Seconds covered by at least one of the [start, end] ``windows``."""
    covered, reach = 0.0, float("-inf")
    for start, end in sorted(windows):
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    return covered


def _first(log: list[tuple[float, str, str | None]], kind: str, step: str | None) -> float:
    for timestamp, event, step_key in log:
        if event == kind and step_key == step:
            return timestamp
    raise ValueError(f"no {kind} event of step {step} in the run's event log")


def breakdown(
    started: float, ended: float, report: dict, log: list[tuple[float, str, str | None]]
) -> dict[str, float]:
    """Seconds per phase (``PHASES``) of one run that started its process at ``started``
    and saw it exit at ``ended`` (Unix time), from its ``report`` and event ``log``."""
    windows = [t["load_window"] for t in report["tables"] if t.get("load_window")]
    step_started = _first(log, DagsterEventType.STEP_START.value, TABLES_STEP)
    first_load = min(start for start, _ in windows)
    staged = report["staged_at"]
    # Once staged, the step decides, promotes and records the run, and only then reports
    # its tables: its next event marks the end of the promotion.
    reported = min(t for t, _, step in log if step == TABLES_STEP and t > staged)
    tables_done = _first(log, DagsterEventType.STEP_SUCCESS.value, TABLES_STEP)
    report_done = _first(log, DagsterEventType.STEP_SUCCESS.value, REPORT_STEP)
    load = union_seconds(windows)
    seconds = {
        "startup": log[0][0] - started,
        "run_launch": step_started - log[0][0],
        "preflight": first_load - step_started,
        "load": load,
        "checks": staged - first_load - load,
        "promotion": reported - staged,
        "result_events": tables_done - reported,
        "report": report_done - tables_done,
        "exit": ended - report_done,
    }
    return {key: round(value, 2) for key, value in seconds.items()}


def load_work(report: dict) -> dict[str, float]:
    """Seconds of work per kind (``LOAD_WORK``) summed over the ``report``'s tables. A table's
    ``seconds`` (its load, waits excluded) hold its keys, foreign keys and the hashing of
    its stream; the hashing is verification, so it is counted with the checks."""
    tables = report["tables"]

    def total(name: str) -> float:
        return sum(t.get(name) or 0 for t in tables)

    keys, foreign_keys, hashing = (
        total("keys_seconds"), total("foreign_keys_seconds"), total("checksum_seconds")
    )  # fmt: skip
    seconds = {
        "stream": total("seconds") - keys - foreign_keys - hashing,
        "keys": keys,
        "foreign_keys": foreign_keys,
        "checks": total("check_seconds") + hashing,
    }
    return {key: round(value, 2) for key, value in seconds.items()}
