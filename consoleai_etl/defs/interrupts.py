"""Ctrl-C and the web UI's Terminate in a run Dagster executes itself (``dagster job execute``,
a run launched from the UI): a stop at the core's next safe point, as ``consoleai-etl`` does.

Both arrive as SIGINT on the step's main thread (a terminal sends it to the whole process
group; Dagster's run worker gets it when a run is terminated). Dagster's own handler raises
``DagsterExecutionInterruptedError`` at whatever bytecode runs, possibly inside the
promotion's COMMIT, while the staging threads go on loading. So while the table step migrates,
the first SIGINT becomes a stop request (``core.run.interrupt``) that the core honours before
anything is promoted; a second one, or one outside the stoppable part, goes to Dagster's
handler as before. (``consoleai-etl`` blocks SIGINT in this thread and receives it on one of
its own, ``cli.interrupts``: this handler then never runs.)
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from consoleai_etl.core.run import interrupt


@contextmanager
def stop_at_safe_points() -> Iterator[None]:
    """SIGINT requests a stop while the block runs (on the main thread; elsewhere no signal
    can be handled, and the block runs as it is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def request(signum: int, frame: FrameType | None) -> None:
        if interrupt.active() and not interrupt.requested():
            interrupt.request()
        elif callable(previous):
            previous(signum, frame)
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, request)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
