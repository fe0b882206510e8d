"""What cannot migrate as it is says so in one line before anything is written; what can,
despite an application's custom collation, migrates with a warning."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

from consoleai_etl.core.source.catalog import CustomCollation, introspect, schema_collations
from consoleai_etl.core.source.connection import open_source
from consoleai_etl_tests.helpers import checks_by_table, fetch, run_job
from consoleai_etl_tests.test_safety import assert_nothing_written, preflight_error, run_raw


def test_a_table_wider_than_postgresql_allows_stops_the_preflight(
    tmp_path: Path, pg_dsn: str
) -> None:
    source = tmp_path / "wide.sqlite"
    columns = ", ".join(f"c{i} INTEGER" for i in range(1_700))
    with closing(sqlite3.connect(source)) as conn, conn:
        conn.execute("CREATE TABLE narrow (id INTEGER PRIMARY KEY)")
        conn.execute(f"CREATE TABLE wide (id INTEGER PRIMARY KEY, {columns})")

    error = preflight_error(run_raw(source, pg_dsn, tmp_path / "reports"))

    assert error == (
        f"source {source}: table wide has 1,701 columns, more than PostgreSQL's limit of "
        "1,600: split it into narrower tables or drop it, in a copy of the file, then migrate "
        "the copy"
    )
    assert_nothing_written(pg_dsn, tmp_path / "reports")


def hot_journal_copy(tmp_path: Path) -> Path:
    """A database and the rollback journal of a transaction that never ended: the files as
    a writer killed mid-transaction leaves them (copied while the transaction is open)."""
    writer_db = tmp_path / "writer.sqlite"
    with closing(sqlite3.connect(writer_db, isolation_level=None)) as writer:
        writer.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        writer.execute("BEGIN")
        writer.executemany(
            "INSERT INTO notes VALUES (?, ?)", ((i, "x" * 100) for i in range(5_000))
        )
        writer.execute("COMMIT")
        writer.execute("PRAGMA cache_size = 1")  # changed pages spill into the file at once
        writer.execute("BEGIN")
        writer.execute("UPDATE notes SET body = 'changed'")
        crashed = tmp_path / "crashed.sqlite"
        shutil.copy(writer_db, crashed)
        shutil.copy(f"{writer_db}-journal", f"{crashed}-journal")
        writer.execute("ROLLBACK")
    return crashed


def test_a_hot_journal_is_named_with_how_to_roll_it_back(tmp_path: Path, pg_dsn: str) -> None:
    source = hot_journal_copy(tmp_path)
    journal = Path(f"{source}-journal")
    before = hashlib.sha256(source.read_bytes() + journal.read_bytes()).hexdigest()

    error = preflight_error(run_raw(source, pg_dsn, tmp_path / "reports"))

    assert error == (
        f"source {source} has a hot journal (crashed.sqlite-journal) left by a crashed writer: "
        f"open it once with the writing application or `sqlite3 {source} 'PRAGMA quick_check'` "
        "(read-write) to roll it back, then migrate"
    )
    assert_nothing_written(pg_dsn, tmp_path / "reports")
    assert hashlib.sha256(source.read_bytes() + journal.read_bytes()).hexdigest() == before
    with closing(sqlite3.connect(source)) as conn:  # what the message tells the user to do
        assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    assert not journal.exists()
    result, _ = run_job(source, pg_dsn, tmp_path / "after")
    assert result.success
    assert fetch(pg_dsn, "SELECT count(*) FROM notes WHERE body = 'changed'") == [(0,)]


def unicase(left: str, right: str) -> int:
    """Anki's ``unicase`` collation: text compared after Unicode case folding."""
    left, right = left.casefold(), right.casefold()
    return (left > right) - (left < right)


ANKI_SCHEMA = """
CREATE TABLE notes (id INTEGER PRIMARY KEY, guid TEXT NOT NULL, sfld TEXT COLLATE unicase
    NOT NULL, flds TEXT NOT NULL);
CREATE INDEX ix_notes_sfld ON notes (sfld);
CREATE TABLE tags (tag TEXT NOT NULL PRIMARY KEY COLLATE unicase, usn INTEGER NOT NULL)
    WITHOUT ROWID;
"""


def test_an_application_collation_migrates_with_a_warning(
    tmp_path: Path, pg_dsn: str, stream: str
) -> None:
    source = tmp_path / "collection.anki2"
    with closing(sqlite3.connect(source)) as conn, conn:
        conn.create_collation("unicase", unicase)
        conn.executescript(ANKI_SCHEMA)
        conn.executemany(
            "INSERT INTO notes VALUES (?, ?, ?, ?)",
            ((i, f"g{i}", ("Élan", "élan", "zèbre")[i % 3] + str(i), "f") for i in range(300)),
        )
        conn.executemany("INSERT INTO tags VALUES (?, ?)", (("Verb", 1), ("nöun", 2)))

    result, report = run_job(source, pg_dsn, tmp_path / "reports")

    assert result.success and report["status"] == "success"
    assert fetch(pg_dsn, "SELECT count(*) FROM notes") == [(300,)]
    assert fetch(pg_dsn, "SELECT tag FROM tags ORDER BY usn") == [("Verb",), ("nöun",)]
    assert all(check["passed"] for checks in checks_by_table(report).values()
               for check in checks.values())  # fmt: skip
    warnings = {t["table"]: t["warnings"] for t in report["tables"]}
    stand_in = (
        "is defined by the application that wrote the file, not by SQLite: read with a "
        "case-insensitive stand-in (Unicode case folding); the PostgreSQL columns use the "
        "default collation, so ordering and uniqueness by unicase are not reproduced"
    )
    assert f"collation unicase (column sfld, index ix_notes_sfld) {stand_in}" in warnings["notes"]
    assert (
        f"collation unicase (column tag, index sqlite_autoindex_tags_1) {stand_in}"
        in warnings["tags"]
    )


def test_custom_collations_are_found_however_quoted(tmp_path: Path) -> None:
    source = tmp_path / "quoted.sqlite"
    with closing(sqlite3.connect(source)) as conn, conn:
        for name in ("Deck Order", "x y", "back`tick", "plain"):
            conn.create_collation(name, unicase)
        conn.executescript(
            """CREATE TABLE t (a TEXT COLLATE "Deck Order", b TEXT COLLATE [x y],
                   c TEXT COLLATE `back``tick`, d TEXT COLLATE nocase, e TEXT COLLATE Binary);
               CREATE INDEX t_e ON t (e COLLATE plain, a);"""
        )
    with closing(open_source(source)) as conn:
        assert schema_collations(conn) == {"Deck Order", "x y", "back`tick", "plain"}
        [table] = introspect(conn).tables
    assert table.collations == (
        CustomCollation("back`tick", ("column c",)),
        CustomCollation("Deck Order", ("column a", "index t_e")),
        CustomCollation("plain", ("index t_e",)),
        CustomCollation("x y", ("column b",)),
    )
