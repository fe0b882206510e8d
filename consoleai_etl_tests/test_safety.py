"""Bad input, concurrent runs, source safety, hostile identifiers and secrets."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterInvalidConfigError
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from consoleai_etl.core.run.preflight import (
    RunLock,
    check_source,
    integrity_problems,
    start_source_reads,
)
from consoleai_etl.core.source import connection
from consoleai_etl_tests.helpers import (
    checks_by_table,
    fetch,
    preflight_error,
    run_job,
    run_raw,
)

NOT_SQLITE = b"hello, not a database\n"


def assert_nothing_written(dsn: str, report_dir: Path) -> None:
    assert fetch(dsn, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'consoleai%'") == []
    assert fetch(dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    assert not report_dir.exists() or not any(report_dir.iterdir())


def corrupt_copy(sample_db: Path, target: Path) -> Path:
    data = sample_db.read_bytes()
    target.write_bytes(data[:4096] + b"\x00" * 4096 + data[8192 : len(data) // 2])
    return target


@pytest.mark.parametrize(
    ("make_source", "message"),
    [
        (lambda tmp, sample: tmp / "missing.sqlite", "does not exist"),
        (lambda tmp, sample: _directory(tmp / "legacy.sqlite"), "is a directory"),
        (lambda tmp, sample: _write(tmp / "notes.txt", NOT_SQLITE), "not a SQLite database"),
        (lambda tmp, sample: corrupt_copy(sample, tmp / "corrupt.sqlite"), "corrupt"),
        (lambda tmp, sample: _empty_db(tmp / "empty.sqlite"), "has no tables"),
    ],
)  # fmt: skip
def test_bad_source_stops_with_one_line_and_writes_nothing(
    tmp_path: Path, sample_db: Path, pg_dsn: str, make_source, message: str
) -> None:
    source = make_source(tmp_path, sample_db)
    result = run_raw(source, pg_dsn, tmp_path / "reports")
    assert not result.success
    error = preflight_error(result)
    assert message in error and str(source) in error and "\n" not in error
    assert_nothing_written(pg_dsn, tmp_path / "reports")


def test_the_integrity_check_started_early_is_used_once_per_version_of_the_file(
    tmp_path: Path, sample_db: Path
) -> None:
    """``consoleai-etl`` starts ``quick_check`` on a thread before Dagster creates the run;
    the preflight takes that answer, unless the file was written to since."""
    source = shutil.copy(sample_db, tmp_path / "legacy.sqlite")
    start_source_reads(source, merge=False)
    first = integrity_problems(source)
    assert first == ["ok"] and integrity_problems(source) is first  # checked once
    check_source(source)

    with closing(sqlite3.connect(source)) as conn, conn:
        conn.execute("PRAGMA user_version = 7")  # written to since: checked again
    again = integrity_problems(source)
    assert again == ["ok"] and again is not first


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


def _empty_db(path: Path) -> Path:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 1")
    return path


def test_locked_source_is_named_and_waited_for(
    tmp_path: Path, sample_db: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "LOCK_WAIT", 0.5)  # the wait is real, only shorter
    source = tmp_path / "locked.sqlite"
    shutil.copy(sample_db, source)
    holder = sqlite3.connect(source, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = run_raw(source, pg_dsn, tmp_path / "reports")
    finally:
        holder.close()
    assert "is locked by another process (waited 0.5 s)" in preflight_error(result)
    assert_nothing_written(pg_dsn, tmp_path / "reports")


def test_unreachable_server_and_unknown_role(tmp_path: Path, sample_db: Path, pg_dsn: str) -> None:
    refused = "postgresql://postgres@127.0.0.1:1/postgres"
    error = preflight_error(run_raw(sample_db, refused, tmp_path / "r1"))
    assert error.startswith("cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1:1")
    assert "(check pg_dsn (or CONSOLEAI_PG_DSN))" in error and "\n" not in error
    ghost = make_conninfo(pg_dsn, user="no_such_role_" + uuid.uuid4().hex[:6], password="s3cret")
    error = preflight_error(run_raw(sample_db, ghost, tmp_path / "r2"))
    assert "does not exist" in error and "s3cret" not in error


@pytest.fixture
def limited_role(pg_dsn: str) -> Iterator[str]:
    """A login role that may connect but not create schemas."""
    role = "consoleai_limited_" + uuid.uuid4().hex[:6]
    database = conninfo_to_dict(pg_dsn)["dbname"]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("REVOKE CREATE ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database))
        )
    yield make_conninfo(pg_dsn, user=role)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_schema_the_user_cannot_create(
    tmp_path: Path, sample_db: Path, pg_dsn: str, limited_role: str
) -> None:
    error = preflight_error(
        run_raw(sample_db, limited_role, tmp_path / "reports", target_schema="legacy")
    )
    assert error.startswith("user ") and " lacks privileges this run needs on " in error
    assert "as an administrator, GRANT CREATE ON DATABASE " in error
    assert_nothing_written(pg_dsn, tmp_path / "reports")


def test_unknown_run_config_key_is_rejected_before_running(
    tmp_path: Path, sample_db: Path, pg_dsn: str
) -> None:
    with pytest.raises(DagsterInvalidConfigError, match="dry_rnu"):
        run_raw(sample_db, pg_dsn, tmp_path / "reports", dry_rnu=True)
    assert_nothing_written(pg_dsn, tmp_path / "reports")


def test_a_second_migration_into_the_same_schema_refuses_to_start(
    tmp_path: Path, sample_db: Path, pg_dsn: str
) -> None:
    lock = RunLock(pg_dsn, "public")  # what a running migration holds
    try:
        result = run_raw(sample_db, pg_dsn, tmp_path / "reports")
        error = preflight_error(result)
    finally:
        lock.release()
    assert error.startswith("another migration into schema public is running (server pid ")
    assert "wait for it to finish" in error
    assert_nothing_written(pg_dsn, tmp_path / "reports")
    other, _ = run_job(sample_db, pg_dsn, tmp_path / "later")  # the lock is gone with its holder
    assert other.success


def test_source_bytes_are_unchanged_and_wal_is_read(
    tmp_path: Path, sample_db: Path, pg_dsn: str
) -> None:
    source = tmp_path / "wal.sqlite"
    shutil.copy(sample_db, source)
    writer = sqlite3.connect(source, isolation_level=None)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("INSERT INTO roles (id, name, created_at) VALUES (99, 'wal-only', '2024-01-01')")
    assert Path(f"{source}-wal").stat().st_size > 0  # the row lives only in the WAL
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    try:
        result, report = run_job(source, pg_dsn, tmp_path / "reports")
    finally:
        after = hashlib.sha256(source.read_bytes()).hexdigest()
        writer.close()
    assert result.success and before == after
    assert fetch(pg_dsn, "SELECT name FROM roles WHERE id = 99") == [("wal-only",)]
    assert checks_by_table(report)["roles"]["checksum"]["passed"]


def test_hostile_identifiers_are_data_never_sql(tmp_path: Path, pg_dsn: str) -> None:
    hostile = 'x"; DROP TABLE victim; --'
    newline = "line\nbreak"
    source = tmp_path / "hostile.sqlite"
    with closing(sqlite3.connect(source)) as conn, conn:
        conn.execute("CREATE TABLE victim (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO victim VALUES (1)")
        conn.execute(
            f'CREATE TABLE "{hostile.replace(chr(34), chr(34) * 2)}" '
            f'(id INTEGER PRIMARY KEY, "{newline}" TEXT, "a\'b" TEXT)'
        )
        conn.execute(
            f"INSERT INTO \"{hostile.replace(chr(34), chr(34) * 2)}\" VALUES (1, 'v', 'w')"
        )
    result, report = run_job(source, pg_dsn, tmp_path / "reports")
    assert result.success and report["status"] == "success"
    tables = {
        name
        for (name,) in fetch(pg_dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert tables == {"victim", hostile}
    assert fetch(pg_dsn, sql.SQL("SELECT {}, {} FROM {}").format(
        sql.Identifier(newline), sql.Identifier("a'b"), sql.Identifier(hostile)
    )) == [("v", "w")]  # fmt: skip
    assert fetch(pg_dsn, "SELECT count(*) FROM victim") == [(1,)]


def test_passwords_never_appear_in_reports_metadata_or_errors(
    tmp_path: Path, sample_db: Path, pg_dsn: str
) -> None:
    secret = "Sup3r-S3cret-" + uuid.uuid4().hex[:6]
    with_password = make_conninfo(pg_dsn, password=secret)  # trust auth ignores it
    result, report = run_job(sample_db, with_password, tmp_path / "reports")
    assert result.success
    texts = [p.read_text() for p in (tmp_path / "reports").iterdir()]
    texts += [str(e.event_specific_data) for e in result.all_events]
    texts += [str(report)]
    runs = fetch(pg_dsn, "SELECT report::text FROM consoleai_etl.runs")
    texts += [r for (r,) in runs]
    assert all(secret not in text for text in texts)
    assert "password=***" in report["target"] or ":***@" in report["target"]
