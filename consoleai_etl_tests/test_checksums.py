"""Content equality: one changed value in the target, of any type, fails the checksum check
and the locator names exactly that key and column with both values."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from consoleai_etl_tests.helpers import checks_by_table, execute, fetch, run_job

AT = "2024-02-03 04:05:"
DOC = '{{"i": {}, "tags": ["a", "b"]}}'
ALL_TYPES = """
CREATE TABLE t (
    id INTEGER PRIMARY KEY, n BIGINT, x REAL, price NUMERIC(10,2), body TEXT, raw BLOB,
    ok BOOLEAN, day DATE, at DATETIME, doc JSON, note TEXT
);
"""


def all_types_db(path: Path, rows: int = 500) -> Path:
    with sqlite3.connect(path) as conn:
        conn.executescript(ALL_TYPES)
        conn.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    i * 1_000_003,
                    i / 7,
                    round(i * 1.25, 2),
                    f"text {i}",
                    bytes([i % 256, 7]),
                    i % 2,
                    f"2024-01-{i % 28 + 1:02d}",
                    f"2024-02-03 04:05:{i % 60:02d}",
                    f'{{"i": {i}, "tags": ["a", "b"]}}',
                    None if i % 3 == 2 else "",
                )
                for i in range(1, rows + 1)
            ],
        )
    return path


@pytest.fixture
def loaded(tmp_path: Path, pg_dsn: str) -> Path:
    db = all_types_db(tmp_path / "types.sqlite")
    result, report = run_job(db, pg_dsn, tmp_path / "load")
    assert result.success and checks_by_table(report)["t"]["checksum"]["passed"]
    return db


def verify(db: Path, dsn: str, tmp_path: Path) -> dict:
    result, report = run_job(db, dsn, tmp_path / "verify", job="consistency_check_job")
    assert not result.success and report["status"] == "failure"
    return checks_by_table(report)["t"]["checksum"]


@pytest.mark.parametrize(
    ("change", "column", "source", "target"),
    [
        ("x = 137 / 7.0 + 1e-13", "x", "40339249249249249", None),  # last digits of a float
        ("n = n + 1", "n", "137000411", "137000412"),
        ("price = price + 0.01", "price", "171.25", "171.26"),
        ("body = 'text 13X'", "body", "text 137", "text 13X"),
        ("raw = '\\x8908'::bytea", "raw", "8907", "8908"),
        ("ok = NOT ok", "ok", "t", "f"),
        ("day = day + 1", "day", "2024-01-26", "2024-01-27"),
        ("at = at + interval '1 second'", "at", f"{AT}17.000000", f"{AT}18.000000"),
        ("doc = doc || '{\"i\": 0}'", "doc", DOC.format(137), DOC.format(0)),
        ("note = ''", "note", None, ""),  # NULL -> empty string
    ],
)  # fmt: skip
def test_one_changed_value_is_located_by_key_and_column(
    loaded: Path, pg_dsn: str, tmp_path: Path, change: str, column: str, source, target
) -> None:
    execute(pg_dsn, f"UPDATE t SET {change} WHERE id = 137")

    check = verify(loaded, pg_dsn, tmp_path)

    metadata = check["metadata"]
    assert not check["passed"] and metadata["differing_columns"] == [column]
    [divergence] = metadata["divergent_keys"]
    assert divergence["key"] == {"id": 137} and divergence["divergence"] == "values differ"
    [(name, values)] = divergence["columns"].items()
    assert name == column
    if column == "x":  # doubles are compared by their IEEE-754 bytes
        assert values["source"] != values["target"] and values["target"] is not None
    else:
        assert values == {"source": source, "target": target}
    assert "bisection" in metadata["locator"]


def test_empty_string_to_null_is_a_difference_too(
    loaded: Path, pg_dsn: str, tmp_path: Path
) -> None:
    execute(pg_dsn, "UPDATE t SET note = NULL WHERE id = 3")
    [divergence] = verify(loaded, pg_dsn, tmp_path)["metadata"]["divergent_keys"]
    assert divergence["columns"] == {"note": {"source": "", "target": None}}


def test_float4_narrowing_like_pgloader_is_detected(
    loaded: Path, pg_dsn: str, tmp_path: Path
) -> None:
    execute(pg_dsn, "ALTER TABLE t ALTER COLUMN x TYPE real")
    check = verify(loaded, pg_dsn, tmp_path)
    assert check["metadata"]["differing_columns"] == ["x"]
    assert len(check["metadata"]["divergent_keys"]) == 10  # capped; every x was narrowed


def test_unchanged_target_passes_verify_only(loaded: Path, pg_dsn: str, tmp_path: Path) -> None:
    result, report = run_job(loaded, pg_dsn, tmp_path / "verify", job="consistency_check_job")
    assert result.success
    check = checks_by_table(report)["t"]["checksum"]
    assert check["passed"] and check["metadata"]["source_rows"] == 500


def test_missing_and_extra_rows_are_located(loaded: Path, pg_dsn: str, tmp_path: Path) -> None:
    execute(pg_dsn, "DELETE FROM t WHERE id = 400")
    execute(pg_dsn, "INSERT INTO t (id, n) VALUES (9999, 1)")
    keys = verify(loaded, pg_dsn, tmp_path)["metadata"]["divergent_keys"]
    assert {(k["key"]["id"], k["divergence"]) for k in keys} == {
        (400, "missing in target"),
        (9999, "extra in target"),
    }


def test_text_keys_and_keyless_tables(tmp_path: Path, pg_dsn: str) -> None:
    db = tmp_path / "keys.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            "CREATE TABLE coded (code TEXT PRIMARY KEY, v INTEGER);"
            "CREATE TABLE loose (a INTEGER, b TEXT);"
        )
        conn.executemany("INSERT INTO coded VALUES (?, ?)", [(f"c{i}", i) for i in range(50)])
        conn.executemany("INSERT INTO loose VALUES (?, ?)", [(i, "x") for i in range(50)])
    run_job(db, pg_dsn, tmp_path / "load")
    execute(pg_dsn, "UPDATE coded SET v = -1 WHERE code = 'c7'")
    execute(pg_dsn, "UPDATE loose SET b = 'y' WHERE a = 3")

    _, report = run_job(db, pg_dsn, tmp_path / "verify", job="consistency_check_job")

    checks = checks_by_table(report)
    [coded] = checks["coded"]["checksum"]["metadata"]["divergent_keys"]
    assert coded["key"] == {"code": "c7"} and coded["columns"] == {
        "v": {"source": "7", "target": "-1"}
    }
    loose = checks["loose"]["checksum"]["metadata"]
    assert loose["differing_columns"] == ["b"]
    assert sorted(k["divergence"] for k in loose["divergent_keys"]) == [
        "extra in target",
        "missing in target",
    ]


def test_a_second_run_proves_idempotency(sample_db: Path, pg_dsn: str, tmp_path: Path) -> None:
    first_result, first = run_job(sample_db, pg_dsn, tmp_path / "first")
    _, second = run_job(sample_db, pg_dsn, tmp_path / "second")

    assert second["idempotency"]["previous_run"] == first_result.run_id
    assert second["idempotency"]["identical"] is True
    assert second["idempotency"]["differences"] == []
    assert {t["table"]: t["checksum"] for t in first["tables"]} == {
        t["table"]: t["checksum"] for t in second["tables"]
    }
    assert "identical to the previous run" in (tmp_path / "second" / "latest.md").read_text()


def test_idempotency_report_names_what_changed(tmp_path: Path, pg_dsn: str) -> None:
    db = all_types_db(tmp_path / "types.sqlite", rows=20)
    run_job(db, pg_dsn, tmp_path / "first")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE t SET body = 'edited' WHERE id = 5")
    _, second = run_job(db, pg_dsn, tmp_path / "second")
    assert second["idempotency"]["identical"] is False
    [difference] = second["idempotency"]["differences"]
    assert difference.startswith("t: checksum ")
    assert fetch(pg_dsn, "SELECT body FROM t WHERE id = 5") == [("edited",)]


def test_a_timestamptz_target_reads_the_same_on_a_server_in_another_time_zone(
    loaded: Path, pg_dsn: str, tmp_path: Path
) -> None:
    database = conninfo_to_dict(pg_dsn)["dbname"]
    execute(pg_dsn, f"ALTER DATABASE \"{database}\" SET TimeZone = 'Asia/Tokyo'")
    execute(pg_dsn, "ALTER TABLE t ALTER COLUMN at TYPE timestamptz USING at AT TIME ZONE 'UTC'")

    _, report = run_job(loaded, pg_dsn, tmp_path / "verify", job="consistency_check_job")

    assert checks_by_table(report)["t"]["checksum"]["passed"], report["reasons"]
