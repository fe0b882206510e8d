"""Stopping a run cleanly (Ctrl-C): asked for from outside, honoured at the core's safe points.

An exception raised asynchronously in the middle of a run (Python's ``KeyboardInterrupt``,
Dagster's ``DagsterExecutionInterruptedError``) reaches only the main thread, at any
bytecode: not the staging threads, which would go on loading their tables, and possibly
inside the promotion's COMMIT, whose outcome it would leave unknown. So while ``migrate``
runs (``stoppable``), a stop is a request: the staging threads raise ``Interrupted`` at their
next batch of rows or phase (``progress``), the main thread at its next wait, and the
promotion checks it right before its COMMIT. A request after that check lets the run
finish: the target then holds the new tables, as the run's report says. The command line
(``cli.interrupts``) makes the request when SIGINT arrives inside ``stoppable`` and raises
the usual interrupt otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from consoleai_etl.core.target.staging import Staging

_requested = threading.Event()
_active = threading.Event()


class Interrupted(Exception):
    """The run was asked to stop; raised at a safe point, before anything was promoted."""

    def __init__(self) -> None:
        super().__init__("interrupted")


def left_behind(run_id: str) -> str:
    """What a stopped run leaves, in one line: said by the command and by the Dagster step."""
    return (
        f"target unchanged; run {run_id}'s staged tables {Staging(run_id)} (if any) are "
        "dropped by the next run"
    )


@contextmanager
def stoppable() -> Iterator[None]:
    """A run that honours stop requests (``request``) at its safe points; a request made
    outside it is forgotten, so it cannot stop a later run in the same process."""
    _requested.clear()
    _active.set()
    try:
        yield
    finally:
        _active.clear()
        _requested.clear()


def active() -> bool:
    """Whether a ``stoppable`` run is going on, so a request would be honoured."""
    return _active.is_set()


def request() -> None:
    _requested.set()


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """A safe point: raise ``Interrupted`` if a stop was requested."""
    if _requested.is_set():
        raise Interrupted


def pause(seconds: float) -> None:
    """Sleep ``seconds``, or raise ``Interrupted`` as soon as a stop is requested."""
    if _requested.wait(seconds):
        raise Interrupted
