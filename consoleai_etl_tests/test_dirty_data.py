"""Dirty legacy data, each awkward case on a SQLite file built in the test, migrated by the
real job into a fresh PostgreSQL database: nothing is lost silently; every row is either in
the target or in the quarantine with a reason."""

from __future__ import annotations

import math
import sqlite3
import struct
from datetime import datetime
from pathlib import Path

from consoleai_etl_tests.helpers import checks_by_table, fetch, materialization, run_job


def build(path: Path, script: str, rows: dict[str, list[tuple]] | None = None) -> Path:
    with sqlite3.connect(path) as conn:
        conn.executescript(script)
        for table, values in (rows or {}).items():
            marks = ", ".join("?" * len(values[0]))
            quoted = table.replace('"', '""')
            conn.executemany(f'INSERT INTO "{quoted}" VALUES ({marks})', values)
    return path


def migrate(tmp_path: Path, dsn: str, script: str, rows=None, **options):
    """Build the source and migrate it; quarantine is allowed so the tables get promoted."""
    db = build(tmp_path / "src.sqlite", script, rows)
    return run_job(db, dsn, tmp_path / "reports", **{"allow_divergence": True, **options})


def quarantine(dsn: str, run_id: str) -> list[tuple]:
    return fetch(
        dsn,
        "SELECT source_table, source_key, column_name, reason FROM consoleai_etl.quarantine "
        "WHERE run_id = %s ORDER BY id",
        (run_id,),
    )


def table_report(report: dict, name: str) -> dict:
    return next(t for t in report["tables"] if t["table"] == name)


def assert_accounted(report: dict) -> None:
    """The invariant: every table's row_count check passed (source = target + quarantine)."""
    for table, checks in checks_by_table(report).items():
        assert checks["row_count"]["passed"], (table, checks["row_count"]["description"])


def column_types(dsn: str, table: str) -> dict[str, str]:
    return dict(
        fetch(
            dsn,
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
            (table,),
        )
    )


def test_text_and_real_in_an_integer_column_widen_it_to_text_with_a_warning(
    tmp_path: Path, pg_dsn: str
) -> None:
    result, report = migrate(
        tmp_path, pg_dsn, "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER);",
        {"t": [(1, 10), (2, "ten"), (3, 2.5), (4, -(2**63)), (5, 2**63 - 1)]},
    )  # fmt: skip
    assert report["status"] == "success" and report["promoted"]
    assert column_types(pg_dsn, "t")["n"] == "text"
    assert fetch(pg_dsn, "SELECT id, n FROM t ORDER BY id") == [
        (1, "10"), (2, "ten"), (3, "2.5"), (4, str(-(2**63))), (5, str(2**63 - 1)),
    ]  # fmt: skip
    assert quarantine(pg_dsn, result.run_id) == []
    assert_accounted(report)
    [warning] = [w for w in table_report(report, "t")["warnings"] if w.startswith("column n:")]
    assert warning == (
        "column n: declared INTEGER (bigint), but stores values it cannot hold unchanged "
        "(e.g. 'ten' cannot become bigint): widened to text"
    )
    metadata = materialization(result, "t").metadata
    assert warning in metadata["warnings"].value
    [widened] = metadata["widened_columns"].value
    assert widened == {
        "column": "n",
        "declared_type": "INTEGER",
        "chosen_type": "text",
        "why": warning.removeprefix("column n: "),
    }
    markdown = (tmp_path / "reports" / "latest.md").read_text()
    assert "widened to text" in markdown


def test_reals_in_an_integer_column_widen_it_to_the_narrowest_exact_number(
    tmp_path: Path, pg_dsn: str
) -> None:
    _result, report = migrate(
        tmp_path, pg_dsn, "CREATE TABLE t (id INTEGER PRIMARY KEY, a INT, b INT, c INT);",
        {"t": [(1, 10, 2**62 + 1, 1), (2, 2.5, 0.5, 2**63 - 1)]},
    )  # fmt: skip
    assert report["status"] == "success"
    # a: 10 and 2.5 are exact doubles; b: 2**62 + 1 is not, numeric holds both exactly.
    types = column_types(pg_dsn, "t")
    assert (types["a"], types["b"], types["c"]) == ("double precision", "numeric", "bigint")
    assert fetch(pg_dsn, "SELECT a, b::text FROM t ORDER BY id") == [
        (10.0, str(2**62 + 1)), (2.5, "0.5"),
    ]  # fmt: skip


def test_reals_round_trip_bit_exact_including_infinities_nan_and_negative_zero(
    tmp_path: Path, pg_dsn: str
) -> None:
    values = [0.1, 1 / 3, 1e308, 5e-324, -0.0, math.inf, -math.inf, 123456789.123456789]
    _result, report = migrate(
        tmp_path, pg_dsn, "CREATE TABLE r (id INTEGER PRIMARY KEY, x REAL);",
        {"r": [*enumerate(values), (99, math.nan)]},
    )  # fmt: skip
    assert report["status"] == "success"
    # SQLite itself stores NaN as NULL, so NULL is the exact round trip of what it holds.
    assert fetch(pg_dsn, "SELECT x FROM r WHERE id = 99") == [(None,)]
    assert fetch(
        pg_dsn, "SELECT data_type FROM information_schema.columns WHERE column_name = 'x'"
    ) == [("double precision",)]
    loaded = [x for (x,) in fetch(pg_dsn, "SELECT x FROM r WHERE id < 99 ORDER BY id")]
    with sqlite3.connect(tmp_path / "src.sqlite") as conn:  # what SQLite really holds
        stored = [x for (x,) in conn.execute("SELECT x FROM r WHERE id < 99 ORDER BY id")]
    assert [struct.pack(">d", v) for v in loaded] == [struct.pack(">d", v) for v in stored]
    assert stored[:4] == values[:4] and stored[5:] == values[5:]  # SQLite keeps all but -0.0


def test_iso_dates_in_every_spelling_and_each_numeric_encoding(tmp_path: Path, pg_dsn: str) -> None:
    moment = datetime(2024, 1, 2, 3, 4, 5)
    iso = ["2024-01-02 03:04:05", "2024-01-02T03:04:05.123", "2024-01-02T03:04:05Z",
           "2024-01-02T05:04:05+02:00", None]  # fmt: skip
    unix = [1704164645, 1704164645, None, 1704164646, 1704164647]
    julian = [2460311.627835648, None, 2460311.5, 2460311.5, 2460311.5]
    mixed = ["2024-01-02 03:04:05", 1704164645, None, None, None]  # one encoding: unix
    _result, report = migrate(
        tmp_path, pg_dsn,
        "CREATE TABLE e (id INTEGER PRIMARY KEY, iso DATETIME, unix DATETIME, jd TIMESTAMP, "
        "mixed DATETIME, d DATE);",
        {"e": [(i, *values, "2024-01-02" if i == 0 else None)
               for i, values in enumerate(zip(iso, unix, julian, mixed, strict=True))]},
    )  # fmt: skip
    assert report["status"] == "success"
    rows = {r[0]: r[1:] for r in fetch(pg_dsn, "SELECT id, iso, unix, jd, mixed FROM e")}
    assert rows[0][0] == rows[2][0] == rows[3][0] == rows[0][1] == rows[0][3] == moment
    assert rows[1][0] == datetime(2024, 1, 2, 3, 4, 5, 123000) and rows[1][3] == moment
    assert abs((rows[0][2] - moment).total_seconds()) < 0.001
    assert rows[4][0] is None
    assert fetch(pg_dsn, "SELECT d::text FROM e WHERE id = 0") == [("2024-01-02",)]
    plan = {c["name"]: c for c in table_report(report, "e")["columns"]}
    assert "numbers read as unix_seconds (all 4 are plausible dates)" in plan["unix"]["reason"]
    assert "numbers read as julian_day" in plan["jd"]["reason"]
    assert "numbers read as unix_seconds (all 1 are plausible dates)" in plan["mixed"]["reason"]


def test_booleans_in_every_spelling(tmp_path: Path, pg_dsn: str) -> None:
    spellings = [1, 0, "t", "f", "true", "false", "yes", "no", "TRUE"]
    _result, report = migrate(
        tmp_path, pg_dsn, "CREATE TABLE b (id INTEGER PRIMARY KEY, ok BOOLEAN, n BOOLEAN);",
        {"b": [(i, v, i % 3) for i, v in enumerate(spellings)]},
    )  # fmt: skip
    assert [v for (v,) in fetch(pg_dsn, "SELECT ok FROM b ORDER BY id")] == [
        True, False, True, False, True, False, True, False, True,
    ]  # fmt: skip
    # 0, 1 and 2 are not all booleans: the column keeps the integers.
    assert column_types(pg_dsn, "b")["n"] == "bigint"
    assert [v for (v,) in fetch(pg_dsn, "SELECT n FROM b ORDER BY id")] == [0, 1, 2] * 3
    assert any("widened to bigint" in w for w in table_report(report, "b")["warnings"])


def test_nul_bytes_invalid_utf8_blobs_and_json(tmp_path: Path, pg_dsn: str) -> None:
    script = (
        "CREATE TABLE d (id INTEGER PRIMARY KEY, body TEXT, raw BLOB, doc JSON);"
        "INSERT INTO d VALUES (1, 'clean', x'00ff10', '{\"n\": 1.100000000000000000001}');"
        "INSERT INTO d VALUES (2, 'nul' || char(0) || 'byte', x'', '[]');"
        "INSERT INTO d VALUES (3, CAST(x'6162ff' AS TEXT), NULL, NULL);"
        "INSERT INTO d VALUES (4, 'ok', NULL, '[1.50]');"
        "INSERT INTO d VALUES (5, 'ok', NULL, '{\"broken\": ');"
    )
    result, report = migrate(tmp_path, pg_dsn, script)

    rows = fetch(pg_dsn, "SELECT id, body, raw, doc::text FROM d ORDER BY id")
    # An invalid JSON document is kept as written: the column becomes text (a warning).
    assert rows == [
        (1, "clean", b"\x00\xff\x10", '{"n": 1.100000000000000000001}'),
        (4, "ok", None, "[1.50]"),
        (5, "ok", None, '{"broken": '),
    ]
    assert any(
        "invalid JSON" in w and "widened to text" in w for w in report["tables"][0]["warnings"]
    )
    reasons = {
        key["id"]: (column, reason) for _, key, column, reason in quarantine(pg_dsn, result.run_id)
    }
    assert set(reasons) == {2, 3}  # no type holds a NUL or invalid UTF-8 as text
    assert reasons[2][0] == "body" and "NUL byte" in reasons[2][1]
    assert reasons[3][0] == "body" and "invalid UTF-8" in reasons[3][1]
    row_data = fetch(
        pg_dsn,
        "SELECT row_data FROM consoleai_etl.quarantine WHERE source_key = '{\"id\": 3}'",
    )[0][0]
    assert row_data["body"] == {"base64": "YWL/"}  # the raw bytes, base64-encoded
    assert_accounted(report)


def test_text_repair_rules_strip_nul_and_read_latin1(tmp_path: Path, pg_dsn: str) -> None:
    script = (
        "CREATE TABLE d (id INTEGER PRIMARY KEY, body TEXT);"
        "INSERT INTO d VALUES (1, 'nul' || char(0) || 'byte');"
        "INSERT INTO d VALUES (2, CAST(x'63616fe9' AS TEXT));"
    )
    rules = [{"column": "d.body", "text_repair": ["strip_nul", "latin1"]}]
    result, report = migrate(tmp_path, pg_dsn, script, casting_rules=rules)

    assert result.success and report["status"] == "success"
    assert fetch(pg_dsn, "SELECT body FROM d ORDER BY id") == [("nulbyte",), ("caoé",)]
    assert (
        "column body: 2 values repaired (strip_nul, latin1)"
        in table_report(report, "d")["warnings"]
    )


def test_null_and_duplicate_primary_keys_tables_without_key_and_without_rowid(
    tmp_path: Path, pg_dsn: str
) -> None:
    script = (
        "CREATE TABLE k (code PRIMARY KEY, v TEXT);"  # untyped key: 1 and '1' differ in SQLite
        "INSERT INTO k VALUES (1, 'int'), ('1', 'text'), (NULL, 'null'), ('b', 'b');"
        "CREATE TABLE nokey (a INTEGER, b TEXT);"
        "INSERT INTO nokey VALUES (1, 'x'), (2, 'y' || char(0));"
        "CREATE TABLE wr (a TEXT, b INTEGER, PRIMARY KEY (a, b)) WITHOUT ROWID;"
        "INSERT INTO wr VALUES ('x', 1), ('x', 2);"
        "CREATE TABLE empty (id INTEGER PRIMARY KEY);"
    )
    result, report = migrate(tmp_path, pg_dsn, script)

    assert fetch(pg_dsn, "SELECT code, v FROM k ORDER BY code") == [("1", "int"), ("b", "b")]
    assert fetch(pg_dsn, "SELECT a, b FROM nokey") == [(1, "x")]
    assert fetch(pg_dsn, "SELECT count(*) FROM wr") == [(2,)]
    assert fetch(pg_dsn, "SELECT count(*) FROM empty") == [(0,)]
    assert sorted(quarantine(pg_dsn, result.run_id), key=str) == sorted(
        [
            ("k", {"code": None}, "code", "NULL in a NOT NULL column"),
            ("k", {"code": "1"}, "code", "duplicate primary key (the first occurrence was kept)"),
            (
                "nokey",
                {"rowid": 2},
                "b",
                "'y\\x00' cannot become text: contains a NUL byte, "
                "which PostgreSQL text cannot hold",
            ),
        ],
        key=str,
    )
    checks = checks_by_table(report)
    assert checks["k"]["primary_key"]["passed"]
    assert all(c["passed"] for c in checks["empty"].values())
    assert_accounted(report)


def test_hostile_and_long_identifiers(tmp_path: Path, pg_dsn: str) -> None:
    long_a = "a" * 60 + "_first_long_table_name"
    long_b = "a" * 60 + "_second_long_table_name"
    names = ["my table", 'we"ird', "a/b", "select", "1st", "MixedCase", long_a, long_b]
    script = "".join(
        f'CREATE TABLE "{n.replace(chr(34), chr(34) * 2)}" ("Id" INTEGER PRIMARY KEY, '
        f'"order" TEXT, "{"c" * 70}" INTEGER);'
        for n in names
    )
    rows = {n: [(1, "x", 7), (2, "y", 8)] for n in names}
    result, report = migrate(tmp_path, pg_dsn, script, rows)

    assert result.success and report["status"] == "success"
    tables = {
        name
        for (name,) in fetch(pg_dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    short = {n for n in tables if n.startswith("a" * 54)}
    assert tables - short == set(names[:6])
    assert len(short) == 2 and all(len(n.encode()) <= 63 for n in short)
    for name in names:
        assert table_report(report, name)["loaded_rows"] == 2
    warnings = [w for t in report["tables"] for w in t["warnings"]]
    assert sum("renamed" in w and "63-byte" in w for w in warnings) == 2 + len(names)
    assert fetch(pg_dsn, 'SELECT "Id", "order" FROM public."select" ORDER BY 1') == [
        (1, "x"),
        (2, "y"),
    ]


def test_unknown_and_missing_declared_types_are_decided_from_values(
    tmp_path: Path, pg_dsn: str
) -> None:
    script = (
        "CREATE TABLE u (id INTEGER PRIMARY KEY, f FOOBAR, g, h FOOBAR, i);"
        "INSERT INTO u VALUES (1, 5, 'x', 1.5, x'01'), (2, 6, 7, 2, x'02');"
    )
    result, report = migrate(tmp_path, pg_dsn, script)
    types = dict(
        fetch(
            pg_dsn,
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'u'",
        )
    )
    assert types == {
        "id": "bigint", "f": "bigint", "g": "text", "h": "double precision", "i": "bytea",
    }  # fmt: skip
    plan = {c["name"]: c for c in table_report(report, "u")["columns"]}
    assert plan["f"]["reason"] == "unknown declared type FOOBAR; only integers stored"
    assert plan["g"]["observed"] == {"integer": 1, "text": 1}
    assert fetch(pg_dsn, "SELECT g FROM u ORDER BY id") == [("x",), ("7",)]
    column_schema = materialization(result, "u").metadata["dagster/column_schema"]
    assert {c.name: c.type for c in column_schema.schema.columns}["h"] == "double precision"


def test_expression_defaults_views_triggers_fts_and_missing_fk_parent(
    tmp_path: Path, pg_dsn: str
) -> None:
    script = (
        "CREATE TABLE p (id INTEGER PRIMARY KEY, active BOOLEAN DEFAULT 1,"
        " created INTEGER DEFAULT (strftime('%s','now')), token TEXT DEFAULT (hex(randomblob(4))),"
        " ghost_id INTEGER REFERENCES ghost(id));"
        "INSERT INTO p (id, active, ghost_id) VALUES (1, 1, 5), (2, 0, NULL);"
        "CREATE VIEW active_p AS SELECT ID FROM P WHERE active = 1;"
        "CREATE VIEW blobby AS SELECT zeroblob(4) AS z;"
        "CREATE TRIGGER p_touch AFTER UPDATE ON p BEGIN SELECT 1; END;"
        "CREATE VIRTUAL TABLE notes USING fts5(body);"
    )
    result, report = migrate(tmp_path, pg_dsn, script)

    assert result.success and report["status"] == "success_with_warnings"  # blobby
    new = fetch(pg_dsn, "INSERT INTO p (id) VALUES (3) RETURNING active, created")
    assert new[0][0] is True and abs(new[0][1] - datetime.now().timestamp()) < 60
    warnings = table_report(report, "p")["warnings"]
    assert any("hex(randomblob(4))" in w and "dropped" in w for w in warnings)
    assert any("ghost does not exist" in w for w in warnings)
    fk_check = checks_by_table(report)["p"]["foreign_keys"]
    assert fk_check["passed"] and fk_check["metadata"]["foreign_keys"][0]["skipped"]
    assert fetch(pg_dsn, "SELECT id FROM public.active_p") == [(1,), (3,)]
    views = {v["name"]: v for v in report["views"]}
    assert views["active_p"]["created"] and not views["blobby"]["created"]
    assert "zeroblob" in views["blobby"]["reason"] and views["blobby"]["source_sql"]
    skipped = {(o["kind"], o["name"]) for o in report["schema_objects_skipped"]}
    assert {
        ("trigger", "p_touch"),
        ("virtual table", "notes"),
        ("shadow table", "notes_data"),
    } <= skipped
    assert "notes_data" not in {t["table"] for t in report["tables"]}
