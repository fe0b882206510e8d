"""Whole-file reads of the source, once per version of the file, startable early on a
thread (``core/source/per_version.py``): what ``consoleai-etl`` uses to run the preflight's
``quick_check`` and merge-mode storage-class scan while Dagster creates the run."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest

from consoleai_etl.core.source.per_version import PerVersion


def table_count(file: Path, calls: list[str]) -> int:
    calls.append(threading.current_thread().name)
    with closing(sqlite3.connect(file)) as conn:
        return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]


def test_read_once_per_version_started_on_a_thread(tmp_path: Path) -> None:
    path = tmp_path / "src.sqlite"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE a (x)")
    calls: list[str] = []
    tables = PerVersion(lambda file: table_count(file, calls))

    tables.start(path)
    assert tables.get(path) == 1 and tables.get(str(path)) == 1
    assert calls == [calls[0]] and calls[0] != threading.current_thread().name  # one read

    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE b (x)")  # a new version of the file: read again
    assert tables.get(path) == 2 and len(calls) == 2
    assert len(tables._answers) == 1  # the older version's answer is not kept


def test_a_failed_read_is_raised_and_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "src.sqlite"
    path.write_bytes(b"not yet a database")
    attempts: list[Path] = []

    def read(file: Path) -> str:
        attempts.append(file)
        if len(attempts) == 1:
            raise sqlite3.DatabaseError("file is not a database")
        return "read"

    answers = PerVersion(read)
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        answers.get(path)
    assert answers.get(path) == "read" and len(attempts) == 2


def test_a_missing_file_is_left_to_get(tmp_path: Path) -> None:
    answers = PerVersion(lambda file: file.read_bytes())
    answers.start(tmp_path / "missing.sqlite")  # no error here: the preflight reports it
    with pytest.raises(FileNotFoundError):
        answers.get(tmp_path / "missing.sqlite")
