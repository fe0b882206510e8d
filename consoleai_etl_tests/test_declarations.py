"""SQLite declarations are advisory: the stored values decide the target type.

Each pattern seen in real application databases, on a SQLite file built in the test and
migrated by the real job: every valid value arrives unchanged, a declaration that cannot
hold it is widened with a warning, and numbers become dates only when one encoding
explains all of them."""

from __future__ import annotations

import struct
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from consoleai_etl.core.plan.date_encodings import NumberRange, auto_encoding
from consoleai_etl_tests.helpers import fetch
from consoleai_etl_tests.test_dirty_data import column_types, migrate, quarantine, table_report


def warning_for(report: dict, table: str, column: str, about: str = "") -> str:
    """The one warning about ``column`` of ``table`` that contains ``about``."""
    [warning] = [
        w
        for w in table_report(report, table)["warnings"]
        if w.startswith(f"column {column}:") and about in w
    ]
    return warning


def test_geometry_blobs_in_a_point_column_become_bytea(
    tmp_path: Path, pg_dsn: str, stream: str
) -> None:
    """GeoPackage geometry: POINT has INTEGER affinity by SQLite's substring rule."""
    blobs = [b"GP\x00\x01" + struct.pack("<dd", x, -x) for x in (1.5, 2.5)]
    result, report = migrate(
        tmp_path, pg_dsn, "CREATE TABLE g (fid INTEGER PRIMARY KEY, geom POINT, m MULTIPOINT);",
        {"g": [(1, blobs[0], blobs[1]), (2, blobs[1], None)]},
    )  # fmt: skip
    assert report["status"] == "success" and quarantine(pg_dsn, result.run_id) == []
    assert column_types(pg_dsn, "g") == {"fid": "bigint", "geom": "bytea", "m": "bytea"}
    assert [bytes(v) for (v,) in fetch(pg_dsn, "SELECT geom FROM g ORDER BY fid")] == blobs
    assert "declared POINT (bigint)" in warning_for(report, "g", "geom")


def test_an_untyped_column_of_text_and_a_large_blob_keeps_every_byte(
    tmp_path: Path, pg_dsn: str, stream: str
) -> None:
    blob = bytes(range(256)) * 266  # 68 KB
    result, report = migrate(
        tmp_path, pg_dsn, "CREATE TABLE n (id INTEGER PRIMARY KEY, v, w NONE);",
        {"n": [(1, "text", "x"), (2, blob, blob), (3, 42, None)]},
    )  # fmt: skip
    assert report["status"] == "success" and quarantine(pg_dsn, result.run_id) == []
    assert column_types(pg_dsn, "n")["v"] == "bytea"
    rows = [bytes(v) for (v,) in fetch(pg_dsn, "SELECT v FROM n ORDER BY id")]
    assert rows == [b"text", blob, b"42"]  # as SQLite's CAST(v AS BLOB) gives them
    assert "stored as the bytes of their text form" in warning_for(report, "n", "v")


def test_char_zero_and_overlong_varchar_hold_their_values(
    tmp_path: Path, pg_dsn: str, stream: str
) -> None:
    note = "zip code note " * 10  # 140 characters in a VARCHAR(120)
    result, report = migrate(
        tmp_path, pg_dsn,
        "CREATE TABLE z (id INTEGER PRIMARY KEY, flag CHAR(0), note VARCHAR(120), ok VARCHAR(9));",
        {"z": [(1, "", note, "fits"), (2, "y", "short", None)]},
    )  # fmt: skip
    assert report["status"] == "success" and quarantine(pg_dsn, result.run_id) == []
    assert fetch(pg_dsn, "SELECT flag, note FROM z ORDER BY id") == [("", note), ("y", "short")]
    types = fetch(
        pg_dsn,
        "SELECT column_name, data_type, character_maximum_length FROM "
        "information_schema.columns WHERE table_name = 'z' ORDER BY ordinal_position",
    )
    assert types[1:] == [("flag", "text", None), ("note", "text", None),
                         ("ok", "character varying", 9)]  # fmt: skip
    assert "140 characters, longer than 120" in warning_for(report, "z", "note")


def test_core_data_seconds_and_yyyymmdd_integers_stay_numbers_with_a_suggestion(
    tmp_path: Path, pg_dsn: str
) -> None:
    core_data = [700_000_000.5, 700_086_400.25]  # seconds since 2001-01-01: 2023-03-08..09
    days = [20050525, 20101231]
    result, report = migrate(
        tmp_path, pg_dsn, "CREATE TABLE c (id INTEGER PRIMARY KEY, ts TIMESTAMP, day DATETIME);",
        {"c": [(1, core_data[0], days[0]), (2, core_data[1], days[1])]},
    )  # fmt: skip
    assert report["status"] == "success" and quarantine(pg_dsn, result.run_id) == []
    assert column_types(pg_dsn, "c") == {"id": "bigint", "ts": "double precision", "day": "bigint"}
    assert fetch(pg_dsn, "SELECT ts, day FROM c ORDER BY id") == list(
        zip(core_data, days, strict=True)
    )
    suggestion = warning_for(report, "c", "ts", "plausible")
    assert (
        "2 numbers from 700000000.5 to 700086400.25 are not plausible dates in one encoding"
        in suggestion
    )
    assert "core_data_seconds 2023-03-08..2023-03-09" in suggestion
    assert "add a casting rule" in suggestion
    assert "numbers from 20050525 to 20101231" in warning_for(report, "c", "day", "plausible")
    assert "widened to bigint" in warning_for(report, "c", "day", "widened")


def test_a_core_data_rule_reads_the_seconds_as_dates(tmp_path: Path, pg_dsn: str) -> None:
    _result, report = migrate(
        tmp_path, pg_dsn, "CREATE TABLE c (id INTEGER PRIMARY KEY, ts TIMESTAMP);",
        {"c": [(1, 700_000_000.5)]},
        casting_rules=[{"column": "c.ts", "date_encoding": "core_data_seconds"}],
    )  # fmt: skip
    assert report["status"] == "success"
    assert fetch(pg_dsn, "SELECT ts FROM c") == [
        (datetime(2001, 1, 1) + timedelta(seconds=700_000_000.5),)
    ]


def test_fractions_finer_than_microseconds_are_never_rounded(
    tmp_path: Path, pg_dsn: str, stream: str
) -> None:
    values = ["2024-01-02 03:04:05.1234567", "2024-01-02 03:04:05.123456", "2024-01-02"]
    exact = ["2024-01-02 03:04:05.1234560", "2024-01-02 03:04:05.5"]  # zeros past 6 digits
    result, report = migrate(
        tmp_path, pg_dsn, "CREATE TABLE f (id INTEGER PRIMARY KEY, at DATETIME, ok DATETIME);",
        {"f": [(1, values[0], exact[0]), (2, values[1], exact[1]), (3, values[2], None)]},
    )  # fmt: skip
    assert report["status"] == "success" and quarantine(pg_dsn, result.run_id) == []
    assert column_types(pg_dsn, "f")["at"] == "text"
    assert column_types(pg_dsn, "f")["ok"] == "timestamp without time zone"
    assert [v for (v,) in fetch(pg_dsn, "SELECT at FROM f ORDER BY id")] == values
    assert fetch(pg_dsn, "SELECT ok FROM f WHERE id = 1") == [
        (datetime(2024, 1, 2, 3, 4, 5, 123456),)
    ]
    assert "finer than microseconds" in warning_for(report, "f", "at", "widened")


def test_numbers_of_two_encodings_in_one_column_are_not_dates(tmp_path: Path, pg_dsn: str) -> None:
    """1704164645 is a unix time and 2460311.5 a Julian day: no one encoding explains both."""
    _result, report = migrate(
        tmp_path, pg_dsn, "CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME);",
        {"t": [(1, 1704164645), (2, 2460311.5)]},
    )  # fmt: skip
    assert column_types(pg_dsn, "t")["at"] == "double precision"
    assert fetch(pg_dsn, "SELECT at FROM t ORDER BY id") == [(1704164645.0,), (2460311.5,)]
    assert "2 numbers from 2460311.5 to 1704164645" in warning_for(report, "t", "at", "plaus")


@pytest.mark.parametrize(
    ("numbers", "encoding"),
    [
        (NumberRange(2, 315532800, 4102444800, True), "unix_seconds"),
        (NumberRange(2, 315532799, 1704164645, True), None),  # 1979-12-31: not plausible
        (NumberRange(1, 20050525, 20050525, True), None),  # YYYYMMDD, 1970-08-21 as unix
        (NumberRange(2, 1704164645000, 1704164645999, True), "unix_ms"),
        (NumberRange(2, 1704164645.5, 1704164646, False), None),  # reals are not unix time
        (NumberRange(2, 2378496.5, 2488069.5, False), "julian_day"),
        (NumberRange(1, 2460311, 2460311, True), "julian_day"),
        (NumberRange(1, 700000000.5, 700000000.5, False), None),  # Core Data: suggested only
    ],
)
def test_auto_reads_numbers_as_dates_only_under_one_plausible_encoding(
    numbers: NumberRange, encoding: str | None
) -> None:
    assert auto_encoding(numbers) == encoding


def test_a_type_the_user_chose_still_quarantines_what_it_cannot_hold(
    tmp_path: Path, pg_dsn: str
) -> None:
    result, report = migrate(
        tmp_path, pg_dsn, "CREATE TABLE q (id INTEGER PRIMARY KEY, note VARCHAR(3));",
        {"q": [(1, "abc"), (2, "abcd")]},
        casting_rules=[{"column": "q.note", "target_type": "varchar(3)"}],
    )  # fmt: skip
    assert report["status"] == "success_with_quarantine"
    [(_table, key, column, reason)] = quarantine(pg_dsn, result.run_id)
    assert (key, column) == ({"id": 2}, "note") and "longer than 3" in reason
