"""Ctrl-C during a run: a clean stop, one line, and no other process's traceback.

A terminal sends SIGINT to its whole foreground process group. That includes the helper
processes Dagster starts for each step to mirror its captured output (``tail -F`` and a
Python ``watch_orphans`` script, which died printing a ``KeyboardInterrupt`` traceback
each), and the Python interrupt it raises here lands anywhere in the main thread, possibly
in a COMMIT. So while the job runs, SIGINT is blocked in every thread of this process, and
child processes inherit the mask: only the thread started here receives it
(``sigtimedwait``). While a migration is in its stoppable part (``core.run.interrupt``),
a Ctrl-C requests a stop that the core honours at its next safe point; elsewhere (Dagster
starting the run, the preflight, the report), and on a second Ctrl-C, it raises the usual
interrupt in the main thread (``_thread.interrupt_main``), which Dagster turns into the
step's interruption.
"""

from __future__ import annotations

import _thread
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from consoleai_etl.core.run import interrupt


@dataclass
class Interrupts:
    """How many times SIGINT arrived while ``forwarded`` was open."""

    received: int = 0


@contextmanager
def forwarded() -> Iterator[Interrupts]:
    """Receive SIGINT on a thread of its own while the block runs (see the module doc)."""
    seen = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            if signal.sigtimedwait({signal.SIGINT}, 0.1) is None:
                continue
            seen.received += 1
            if interrupt.active() and not interrupt.requested():
                interrupt.request()
            else:
                _thread.interrupt_main()

    thread = threading.Thread(target=receive, name="sigint", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
