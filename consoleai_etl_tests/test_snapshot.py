"""One moment of a live source for the whole run: a copy of a WAL-mode file, or a run that
fails when a rollback-mode file was committed to while it was read."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from consoleai_etl.core.run import migration
from consoleai_etl.core.source.snapshot import LOCK_NAME, PREFIX, Snapshot
from consoleai_etl_tests.helpers import checks_by_table, fetch, run_job, table_digest

PAIRS = """
CREATE TABLE parent (id INTEGER PRIMARY KEY, label TEXT NOT NULL, created_at DATETIME);
CREATE TABLE child (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER NOT NULL REFERENCES parent(id),
    note TEXT
);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
INSERT INTO parent SELECT i, 'p' || i, '2024-01-01 00:00:00' FROM n;
INSERT INTO child SELECT id, id, 'c' || id FROM parent;
"""

# Inserts a parent and its child in one transaction every few ms until killed; touches
# argv[2] once the first pair is committed.
WRITER = """
import pathlib, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
ready = pathlib.Path(sys.argv[2])
while True:
    conn.execute("BEGIN IMMEDIATE")
    parent = conn.execute(
        "INSERT INTO parent (label, created_at) VALUES ('live', '2024-01-02 00:00:00')"
    ).lastrowid
    conn.execute("INSERT INTO child (parent_id, note) VALUES (?, 'live')", (parent,))
    conn.execute("COMMIT")
    ready.touch()
    time.sleep(0.003)
"""

# Commits one more parent row to argv[1] and exits.
ONE_COMMIT = """
import sqlite3, sys
with sqlite3.connect(sys.argv[1]) as conn:
    conn.execute("INSERT INTO parent (label) VALUES ('late')")
"""


def pairs_db(path: Path, rows: int, journal_mode: str) -> Path:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA journal_mode = {journal_mode}")
        conn.executescript(PAIRS.format(rows=rows))
    return path


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temporary directory, as the run sees it, made the test's own."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


PAIR_TABLES = ("parent", "child")


def counts(path: Path) -> tuple[int, ...]:
    with closing(sqlite3.connect(path)) as conn:
        return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in PAIR_TABLES)


@contextmanager
def live_writer(db: Path, tmp_path: Path) -> Iterator[None]:
    """A process committing parent+child pairs to ``db`` throughout the block."""
    ready = tmp_path / "writer-ready"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(ready)])
    try:
        while not ready.exists():
            assert writer.poll() is None, "the writer died before its first commit"
            time.sleep(0.01)
        yield
        assert writer.poll() is None, "the writer stopped during the run"
    finally:
        writer.kill()
        writer.wait()


def test_a_live_wal_source_is_read_as_of_one_moment(
    tmp_path: Path, pg_dsn: str, temp_root: Path
) -> None:
    db = pairs_db(tmp_path / "live.sqlite", 300_000, "wal")

    with live_writer(db, tmp_path):
        result, report = run_job(db, pg_dsn, tmp_path / "reports")

    assert result.success, report["reasons"]
    assert report["status"] == "success" and report["promoted"]
    assert report["source_path"] == str(db)
    assert report["source_snapshot"].startswith("one snapshot (WAL journal mode)")
    assert fetch(pg_dsn, "SELECT count(*) FROM consoleai_etl.quarantine") == [(0,)]
    assert all(c["passed"] for checks in checks_by_table(report).values() for c in checks.values())
    parents, children = (fetch(pg_dsn, f"SELECT count(*) FROM {t}")[0][0] for t in PAIR_TABLES)
    # One moment: every pair committed before it is there whole, none after it in part.
    assert parents == children > 300_000
    assert fetch(pg_dsn, "SELECT max(id) FROM parent") == [(parents,)]
    assert {t["table"]: t["source_rows"] for t in report["tables"]} == {
        "parent": parents,
        "child": children,
    }
    final_parents, final_children = counts(db)
    assert final_parents == final_children > parents  # the writer went on during the run
    assert list(temp_root.iterdir()) == []  # the copy is gone


def test_a_rollback_mode_source_written_during_the_run_fails_and_promotes_nothing(
    tmp_path: Path, pg_dsn: str, temp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = pairs_db(tmp_path / "rollback.sqlite", 1_000, "delete")
    first, report = run_job(db, pg_dsn, tmp_path / "first")
    assert first.success and report["source_snapshot"].startswith("read in place (delete")
    before = table_digest(pg_dsn, "public", "parent", "id")
    counter = int.from_bytes(db.read_bytes()[24:28], "big")
    real_finalize = migration.finalize

    def commit_then_finalize(*args: object, **kwargs: object) -> object:
        """Every table is read; a real process commits before the verdict and promotion."""
        subprocess.run([sys.executable, "-c", ONE_COMMIT, str(db)], check=True)
        return real_finalize(*args, **kwargs)

    monkeypatch.setattr(migration, "finalize", commit_then_finalize)
    second, report = run_job(db, pg_dsn, tmp_path / "second")

    assert not second.success and report["status"] == "failure" and not report["promoted"]
    assert report["reasons"] == [
        f"source {db} was written during the run (change counter {counter} -> {counter + 1}): "
        "stop the application or migrate a copy, then run again"
    ]
    assert table_digest(pg_dsn, "public", "parent", "id") == before
    assert fetch(pg_dsn, "SELECT count(*) FROM consoleai_etl.runs WHERE promoted") == [(1,)]
    assert list(temp_root.iterdir()) == []  # read in place: no copy was ever made


def test_the_copy_is_removed_after_a_failed_run_and_a_verify_run(
    tmp_path: Path, pg_dsn: str, temp_root: Path
) -> None:
    db = pairs_db(tmp_path / "orphan.sqlite", 100, "wal")
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("INSERT INTO child VALUES (101, 999, 'orphan')")

    failed, report = run_job(db, pg_dsn, tmp_path / "failed")
    assert not failed.success and report["status"] == "failure"
    assert report["source_snapshot"].startswith("one snapshot")
    assert list(temp_root.iterdir()) == []

    run_job(db, pg_dsn, tmp_path / "promoted", allow_divergence=True)  # something to verify
    _, report = run_job(db, pg_dsn, tmp_path / "verify", job="consistency_check_job")
    assert report["job"] == "consistency_check_job"
    assert report["source_snapshot"].startswith("one snapshot")
    assert list(temp_root.iterdir()) == []


def test_a_killed_runs_copy_is_removed_by_the_next_one(tmp_path: Path) -> None:
    db = pairs_db(tmp_path / "wal.sqlite", 10, "wal")
    root = tmp_path / "tmp"
    root.mkdir()
    take_and_wait = (
        "import sys, time; from consoleai_etl.core.source.snapshot import Snapshot; "
        "print(Snapshot.take(sys.argv[1], sys.argv[2]).path, flush=True); time.sleep(600)"
    )
    killed = subprocess.Popen(
        [sys.executable, "-c", take_and_wait, str(db), str(root)], stdout=subprocess.PIPE, text=True
    )
    dead = Path(killed.stdout.readline().strip()).parent
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    killed.stdout.close()
    live = Snapshot.take(db, root)
    for directory in (dead, live.path.parent):  # both old enough to be considered
        os.utime(directory / LOCK_NAME, (time.time() - 3600, time.time() - 3600))

    later = Snapshot.take(db, root)

    assert sorted(root.iterdir()) == sorted([live.path.parent, later.path.parent])
    live.close()
    later.close()
    assert list(root.iterdir()) == []


def test_no_room_for_the_copy_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "big.sqlite"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA journal_mode = wal")
        conn.execute("CREATE TABLE blobs (b BLOB)")
        conn.execute("INSERT INTO blobs VALUES (randomblob(3000000))")
        conn.commit()
    root = tmp_path / "tmp"
    root.mkdir()
    # The file size limit stands in for a full disk: writes past 1 MB fail with EFBIG.
    limited = (
        "import resource, signal, sys\n"
        "from consoleai_etl.core.errors import SourceError\n"
        "from consoleai_etl.core.source.snapshot import Snapshot\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))\n"
        "try:\n"
        "    Snapshot.take(sys.argv[1], sys.argv[2])\n"
        "except SourceError as exc:\n"
        "    sys.exit(str(exc))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", limited, str(db), str(root)], capture_output=True, text=True
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"cannot copy source {db} into {root} for a consistent snapshot (")
    assert "3 MB needed" in lines[0]
    assert lines[0].endswith("free space there or point TMPDIR at a larger disk, then run again")
    assert list(root.iterdir()) == []


def test_a_copy_keeps_its_moment_and_close_removes_it(tmp_path: Path) -> None:
    db = pairs_db(tmp_path / "wal.sqlite", 10, "wal")
    root = tmp_path / "tmp"
    root.mkdir()
    snapshot = Snapshot.take(db, root)
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("INSERT INTO parent (label) VALUES ('after')")
    assert counts(snapshot.path) == (10, 10) and counts(db) == (11, 10)
    assert snapshot.path.parent.name.startswith(PREFIX)
    snapshot.check_unchanged()  # a copy cannot change
    snapshot.close()
    snapshot.close()
    assert list(root.iterdir()) == []
