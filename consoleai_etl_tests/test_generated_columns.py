"""SQLite generated columns (``GENERATED ALWAYS AS (...) VIRTUAL|STORED``) migrate: computed
by PostgreSQL where the translated expression gives SQLite's values on every row, else a
plain column of SQLite's values with a warning naming the column and why; the checks
cover them either way (real SQLite files, real PostgreSQL, real runs)."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg

from consoleai_etl.core.source.catalog import generated_columns, introspect
from consoleai_etl_tests.helpers import checks_by_table, execute, fetch, run_job
from consoleai_etl_tests.test_console_script import consoleai_etl

SOURCE = """
CREATE TABLE t (
    id INTEGER PRIMARY KEY, a INTEGER, b INTEGER, word TEXT, doc TEXT, ts DATETIME,
    c INTEGER GENERATED ALWAYS AS (a + b) VIRTUAL,
    d TEXT GENERATED ALWAYS AS (upper(word)) STORED,
    k INTEGER AS (a / b),
    e TEXT GENERATED ALWAYS AS (json_extract(doc, '$.x')) VIRTUAL,
    y TEXT AS (strftime('%Y', ts)) STORED,
    g INTEGER AS (c * 2),
    z TEXT
);
INSERT INTO t (a, b, word, doc, ts, z) VALUES
    (1, 2, 'emile', '{"x": 5}', '2020-01-02 03:04:05', 'p'),
    (7, 0, 'bob', '{"x": "q"}', NULL, 'q'),
    (-7, 2, NULL, NULL, NULL, NULL);
CREATE TABLE s (id INTEGER PRIMARY KEY, a INTEGER, c INTEGER AS (a * 2) STORED) STRICT;
INSERT INTO s (a) VALUES (3), (NULL);
"""
ORDER = ["id", "a", "b", "word", "doc", "ts", "c", "d", "k", "e", "y", "g", "z"]
COMPUTED = {"c", "d", "k"}  # PostgreSQL gives SQLite's values for these
PLAIN = {  # and not for these: why, in the warning
    "e": "PostgreSQL could not compute JSON_EXTRACT_PATH_TEXT(\"doc\", 'x'): function",
    "y": "generation expression is not immutable",
    "g": 'cannot use generated column "c" in column generation expression',
}


def build(path: Path, script: str = SOURCE) -> Path:
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(script)
    return path


def sqlite_rows(path: Path, table: str, columns: list[str]) -> list[tuple]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY id").fetchall()


def pg_generated(dsn: str, table: str) -> dict[str, str]:
    """{column: generation expression} of the PostgreSQL table's generated columns."""
    return dict(
        fetch(
            dsn,
            "SELECT column_name, generation_expression FROM information_schema.columns "
            "WHERE table_name = %s AND is_generated = 'ALWAYS'",
            (table,),
        )
    )


def test_the_catalog_reads_each_generated_column_and_its_expression(tmp_path: Path) -> None:
    """PRAGMA table_info hides generated columns; the catalog lists them, in their places,
    with their kind and their expression as written (quoted names, commas and parentheses
    inside it, a constraint after it, a STRICT table)."""
    assert generated_columns(
        'CREATE TABLE "x" ("a,b" TEXT DEFAULT (CAST(1 AS TEXT)), [q r] AS ((1) + ","),'
        " -- n AS (comment)\n `N` INT GENERATED ALWAYS AS (\"a,b\" || ')') NOT NULL,"
        ' CHECK (x AS y), UNIQUE ("a,b")) STRICT'
    ) == {"q r": '(1) + ","', "n": "\"a,b\" || ')'"}
    db = build(tmp_path / "g.sqlite")
    with closing(sqlite3.connect(db)) as conn:
        tables = {t.name: t for t in introspect(conn).tables}
    columns = tables["t"].columns
    assert [c.name for c in columns] == ORDER
    generated = {c.name: (c.generated, c.expression) for c in columns if c.generated}
    assert generated == {
        "c": ("VIRTUAL", "a + b"),
        "d": ("STORED", "upper(word)"),
        "k": ("VIRTUAL", "a / b"),
        "e": ("VIRTUAL", "json_extract(doc, '$.x')"),
        "y": ("STORED", "strftime('%Y', ts)"),
        "g": ("VIRTUAL", "c * 2"),
    }
    assert [(c.name, c.generated) for c in tables["s"].columns][-1] == ("c", "STORED")


def test_generated_columns_migrate_through_the_command(tmp_path: Path, pg_dsn: str) -> None:
    """``consoleai-etl migrate FILE DSN``: every generated column arrives in its place with
    SQLite's values (NULLs included); those whose expression PostgreSQL computes alike
    are generated there, the others are plain, each named with its reason in the report.
    The checksum over every column passed, and new rows get computed values."""
    db = build(tmp_path / "g.sqlite")
    done = consoleai_etl(tmp_path, "migrate", str(db), pg_dsn)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "reports" / "latest.json").read_text())
    assert report["promoted"]

    columns = fetch(
        pg_dsn,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 't' "
        "ORDER BY ordinal_position",
    )
    assert [c for (c,) in columns] == ORDER
    selected = ", ".join(f'"{c}"::text' if c == "ts" else f'"{c}"' for c in ORDER)
    assert fetch(pg_dsn, f"SELECT {selected} FROM t ORDER BY id") == sqlite_rows(db, "t", ORDER)
    assert set(pg_generated(pg_dsn, "t")) == COMPUTED
    assert pg_generated(pg_dsn, "s") == {"c": "(a * 2)"}
    assert fetch(pg_dsn, "SELECT a, c FROM s ORDER BY id") == [(3, 6), (None, None)]

    tables = {t["table"]: t for t in report["tables"]}
    warnings = [w for w in tables["t"]["warnings"] if "generated in SQLite" in w]
    assert len(warnings) == len(PLAIN)
    for name, why in PLAIN.items():
        [warning] = [w for w in warnings if w.startswith(f"column {name}: generated in SQLite")]
        assert "migrated as a plain column holding SQLite's values" in warning
        assert why in warning
    reasons = {c["name"]: c["reason"] for c in tables["t"]["columns"]}
    assert "STORED (VIRTUAL in SQLite), values proven equal" in reasons["c"]
    assert "a plain column of SQLite's values" in reasons["e"]
    for table in tables.values():
        assert table["checks"] and all(c["passed"] for c in table["checks"]), table["checks"]

    execute(pg_dsn, "INSERT INTO t (id, a, b, word) VALUES (100, 20, 22, 'zoe')")
    assert fetch(pg_dsn, "SELECT c, d, k, e FROM t WHERE id = 100") == [(42, "ZOE", 0, None)]
    assert fetch(pg_dsn, "SELECT max(id) < nextval(pg_get_serial_sequence('t', 'id')) FROM t")


def test_upper_of_non_ascii_text_is_not_computed_by_postgresql(
    tmp_path: Path, pg_dsn: str, stream: str
) -> None:
    """SQLite's upper() changes ASCII letters only, PostgreSQL's every letter: the values
    differ on one row, so the column stays plain, with SQLite's 'éMILE', and the warning
    shows both values. Then the checksum covers the plain column: a value changed in
    PostgreSQL fails the re-verification (both load streams)."""
    db = build(tmp_path / "u.sqlite", SOURCE.replace("'emile'", "'émile'"))
    result, report = run_job(db, pg_dsn, tmp_path / "reports")
    assert result.success, report["reasons"]
    [table] = [t for t in report["tables"] if t["table"] == "t"]
    [warning] = [w for w in table["warnings"] if w.startswith("column d:")]
    assert "differs from SQLite's value in 1 row(s), e.g. 'ÉMILE' where SQLite computed" in warning
    assert "d" not in pg_generated(pg_dsn, "t")
    assert fetch(pg_dsn, "SELECT d FROM t ORDER BY id") == [("éMILE",), ("BOB",), (None,)]

    verified, again = run_job(db, pg_dsn, tmp_path / "reports", job="consistency_check_job")
    assert verified.success and checks_by_table(again)["t"]["checksum"]["passed"]
    execute(pg_dsn, "UPDATE t SET d = 'ÉMILE' WHERE id = 1")
    verified, again = run_job(db, pg_dsn, tmp_path / "reports", job="consistency_check_job")
    assert not verified.success
    assert not checks_by_table(again)["t"]["checksum"]["passed"]


def test_a_changed_base_value_fails_the_checksum_of_a_computed_column(
    tmp_path: Path, pg_dsn: str
) -> None:
    """A computed column follows its base columns in PostgreSQL; the checksum compares it
    with SQLite's values, so its change is caught as well as the base column's."""
    db = build(tmp_path / "g.sqlite", SOURCE.split("CREATE TABLE s")[0])
    result, report = run_job(db, pg_dsn, tmp_path / "reports")
    assert result.success, report["reasons"]
    execute(pg_dsn, "UPDATE t SET b = b + 1 WHERE id = 1")
    verified, again = run_job(db, pg_dsn, tmp_path / "reports", job="consistency_check_job")
    assert not verified.success
    description = checks_by_table(again)["t"]["checksum"]["description"]
    assert "content differs" in description


def test_merge_carries_generated_values_into_plain_columns(tmp_path: Path, pg_dsn: str) -> None:
    """Merge mode: a SQLite generated column merging into a plain column of the
    application's table brings SQLite's values; into a generated column of the
    application's, it is left to the application's own expression (no value is sent)."""
    db = build(
        tmp_path / "m.sqlite",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, a INTEGER, b INTEGER,"
        " total INTEGER AS (a + b), label TEXT AS ('#' || id) STORED);"
        "INSERT INTO items (id, a, b) VALUES (1, 2, 3), (2, NULL, 4);",
    )
    with psycopg.connect(pg_dsn) as pg:
        pg.execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, a bigint, b bigint,"
            " total bigint GENERATED ALWAYS AS (a + b) STORED, label text)"
        )
    result, report = run_job(db, pg_dsn, tmp_path / "reports", mode="merge")
    assert result.success, report["reasons"]
    assert fetch(pg_dsn, "SELECT id, a, b, total, label FROM items ORDER BY id") == [
        (1, 2, 3, 5, "#1"),
        (2, None, 4, None, "#2"),
    ]
    assert pg_generated(pg_dsn, "items") == {"total": "(a + b)"}
