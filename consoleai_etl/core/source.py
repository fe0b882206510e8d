"""Opening the legacy SQLite file: read-only, and tolerant of the bytes legacy files hold."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from consoleai_etl.core.errors import SourceError


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


def open_source(path: str | Path) -> sqlite3.Connection:
    """Open ``path`` read-only (``mode=ro`` URI plus ``query_only``) or raise ``SourceError``."""
    file = Path(path)
    if not file.is_file():
        raise SourceError(
            f"source SQLite file {file} does not exist: set CONSOLEAI_SQLITE_PATH to the legacy "
            "database, or run `make demo` to build the sample one"
        )
    try:
        conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, timeout=LOCK_WAIT)
        conn.execute("PRAGMA query_only = 1")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            raise SourceError(
                f"source {file} is locked by another process (waited {LOCK_WAIT:g} s): let the "
                "legacy application finish writing, or migrate a copy of the file"
            ) from None
        raise SourceError(f"source {file} cannot be read ({exc})") from None
    except sqlite3.DatabaseError as exc:
        raise SourceError(f"source {file} is not a readable SQLite database ({exc})") from None
    conn.text_factory = _decode_text
    return conn
