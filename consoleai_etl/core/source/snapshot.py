"""One moment of the source for the whole run, though its application may keep writing.

Every table is read by its own connections, at its own moment (the stager's threads, the
compiled reader, the profile's second connection). Against a live source that makes a
child inserted after its parent table was read a false FK orphan, and the counts belong to
different moments. So a run reads the source as of one moment, or fails:

- **WAL journal mode**: writers commit while readers read, so a copy taken in one read
  transaction (SQLite's backup API in a single step) is one consistent moment; the run
  reads every table from that copy, in a run-scoped temporary directory removed when the
  run ends. ``sqlite3_snapshot_open`` would avoid the copy, but the system's SQLite is not
  built with ``SQLITE_ENABLE_SNAPSHOT``.
- **Rollback-journal mode**: a writer cannot commit while a reader holds its lock, but
  each table's read releases it, so commits can fall between tables. Copying would block
  the application for as long as the copy, so the file is read in place and the change
  counter SQLite increments on every commit is compared at the end: a run during which
  the source changed fails before anything is promoted.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from consoleai_etl.core.errors import SourceError
from consoleai_etl.core.source.connection import open_source

PREFIX = "consoleai_etl-snapshot-"  # run-scoped copies: <temp dir>/<PREFIX>…/
LOCK_NAME = ".owner"  # locked by the run that owns the directory, for as long as it runs
STALE_AFTER = 60.0  # seconds: an unlocked directory this old belongs to a killed run
MB = 1_000_000


class SourceChanged(SourceError):
    """A rollback-journal source was committed to while the run read it."""


@dataclass(frozen=True)
class FileState:
    """What a commit in rollback-journal mode changes: the file change counter (header
    bytes 24..27, incremented by every commit), and the file's size and mtime."""

    counter: int
    size: int
    mtime_ns: int

    @classmethod
    def read(cls, src: sqlite3.Connection, path: Path) -> FileState:
        """The state of ``path`` under a read lock taken on ``src``, so that no commit is
        half written while the header is read."""
        src.execute("BEGIN")
        try:
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # takes the lock
            with path.open("rb") as handle:
                header = handle.read(28)
                stat = os.fstat(handle.fileno())
        finally:
            src.execute("COMMIT")
        return cls(int.from_bytes(header[24:28], "big"), stat.st_size, stat.st_mtime_ns)

    def changes(self, later: FileState) -> str | None:
        """How ``later`` differs, in words, or None when it does not."""
        if later == self:
            return None
        what = [f"change counter {self.counter} -> {later.counter}"]
        if later.size != self.size:
            what.append(f"size {self.size:,} -> {later.size:,} bytes")
        if later.counter == self.counter and later.size == self.size:
            what.append("modified time changed")
        return ", ".join(what)


class Snapshot:
    """The run's view of ``source``: ``path`` is the file every reader opens, ``method``
    says for the report how it was taken. ``check_unchanged`` raises ``SourceChanged`` when
    the reads may have spanned a commit; ``close`` removes the copy, if any."""

    def __init__(
        self,
        source: Path,
        path: Path,
        method: str,
        state: FileState | None = None,
        owner: int | None = None,
    ) -> None:
        self.source, self.path, self.method = source, path, method
        self._state, self._owner = state, owner

    @classmethod
    def take(cls, source: str | Path, temp_dir: str | Path | None = None) -> Snapshot:
        """Copy a WAL-mode ``source`` into a new directory under ``temp_dir`` (default: the
        system's temporary directory), or record a rollback-mode one's ``FileState``."""
        file = Path(source)
        with closing(open_source(file)) as src:
            mode = src.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                state = FileState.read(src, file)
                method = (
                    f"read in place ({mode} journal mode): a commit to the source during the "
                    f"run fails it (file change counter {state.counter} at the start)"
                )
                return cls(file, file, method, state=state)
            root = Path(temp_dir or tempfile.gettempdir())
            remove_stale(root)
            return cls._copy(src, file, root)

    @classmethod
    def _copy(cls, src: sqlite3.Connection, source: Path, root: Path) -> Snapshot:
        try:
            directory = Path(tempfile.mkdtemp(prefix=PREFIX, dir=root))
        except OSError as exc:
            raise SourceError(
                f"cannot create a directory for the snapshot of source {source} in {root} "
                f"({exc.strerror}): point TMPDIR at a writable directory, then run again"
            ) from None
        owner = _lock(directory)
        copy = directory / source.name
        started = time.perf_counter()
        try:
            with closing(sqlite3.connect(copy, isolation_level=None)) as dst:
                dst.execute("PRAGMA synchronous = OFF")  # a scratch copy: no fsync needed
                src.backup(dst, pages=-1)  # one step: one read transaction, one moment
                dst.execute("PRAGMA journal_mode = DELETE")  # readable without -wal/-shm
        except (sqlite3.Error, OSError) as exc:
            _remove(directory, owner)
            raise SourceError(
                f"cannot copy source {source} into {root} for a consistent snapshot ({exc}; "
                f"{_needed(source) / MB:,.0f} MB needed, "
                f"{shutil.disk_usage(root).free / MB:,.0f} MB free there): free space there "
                "or point TMPDIR at a larger disk, then run again"
            ) from None
        seconds = time.perf_counter() - started
        size = copy.stat().st_size
        method = (
            f"one snapshot (WAL journal mode): copied with SQLite's backup API in one read "
            f"transaction ({size / MB:,.0f} MB in {seconds:.2f} s, "
            f"{size / MB / max(seconds, 1e-6):,.0f} MB/s); every table was read from the copy"
        )
        return cls(source, copy, method, owner=owner)

    def check_unchanged(self) -> None:
        """Raise ``SourceChanged`` if a rollback-mode source was committed to since ``take``
        (a copy cannot change: nothing to check)."""
        if self._state is None:
            return
        try:
            with closing(open_source(self.source)) as src:
                now = FileState.read(src, self.source)
        except SourceError as exc:  # removed, or locked by a writer at this moment
            raise SourceChanged(str(exc)) from None
        changes = self._state.changes(now)
        if changes:
            raise SourceChanged(
                f"source {self.source} was written during the run ({changes}): stop the "
                "application or migrate a copy, then run again"
            )

    def close(self) -> None:
        """Remove the copy (a no-op for a file read in place, and when called again)."""
        if self._owner is not None:
            _remove(self.path.parent, self._owner)
            self._owner = None


def _needed(source: Path) -> int:
    """Bytes a copy of ``source`` may take: the file plus its WAL (an upper bound)."""
    wal = source.with_name(f"{source.name}-wal")
    return source.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _lock(directory: Path) -> int:
    """Mark ``directory`` as owned by this process for as long as the returned descriptor
    is open; the kernel releases the lock when the process dies, however it dies."""
    owner = os.open(directory / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(owner, fcntl.LOCK_EX)
    return owner


def _remove(directory: Path, owner: int) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    os.close(owner)


def remove_stale(root: Path) -> None:
    """Remove the snapshot directories of runs that were killed (SIGKILL skips ``close``):
    those whose owner lock nobody holds. A directory younger than ``STALE_AFTER`` is left
    alone, as its run may be between creating it and locking it."""
    for lock_file in root.glob(f"{PREFIX}*/{LOCK_NAME}"):
        try:
            if time.time() - lock_file.stat().st_mtime < STALE_AFTER:
                continue
            owner = os.open(lock_file, os.O_RDWR)
        except OSError:
            continue  # gone meanwhile, or another user's
        try:
            fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(owner)  # its run is alive
            continue
        _remove(lock_file.parent, owner)
