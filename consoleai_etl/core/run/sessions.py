"""The two connections a table's staging uses (the source file, PostgreSQL), opened once per
staging thread and kept from one table to the next.

A new PostgreSQL session forks a server process and authenticates; a new SQLite connection
parses the file's whole schema the first time it reads. Opening both for each table (twice:
load, then checks) was nearly half of a staging thread's time on a source of 1,500 small
tables (docs/performance.md, "Many small tables"). So each thread of a ``Stager`` keeps its
pair for the run. Every use ends as a fresh connection's did: its transaction committed; after
an error the pair is closed and forgotten, so the retry after a lost connection connects again
and no half-done transaction carries over to the next table.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from consoleai_etl.core.source.connection import open_source
from consoleai_etl.core.target import bookkeeping
from consoleai_etl.core.target.postgres import connect

Pair = tuple[sqlite3.Connection, psycopg.Connection]


def _open(sqlite_path: str, pg_dsn: str) -> Pair:
    src, pg = open_source(sqlite_path, any_thread=True), None
    try:
        pg = connect(pg_dsn)
        bookkeeping.ensure_bookkeeping(pg)
    except BaseException:
        src.close()
        if pg is not None:
            pg.close()
        raise
    return src, pg


def _close(pair: Pair) -> None:
    src, pg = pair
    src.close()
    pg.close()


@contextmanager
def connections(sqlite_path: str, pg_dsn: str) -> Iterator[Pair]:
    """A new pair for one use, closed after it (committed unless it raised)."""
    pair = _open(sqlite_path, pg_dsn)
    try:
        yield pair
        pair[1].commit()
    finally:
        _close(pair)


class Sessions:
    """Each thread's pair, kept until ``close``; ``use`` is one table's use of it."""

    def __init__(self, sqlite_path: str, pg_dsn: str) -> None:
        self.sqlite_path, self.pg_dsn = sqlite_path, pg_dsn
        self._local = threading.local()
        self._held: list[Pair] = []
        self._guard = threading.Lock()

    @contextmanager
    def use(self) -> Iterator[Pair]:
        pair: Pair | None = getattr(self._local, "pair", None)
        if pair is None:
            pair = _open(self.sqlite_path, self.pg_dsn)
            with self._guard:
                self._held.append(pair)
            self._local.pair = pair
        try:
            yield pair
            pair[1].commit()
        except BaseException:
            self._forget(pair)
            raise

    def _forget(self, pair: Pair) -> None:
        self._local.pair = None
        with self._guard:
            self._held.remove(pair)
        _close(pair)

    def close(self) -> None:
        """Close every thread's pair (the threads are done with them)."""
        with self._guard:
            held, self._held = self._held, []
        for pair in held:
            _close(pair)
