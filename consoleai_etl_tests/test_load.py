"""The core loader on its own (no Dagster): progress reporting and the streamed checksum."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import psycopg
from psycopg import sql

from consoleai_etl.core.plan.planner import GUESS_ROWS, plan_source
from consoleai_etl.core.run.load import BATCH_ROWS, LoadOptions, load_table
from consoleai_etl.core.source.catalog import introspect
from consoleai_etl.core.source.connection import open_source
from consoleai_etl.core.target.bookkeeping import ensure_bookkeeping
from consoleai_etl.core.target.staging import Staging
from consoleai_etl.core.verify.checksum import Checksum, target_checksum
from consoleai_etl.core.verify.registry import CheckContext, run_checks

STAGE = Staging("run-1")  # where the tables are loaded, as a run stages them


def test_progress_is_reported_per_batch_and_checksum_matches_sql(
    tmp_path: Path, pg_dsn: str, stream: str
) -> None:
    db = tmp_path / "big.sqlite"
    rows = BATCH_ROWS * 2 + 123
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, label TEXT, at DATETIME)")
        conn.executemany(
            "INSERT INTO big VALUES (?, ?, ?)",
            ((i, f"row {i}", "2024-01-01 00:00:00") for i in range(rows)),
        )
    calls: list[tuple[int, int]] = []
    with closing(open_source(db)) as src, psycopg.connect(pg_dsn) as pg:
        ensure_bookkeeping(pg)
        plan, result = load_table(
            src, pg, introspect(src).table("big"), schema=STAGE, target_schema="public",
            run_id="run-1", progress=lambda done, total: calls.append((done, total)),
        )  # fmt: skip
        stored = target_checksum(pg, plan, STAGE)

    assert calls == [(0, rows), (BATCH_ROWS, rows), (2 * BATCH_ROWS, rows), (rows, rows)]
    assert result.loaded_rows == rows and result.checksum_seconds > 0
    started, ended = result.window  # wall clock, waits included: at least its own seconds
    assert ended - started >= result.seconds > 0 and abs(time.time() - ended) < 60
    assert (stored.rows, stored.value) == (rows, result.checksum)


def test_table_progress_reaches_the_dagster_run_log(
    tmp_path: Path, pg_dsn: str, monkeypatch
) -> None:
    import dagster as dg

    from consoleai_etl.definitions import build_definitions
    from consoleai_etl.defs import table_assets
    from consoleai_etl.defs.settings import target_of

    monkeypatch.setattr(table_assets, "PROGRESS_EVERY_SECONDS", 0.0)
    db = tmp_path / "big.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT INTO big VALUES (?)", ((i,) for i in range(BATCH_ROWS * 2)))
    config = {"sqlite_path": str(db), "pg_dsn": pg_dsn, "report_dir": str(tmp_path / "r")}
    with dg.DagsterInstance.ephemeral() as instance:
        result = (
            build_definitions(db, target=target_of(config))
            .resolve_job_def("legacy_migration_job")
            .execute_in_process(
                run_config={"resources": {"settings": {"config": config}}}, instance=instance
            )
        )
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    progress = [m for m in messages if "rows/s, ETA" in m]
    assert progress[-1].startswith(f"big: {BATCH_ROWS * 2:,} / {BATCH_ROWS * 2:,} rows, ")


def _load(db: Path, pg_dsn: str, table: str):
    with closing(open_source(db)) as src, psycopg.connect(pg_dsn) as pg:
        ensure_bookkeeping(pg)
        plan, result = load_table(
            src, pg, introspect(src).table(table), schema=STAGE, target_schema="public",
            run_id="run-1",
        )  # fmt: skip
        stored = target_checksum(pg, plan, STAGE)
        query = sql.SQL("SELECT label FROM {} ORDER BY id").format(STAGE.qualified("t"))
        texts = [row[0] for row in pg.execute(query)]
    return result, stored, texts


def _text_table(db: Path, declared: str, labels: list[object]) -> None:
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(f"CREATE TABLE t (id INTEGER PRIMARY KEY, label {declared})")
        conn.executemany("INSERT INTO t VALUES (?, ?)", enumerate(labels))


def test_clean_text_takes_the_fast_path(tmp_path: Path, pg_dsn: str, stream: str) -> None:
    db = tmp_path / "clean.sqlite"
    _text_table(db, "VARCHAR(5)", ["abc", "ünï", None, "12345"])
    result, stored, texts = _load(db, pg_dsn, "t")
    assert not any("value by value" in w for w in result.warnings)
    assert texts == ["abc", "ünï", None, "12345"]
    assert (stored.rows, stored.value) == (4, result.checksum)


def test_text_the_server_refuses_is_streamed_again_and_quarantined(
    tmp_path: Path, pg_dsn: str, stream: str
) -> None:
    """A NUL and invalid UTF-8 (which no column type holds as text) each abandon the fast
    path: the table is streamed again value by value and exactly the refused rows are
    quarantined. (The compiled pass sends TEXT bytes untouched, so PostgreSQL is the one
    refusing bad UTF-8.)"""
    for n, (declared, bad, reason) in enumerate(
        [
            ("TEXT", "a\x00b", "0x00"),
            ("VARCHAR(5)", "a\x00b", "0x00"),
            ("TEXT", None, "not valid UTF-8"),
        ]
    ):
        db = tmp_path / f"{n}.sqlite"
        _text_table(db, declared, ["ok", "fine"])
        with closing(sqlite3.connect(db)) as conn, conn:
            if bad is None:  # raw bytes stored as TEXT
                conn.execute("INSERT INTO t VALUES (9, CAST(x'ff41' AS TEXT))")
            else:
                conn.execute("INSERT INTO t VALUES (9, ?)", (bad,))
        result, stored, texts = _load(db, pg_dsn, "t")
        note = next(w for w in result.warnings if "value by value" in w)
        assert reason in note
        assert (result.loaded_rows, result.quarantined_rows) == (2, 1)
        assert texts == ["ok", "fine"]
        assert (stored.rows, stored.value) == (2, result.checksum)


def test_text_longer_than_its_declared_length_widens_the_column(
    tmp_path: Path, pg_dsn: str, stream: str
) -> None:
    """SQLite never enforces VARCHAR(n): a longer value is valid, so the column becomes
    text (with a warning) rather than the row being quarantined."""
    db = tmp_path / "long.sqlite"
    _text_table(db, "VARCHAR(5)", ["ok", "x" * 134, None])
    result, stored, texts = _load(db, pg_dsn, "t")
    assert (result.loaded_rows, result.quarantined_rows) == (3, 0)
    assert texts == ["ok", "x" * 134, None]
    assert (stored.rows, stored.value) == (3, result.checksum)
    [warning] = [w for w in result.warnings if w.startswith("column label:")]
    assert warning == (
        "column label: declared VARCHAR(5) (varchar(5)), but stores values it cannot hold "
        f"unchanged (e.g. {repr('x' * 134)[:57]}... cannot become varchar(5): 134 characters, "
        "longer than 5): widened to text"
    )


def test_a_tables_own_seconds_exclude_waiting_for_its_streaming_turn(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = tmp_path / "small.sqlite"
    _text_table(db, "TEXT", ["a", "b"])
    turn = threading.Lock()
    turn.acquire()
    threading.Timer(1.0, turn.release).start()  # another table streams for a second
    started = time.perf_counter()
    with closing(open_source(db)) as src, psycopg.connect(pg_dsn) as pg:
        ensure_bookkeeping(pg)
        _, result = load_table(
            src, pg, introspect(src).table("t"), schema=STAGE, target_schema="public",
            run_id="run-1", options=LoadOptions(streaming=turn),
        )  # fmt: skip
    assert time.perf_counter() - started >= 1.0
    assert result.loaded_rows == 2 and result.seconds < 0.5


def _passes(db: Path, pg_dsn: str, table: str):
    """Load ``table``; (plan, result, passes over the rows, the profiled plan)."""
    starts: list[int] = []
    with closing(open_source(db)) as src, psycopg.connect(pg_dsn) as pg:
        ensure_bookkeeping(pg)
        plan, result = load_table(
            src, pg, introspect(src).table(table), schema=STAGE, target_schema="public",
            run_id="run-1", progress=lambda done, total: done or starts.append(total),
        )  # fmt: skip
        profiled = plan_source(src, introspect(src).table(table), ())
    return plan, result, len(starts), profiled


def test_storage_classes_are_counted_while_streaming_no_profile_scan(
    tmp_path: Path, pg_dsn: str
) -> None:
    """NUMERIC columns store whole numbers as INTEGER: past the sampled rows, the counted
    classes differ from the guess but call for the same plan, so one pass suffices."""
    db = tmp_path / "census.sqlite"
    rows = GUESS_ROWS * 3
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, amount NUMERIC(10, 2), note TEXT)")
        conn.executemany(
            "INSERT INTO t VALUES (?, ?, ?)",
            ((i, i + 0.5 if i < GUESS_ROWS else i, None if i % 3 else "x") for i in range(rows)),
        )
    plan, result, passes, profiled = _passes(db, pg_dsn, "t")
    assert passes == 1 and result.loaded_rows == rows
    assert [c.observed for c in plan.columns] == [c.observed for c in profiled.columns]
    assert plan.column("amount").observed == {"real": GUESS_ROWS, "integer": rows - GUESS_ROWS}


def test_a_guess_the_counted_classes_refute_is_loaded_again_with_the_real_plan(
    tmp_path: Path, pg_dsn: str
) -> None:
    """An untyped column holding integers in its first rows and text later is text."""
    db = tmp_path / "refuted.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, label)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", ((i, i) for i in range(GUESS_ROWS)))
        conn.execute("INSERT INTO t VALUES (?, 'late text')", (GUESS_ROWS,))
    plan, result, passes, profiled = _passes(db, pg_dsn, "t")
    assert passes == 2 and plan == profiled
    assert plan.column("label").pg_type.kind == "text"
    assert (result.loaded_rows, result.quarantined_rows) == (GUESS_ROWS + 1, 0)
    with psycopg.connect(pg_dsn) as pg:
        query = sql.SQL("SELECT label FROM {} WHERE id = 5").format(STAGE.qualified("t"))
        assert pg.execute(query).fetchone() == ("5",)


def test_a_null_past_the_sample_in_a_not_null_column_is_quarantined(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = tmp_path / "late_null.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER)")  # NOT NULL below
        conn.executemany("INSERT INTO t VALUES (?, ?)", ((i, i) for i in range(GUESS_ROWS)))
        conn.execute("INSERT INTO t VALUES (?, NULL)", (GUESS_ROWS,))
        conn.execute("PRAGMA writable_schema = 1")  # a legacy file: NOT NULL added later
        conn.execute(
            "UPDATE sqlite_master SET sql = 'CREATE TABLE t (id INTEGER PRIMARY KEY, "
            "n INTEGER NOT NULL)' WHERE name = 't'"
        )
    plan, result, passes, _ = _passes(db, pg_dsn, "t")
    assert passes == 2 and plan.column("n").not_null
    assert (result.loaded_rows, result.quarantined_rows) == (GUESS_ROWS, 1)


def test_without_indexes_only_the_keys_and_unique_indexes_are_built(
    tmp_path: Path, pg_dsn: str
) -> None:
    """Merge mode stages with ``indexes=False``: the staged table is only merged from, so a
    plain index would be built for nothing; keys and unique indexes still prove the data."""
    db = tmp_path / "indexed.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.executescript(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, code TEXT, label TEXT);"
            "CREATE UNIQUE INDEX t_code ON t (code); CREATE INDEX t_label ON t (label);"
            "INSERT INTO t VALUES (1, 'a', 'x'), (2, 'b', 'x');"
        )
    built = {}
    for indexes in (True, False):
        staging = Staging(f"run-{indexes}")
        with closing(open_source(db)) as src, psycopg.connect(pg_dsn) as pg:
            ensure_bookkeeping(pg)
            load_table(
                src, pg, introspect(src).table("t"), schema=staging,
                target_schema="public", run_id=staging.run_id,
                options=LoadOptions(indexes=indexes),
            )  # fmt: skip
            built[indexes] = sorted(
                name.removeprefix(staging.prefix)
                for (name,) in pg.execute(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = 'consoleai_etl' "
                    "AND tablename = %s",
                    (staging.relname("t"),),
                )
            )
    assert built[True] == ["t_code", "t_label", "t_pkey"]
    assert built[False] == ["t_code", "t_pkey"]


def test_the_checks_scan_a_staged_table_once(tmp_path: Path, pg_dsn: str) -> None:
    """``row_count`` and ``checksum`` share one scan; the keys are cited, not scanned."""
    db = tmp_path / "t.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT NOT NULL)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", ((i, f"row {i}") for i in range(500)))
    with closing(open_source(db)) as src, psycopg.connect(pg_dsn) as pg:
        ensure_bookkeeping(pg)
        plan, result = load_table(
            src, pg, introspect(src).table("t"), schema=STAGE, target_schema="public",
            run_id="run-1",
        )  # fmt: skip
        pg.commit()

        def scans() -> int:
            pg.execute("SELECT pg_stat_force_next_flush()")
            pg.commit()  # flushed as the session goes idle
            with psycopg.connect(pg_dsn) as other:
                query = "SELECT seq_scan FROM pg_stat_user_tables WHERE relid = %s::regclass"
                return other.execute(query, (STAGE.qualified("t").as_string(None),)).fetchone()[0]

        before = scans()
        context = CheckContext(
            src, pg, plan, "keep", schema=STAGE, parent_schemas=(STAGE,),
            source_rows=result.source_rows, quarantined=0,
            expected=Checksum(result.loaded_rows, result.checksum), exclude=set(),
        )  # fmt: skip
        reports = run_checks(context)
        assert all(r.passed for r in reports), reports
        assert {r.name for r in reports} >= {"row_count", "checksum"}
        assert scans() - before == 1
