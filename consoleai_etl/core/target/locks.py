"""Taking the application's tables without blocking the application.

A promotion drops the target's tables (ACCESS EXCLUSIVE) and a merge writes into the
application's (ROW EXCLUSIVE, then row locks). A session holding a conflicting lock (an
application transaction left idle in transaction) would make that request wait forever,
and PostgreSQL queues every later request for the table behind ours: the application's
own queries would stall too. So the transaction asks for its locks first, all in one
``LOCK TABLE`` bounded by ``lock_timeout`` (each later wait inside it is bounded the same
way), and on a timeout rolls back, which lets the queued queries through, says who holds
the lock, and tries again, until ``lock_wait_seconds`` have passed: then the run fails with
one line, the target unchanged. Who holds it is asked of ``pg_blocking_pids`` from a second
connection while the request waits: once it is cancelled, the server no longer knows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

import psycopg
from psycopg import sql

from consoleai_etl.core.errors import TargetError
from consoleai_etl.core.target.postgres import connect

T = TypeVar("T")

RETRY_PAUSE = 1.0  # seconds between attempts: the application's queued queries run meanwhile
WATCH_AFTER = 0.2  # a lock request waiting this long gets a watcher (a second connection)
QUERY_SHOWN = 80  # characters of a blocking session's query shown


class LockBusy(Exception):
    """The locks were not granted within ``lock_timeout``; the transaction is rolled back."""


class LockWaitOver(TargetError):
    """Another session held a lock the transaction needs for longer than its whole wait."""


@dataclass(frozen=True)
class LockPolicy:
    timeout: float  # seconds: one lock request (lock_timeout)
    total: float  # seconds: every attempt of the transaction

    def milliseconds(self) -> str:
        """``timeout`` as a setting; never 0, which would mean no timeout at all."""
        return f"{max(1, round(self.timeout * 1000))}ms"


@dataclass(frozen=True)
class Blocker:
    """A session holding (or queued ahead for) a lock the run waits for."""

    pid: int
    application: str
    state: str
    since: datetime | None
    query: str

    def __str__(self) -> str:
        since = f" since {self.since:%Y-%m-%d %H:%M:%S %Z}".rstrip() if self.since else ""
        query = " ".join(self.query.split())
        if len(query) > QUERY_SHOWN:
            query = query[: QUERY_SHOWN - 1] + "…"
        app = f"{self.application!r}, " if self.application else ""
        return f"pid {self.pid} ({app}{self.state}{since}: {query})"


BLOCKERS = (
    "SELECT pid, application_name, coalesce(state, ''), state_change, coalesce(query, '') "
    "FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids(%s)) ORDER BY pid"
)


class BlockerWatch:
    """While open, a thread asks (on its own connection, opened only once the request has
    waited ``WATCH_AFTER``) which sessions block session ``pid``; ``seen`` holds the last
    non-empty answer."""

    def __init__(self, dsn: str, pid: int) -> None:
        self.dsn, self.pid = dsn, pid
        self.seen: list[Blocker] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="lock-watch", daemon=True)

    def __enter__(self) -> BlockerWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.done.set()
        self.thread.join()

    def _watch(self) -> None:
        if self.done.wait(WATCH_AFTER):
            return
        try:
            with connect(self.dsn, autocommit=True) as conn:
                while not self.done.is_set():
                    rows = conn.execute(BLOCKERS, (self.pid,)).fetchall()
                    if rows:
                        self.seen = [Blocker(*row) for row in rows]
                    self.done.wait(0.1)
        except (TargetError, psycopg.Error):
            return  # only the message loses its names; the wait itself is bounded anyway


def lock_tables(
    pg: psycopg.Connection, tables: Iterable[sql.Composable], mode: str, policy: LockPolicy
) -> None:
    """In the caller's transaction: bound every lock wait by ``policy.timeout``, then take
    ``tables`` in ``mode`` in one statement, which as a whole may wait no longer than that
    either (its ``statement_timeout``); raises ``LockBusy`` when they are not granted."""
    pg.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(policy.milliseconds())))
    tables = list(tables)
    if not tables:
        return
    previous = pg.execute("SHOW statement_timeout").fetchone()[0]
    pg.execute("SELECT set_config('statement_timeout', %s, true)", (policy.milliseconds(),))
    try:
        pg.execute(
            sql.SQL("LOCK TABLE {} IN {} MODE").format(sql.SQL(", ").join(tables), sql.SQL(mode))
        )
    except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled) as exc:
        raise LockBusy(str(exc)) from None
    pg.execute("SELECT set_config('statement_timeout', %s, true)", (previous,))


# A statement that gave up waiting for another session (lock_timeout), or that the server
# cancelled to break a deadlock with one: the transaction is tried again.
LOCK_WAITS = (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected)
WAITS = (LockBusy, *LOCK_WAITS)


def waiting_for_locks(
    pg: psycopg.Connection,
    dsn: str,
    policy: LockPolicy,
    attempt: Callable[[LockPolicy], T],
    on_wait: Callable[[str], None],
    what: str,
    pause: Callable[[float], None] = time.sleep,
) -> T:
    """``attempt(policy)`` (one transaction on ``pg`` that starts with ``lock_tables`` under
    that policy), tried again after each lock wait it gave up (``WAITS``) until
    ``policy.total`` seconds have passed (the last attempt waits only for what is left);
    each wait is told to ``on_wait`` with the sessions in the way. Then ``LockWaitOver``
    names them. ``what`` names the transaction (promotion, merge); ``pause``
    sleeps between attempts (the run's, which an interrupt cuts short)."""
    started = time.monotonic()
    while True:
        left = policy.total - (time.monotonic() - started)
        with BlockerWatch(dsn, pg.info.backend_pid) as watch:
            try:
                return attempt(replace(policy, timeout=min(policy.timeout, left)))
            except WAITS:
                pass
        held = ", ".join(map(str, watch.seen)) or "another session"
        waited = time.monotonic() - started
        if waited + RETRY_PAUSE >= policy.total:
            raise LockWaitOver(
                f"gave up after {waited:.0f} s waiting for locks held by {held} "
                f"(lock_wait_seconds: {policy.total:g}): end that session or wait until it "
                f"is done, then run again"
            )
        on_wait(f"{what} waiting for a lock held by {held}; {waited:.0f} of {policy.total:g} s")
        pause(RETRY_PAUSE)
