"""The core's progress feed (``core.run.progress``): what a listener in the run's process
receives from a real migration and a real verification, and that it stops receiving."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from consoleai_etl.core.run.progress import (
    CHECKS,
    FOREIGN_KEYS,
    KEYS,
    PROMOTION,
    STAGING,
    Event,
    PhaseStarted,
    Recorded,
    RowsDone,
    TableFinished,
    listening,
)
from consoleai_etl.core.source.catalog import introspect
from consoleai_etl.core.source.connection import open_source
from consoleai_etl_tests.helpers import run_raw


def events_of(events: list[Event], table: str) -> list[Event]:
    return [
        e
        for e in events
        if not isinstance(e, Recorded)
        and (e.report.table if isinstance(e, TableFinished) else e.table) == table
    ]


def test_a_migration_publishes_each_tables_rows_phases_and_report(
    sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    events: list[Event] = []
    with listening(events.append):
        result = run_raw(sample_db, pg_dsn, tmp_path / "reports")
    assert result.success
    with closing(open_source(sample_db)) as src:
        catalog = introspect(src)

    for table in catalog.tables:
        own = events_of(events, table.name)
        rows = [e for e in own if isinstance(e, RowsDone)]
        finished = own[-1]
        assert isinstance(finished, TableFinished) and finished.report.error is None
        assert rows[0].done == 0 and rows[-1].done == rows[-1].total
        assert rows[-1].total == finished.report.source_rows > 0
        assert [e.phase for e in own if isinstance(e, PhaseStarted)] == (
            [KEYS, FOREIGN_KEYS, CHECKS] if table.foreign_keys else [KEYS, CHECKS]
        )
        assert own.index(rows[-1]) < own.index(next(e for e in own if isinstance(e, PhaseStarted)))
    assert events[0] == PhaseStarted(None, STAGING)
    # After every table: promotion, then Dagster records each table's results, counted.
    promotion = events.index(PhaseStarted(None, PROMOTION))
    assert events[promotion + 1 :] == [Recorded(done, 9) for done in range(10)]

    published = len(events)
    run_raw(sample_db, pg_dsn, tmp_path / "reports", dry_run=True)
    assert len(events) == published  # no longer listening: nothing delivered


def test_a_verification_publishes_each_tables_checks_and_report(
    sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    assert run_raw(sample_db, pg_dsn, tmp_path / "reports").success
    events: list[Event] = []
    with listening(events.append):
        result = run_raw(sample_db, pg_dsn, tmp_path / "reports", job="consistency_check_job")
    assert result.success

    finished = {e.report.table for e in events if isinstance(e, TableFinished)}
    assert len(finished) == 9
    for table in finished:
        phase, done = events_of(events, table)
        assert phase == PhaseStarted(table, CHECKS)
        assert isinstance(done, TableFinished) and all(c.passed for c in done.report.checks)
    assert not [e for e in events if isinstance(e, RowsDone)]  # nothing is loaded
