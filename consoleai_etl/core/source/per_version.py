"""Answers read from a source file, computed once per version of the file, and startable
early on a thread: the code location's definitions (built from the file's schema), and the
preflight's whole-file reads.

Some preflight reads go through the whole file (``PRAGMA quick_check``; merge mode's scan
of storage classes): 0.5 to 2 s on a warm 266 MB file, several seconds cold. ``consoleai-etl``
starts them as soon as its command line is read, so that they run on the second core while
Dagster creates the run (single-threaded Python), and the preflight then takes the answers
ready, still before anything is written. A file written to since (another size or mtime of
it or its WAL: ``file_version``) is read again; a failed read is not kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import suppress
from pathlib import Path
from typing import Generic, TypeVar

from consoleai_etl.core.source.connection import file_version

T = TypeVar("T")


class PerVersion(Generic[T]):
    """``read(path)``'s answer per (path, version of the file)."""

    def __init__(self, read: Callable[[Path], T]) -> None:
        self._read = read
        self._answers: dict[tuple, Future[T]] = {}
        self._lock = threading.Lock()

    def start(self, path: str | Path) -> None:
        """Start reading on a thread; a file that cannot be read is left to ``get``."""
        with suppress(OSError):
            self._future(Path(path), threaded=True)

    def get(self, path: str | Path) -> T:
        """The answer (waiting for a read already started); raises what the read raised."""
        return self._future(Path(path), threaded=False).result()

    def _future(self, file: Path, *, threaded: bool) -> Future[T]:
        key = (str(file.resolve()), file_version(file))
        with self._lock:
            future = self._answers.get(key)
            if future is not None:
                return future
            # Only the newest version of a file is asked for again: a long-lived process
            # (Dagster's code server) running on a source its application still writes
            # keeps one answer per file, not one per write.
            for older in [k for k in self._answers if k[0] == key[0]]:
                del self._answers[older]
            future = self._answers[key] = Future()
        if threaded:
            threading.Thread(target=self._run, args=(future, file, key), daemon=True).start()
        else:
            self._run(future, file, key)
        return future

    def _run(self, future: Future[T], file: Path, key: tuple) -> None:
        try:
            future.set_result(self._read(file))
        except Exception as exc:  # handed to whoever waits; not kept: the next get retries
            with self._lock:
                if self._answers.get(key) is future:
                    del self._answers[key]
            future.set_exception(exc)
