"""Opening the legacy SQLite file: read-only, and tolerant of the bytes legacy files hold."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from consoleai_etl.core.errors import SourceError, option
from consoleai_etl.core.source.catalog import schema_collations


class InvalidText(bytes):
    """A TEXT value whose bytes are not valid UTF-8, kept as raw bytes so nothing is lost.

    Python's sqlite3 raises on such a value and aborts the whole cursor; returning a marker
    instead lets the converter quarantine just the row that holds it.
    """


def _decode_text(raw: bytes) -> str | InvalidText:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidText(raw)


class UndecodableText(Exception):
    """A TEXT value is not valid UTF-8 while reading with strict (fast) decoding."""


@contextmanager
def strict_text(conn: sqlite3.Connection) -> Iterator[None]:
    """Decode TEXT in C while inside (no Python call per value); a value that is not valid
    UTF-8 raises ``UndecodableText`` instead of becoming ``InvalidText``, so the caller can
    read the table again the careful way."""
    conn.text_factory = str
    try:
        yield
    except sqlite3.OperationalError as exc:
        if str(exc).startswith("Could not decode to UTF-8"):
            raise UndecodableText(str(exc)) from None
        raise
    finally:
        conn.text_factory = _decode_text


LOCK_WAIT = 5.0  # seconds to wait for a writer's lock on the source


def stand_in_collation(left: str, right: str) -> int:
    """The comparison used for a collation the schema names but SQLite does not know: text
    compared case-insensitively over all of Unicode (``casefold``), which is what Anki's
    ``unicase`` does and near what such application collations usually do."""
    left, right = left.casefold(), right.casefold()
    return (left > right) - (left < right)


def register_stand_ins(conn: sqlite3.Connection) -> None:
    """Define every collation the schema names that SQLite lacks (the writing application
    registered it on its own connections). Without them SQLite refuses any statement that
    compares through one: ``count(*)`` over an index, ``quick_check``, ``ORDER BY``..."""
    for name in schema_collations(conn):
        conn.create_collation(name, stand_in_collation)


def _missing_source(file: Path) -> SourceError:
    if file.is_dir():
        return SourceError(
            f"source {file} is a directory, not a SQLite file: set {option('sqlite_path')} "
            "to the legacy database file itself"
        )
    return SourceError(
        f"source SQLite file {file} does not exist: set {option('sqlite_path')} to the "
        "legacy database, or run `make demo` to build the sample one"
    )


def _unreadable(file: Path, exc: sqlite3.OperationalError) -> SourceError:
    """The one-line diagnosis of an error on opening or first reading the source."""
    if "locked" in str(exc):
        return SourceError(
            f"source {file} is locked by another process (waited {LOCK_WAIT:g} s): let the "
            "legacy application finish writing, or migrate a copy of the file"
        )
    # A writer crashed mid-transaction: its rollback journal must be played back, which a
    # read-only connection may not do (and this tool never writes the source).
    journal = Path(f"{file}-journal")
    if exc.sqlite_errorname == "SQLITE_READONLY_ROLLBACK" and journal.exists():
        return SourceError(
            f"source {file} has a hot journal ({journal.name}) left by a crashed writer: open "
            f"it once with the writing application or `sqlite3 {file} 'PRAGMA quick_check'` "
            "(read-write) to roll it back, then migrate"
        )
    return SourceError(f"source {file} cannot be read ({exc})")


class SourceConnection(sqlite3.Connection):
    """The connection ``open_source`` gives: a subclass only so that it can be weakly
    referenced, so that what the compiled reader keeps per connection
    (``rowcopy.compiled_source``) goes with it."""


def open_source(path: str | Path, *, any_thread: bool = False) -> sqlite3.Connection:
    """Open ``path`` read-only (``mode=ro`` URI plus ``query_only``) or raise ``SourceError``;
    the schema's unknown collations get a stand-in (``register_stand_ins``). ``any_thread``:
    another thread may close it (``sessions``: one thread uses it at a time)."""
    file = Path(path)
    if not file.is_file():
        raise _missing_source(file)
    try:
        conn = sqlite3.connect(
            f"{file.resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=LOCK_WAIT,
            check_same_thread=not any_thread,
            factory=SourceConnection,
        )
        conn.execute("PRAGMA query_only = 1")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        register_stand_ins(conn)
    except sqlite3.OperationalError as exc:
        raise _unreadable(file, exc) from None
    except sqlite3.DatabaseError as exc:
        raise SourceError(f"source {file} is not a readable SQLite database ({exc})") from None
    conn.text_factory = _decode_text
    return conn


def file_version(path: str | Path) -> tuple[tuple[int, int] | None, ...]:
    """Size and modification time of the file and its WAL (None: absent): any write to the
    database changes one of them. What is computed from a file is cached per version."""
    versions = []
    for file in (Path(path), Path(f"{path}-wal")):
        try:
            stat = file.stat()
        except OSError:
            versions.append(None)
        else:
            versions.append((stat.st_size, stat.st_mtime_ns))
    return tuple(versions)
