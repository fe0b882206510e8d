"""Integers and identifiers at the edges, each on a SQLite file built in the test and
migrated by the real job: 64-bit integers bit-exact, columns that hide SQLite's rowid,
bracket- and backtick-quoted DDL, PostgreSQL's reserved words, a typo SQLite took for a
type name, and an index SQLite built on a string constant."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from consoleai_etl.core.plan.table_plan import declared_pg_type
from consoleai_etl.core.source.catalog import introspect
from consoleai_etl_tests.helpers import checks_by_table, fetch, run_job
from consoleai_etl_tests.test_dirty_data import build, quarantine, table_report

BIG = [
    13_300_000_000_000_000,  # a Chrome timestamp (microseconds since 1601)
    2**53 + 1,  # the first integer a double cannot hold
    2**31,  # just past int4
    -(2**31) - 1,
    2**63 - 1,
    -(2**63),
    -(2**63) + 1,
    0,
]


def column_types(dsn: str, table: str) -> dict[str, str]:
    rows = fetch(
        dsn,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s",
        (table,),
    )
    return dict(rows)


def test_integers_past_2_53_and_int4_are_stored_bit_exact(tmp_path: Path, pg_dsn: str) -> None:
    db = build(
        tmp_path / "src.sqlite",
        "CREATE TABLE big (id INTEGER PRIMARY KEY, chrome INTEGER, hash INT8, loose);"
        "CREATE TABLE below_zero (id INTEGER PRIMARY KEY, note TEXT);",
        {
            "big": [(v if v else 1, v, -v if v > -(2**63) else v, v) for v in BIG],
            "below_zero": [(-(2**63), "min"), (-5, "minus five")],
        },
    )
    result, report = run_job(db, pg_dsn, tmp_path / "reports")

    assert result.success and report["status"] == "success", report["reasons"]
    assert all(c["passed"] for t in checks_by_table(report).values() for c in t.values())
    rows = fetch(pg_dsn, "SELECT id, chrome, hash, loose FROM big ORDER BY chrome")
    assert rows == sorted(
        ((v if v else 1, v, -v if v > -(2**63) else v, v) for v in BIG), key=lambda r: r[1]
    )
    assert set(column_types(pg_dsn, "big").values()) == {"bigint"}
    # The identity sequences: past 2^63-1 there is no next value; below zero, it starts at 1.
    assert fetch(pg_dsn, "INSERT INTO below_zero (note) VALUES ('new') RETURNING id") == [(1,)]
    assert fetch(pg_dsn, "SELECT max(id) FROM big") == [(2**63 - 1,)]


NUL_REASON = "'bad\\x00' cannot become text: contains a NUL byte, which PostgreSQL text cannot hold"


def test_columns_named_rowid_oid_or__rowid__do_not_replace_the_real_rowid(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = build(
        tmp_path / "src.sqlite",
        "CREATE TABLE keyed (id INTEGER PRIMARY KEY, ROWID TEXT, oid TEXT, _rowid_ TEXT);"
        "CREATE TABLE keyless (ROWID TEXT, n TEXT);"
        "CREATE TABLE two_hidden (rowid TEXT, _ROWID_ INTEGER, n TEXT);"
        "INSERT INTO keyless (_rowid_, ROWID, n) VALUES (10, 'ten', '1'), "
        "(20, 'twenty', 'bad' || char(0));"
        "INSERT INTO two_hidden (oid, rowid, _rowid_, n) VALUES (7, 'a', 700, 'bad' || char(0)), "
        "(8, 'b', 800, '2');",
        {"keyed": [(1, "r1", "o1", "u1"), (2, "r2", "o2", "u2")]},
    )
    result, report = run_job(db, pg_dsn, tmp_path / "reports", allow_divergence=True)

    assert report["status"] == "success_with_quarantine", report["reasons"]
    assert fetch(pg_dsn, 'SELECT id, "ROWID", oid, _rowid_ FROM keyed ORDER BY id') == [
        (1, "r1", "o1", "u1"), (2, "r2", "o2", "u2"),
    ]  # fmt: skip
    assert fetch(pg_dsn, 'SELECT "ROWID", n FROM keyless') == [("ten", "1")]
    assert fetch(pg_dsn, 'SELECT rowid, "_ROWID_", n FROM two_hidden') == [("b", 800, "2")]
    # Quarantined rows are filed under the real rowid, not the columns that hide it.
    assert sorted(quarantine(pg_dsn, result.run_id)) == [
        ("keyless", {"rowid": 20}, "n", NUL_REASON),
        ("two_hidden", {"rowid": 7}, "n", NUL_REASON),
    ]
    assert all(t["checks"] and t["error"] is None for t in report["tables"])


def test_a_keyless_table_hiding_all_three_rowid_names_loads_until_a_row_needs_a_key(
    tmp_path: Path, pg_dsn: str, stream: str
) -> None:
    script = "CREATE TABLE hidden (rowid TEXT, _rowid_ TEXT, oid INTEGER);"
    clean = build(tmp_path / "clean.sqlite", script, {"hidden": [("a", "b", 1), ("c", "d", 2)]})
    result, report = run_job(clean, pg_dsn, tmp_path / "clean")
    assert result.success and report["status"] == "success", report["reasons"]
    assert fetch(pg_dsn, "SELECT * FROM hidden ORDER BY oid") == [("a", "b", 1), ("c", "d", 2)]

    dirty = build(tmp_path / "dirty.sqlite", script, {"hidden": [("a", "b", 1), ("c", "d\0", 2)]})
    result, report = run_job(dirty, pg_dsn, tmp_path / "dirty")
    assert not result.success and report["status"] == "failure"
    error = table_report(report, "hidden")["error"]
    assert error.startswith("table hidden: a row must be quarantined but has no key")
    assert "rename one of those columns or add a primary key" in error


def test_quoted_ddl_reserved_words_a_type_typo_and_an_index_on_a_string(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = build(
        tmp_path / "src.sqlite",
        "CREATE TABLE [order] ([select] INTEGER PRIMARY KEY, `group` TEXT, "
        '"end" INTEGER NON NULL, [user] TEXT);'
        'CREATE TABLE "user" (id INTEGER PRIMARY KEY, `order` INTEGER REFERENCES [order]);'
        "CREATE TABLE `group` (`end` TEXT, [from] INTEGER);"
        'CREATE INDEX by_type ON [order] ("type");'
        "CREATE INDEX by_group ON [order] (`group`, [end]);",
        {
            "order": [(1, "g1", 2**40, "u1"), (2, "g2", -7, None)],
            "user": [(1, 1), (2, 2)],
            "group": [("e", 3)],
        },
    )
    result, report = run_job(db, pg_dsn, tmp_path / "reports")

    assert result.success and report["status"] == "success", report["reasons"]
    assert fetch(pg_dsn, 'SELECT "select", "group", "end", "user" FROM "order" ORDER BY 1') == [
        (1, "g1", 2**40, "u1"), (2, "g2", -7, None),
    ]  # fmt: skip
    assert fetch(pg_dsn, 'SELECT id, "order" FROM "user" ORDER BY id') == [(1, 1), (2, 2)]
    assert fetch(pg_dsn, 'SELECT "end", "from" FROM "group"') == [("e", 3)]
    # SQLite took "NON" for part of the type name: INTEGER NON is still an integer.
    assert column_types(pg_dsn, "order")["end"] == "bigint"
    end = next(c for c in table_report(report, "order")["columns"] if c["name"] == "end")
    assert end["declared_type"] == "INTEGER NON" and end["pg_type"] == "bigint"
    foreign_keys = "SELECT conname FROM pg_constraint WHERE contype = 'f' AND conrelid = %s"
    assert fetch(pg_dsn, foreign_keys + "::regclass", ('public."user"',)) == [("user_order_fkey",)]
    indexes = fetch(pg_dsn, "SELECT indexname FROM pg_indexes WHERE tablename = 'order'")
    assert {name for (name,) in indexes} == {"order_pkey", "by_group"}
    assert (
        'index by_type not recreated: expression index: SQLite read "type" as a string, as no '
        "column has that name" in table_report(report, "order")["warnings"]
    )


def test_a_typo_in_a_declared_integer_type_still_plans_bigint() -> None:
    for declared in ("INTEGER NON", "INT NOT", "BIGINT UNSIGNED"):
        pg_type = declared_pg_type(declared)
        assert pg_type is not None and pg_type.sql == "bigint", declared


def test_only_quoted_words_that_name_no_column_are_reported_as_strings() -> None:
    conn = sqlite3.connect(":memory:")
    conn.executescript(
        'CREATE TABLE t ("É" INTEGER, "Kind" TEXT);'
        'CREATE INDEX folded ON t ("KIND");'  # SQLite folds ASCII case: the column Kind
        'CREATE INDEX accented ON t ("é");'  # ...and only ASCII: no column é
        'CREATE INDEX expression ON t (lower("É"));'
        'CREATE INDEX mixed ON t ("a""b" || \'"c"\', -- "d"\n "kind");'
    )
    reasons = {i.name: i.unsupported for i in introspect(conn).table("t").indexes}
    assert reasons == {
        "folded": None,
        "accented": 'expression index: SQLite read "é" as a string, as no column has that name',
        "expression": "expression index",
        "mixed": 'expression index: SQLite read "a""b" as a string, as no column has that name',
    }
