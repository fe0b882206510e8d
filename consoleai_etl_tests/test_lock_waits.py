"""An application session holding a lock the promotion or the merge needs: bounded waits,
the blocker named while waiting and in the failure, the application's own queries never
queued for longer than lock_timeout, the target unchanged (real PostgreSQL, real runs)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from consoleai_etl.core.errors import MigrationError
from consoleai_etl.core.run.pipeline import MigrationConfig
from consoleai_etl.core.run.progress import Waiting, listening
from consoleai_etl_tests.helpers import execute, fetch, run_job, table_digest
from consoleai_etl_tests.test_merge_mode import APPLICATION, legacy_db
from consoleai_etl_tests.test_reliability import big_source


@contextmanager
def waits_seen() -> Iterator[list[Waiting]]:
    """The ``Waiting`` events published while the block runs (what a terminal shows)."""
    seen: list[Waiting] = []
    with listening(lambda e: isinstance(e, Waiting) and seen.append(e)):
        yield seen


@contextmanager
def idle_in_transaction(dsn: str, *statements: str) -> Iterator[psycopg.Connection]:
    """A session of the 'billing-worker' application that ran ``statements`` and left its
    transaction open."""
    with psycopg.connect(dsn, application_name="billing-worker") as conn:
        for statement in statements:
            conn.execute(statement)
        yield conn
        conn.rollback()


def application_latencies(dsn: str, stop: threading.Event, seconds: list[float]) -> None:
    """The application reading ``big`` over and over: how long each query took."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            started = time.monotonic()
            conn.execute("SELECT count(*) FROM big").fetchone()
            seconds.append(time.monotonic() - started)
            time.sleep(0.05)


def test_an_idle_transaction_fails_the_promotion_in_bounded_time_naming_it(
    tmp_path: Path, pg_dsn: str
) -> None:
    source = big_source(tmp_path / "big.sqlite", 1_000)
    run_job(source, pg_dsn, tmp_path / "first")
    before = table_digest(pg_dsn, "public", "big", "id")
    big_source(source, 2_000)

    stop, latencies = threading.Event(), []
    reader = threading.Thread(target=application_latencies, args=(pg_dsn, stop, latencies))
    with (
        idle_in_transaction(pg_dsn, "SELECT count(*) FROM big WHERE id < 10") as holder,
        waits_seen() as waits,
    ):
        reader.start()
        started = time.monotonic()
        try:
            result, report = run_job(
                source, pg_dsn, tmp_path / "blocked", lock_timeout_seconds=1, lock_wait_seconds=4
            )
        finally:
            stop.set()
            reader.join()
        took = time.monotonic() - started
        pid = holder.info.backend_pid

    assert not result.success and not report["promoted"] and report["status"] == "failure"
    [reason] = report["reasons"]
    assert reason.startswith("promotion failed, target unchanged: gave up after ")
    assert f"pid {pid} ('billing-worker', idle in transaction since " in reason
    assert "SELECT count(*) FROM big WHERE id < 10" in reason
    assert "(lock_wait_seconds: 4)" in reason
    # Said while waiting, on the run's own row of the display, every lock_timeout.
    assert waits and all(w.table is None for w in waits)
    assert f"promotion waiting for a lock held by pid {pid} " in waits[0].reason
    assert table_digest(pg_dsn, "public", "big", "id") == before
    # The application's queries queued behind the promotion's request for at most
    # lock_timeout (1 s), and ran meanwhile; the whole wait is bounded too.
    assert len(latencies) > 10 and max(latencies) < 1.8, latencies
    assert took < 60


def test_the_promotion_goes_on_once_the_application_commits(tmp_path: Path, pg_dsn: str) -> None:
    source = big_source(tmp_path / "big.sqlite", 1_000)
    run_job(source, pg_dsn, tmp_path / "first")
    big_source(source, 2_000)

    with (
        idle_in_transaction(pg_dsn, "SELECT count(*) FROM big WHERE id < 10") as holder,
        waits_seen() as waits,
    ):
        # The application ends its transaction once the promotion has waited a while.
        threading.Timer(2.5, holder.rollback).start()
        result, report = run_job(
            source, pg_dsn, tmp_path / "later", lock_timeout_seconds=1, lock_wait_seconds=30
        )

    assert result.success and report["promoted"] and report["status"] == "success"
    assert waits and "waiting for a lock held by pid" in waits[0].reason
    assert fetch(pg_dsn, "SELECT count(*) FROM big") == [(2_000,)]


def test_a_merge_waits_for_a_row_the_application_is_writing_then_fails_naming_it(
    tmp_path: Path, pg_dsn: str
) -> None:
    """The merge's own INSERT meets the application's uncommitted row of the same key: a
    row lock, not a table lock, and bounded the same way (lock_timeout on every wait)."""
    source = legacy_db(tmp_path)
    execute(pg_dsn, APPLICATION)
    before = fetch(pg_dsn, "SELECT * FROM public.users ORDER BY id")

    insert = "INSERT INTO public.users (id, email) VALUES (2, 'bob@app')"
    with idle_in_transaction(pg_dsn, insert) as holder, waits_seen() as waits:
        result, report = run_job(
            source, pg_dsn, tmp_path / "merge", mode="merge",
            lock_timeout_seconds=1, lock_wait_seconds=3,
        )  # fmt: skip
        pid = holder.info.backend_pid

    assert not result.success and not report["promoted"]
    [reason] = report["reasons"]
    assert reason.startswith("merge failed, target unchanged: gave up after ")
    assert f"pid {pid} ('billing-worker', idle in transaction since " in reason
    assert insert in reason
    assert waits and f"merge waiting for a lock held by pid {pid} " in waits[0].reason
    assert fetch(pg_dsn, "SELECT * FROM public.users ORDER BY id") == before


@pytest.mark.parametrize("option", ["lock_timeout_seconds", "lock_wait_seconds", "retry_seconds"])
def test_a_wait_that_is_not_a_positive_number_of_seconds_is_refused(option: str) -> None:
    with pytest.raises(MigrationError, match=rf"^{option} must be a positive number of seconds"):
        MigrationConfig("legacy.sqlite", "postgresql://", **{option: 0})
