"""The sample generator: deterministic, linear in --scale, clean by default, dirt as listed."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from consoleai_etl.demo.sample import ANOMALY_TABLES, BASE_ROWS, ROLES, TABLE_ORDER, generate

REPO = Path(__file__).resolve().parents[1]


def table_digests(path: Path) -> dict[str, tuple[int, str]]:
    """{table: (rows, sha256 of every row)}; bytes text factory so invalid UTF-8 is readable."""
    conn = sqlite3.connect(path)
    conn.text_factory = bytes
    try:
        digests = {}
        for table in TABLE_ORDER:
            rows = sorted(repr(row) for row in conn.execute(f"SELECT * FROM {table}"))
            digests[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
        return digests
    finally:
        conn.close()


def row_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLE_ORDER}


def test_same_arguments_give_identical_databases(tmp_path: Path) -> None:
    first, second = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    counts = generate(first, scale=0.02)
    assert generate(second, scale=0.02) == counts
    with sqlite3.connect(first) as a, sqlite3.connect(second) as b:
        dump_a, dump_b = list(a.iterdump()), list(b.iterdump())
    assert len(dump_a) > sum(counts.values())
    assert dump_a == dump_b


def test_same_arguments_with_anomalies_give_identical_content(tmp_path: Path) -> None:
    first, second = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    generate(first, scale=0.02, anomalies=True)
    generate(second, scale=0.02, anomalies=True)
    assert table_digests(first) == table_digests(second)
    assert (tmp_path / "a.sqlite.anomalies.json").read_text() == (
        tmp_path / "b.sqlite.anomalies.json"
    ).read_text()


def test_seed_changes_the_rows(tmp_path: Path) -> None:
    generate(tmp_path / "a.sqlite", scale=0.02, seed=7)
    generate(tmp_path / "b.sqlite", scale=0.02, seed=8)
    a, b = table_digests(tmp_path / "a.sqlite"), table_digests(tmp_path / "b.sqlite")
    assert a["roles"] == b["roles"]
    assert a["users"][0] == b["users"][0]
    assert a["users"][1] != b["users"][1]


def test_rows_scale_linearly_except_roles(tmp_path: Path) -> None:
    small = generate(tmp_path / "small.sqlite", scale=0.1)
    large = generate(tmp_path / "large.sqlite", scale=0.2)
    assert small == row_counts(tmp_path / "small.sqlite")
    assert large == row_counts(tmp_path / "large.sqlite")
    assert set(small) == set(TABLE_ORDER)
    assert small["roles"] == large["roles"] == len(ROLES)
    for table, base in BASE_ROWS.items():
        assert small[table] == round(base * 0.1)
        assert large[table] == 2 * small[table]
    # user_roles has one or two roles per user, drawn at random: about double.
    assert 1.8 <= large["user_roles"] / small["user_roles"] <= 2.2


def test_tiny_scale_keeps_at_least_one_row_per_table(tmp_path: Path) -> None:
    counts = generate(tmp_path / "tiny.sqlite", scale=1e-6)
    assert all(counts[t] >= 1 for t in TABLE_ORDER)


def test_clean_database_has_no_fk_violations_and_passes_integrity_check(tmp_path: Path) -> None:
    path = tmp_path / "clean.sqlite"
    generate(path, scale=0.05)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        fk_count = sum(
            len(conn.execute(f"PRAGMA foreign_key_list({t})").fetchall()) for t in TABLE_ORDER
        )
        assert fk_count >= 9  # the check above had foreign keys to look at
    assert not (tmp_path / "clean.sqlite.anomalies.json").exists()


def test_clean_regeneration_removes_a_stale_anomaly_manifest(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    generate(path, scale=0.01, anomalies=True)
    manifest = tmp_path / "db.sqlite.anomalies.json"
    assert manifest.exists()
    generate(path, scale=0.01)
    assert not manifest.exists()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


# --- anomalies: every planted value is really in the database ---------------------------------


def _key_column(conn: sqlite3.Connection, table: str) -> str:
    (name,) = [row[1] for row in conn.execute(f"PRAGMA table_info({table})") if row[5] == 1]
    return name


def _value(conn: sqlite3.Connection, item: dict, expr: str | None = None) -> object:
    """``expr`` (default: the anomaly's column) for the anomaly's row, found by its key.

    Rows are matched in Python: SQLite folds ``col IS NULL`` to false on NOT NULL columns.
    """
    table, column = item["table"], item["column"]
    key_column = _key_column(conn, table)
    rows = conn.execute(f"SELECT {key_column}, {expr or column} FROM {table}").fetchall()
    matches = [value for key, value in rows if key == item["key"]]
    assert len(matches) == 1, f"{item}: {len(matches)} rows with that key"
    return matches[0]


def _declared(conn: sqlite3.Connection, table: str, column: str) -> tuple[str, bool]:
    row = next(r for r in conn.execute(f"PRAGMA table_info({table})") if r[1] == column)
    return row[2], bool(row[3])


def _orphan_fk(conn: sqlite3.Connection, item: dict) -> None:
    fk = next(
        r
        for r in conn.execute(f"PRAGMA foreign_key_list({item['table']})")
        if r[3] == item["column"]
    )
    parent, parent_column = fk[2], fk[4]
    value = _value(conn, item)
    assert value is not None
    hits = conn.execute(f"SELECT count(*) FROM {parent} WHERE {parent_column} = ?", (value,))
    assert hits.fetchone()[0] == 0


def _text_in_integer(conn: sqlite3.Connection, item: dict) -> None:
    assert "INT" in _declared(conn, item["table"], item["column"])[0]
    assert _value(conn, item, f"typeof({item['column']})") == "text"
    assert not re.fullmatch(r"\s*[+-]?\d+\s*", str(_value(conn, item)))


def _unix_epoch_date(conn: sqlite3.Connection, item: dict) -> None:
    assert _value(conn, item, f"typeof({item['column']})") == "integer"
    value = _value(conn, item)
    assert isinstance(value, int) and datetime.fromtimestamp(value).year >= 1990


def _julian_day_date(conn: sqlite3.Connection, item: dict) -> None:
    assert _value(conn, item, f"typeof({item['column']})") == "real"
    assert _value(conn, item, f"date({item['column']})") is not None


def _garbage_date(conn: sqlite3.Connection, item: dict) -> None:
    assert _value(conn, item, f"typeof({item['column']})") == "text"
    assert _value(conn, item, f"datetime({item['column']})") is None
    with pytest.raises(ValueError):
        datetime.fromisoformat(str(_value(conn, item)))


def _duplicate_email_case(conn: sqlite3.Connection, item: dict) -> None:
    value = _value(conn, item)
    column = item["column"]
    same = conn.execute(
        f"SELECT {column} FROM {item['table']} WHERE lower({column}) = lower(?)", (value,)
    ).fetchall()
    assert len(same) >= 2
    assert len({email for (email,) in same}) >= 2  # differ only by case


def _invalid_utf8(conn: sqlite3.Connection, item: dict) -> None:
    assert _value(conn, item, f"typeof({item['column']})") == "text"
    raw = _value(conn, item, f"CAST({item['column']} AS BLOB)")
    assert isinstance(raw, bytes)
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


def _nul_byte(conn: sqlite3.Connection, item: dict) -> None:
    assert _value(conn, item, f"typeof({item['column']})") == "text"
    raw = _value(conn, item, f"CAST({item['column']} AS BLOB)")
    assert isinstance(raw, bytes) and b"\x00" in raw


def _invalid_json(conn: sqlite3.Connection, item: dict) -> None:
    assert _declared(conn, item["table"], item["column"])[0] == "JSON"
    assert _value(conn, item, f"json_valid({item['column']})") == 0
    with pytest.raises(ValueError):
        json.loads(str(_value(conn, item)))


def _null_primary_key(conn: sqlite3.Connection, item: dict) -> None:
    assert item["key"] is None
    assert _key_column(conn, item["table"]) == item["column"]
    assert _value(conn, item) is None  # exactly one row keyed NULL


def _null_in_not_null(conn: sqlite3.Connection, item: dict) -> None:
    assert _declared(conn, item["table"], item["column"])[1], "column should be NOT NULL"
    assert _value(conn, item) is None


def _varchar_overflow(conn: sqlite3.Connection, item: dict) -> None:
    declared = _declared(conn, item["table"], item["column"])[0]
    limit = int(re.fullmatch(r"VARCHAR\((\d+)\)", declared)[1])
    assert len(str(_value(conn, item))) > limit


def _sub_microsecond(conn: sqlite3.Connection, item: dict) -> None:
    assert re.search(r"\.\d{6}[1-9]", str(_value(conn, item)))


def _all_of_class(conn: sqlite3.Connection, item: dict, storage: str) -> None:
    column, table = item["column"], item["table"]
    classes = conn.execute(f"SELECT DISTINCT typeof({column}) FROM {table}").fetchall()
    assert classes == [(storage,)]


def _blob_in_point(conn: sqlite3.Connection, item: dict) -> None:
    assert _declared(conn, item["table"], item["column"])[0] == "POINT"
    _all_of_class(conn, item, "blob")


def _blob_among_text(conn: sqlite3.Connection, item: dict) -> None:
    assert _declared(conn, item["table"], item["column"])[0] == ""
    assert len(_value(conn, item)) >= 68_000
    classes = conn.execute(f"SELECT DISTINCT typeof({item['column']}) FROM {item['table']}")
    assert sorted(classes) == [("blob",), ("text",)]


def _char_zero(conn: sqlite3.Connection, item: dict) -> None:
    assert _declared(conn, item["table"], item["column"])[0] == "CHAR(0)"
    assert len(_value(conn, item)) > 0


def _core_data_timestamp(conn: sqlite3.Connection, item: dict) -> None:
    assert _declared(conn, item["table"], item["column"])[0] == "TIMESTAMP"
    _all_of_class(conn, item, "real")
    assert 3e8 < _value(conn, item) < 1e9  # seconds since 2001: 2010..2032


def _yyyymmdd_integer(conn: sqlite3.Connection, item: dict) -> None:
    assert _declared(conn, item["table"], item["column"])[0] == "DATETIME"
    _all_of_class(conn, item, "integer")
    datetime.strptime(str(_value(conn, item)), "%Y%m%d")


ANOMALY_CHECKS: dict[str, Callable[[sqlite3.Connection, dict], None]] = {
    "orphan_fk": _orphan_fk,
    "text_in_integer": _text_in_integer,
    "unix_epoch_date": _unix_epoch_date,
    "julian_day_date": _julian_day_date,
    "garbage_date": _garbage_date,
    "duplicate_email_case": _duplicate_email_case,
    "invalid_utf8": _invalid_utf8,
    "nul_byte": _nul_byte,
    "invalid_json": _invalid_json,
    "null_primary_key": _null_primary_key,
    "null_in_not_null": _null_in_not_null,
    "varchar_overflow": _varchar_overflow,
    "sub_microsecond": _sub_microsecond,
    "blob_in_point": _blob_in_point,
    "blob_among_text": _blob_among_text,
    "char_zero": _char_zero,
    "core_data_timestamp": _core_data_timestamp,
    "yyyymmdd_integer": _yyyymmdd_integer,
}


@pytest.fixture(scope="module")
def anomalies_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    path = tmp_path_factory.mktemp("anomalies") / "dirty.sqlite"
    generate(path, scale=0.02, anomalies=True)
    manifest = path.with_name("dirty.sqlite.anomalies.json")
    return path, json.loads(manifest.read_text())


def test_anomaly_manifest_lists_every_kind(anomalies_db: tuple[Path, list[dict]]) -> None:
    _path, planted = anomalies_db
    assert {item["kind"] for item in planted} == set(ANOMALY_CHECKS)
    for item in planted:
        assert set(item) == {"table", "key", "column", "kind"}
        assert item["table"] in (*TABLE_ORDER, *ANOMALY_TABLES)


def test_every_listed_anomaly_is_present(anomalies_db: tuple[Path, list[dict]]) -> None:
    path, planted = anomalies_db
    conn = sqlite3.connect(path)
    conn.text_factory = lambda raw: raw.decode("utf-8", errors="surrogateescape")
    try:
        for item in planted:
            ANOMALY_CHECKS[item["kind"]](conn, item)
    finally:
        conn.close()


def test_fk_violations_are_exactly_the_listed_orphans(
    anomalies_db: tuple[Path, list[dict]],
) -> None:
    path, planted = anomalies_db
    with sqlite3.connect(path) as conn:
        violations = {(t, rowid) for t, rowid, _p, _fk in conn.execute("PRAGMA foreign_key_check")}
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    orphans = {(i["table"], i["key"]) for i in planted if i["kind"] == "orphan_fk"}
    assert violations == orphans
    # The NOT NULL constraint was restored after the NULL was written.
    assert "NULL value in ec2_instances.region" in problems


def test_anomalies_add_only_the_listed_rows(tmp_path: Path) -> None:
    clean, dirty = tmp_path / "clean.sqlite", tmp_path / "dirty.sqlite"
    generate(clean, scale=0.02)
    generate(dirty, scale=0.02, anomalies=True)
    planted = json.loads((tmp_path / "dirty.sqlite.anomalies.json").read_text())
    inserted = {"users": 1, "inventory_items": 1}  # the case-duplicate email, the NULL sku
    assert sum(i["kind"] == "null_primary_key" for i in planted) == 1
    clean_counts, dirty_counts = row_counts(clean), row_counts(dirty)
    for table in TABLE_ORDER:
        assert dirty_counts[table] == clean_counts[table] + inserted.get(table, 0)


# --- command line -----------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "consoleai_etl.demo.sample", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_writes_the_database_and_prints_the_row_count(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "cli.sqlite"
    result = run_cli("--out", str(out), "--scale", "0.01")
    assert result.returncode == 0, result.stderr
    total = sum(row_counts(out).values())
    assert total > 0
    assert f"{total:,} rows" in result.stdout
    assert f"in {len(TABLE_ORDER)} tables" in result.stdout
    assert str(out) in result.stdout


def test_cli_rejects_a_zero_scale_with_one_line_and_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "never.sqlite"
    result = run_cli("--out", str(out), "--scale", "0")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error:") and "--scale" in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_generate_rejects_a_negative_scale(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--scale must be positive"):
        generate(tmp_path / "x.sqlite", scale=-1)
