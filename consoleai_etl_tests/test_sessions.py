"""A staging thread's kept connections (``core.run.sessions``) and what a run of many tables
saves with them: one PostgreSQL session per staging thread, not two per table."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from consoleai_etl.core.run.sessions import Sessions
from consoleai_etl.demo.many_tables import generate
from consoleai_etl_tests.helpers import fetch, run_raw


@pytest.fixture
def source(tmp_path: Path) -> Path:
    db = tmp_path / "one.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    return db


def backend(sessions: Sessions) -> int:
    with sessions.use() as (src, pg):
        assert src.execute("SELECT count(*) FROM t").fetchone() == (0,)
        return pg.execute("SELECT pg_backend_pid()").fetchone()[0]


def test_a_thread_keeps_its_pair_and_a_lost_one_is_replaced(source: Path, pg_dsn: str) -> None:
    sessions = Sessions(str(source), pg_dsn)
    first = backend(sessions)
    assert backend(sessions) == first  # the same session, table after table
    other: list[int] = []
    thread = threading.Thread(target=lambda: other.append(backend(sessions)))
    thread.start()
    thread.join()
    assert other and other[0] != first  # each thread its own

    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
    with pytest.raises(psycopg.OperationalError):  # the caller's retry sees a lost connection
        backend(sessions)
    again = backend(sessions)  # ... and its next attempt connects again
    assert again != first

    # A use that failed leaves nothing half-done for the next: its transaction is gone.
    with pytest.raises(ZeroDivisionError), sessions.use() as (_, pg):
        pg.execute("CREATE TABLE half_done (id int)")
        _ = 1 / 0
    assert fetch(pg_dsn, "SELECT to_regclass('half_done') IS NULL") == [(True,)]

    sessions.close()
    alive = fetch(pg_dsn, "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)",
                  ([first, other[0], again],))  # fmt: skip
    assert alive == [(0,)]


def test_a_run_of_many_tables_opens_a_session_per_thread_not_per_table(
    tmp_path: Path, pg_dsn: str
) -> None:
    """``pg_stat_database.sessions`` counts every session opened on the run's database:
    before the kept connections, each table opened two (load, checks)."""
    db = generate(tmp_path / "many.sqlite", tables=40, rows=3)
    query = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
    [(before,)] = fetch(pg_dsn, query)
    assert run_raw(db, pg_dsn, tmp_path / "reports").success
    [(after,)] = fetch(pg_dsn, query)
    assert after - before < 20  # 2 staging threads, locks, preflight, promotion, report
