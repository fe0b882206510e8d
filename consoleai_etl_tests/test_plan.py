"""Type planning (core/plan.py) and identifier mapping (core/names.py)."""

from __future__ import annotations

import re
import sqlite3
from datetime import date
from decimal import Decimal

import pytest

from consoleai_etl.core.plan.defaults import SqlDefault, plan_default
from consoleai_etl.core.plan.names import dagster_name, derived_identifier, pg_identifier
from consoleai_etl.core.plan.profile import SAMPLE_ROWS, profile_table
from consoleai_etl.core.plan.rules import DEFAULT_RULE
from consoleai_etl.core.plan.table_plan import (
    PgType,
    declared_pg_type,
    observed_pg_type,
    plan_table,
)
from consoleai_etl.core.source.catalog import introspect
from consoleai_etl.core.types import registry

BIGINT = PgType("bigint", "bigint")
DOUBLE = PgType("double", "double precision")
TEXT = PgType("text", "text")
BOOLEAN = PgType("boolean", "boolean")
DATE = PgType("date", "date")
TIMESTAMP = PgType("timestamp", "timestamp")


def translate_default(default_sql: str | None, pg_type: PgType) -> tuple[object, str | None]:
    """The default of a column declared as ``pg_type`` (its SQL name gives SQLite the
    affinity it would have) and planned as that type."""
    converter = registry.converter(pg_type, DEFAULT_RULE)
    return plan_default(default_sql, pg_type.sql, pg_type, converter)


# --- declared types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "kind", "sql"),
    [
        ("INTEGER", "bigint", "bigint"),
        ("BIGINT", "bigint", "bigint"),
        ("INT", "bigint", "bigint"),
        ("UNSIGNED BIG INT", "bigint", "bigint"),
        ("integer", "bigint", "bigint"),
        ("REAL", "double", "double precision"),
        ("DOUBLE", "double", "double precision"),
        ("DOUBLE PRECISION", "double", "double precision"),
        ("FLOAT", "double", "double precision"),
        ("NUMERIC(12,2)", "numeric", "numeric(12,2)"),
        ("numeric(12, 2)", "numeric", "numeric(12,2)"),
        ("NUMERIC(10)", "numeric", "numeric(10,0)"),
        ("DECIMAL", "numeric", "numeric"),
        ("VARCHAR(255)", "text", "varchar(255)"),
        ("CHAR(3)", "text", "varchar(3)"),
        ("NVARCHAR(20)", "text", "varchar(20)"),
        ("TEXT", "text", "text"),
        ("CLOB", "text", "text"),
        ("BLOB", "bytea", "bytea"),
        ("BOOLEAN", "boolean", "boolean"),
        ("DATE", "date", "date"),
        ("DATETIME", "timestamp", "timestamp"),
        ("TIMESTAMP", "timestamp", "timestamp"),
        ("JSON", "jsonb", "jsonb"),
    ],
)
def test_declared_pg_type(declared: str, kind: str, sql: str) -> None:
    pg_type = declared_pg_type(declared)
    assert pg_type is not None
    assert (pg_type.kind, pg_type.sql) == (kind, sql)


def test_declared_type_parameters_are_kept() -> None:
    assert declared_pg_type("NUMERIC(12,2)") == PgType("numeric", "numeric(12,2)", None, 12, 2)
    assert declared_pg_type("VARCHAR(255)") == PgType("text", "varchar(255)", 255)


@pytest.mark.parametrize("declared", ["FOOBAR", "", "   ", "MONEY", "NUMERIC(2,5)", "VARCHAR(x)"])
def test_unusable_declared_type_gives_none(declared: str) -> None:
    assert declared_pg_type(declared) is None


@pytest.mark.parametrize(
    ("observed", "expected", "why"),
    [
        ({}, TEXT, "no non-NULL values"),
        ({"null": 3}, TEXT, "no non-NULL values"),
        ({"integer": 5, "null": 1}, BIGINT, "only integers"),
        ({"integer": 5, "real": 2}, DOUBLE, "only numbers"),
        ({"real": 2}, DOUBLE, "only numbers"),
        ({"blob": 1, "null": 4}, PgType("bytea", "bytea"), "only BLOBs"),
        ({"integer": 5, "text": 1}, TEXT, "mixed storage classes (integer, text)"),
        ({"blob": 1, "text": 1}, PgType("bytea", "bytea"), "BLOBs among others (blob, text)"),
    ],
)
def test_observed_pg_type(observed: dict[str, int], expected: PgType, why: str) -> None:
    pg_type, reason = observed_pg_type(observed)
    assert pg_type == expected
    assert why in reason


# --- defaults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("default_sql", "pg_type", "expected"),
    [
        ("42", BIGINT, 42),
        ("-1", BIGINT, -1),
        ("(0)", BIGINT, 0),
        ("(1 + 1)", BIGINT, 2),
        ("'5'", BIGINT, 5),  # INTEGER affinity stores the number
        ("1.5", DOUBLE, 1.5),
        ("'hello'", TEXT, "hello"),
        ("'it''s'", TEXT, "it's"),
        ("''", TEXT, ""),
        ("7", TEXT, "7"),
        ("'0.10'", PgType("numeric", "numeric(12,2)", None, 12, 2), Decimal("0.10")),
        ("0", PgType("numeric", "numeric(12,2)", None, 12, 2), Decimal(0)),
        ("1", BOOLEAN, True),
        ("0", BOOLEAN, False),
        ("TRUE", BOOLEAN, True),
        ("false", BOOLEAN, False),
        ("'2020-01-02'", DATE, date(2020, 1, 2)),
        ("'{}'", PgType("jsonb", "jsonb"), "{}"),
    ],
)
def test_literal_defaults_go_through_the_converter(
    default_sql: str, pg_type: PgType, expected: object
) -> None:
    value, warning = translate_default(default_sql, pg_type)
    assert warning is None
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("default_sql", [None, "NULL", "null", "(NULL)"])
def test_null_or_missing_default_is_no_default(default_sql: str | None) -> None:
    assert translate_default(default_sql, TEXT) == (None, None)


@pytest.mark.parametrize(
    "default_sql", ["CURRENT_TIMESTAMP", "current_timestamp", "(CURRENT_TIMESTAMP)"]
)
def test_current_timestamp_default_on_timestamp_column(default_sql: str) -> None:
    value, warning = translate_default(default_sql, TIMESTAMP)
    assert warning is None
    assert value == SqlDefault("(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')")


def test_current_timestamp_default_on_timestamptz_and_current_date_on_date() -> None:
    tz = PgType("timestamptz", "timestamptz")
    assert translate_default("CURRENT_TIMESTAMP", tz) == (SqlDefault("CURRENT_TIMESTAMP"), None)
    value, warning = translate_default("CURRENT_DATE", DATE)
    assert warning is None and isinstance(value, SqlDefault) and "::date" in value.sql


@pytest.mark.parametrize(
    ("default_sql", "pg_type", "mentions"),
    [
        ("'abc'", BIGINT, "bigint"),
        ("1.5", BIGINT, "bigint"),
        ("'toolong'", PgType("text", "varchar(3)", 3), "longer than 3"),
        ("'maybe'", BOOLEAN, "boolean"),
        ("2", BOOLEAN, "boolean"),
        ("'12.345'", PgType("numeric", "numeric(5,2)", None, 5, 2), "decimal places"),
        ("'not a date'", DATE, "ISO-8601"),
    ],
)
def test_default_the_column_cannot_hold_gives_a_warning(
    default_sql: str, pg_type: PgType, mentions: str
) -> None:
    value, warning = translate_default(default_sql, pg_type)
    assert value is None
    assert warning is not None
    assert default_sql in warning and mentions in warning


@pytest.mark.parametrize(
    ("default_sql", "pg_type"),
    [
        ("strftime('%Y-%W', 'now', 'localtime')", TEXT),
        ("(strftime('%s', 'now', '-1 day'))", BIGINT),
        ("(lower(hex(randomblob(16))))", TEXT),
        ("abs(random()) % 100", BIGINT),
        ("app_defined(1)", BIGINT),
    ],
)
def test_expression_default_gives_a_warning_not_an_exception(
    default_sql: str, pg_type: PgType
) -> None:
    value, warning = translate_default(default_sql, pg_type)
    assert value is None
    assert warning is not None and "dropped" in warning and default_sql in warning


@pytest.mark.parametrize(
    "default_sql",
    ["CURRENT_TIMESTAMP", "CURRENT_DATE", "datetime('now')", "strftime('%s','now')", "'x'", "1"],
)
@pytest.mark.parametrize("pg_type", [BIGINT, DOUBLE, TEXT, BOOLEAN, DATE, TIMESTAMP])
def test_any_default_is_translated_or_warned_about(default_sql: str, pg_type: PgType) -> None:
    value, warning = translate_default(default_sql, pg_type)
    assert (value is None) != (warning is None)  # exactly one of: a default, a warning


# --- a whole table ----------------------------------------------------------------------------

LONG_TABLE = "t" * 70
LONG_COLUMN = "c" * 64


def test_plan_table_end_to_end() -> None:
    conn = sqlite3.connect(":memory:")
    conn.executescript(
        f"""
        CREATE TABLE {LONG_TABLE} (
            id INTEGER PRIMARY KEY,
            amount MONEY,
            label,
            tags WIBBLE,
            flag BOOLEAN NOT NULL DEFAULT 1,
            created DATETIME DEFAULT CURRENT_TIMESTAMP,
            token TEXT DEFAULT (lower(hex(randomblob(16)))),
            {LONG_COLUMN} TEXT
        );
        CREATE INDEX by_lower_label ON {LONG_TABLE} (lower(label));
        INSERT INTO {LONG_TABLE} (amount, label, tags) VALUES (1, 'x', NULL), (2.5, 3, NULL);
        """
    )
    table = introspect(conn).table(LONG_TABLE)
    rows, profile = profile_table(conn, table)
    conn.close()
    assert rows == 2
    assert profile["amount"] == {"integer": 1, "real": 1}
    plan = plan_table(table, profile, rows)

    assert plan.source_rows == 2
    assert plan.name == pg_identifier(LONG_TABLE) != LONG_TABLE
    assert len(plan.name.encode()) <= 63
    ident = plan.column("id")
    assert ident.identity and ident.not_null and ident.pg_type == BIGINT
    assert "rowid alias" in ident.reason
    assert not ident.needs_conversion()

    amount = plan.column("amount")
    assert amount.pg_type == DOUBLE
    assert "unknown declared type MONEY" in amount.reason and "only numbers" in amount.reason
    assert amount.needs_conversion()  # the integer 1 must be checked on its way to double
    assert not amount.identity and not amount.not_null

    label = plan.column("label")
    assert label.pg_type == TEXT and label.reason.startswith("no declared type")
    assert "mixed storage classes (integer, text)" in label.reason
    tags = plan.column("tags")
    assert tags.pg_type == TEXT and "no non-NULL values" in tags.reason

    assert plan.column("flag").default is True and plan.column("flag").not_null
    assert plan.column("created").default == SqlDefault("(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')")
    assert plan.column("token").default is None

    long_column = plan.column(LONG_COLUMN)
    assert long_column.name == pg_identifier(LONG_COLUMN) != LONG_COLUMN
    assert plan.pg_names(("id", LONG_COLUMN)) == ("id", long_column.name)

    warnings = "\n".join(plan.warnings)
    assert "column token: default" in warnings and "dropped" in warnings
    assert f"column {LONG_COLUMN!r} renamed to {long_column.name!r}" in warnings
    assert f"table {LONG_TABLE!r} renamed to {plan.name!r}" in warnings
    assert "index by_lower_label not recreated: expression index" in warnings
    assert len(plan.warnings) == 4


def test_plan_of_a_clean_declared_table_has_no_warnings() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE items (sku VARCHAR(32) PRIMARY KEY, price NUMERIC(12, 2) NOT NULL, "
        "qty INTEGER NOT NULL DEFAULT 0)"
    )
    table = introspect(conn).table("items")
    plan = plan_table(table, {"sku": {"text": 3}, "price": {"real": 3}, "qty": {"integer": 3}}, 3)
    conn.close()
    assert plan.warnings == ()
    sku = plan.column("sku")
    assert sku.pg_type.sql == "varchar(32)" and sku.not_null and not sku.identity
    assert sku.reason == "declared VARCHAR(32)"
    assert plan.column("price").pg_type.sql == "numeric(12,2)"
    assert plan.column("price").needs_conversion()
    assert plan.column("qty").default == 0 and not plan.column("qty").needs_conversion()


# --- identifiers ------------------------------------------------------------------------------


def test_short_names_are_kept() -> None:
    assert pg_identifier("users") == "users"
    assert pg_identifier("x" * 63) == "x" * 63
    assert pg_identifier("é" * 31) == "é" * 31  # 62 bytes


def test_long_names_are_shortened_deterministically() -> None:
    name = "a" * 64
    short = pg_identifier(name)
    assert short != name
    assert len(short.encode("utf-8")) <= 63
    assert short == pg_identifier("a" * 64)
    assert short.startswith("a" * 40)


def test_long_names_sharing_a_prefix_stay_distinct() -> None:
    prefix = "p" * 60
    first, second = pg_identifier(prefix + "_first_col"), pg_identifier(prefix + "_second_col")
    assert first != second
    assert all(len(s.encode()) <= 63 for s in (first, second))


@pytest.mark.parametrize("char", ["é", "€", "😀"])
def test_multibyte_names_are_not_cut_mid_character(char: str) -> None:
    name = char * 40
    short = pg_identifier(name)
    assert len(short.encode("utf-8")) <= 63
    assert "\ufffd" not in short
    prefix, _, digest = short.rpartition("_")
    assert prefix and set(prefix) == {char}
    assert re.fullmatch(r"[0-9a-f]{8}", digest)
    assert short.encode("utf-8").decode("utf-8") == short


def test_derived_identifier_joins_parts_within_the_limit() -> None:
    assert derived_identifier("users", "email", "key") == "users_email_key"
    long = derived_identifier("t" * 40, "c" * 40, "fkey")
    assert len(long.encode()) <= 63
    assert long != derived_identifier("t" * 40, "c" * 41, "fkey")


DAGSTER_INPUTS = ["users", "a b", "a_b", "a-b", "a.b", "ünïcode", "", "123", "___", "x" * 100]


@pytest.mark.parametrize("name", DAGSTER_INPUTS)
def test_dagster_name_is_valid(name: str) -> None:
    result = dagster_name(name)
    assert re.fullmatch(r"[A-Za-z0-9_]+", result)
    assert result == dagster_name(name)


def test_dagster_name_keeps_safe_names_and_separates_the_rest() -> None:
    assert dagster_name("users") == "users"
    assert dagster_name("a_b") == "a_b"
    assert dagster_name("a b") != dagster_name("a_b")
    assert dagster_name("a b").startswith("a_b_")
    results = [dagster_name(n) for n in DAGSTER_INPUTS]
    assert len(set(results)) == len(DAGSTER_INPUTS)


def test_an_expression_between_quotes_is_evaluated_not_read_as_a_literal() -> None:
    assert translate_default("'a' || 'b'", PgType("text", "text")) == ("ab", None)
    assert translate_default("'it''s'", PgType("text", "text")) == ("it's", None)


def test_check_constraints_are_reported_not_silently_dropped() -> None:
    conn = sqlite3.connect(":memory:")
    conn.executescript(
        "CREATE TABLE c (n INTEGER CHECK (n > 0), note TEXT DEFAULT 'check (x)');"
        "CREATE TABLE plain (note TEXT DEFAULT 'CHECK (x)');"
    )
    tables = {t.name: t for t in introspect(conn).tables}
    assert (
        "CHECK constraints not recreated (see the source DDL)"
        in plan_table(tables["c"], {}, 0).warnings
    )
    assert not plan_table(tables["plain"], {}, 0).warnings


def test_profile_counts_surprises_beyond_the_sample() -> None:
    """The guess comes from the first rows; values past them of another class are counted."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n, s TEXT, e)")
    rows = [(i, i, f"s{i}", None) for i in range(SAMPLE_ROWS * 3)]
    rows[-1] = (rows[-1][0], "late text", b"late blob", 1.5)
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    total, profile = profile_table(conn, introspect(conn).table("t"))
    assert total == SAMPLE_ROWS * 3
    assert profile == {
        "id": {"integer": total},
        "n": {"integer": total - 1, "text": 1},
        "s": {"text": total - 1, "blob": 1},
        "e": {"real": 1, "null": total - 1},
    }


def test_profile_of_an_empty_table() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n)")
    assert profile_table(conn, introspect(conn).table("t")) == (0, {"id": {}, "n": {}})


def test_a_large_table_is_profiled_over_two_connections_with_the_same_counts(
    tmp_path, monkeypatch
) -> None:
    from consoleai_etl.core.plan import profile

    db = tmp_path / "split.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n, s TEXT, e, f REAL)")
        rows = [(i, i, f"s{i}", None, i / 2) for i in range(500)]
        rows[-1] = (499, "late", b"blob", 1, None)
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    conn = sqlite3.connect(db)
    table = introspect(conn).table("t")
    whole = profile_table(conn, table)
    opened = []
    monkeypatch.setattr(profile, "SPLIT_ROWS", 1)
    real_open = profile.open_source
    monkeypatch.setattr(profile, "open_source", lambda p: opened.append(p) or real_open(p))
    assert profile_table(conn, table) == whole
    assert opened == [str(db)]  # the second half was scanned on its own connection
    assert whole[1]["n"] == {"integer": 499, "text": 1}
