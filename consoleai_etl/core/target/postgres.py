"""PostgreSQL connections: DSN resolution (with the embedded fallback), redaction, errors."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from consoleai_etl.core.errors import TargetError, option

_PASSWORD_IN_URI = re.compile(r"(://[^:/@]*:)([^@]*)(@)")
_PASSWORD_IN_KEYWORDS = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


# The settings values are read and printed under: UTC (see ``connect``), and the default
# output styles whatever the server's or the role's defaults, so that a value's text (an
# interval, an array of reals) is the one the converters send (``core/types``).
SESSION = "-c TimeZone=UTC -c IntervalStyle=postgres -c DateStyle=ISO,MDY -c extra_float_digits=1"
# SQLSTATEs of a session the server ended: class 08 (connection exception) and the
# shutdowns of class 57 (57P01 admin shutdown, which pg_terminate_backend sends, 57P02
# crash shutdown, 57P03 cannot connect now).
CONNECTION_LOST = ("08", "57P01", "57P02", "57P03")


def redact(text: str) -> str:
    """``text`` with any password in a DSN (URI or key=value form) replaced by ``***``."""
    text = _PASSWORD_IN_URI.sub(r"\1***\3", text)
    return _PASSWORD_IN_KEYWORDS.sub(r"\1***", text)


def embedded_dsn(data_dir: str | Path = ".data/postgres") -> str:
    """Start (or reuse) the embedded PostgreSQL of the ``pgserver`` package under ``data_dir``.

    Used when no ``CONSOLEAI_PG_DSN`` is given, so the demo works on a machine without a
    server. The server outlives this process and is shared by later runs.
    """
    try:
        import pgserver  # imported lazily: it is only needed without a real server
    except ImportError:
        raise TargetError(
            "no PostgreSQL server given and the embedded one (package pgserver) is not "
            "installed (it has no build for Python 3.13): set CONSOLEAI_PG_DSN to a server"
        ) from None
    path = Path(data_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(path, cleanup_mode=None).get_uri()


def embedded_pid(data_dir: str | Path) -> int | None:
    """The pid of the embedded server running under ``data_dir``, or None: the first line
    of its ``postmaster.pid``, when that process is alive and is a postgres serving this
    directory (a stale file's pid may since belong to anything)."""
    try:
        pid = int((Path(data_dir) / "postmaster.pid").read_text().split()[0])
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    return pid if Path(command[0].decode()).name == "postgres" else None


def stop_embedded(data_dir: str | Path, wait: float = 30.0) -> int | None:
    """Stop the embedded server under ``data_dir`` and return its pid, or None when none
    runs there. It outlives the runs on purpose (the next run and ``make ui`` reuse it), so
    ``make stop`` is how a user ends it: SIGINT is PostgreSQL's fast shutdown (sessions
    rolled back, a checkpoint, a clean stop), waited for up to ``wait`` seconds."""
    pid = embedded_pid(data_dir)
    if pid is None:
        return None
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + wait
    while embedded_pid(data_dir) == pid:
        if time.monotonic() > deadline:
            raise TargetError(
                f"the embedded PostgreSQL under {data_dir} (pid {pid}) did not stop within "
                f"{wait:.0f} s: see {Path(data_dir) / 'log'}, or kill {pid}"
            )
        time.sleep(0.1)
    return pid


class CannotConnect(TargetError):
    """The server refused or did not answer a new connection; ``reason`` is its words."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def connect(dsn: str, **kwargs: object) -> psycopg.Connection:
    """Connect or raise ``CannotConnect`` naming the (redacted) DSN and the server's reason.

    Sessions run in UTC, so casts between timestamp and timestamptz (a target loaded by
    another tool) read the same on every server whatever its TimeZone setting; and with
    the default output styles (``SESSION``).
    """
    try:
        options = " ".join(filter(None, [conninfo_to_dict(dsn).get("options"), SESSION]))
        return psycopg.connect(dsn, options=options, **kwargs)
    except psycopg.Error as exc:
        reason = redact(" ".join(str(exc).split()))
        raise CannotConnect(
            f"cannot connect to PostgreSQL at {redact(dsn)}: {reason} (check {option('pg_dsn')})",
            reason,
        ) from None


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is the connection dropping (worth a retry), not an SQL error.

    psycopg files many server errors under ``OperationalError`` (a table over the column
    limit, a row too big, a statement timeout), and those fail the same way every time. A
    lost connection either carries one of the ``CONNECTION_LOST`` states or, when the
    socket simply closed, no SQLSTATE at all. A new connection refused is one too: the
    caller asks only once the run has connected, so the server is restarting, not
    misnamed."""
    if isinstance(exc, CannotConnect):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    return exc.sqlstate is None or exc.sqlstate.startswith(CONNECTION_LOST)


def create_schema(conn: psycopg.Connection, schema: str) -> None:
    """Create ``schema`` only when it is missing: ``CREATE SCHEMA IF NOT EXISTS`` asks for
    CREATE on the database even when the schema exists (PostgreSQL checks that first), so
    a user given only schemas an administrator created for it could not run."""
    exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    if exists is None:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
