"""Views are proven, not hoped: each translated view must return the same rows in PostgreSQL
as in SQLite (row count and an order-independent checksum of canonical rows), or it is not
created and the run says so with a non-success status."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from consoleai_etl.core.run.report import (
    SUCCESS,
    SUCCESS_WITH_QUARANTINE,
    SUCCESS_WITH_WARNINGS,
    MigrationReport,
    TableReport,
    decide,
)
from consoleai_etl_tests.helpers import fetch, run_job

LIBRARY = """
CREATE TABLE authors (id INTEGER PRIMARY KEY, Name TEXT, active BOOLEAN, joined DATETIME);
CREATE TABLE books (id INTEGER PRIMARY KEY, author_id INTEGER REFERENCES authors(id),
    title TEXT, price NUMERIC(10,2), cover BLOB, meta JSON, published DATETIME, rating REAL);
INSERT INTO authors VALUES (1, 'Ada', 1, '2020-01-02 03:04:05'), (2, 'Bob', 0, 1600000000),
    (3, 'Cleo', 1, '2021-06-01T12:00:00+02:00');
INSERT INTO books VALUES
    (1, 1, 'Notes', 9.5, x'00ff10', '{"b": 1, "a": [1.50, 2]}', 1700000000, 0.1),
    (2, 1, 'Engines', '12.25', NULL, '{ "z":null }', '2023-05-06 07:08:09.5', 4),
    (3, 2, 'Hidden', 1, x'', '[]', NULL, NULL),
    (4, 3, 'Notes', 0, x'01', 'true', '2024-02-29', -2.5);
"""


def build(path: Path, script: str) -> Path:
    with sqlite3.connect(path) as conn:
        conn.executescript(script)
    return path


def views_by_name(report: dict) -> dict[str, dict]:
    return {v["name"]: v for v in report["views"]}


def view_exists(dsn: str, name: str) -> bool:
    return fetch(dsn, "SELECT to_regclass(%s) IS NOT NULL", (f'public."{name}"',))[0][0]


def test_a_correct_view_is_created_and_proven(tmp_path: Path, pg_dsn: str) -> None:
    """Joins, case-insensitive aliases, a boolean compared with 1, and values whose types
    differ between the two sides: 0/1 vs boolean, ISO text / unix seconds vs timestamp,
    9.5 vs numeric 9.50, JSON text vs jsonb, BLOB vs bytea."""
    db = build(
        tmp_path / "library.sqlite",
        LIBRARY
        + "CREATE VIEW shelf AS SELECT B.title AS Title, a.NAME AS author, b.price, b.cover,"
        " b.meta, b.published, A.joined, a.active, b.rating, b.price * 2 AS twice"
        " FROM books b JOIN authors AS A ON a.id = B.author_id WHERE a.active = 1;",
    )

    result, report = run_job(db, pg_dsn, tmp_path / "reports")

    assert result.success and report["status"] == SUCCESS, report["reasons"]
    shelf = views_by_name(report)["shelf"]
    assert shelf["created"] and shelf["reason"] is None
    assert shelf["sqlite_rows"] == shelf["pg_rows"] == 3
    assert shelf["sqlite_checksum"] == shelf["pg_checksum"]
    rows = fetch(pg_dsn, "SELECT title, author, active FROM public.shelf ORDER BY 1, 2")
    assert rows == [("Engines", "Ada", True), ("Notes", "Ada", True), ("Notes", "Cleo", True)]
    markdown = (tmp_path / "reports" / "latest.md").read_text()
    assert "| shelf | ✅ | 3 | 3 |" in markdown


def test_a_view_whose_translation_selects_another_column_is_not_created(
    tmp_path: Path, pg_dsn: str
) -> None:
    """SQLite folds only ASCII case, so "Ä" and "ä" are two columns; the translation maps
    both spellings to the first one: PostgreSQL would return the other column's values."""
    db = build(
        tmp_path / "umlaut.sqlite",
        'CREATE TABLE t (id INTEGER PRIMARY KEY, "Ä" TEXT, "ä" TEXT);'
        "INSERT INTO t VALUES (1, 'upper', 'lower');"
        'CREATE VIEW small_a AS SELECT "ä" FROM t;',
    )

    result, report = run_job(db, pg_dsn, tmp_path / "reports")

    assert result.success and report["status"] == SUCCESS_WITH_WARNINGS and report["promoted"]
    small_a = views_by_name(report)["small_a"]
    assert not small_a["created"] and small_a["target_sql"] == (
        'CREATE VIEW "small_a" AS SELECT "Ä" FROM "t"'
    )
    assert small_a["reason"].startswith("returns different rows: SQLite 1 rows (checksum ")
    assert small_a["sqlite_rows"] == small_a["pg_rows"] == 1
    assert small_a["sqlite_checksum"] != small_a["pg_checksum"]
    assert not view_exists(pg_dsn, "small_a")
    assert f"view small_a not created: {small_a['reason']}" in report["reasons"]


def test_a_view_returning_other_rows_is_not_created(tmp_path: Path, pg_dsn: str) -> None:
    """SQLite's LIKE ignores ASCII case, PostgreSQL's does not: one row fewer."""
    db = build(
        tmp_path / "like.sqlite",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);"
        "INSERT INTO people (name) VALUES ('Alice'), ('anna'), ('Bob');"
        "CREATE VIEW a_people AS SELECT name FROM people WHERE name LIKE 'a%';",
    )

    result, report = run_job(db, pg_dsn, tmp_path / "reports")

    assert result.success and report["status"] == SUCCESS_WITH_WARNINGS
    a_people = views_by_name(report)["a_people"]
    assert not a_people["created"]
    assert (a_people["sqlite_rows"], a_people["pg_rows"]) == (2, 1)
    assert not view_exists(pg_dsn, "a_people")
    assert fetch(pg_dsn, "SELECT count(*) FROM public.people") == [(3,)]  # tables promoted


def test_a_view_postgresql_cannot_read_is_not_created(tmp_path: Path, pg_dsn: str) -> None:
    """SQLite casts 'x' to 0; PostgreSQL refuses at read time, after CREATE VIEW passed."""
    db = build(
        tmp_path / "cast.sqlite",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);"
        "INSERT INTO people (name) VALUES ('x');"
        "CREATE VIEW numbers AS SELECT CAST(name AS INTEGER) AS n FROM people;",
    )

    result, report = run_job(db, pg_dsn, tmp_path / "reports")

    assert result.success and report["status"] == SUCCESS_WITH_WARNINGS
    numbers = views_by_name(report)["numbers"]
    assert numbers["reason"] == (
        'cannot be read in PostgreSQL: invalid input syntax for type integer: "x"'
    )
    assert not view_exists(pg_dsn, "numbers")


def test_a_view_calling_an_application_function_is_listed_with_its_reason(
    tmp_path: Path, pg_dsn: str
) -> None:
    """Calibre's views call title_sort(), which Calibre registers on its own connection:
    SQLite alone cannot read them, so there is nothing to prove them against."""
    db = build(
        tmp_path / "calibre.sqlite",
        "CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT);"
        "INSERT INTO books (title) VALUES ('The Hobbit');"
        "CREATE VIEW meta AS SELECT id, title_sort(title) AS sort FROM books;",
    )

    result, report = run_job(db, pg_dsn, tmp_path / "reports")

    assert result.success and report["status"] == SUCCESS_WITH_WARNINGS
    meta = views_by_name(report)["meta"]
    assert meta["reason"] == "calls title_sort(), a function of the application, not of SQLite"
    assert not meta["created"] and meta["target_sql"] is None
    assert meta["source_sql"].startswith("CREATE VIEW meta AS SELECT id, title_sort(title)")
    markdown = (tmp_path / "reports" / "latest.md").read_text()
    assert "| meta | ❌ | — | — | — | calls title_sort(), a function of the application" in (
        markdown
    )


def report_with(views: list[dict], quarantined: int = 0) -> MigrationReport:
    return MigrationReport(
        run_id="r", job="j", started_at="", finished_at="", dry_run=False,
        allow_divergence=True, mode="replace", source_path="s", target="t",
        target_schema="public", tables=[TableReport("t", "t", quarantined_rows=quarantined)],
        views=views,
    )  # fmt: skip


def test_status_rule_a_missing_view_lowers_only_a_plain_success() -> None:
    proven = {"name": "ok", "created": True, "reason": None}
    missing = {"name": "gone", "created": False, "reason": "calls f(), a function of ..."}

    clean = report_with([proven])
    decide(clean)
    lowered = report_with([proven, missing])
    decide(lowered)
    quarantined = report_with([missing], quarantined=2)
    decide(quarantined)

    assert clean.status == SUCCESS
    assert lowered.status == SUCCESS_WITH_WARNINGS
    assert lowered.reasons == ["view gone not created: calls f(), a function of ..."]
    assert quarantined.status == SUCCESS_WITH_QUARANTINE
    assert quarantined.reasons[-1] == "view gone not created: calls f(), a function of ..."
