"""The Stager: two threads, one stream at a time, children after their parents."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import psycopg

from consoleai_etl.core.plan.order import load_order
from consoleai_etl.core.run.pipeline import MigrationConfig
from consoleai_etl.core.run.stager import Stager, TableToStage, Turn, largest_first
from consoleai_etl.core.source.catalog import Table, introspect
from consoleai_etl.core.source.connection import open_source
from consoleai_etl.core.target.bookkeeping import ensure_bookkeeping
from consoleai_etl.core.target.staging import Staging
from consoleai_etl_tests.helpers import fetch, named

SOURCE = """
CREATE TABLE parent (id INTEGER PRIMARY KEY, label TEXT);
CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));
CREATE TABLE lone (id INTEGER PRIMARY KEY, at DATETIME);
"""


class WatchedLock:
    """The streaming lock, recording who held it and whether two ever held it at once."""

    def __init__(self) -> None:
        self.lock, self.holders, self.threads, self.overlapped = threading.Lock(), 0, set(), False
        self.guard = threading.Lock()

    def __enter__(self) -> None:
        self.lock.acquire()
        with self.guard:
            self.holders += 1
            self.overlapped |= self.holders > 1
            self.threads.add(threading.get_ident())

    def __exit__(self, *exc: object) -> None:
        with self.guard:
            self.holders -= 1
        self.lock.release()


def test_tables_are_staged_on_two_threads_one_stream_at_a_time(tmp_path: Path, pg_dsn: str) -> None:
    db = tmp_path / "three.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.executescript(SOURCE)
        conn.executemany("INSERT INTO parent VALUES (?, ?)", ((i, f"p{i}") for i in range(3000)))
        conn.executemany("INSERT INTO child VALUES (?, ?)", ((i, i % 3000) for i in range(9000)))
        conn.executemany("INSERT INTO lone VALUES (?, '2024-01-01')", ((i,) for i in range(500)))
    with closing(open_source(db)) as src:
        catalog = introspect(src)
    order = load_order(catalog)
    tables = [TableToStage(catalog.table(n), order.upstream[n], ()) for n in order.tables]
    config = MigrationConfig(sqlite_path=str(db), pg_dsn=pg_dsn)
    lines: list[str] = []

    watched = WatchedLock()
    stager = Stager(config, "run-stager-1", tables, progress_every=0.0, streaming=watched)
    reports = stager.reports(lines.append)
    stager.close()

    assert {name: (r.error, r.loaded_rows) for name, r in reports.items()} == {
        "parent": (None, 3000), "child": (None, 9000), "lone": (None, 500),
    }  # fmt: skip
    assert all(c.passed for r in reports.values() for c in r.checks)
    assert not watched.overlapped and len(watched.threads) == 2
    staging = Staging("run-stager-1")
    assert fetch(
        pg_dsn,
        "SELECT conname FROM pg_constraint WHERE contype = 'f' AND convalidated "
        "AND conrelid = to_regclass(%s)",
        (staging.qualified("child").as_string(None),),
    ) == [("child_parent_id_fkey",)]
    assert any(line.startswith("child: 9,000 / 9,000 rows") for line in lines)


def _staged(name: str, *parents: str) -> TableToStage:
    return TableToStage(Table(name, (), (), (), (), without_rowid=False, sql=""), parents, ())


def test_the_heaviest_chain_starts_first_and_parents_always_precede_children() -> None:
    staged = _staged
    tables = [
        staged("small_root"),
        staged("users"),
        staged("roles"),
        staged("events", "users"),
        staged("grants", "users", "roles"),
        staged("detail", "events"),
        staged("outside", "not_in_this_run"),
    ]
    rows = {"small_root": 10, "users": 50, "roles": 5, "events": 10_000, "grants": 60,
            "detail": 100, "outside": 1}  # fmt: skip
    order = [t.table.name for t in largest_first(tables, rows)]
    assert order[:3] == ["users", "events", "detail"]  # users heads the 10,150-row chain
    for table in tables:
        for parent in table.parents:
            if parent in order:
                assert order.index(parent) < order.index(table.table.name)
    assert sorted(order) == sorted(t.table.name for t in tables)


def test_closing_a_run_drops_the_tables_not_started_and_waits_for_the_others(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = tmp_path / "three.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.executescript(SOURCE)
    with closing(open_source(db)) as src:
        catalog = introspect(src)
    tables = [TableToStage(catalog.table(n), (), ()) for n in ("lone", "parent", "child")]
    turn = threading.Lock()
    turn.acquire()  # both threads take a table and wait for their streaming turn
    stager = Stager(
        MigrationConfig(sqlite_path=str(db), pg_dsn=pg_dsn), "run-stager-2", tables,
        progress_every=60.0, streaming=turn,
    )  # fmt: skip
    threading.Timer(0.5, turn.release).start()
    stager.close()
    started = {name for name, f in stager.futures.items() if not f.cancelled()}
    assert len(started) == 2 and all(stager.futures[n].done() for n in started)
    assert sum(f.cancelled() for f in stager.futures.values()) == 1


def test_progress_lines_are_throttled_and_timed_from_when_rows_flow(monkeypatch) -> None:
    from consoleai_etl.core.run import progress as progress_module

    clock = iter([0.0, 100.0, 101.0, 101.5, 103.0])
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    lines: list[str] = []
    progress = progress_module.Progress("t", 1.0, lines.append)  # created at 0.0
    progress(0, 1000)  # 100.0: the stream starts after a 100 s wait for its turn
    progress(100, 1000)  # 101.0
    progress(150, 1000)  # 101.5: less than a second after the last line
    progress(300, 1000)  # 103.0
    assert lines == [
        "t: 100 / 1,000 rows, 100 rows/s, ETA 9 s",
        "t: 300 / 1,000 rows, 100 rows/s, ETA 7 s",
    ]


def test_a_partial_run_of_the_migration_job_stages_only_its_tables(
    tmp_path: Path, pg_dsn: str, sample_db: Path
) -> None:
    import dagster as dg

    from consoleai_etl.definitions import build_definitions
    from consoleai_etl.defs.checks import key_prefix
    from consoleai_etl.defs.settings import target_of

    config = {"sqlite_path": str(sample_db), "pg_dsn": pg_dsn, "report_dir": str(tmp_path)}
    result = (
        build_definitions(sample_db, target=target_of(config))
        .resolve_job_def("legacy_migration_job")
        .execute_in_process(
            run_config={"resources": {"settings": {"config": config}}},
            asset_selection=[
                dg.AssetKey([*key_prefix(target_of(config)), "users"]),
                dg.AssetKey([*key_prefix(target_of(config)), "api_tokens"]),
            ],
        )
    )
    assert result.success
    migrated = fetch(
        pg_dsn,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
        "AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    assert migrated == [("api_tokens",), ("users",)]
    assert {named(m.asset_key) for m in result.get_asset_materialization_events()} == {
        "users", "api_tokens",
    }  # fmt: skip
    checks = result.get_asset_check_evaluations()
    assert {named(c.asset_key) for c in checks} == {"users", "api_tokens"}
    assert all(e.passed for e in checks)


def test_a_table_starting_does_not_wait_for_another_tables_open_transaction(pg_dsn: str) -> None:
    """Each table is staged in one long transaction that writes the quarantine table; the
    next table's connection set-up must not queue behind it for a lock."""
    with psycopg.connect(pg_dsn) as first:
        ensure_bookkeeping(first)
        first.execute("DELETE FROM consoleai_etl.quarantine WHERE run_id = 'x'")  # stays open
        with psycopg.connect(pg_dsn, options="-c lock_timeout=1s") as second:
            ensure_bookkeeping(second)  # raised LockNotAvailable while DDL ran every time
            assert second.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_the_streaming_turn_goes_to_the_earliest_table_in_staging_order() -> None:
    turn, streamed = Turn(), []

    def stream(rank: int) -> None:
        with turn.hold(rank):
            streamed.append(rank)

    turn.begin(0)
    turn.begin(1)
    later = threading.Thread(target=stream, args=(1,))
    later.start()
    later.join(timeout=0.2)
    assert streamed == []  # table 1 asked first, but table 0 is being staged
    stream(0)
    later.join()
    assert streamed == [0, 1]
    turn.begin(2)  # a table that fails before it streams lets the next one go
    turn.begin(3)
    later = threading.Thread(target=stream, args=(3,))
    later.start()
    later.join(timeout=0.2)
    assert streamed == [0, 1]
    turn.end(2)
    later.join()
    assert streamed == [0, 1, 3]


def test_table_sizes_are_estimated_without_counting_every_row(tmp_path: Path, monkeypatch) -> None:
    from consoleai_etl.core.plan import profile

    db = tmp_path / "sizes.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE sparse (id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT INTO sparse VALUES (?)", [(1,), (2,), (500,)])
        conn.execute("CREATE TABLE keyed (k TEXT PRIMARY KEY) WITHOUT ROWID")
        conn.executemany("INSERT INTO keyed VALUES (?)", [(str(i),) for i in range(50)])
        conn.execute("CREATE TABLE empty (x)")
    monkeypatch.setattr(profile, "ESTIMATE_CAP", 20)
    with closing(open_source(db)) as src:
        catalog = introspect(src)
        sizes = {t.name: profile.size_estimate(src, t) for t in catalog.tables}
    assert sizes == {"sparse": 500, "keyed": 20, "empty": 0}  # largest rowid; capped count
