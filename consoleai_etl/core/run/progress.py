"""A run's progress: the rate-limited log lines, and a structured feed for live displays.

Two audiences watch a run. The Dagster event log gets plain text lines ("rows, rows/s,
ETA" at most every few seconds, ``Progress``), the same wherever the run executes. A live
display (the ``consoleai-etl`` command's progress bars) needs every step as data: the rows
a table has sent, the phase it is in, its report when it is done. Those are ``publish``ed
to the listeners registered with ``listening``.

Why a process-wide registry rather than a callback passed down: the command runs the
Dagster job in its own process (in-process executor), so the staging threads that publish
and the display that listens share this module, and the job's code needs no parameter the
Dagster config could not carry. A run launched from the web UI, or a step in its own
process, has no listener: publishing is then a loop over an empty tuple and nothing else
changes. Listeners are called on the staging threads, so they must be thread-safe and
quick, and must not raise (an exception would fail the table being staged).

A phase change and a batch of rows are also the run's safe points to stop at (``interrupt``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from consoleai_etl.core.run import interrupt
from consoleai_etl.core.run.report import TableReport

# Phases a table goes through after its rows are streamed, and the run's own phases.
KEYS = "keys and indexes"
FOREIGN_KEYS = "foreign keys"
CHECKS = "checks"
STAGING = "staging"
PROMOTION = "promotion"
MERGE = "merge"


@dataclass(frozen=True)
class RowsDone:
    """``done`` of the ``total`` rows of ``table`` sent to PostgreSQL. ``done == 0``: its
    rows start flowing (again, when a refused fast pass is streamed a second time)."""

    table: str
    done: int
    total: int


@dataclass(frozen=True)
class PhaseStarted:
    """``table`` entered ``phase`` (``KEYS``, ``FOREIGN_KEYS``, ``CHECKS``); ``table`` is
    None for the run's own phases (``STAGING``, ``PROMOTION``, ``MERGE``)."""

    table: str | None
    phase: str


@dataclass(frozen=True)
class TableFinished:
    """A table is staged and checked (a migration) or re-verified: its report, which says
    whether it failed."""

    report: TableReport


@dataclass(frozen=True)
class Waiting:
    """``table`` (None: the run) waits for something outside the run: a lock another
    session holds, a server that went away. ``reason`` says what, in one line."""

    table: str | None
    reason: str


@dataclass(frozen=True)
class Recorded:
    """The orchestrator has recorded the results of ``done`` of the run's ``total`` tables
    (a materialization and an evaluation per check each), after their data is in the
    target: on an event log on disk, a few ms per event, which for many small tables takes
    longer than loading them. ``done == 0``: it starts."""

    done: int
    total: int


Event = RowsDone | PhaseStarted | TableFinished | Waiting | Recorded
Listener = Callable[[Event], None]

_listeners: tuple[Listener, ...] = ()
_registry = threading.Lock()


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call ``listener`` with every event published while the block runs."""
    global _listeners
    with _registry:
        _listeners = (*_listeners, listener)
    try:
        yield
    finally:
        with _registry:
            _listeners = tuple(x for x in _listeners if x is not listener)


def publish(event: Event) -> None:
    """Hand ``event`` to every listener (none, unless a command line is displaying)."""
    for listener in _listeners:
        listener(event)


def phase(table: str | None, name: str) -> None:
    interrupt.check()
    publish(PhaseStarted(table, name))


def waiting(table: str | None, reason: str) -> None:
    publish(Waiting(table, reason))


def waited(event: Waiting) -> str:
    """The log line of ``event``."""
    return f"{event.table}: {event.reason}" if event.table else event.reason


class Progress:
    """A table's ``(done, total)`` callback: publishes every call as ``RowsDone`` and turns
    them into "rows, rows/s, ETA" lines, at most one per ``every`` seconds, handed to
    ``emit``. ``done == 0`` (the rows start flowing) starts the clock, so time spent
    waiting for a streaming turn does not lower the rate."""

    def __init__(self, table: str, every: float, emit: Callable[[str], None]) -> None:
        self.table, self.every, self.emit = table, every, emit
        self.started = self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        interrupt.check()
        publish(RowsDone(self.table, done, total))
        now = time.monotonic()
        if done == 0:
            self.started = self.last = now
            return
        if now - self.last < self.every:
            return
        self.last = now
        rate = done / (now - self.started) if now > self.started else 0.0
        eta = (total - done) / rate if rate else 0.0
        self.emit(f"{self.table}: {done:,} / {total:,} rows, {rate:,.0f} rows/s, ETA {eta:,.0f} s")
