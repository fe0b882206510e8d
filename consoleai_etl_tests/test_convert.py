"""Value converters (core/convert.py), the report verdict (core/report.py) and DSN redaction."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

from consoleai_etl.core.encode.convert import (
    INT64_MAX,
    INT64_MIN,
    describe,
    make_numeric,
    make_text,
    to_bigint,
    to_boolean,
    to_bytea,
    to_date,
    to_double,
    to_json_text,
    to_timestamp,
    to_timestamptz,
)
from consoleai_etl.core.errors import ConversionError
from consoleai_etl.core.run.report import (
    FAILURE,
    SUCCESS,
    SUCCESS_WITH_DIVERGENCE,
    SUCCESS_WITH_QUARANTINE,
    CheckReport,
    MigrationReport,
    TableReport,
    decide,
)
from consoleai_etl.core.source.connection import InvalidText
from consoleai_etl.core.target.postgres import redact

# --- bigint -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, -1, INT64_MAX, INT64_MIN, 2**53 + 1])
def test_bigint_keeps_integers(value: int) -> None:
    assert to_bigint(value) == value


@pytest.mark.parametrize(("value", "expected"), [(3.0, 3), (-0.0, 0), (-(2.0**63), INT64_MIN)])
def test_bigint_takes_integral_floats(value: float, expected: int) -> None:
    result = to_bigint(value)
    assert result == expected and type(result) is int


@pytest.mark.parametrize("value", ["n/a", "12", 1.5, 2.0**63, math.inf, math.nan, b"\x01"])
def test_bigint_refuses(value: object) -> None:
    with pytest.raises(ConversionError, match="cannot become bigint"):
        to_bigint(value)


def test_bigint_error_names_the_value() -> None:
    with pytest.raises(ConversionError) as error:
        to_bigint("n/a")
    assert str(error.value) == "'n/a' cannot become bigint"


# --- double precision -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [0.1, 1.5, -2.25, 5e-324, 1.7976931348623157e308, math.inf, -math.inf]
)
def test_double_keeps_floats_exactly(value: float) -> None:
    result = to_double(value)
    assert result == value and repr(result) == repr(value)


def test_double_keeps_nan_and_negative_zero() -> None:
    assert math.isnan(to_double(math.nan))
    negative_zero = to_double(-0.0)
    assert negative_zero == 0.0 and math.copysign(1.0, negative_zero) == -1.0


@pytest.mark.parametrize("value", [0, 7, -(2**53), 2**53, 2**62, INT64_MIN])
def test_double_takes_exactly_representable_integers(value: int) -> None:
    result = to_double(value)
    assert type(result) is float and int(result) == value


@pytest.mark.parametrize("value", [2**53 + 1, -(2**53) - 1, INT64_MAX])
def test_double_refuses_integers_it_would_round(value: int) -> None:
    with pytest.raises(ConversionError, match="integer too large to be exact"):
        to_double(value)


@pytest.mark.parametrize("value", ["1.5", b"x"])
def test_double_refuses_non_numbers(value: object) -> None:
    with pytest.raises(ConversionError, match="cannot become double precision"):
        to_double(value)


# --- numeric ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, "5.00"),
        (-12, "-12.00"),
        (0.1, "0.10"),
        (1234.5, "1234.50"),
        ("1234.50", "1234.50"),
        (" 7.25 ", "7.25"),
        ("1.2300", "1.23"),  # trailing zeros are not significant decimal places
        ("9999999999.99", "9999999999.99"),
        ("-9999999999.99", "-9999999999.99"),
        ("1E+2", "100.00"),
    ],
)
def test_numeric_keeps_values_that_fit_at_the_column_scale(value: object, expected: str) -> None:
    # Sent at the column's scale, exactly as PostgreSQL stores numeric(12,2).
    result = make_numeric(12, 2)(value)
    assert isinstance(result, Decimal) and str(result) == expected


def test_unbounded_numeric_keeps_every_digit() -> None:
    to_numeric = make_numeric(None, None)
    assert str(to_numeric("3.141592653589793238462643383279")) == "3.141592653589793238462643383279"
    assert to_numeric(2**64) == Decimal(2**64)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("12.345", "more decimal places than the column keeps"),
        (0.001, "more decimal places than the column keeps"),
        (1e-7, "more decimal places than the column keeps"),
        ("10000000000", "too many digits before the decimal point"),
        (10**10, "too many digits before the decimal point"),
        ("1E+10", "too many digits before the decimal point"),
        (math.nan, "not a finite number"),
        ("Infinity", "not a finite number"),
    ],
)
def test_numeric_refuses_values_that_would_change(value: object, why: str) -> None:
    with pytest.raises(ConversionError) as error:
        make_numeric(12, 2)(value)
    assert "cannot become numeric(12,2)" in str(error.value)
    assert why in str(error.value)


@pytest.mark.parametrize("value", ["abc", "", b"\x00", InvalidText(b"1\xff")])
def test_numeric_refuses_non_numbers(value: object) -> None:
    with pytest.raises(ConversionError, match=r"cannot become numeric\(5,2\)"):
        make_numeric(5, 2)(value)


# --- text / varchar ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("héllo wörld", "héllo wörld"), ("", ""), (5, "5"), (0.1, "0.1"), ("line\nbreak", None)],
)
def test_text_keeps_values(value: object, expected: str | None) -> None:
    assert make_text(None)(value) == (expected if expected is not None else value)


def test_varchar_counts_characters_not_bytes() -> None:
    assert make_text(3)("héé") == "héé"
    assert make_text(3)("abc") == "abc"


def test_text_refuses_nul_bytes() -> None:
    with pytest.raises(ConversionError, match="NUL byte"):
        make_text(None)("login\x00x")


def test_varchar_refuses_values_over_its_length() -> None:
    with pytest.raises(ConversionError) as error:
        make_text(3)("abcd")
    assert str(error.value) == "'abcd' cannot become varchar(3): 4 characters, longer than 3"


def test_text_refuses_invalid_utf8_and_blobs() -> None:
    with pytest.raises(ConversionError) as error:
        make_text(None)(InvalidText(b"ab\xffcd"))
    assert "invalid UTF-8 text" in str(error.value) and "ab\\xffcd" in str(error.value)
    with pytest.raises(ConversionError, match="BLOB of 3 bytes cannot become text"):
        make_text(None)(b"abc")


# --- bytea ------------------------------------------------------------------------------------


def test_bytea_keeps_bytes_and_raw_invalid_text() -> None:
    blob = bytes(range(256))
    assert to_bytea(blob) == blob
    raw = to_bytea(InvalidText(b"ab\xffcd"))
    assert raw == b"ab\xffcd" and type(raw) is bytes
    assert to_bytea("é") == "é".encode()


@pytest.mark.parametrize(("value", "stored"), [(5, b"5"), (-2**63, b"-9223372036854775808"),
                                               (2.5, b"2.5"), ("é", "é".encode())])  # fmt: skip
def test_bytea_takes_text_and_numbers_as_their_text_bytes(value: object, stored: bytes) -> None:
    assert to_bytea(value) == stored  # as SQLite's CAST(x AS BLOB) gives them


def test_bytea_refuses_what_has_no_text_form() -> None:
    with pytest.raises(ConversionError, match="cannot become bytea"):
        to_bytea(object())


# --- boolean ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, False),
        (1, True),
        (0.0, False),
        (1.0, True),
        ("0", False),
        ("1", True),
        ("t", True),
        ("f", False),
        ("true", True),
        ("false", False),
        ("TRUE", True),
        ("yes", True),
        ("no", False),
        (" Yes ", True),
    ],
)
def test_boolean_accepts_usual_spellings(value: object, expected: bool) -> None:
    assert to_boolean(value) is expected


@pytest.mark.parametrize("value", [2, -1, 0.5, "maybe", "", b"\x01"])
def test_boolean_refuses_other_values(value: object) -> None:
    with pytest.raises(ConversionError, match="cannot become boolean"):
        to_boolean(value)


# --- date / timestamp -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020-01-02 03:04:05", datetime(2020, 1, 2, 3, 4, 5)),
        ("2020-01-02T03:04:05", datetime(2020, 1, 2, 3, 4, 5)),
        ("2020-01-02 03:04:05.123", datetime(2020, 1, 2, 3, 4, 5, 123000)),
        ("2020-01-02T03:04:05+02:00", datetime(2020, 1, 2, 1, 4, 5)),
        ("2020-01-02T03:04:05.5-01:00", datetime(2020, 1, 2, 4, 4, 5, 500000)),
        ("2020-01-02T03:04:05Z", datetime(2020, 1, 2, 3, 4, 5)),
        ("2020-01-02", datetime(2020, 1, 2)),
        (" 2020-01-02 03:04 ", datetime(2020, 1, 2, 3, 4)),
        (1577836800, datetime(2020, 1, 1)),
        (0, datetime(1970, 1, 1)),
        (-86400, datetime(1969, 12, 31)),
        (2459000.5, datetime(2020, 5, 31)),
        (2459000.75, datetime(2020, 5, 31, 6)),
        (2440587.5, datetime(1970, 1, 1)),
    ],
)
def test_timestamp_parses_iso_unix_and_julian(value: object, expected: datetime) -> None:
    result = to_timestamp(value)
    assert result == expected
    assert result.tzinfo is None


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("last tuesday", "not an ISO-8601 date/time"),
        ("2020-13-01", "not an ISO-8601 date/time"),
        (10**15, "out of range as unix_seconds"),
        (1e9, "Julian day out of range"),
    ],
)
def test_timestamp_refuses_with_a_reason(value: object, why: str) -> None:
    with pytest.raises(ConversionError) as error:
        to_timestamp(value)
    assert "cannot become timestamp" in str(error.value) and why in str(error.value)


@pytest.mark.parametrize("value", [math.nan, math.inf, b"2020-01-01"])
def test_timestamp_refuses_non_dates(value: object) -> None:
    with pytest.raises(ConversionError, match="cannot become timestamp"):
        to_timestamp(value)


def test_timestamptz_keeps_the_offset_or_assumes_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert to_timestamptz("2020-01-02T03:04:05+02:00") == datetime(2020, 1, 2, 3, 4, 5, 0, plus_two)
    naive = to_timestamptz("2020-01-02 03:04:05")
    assert naive == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC) and naive.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020-01-02", date(2020, 1, 2)),
        ("2020-01-02 00:00:00", date(2020, 1, 2)),
        (1577836800, date(2020, 1, 1)),
        (2459000.5, date(2020, 5, 31)),
    ],
)
def test_date_accepts_midnight_values(value: object, expected: date) -> None:
    result = to_date(value)
    assert result == expected and type(result) is date


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("2020-01-02 10:00:00", "has a time of day that a date would drop"),
        (1577836801, "has a time of day that a date would drop"),
        (2459000.75, "has a time of day that a date would drop"),
        ("garbage", "not an ISO-8601 date/time"),
    ],
)
def test_date_refuses_with_a_reason(value: object, why: str) -> None:
    with pytest.raises(ConversionError) as error:
        to_date(value)
    assert "cannot become date" in str(error.value) and why in str(error.value)


# --- jsonb ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "jsonb_output"),
    [  # right-hand sides are what PostgreSQL 15 prints for `'<text>'::jsonb::text`
        ('{"a": 1}', '{"a": 1}'),
        (
            '{"steps": [{"op": "login", "retries": 2}], "schedule": "@daily"}',
            '{"steps": [{"op": "login", "retries": 2}], "schedule": "@daily"}',
        ),
        ('{"bb": 1, "a": 2, "ab": 3}', '{"a": 2, "ab": 3, "bb": 1}'),
        (
            "[1.000000000000000000000001, 1e3, -0, 1.50, 2E-3]",
            "[1.000000000000000000000001, 1000, 0, 1.50, 0.002]",
        ),
        ('  {"b" : [true, null] }  ', '{"b": [true, null]}'),
        ('"caf\\u00e9"', '"café"'),
        ('"café"', '"café"'),
        ("null", "null"),
        ('{"a": 1, "a": 2}', '{"a": 2}'),
        ('"tab\\tnew\\u0001"', '"tab\\tnew\\u0001"'),
    ],
)
def test_json_text_is_sent_in_jsonb_output_form(text: str, jsonb_output: str) -> None:
    assert to_json_text(text) == jsonb_output


def test_json_numbers_become_json_text() -> None:
    assert to_json_text(5) == "5"
    assert to_json_text(1.5) == "1.5"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ('{"steps": [', "invalid JSON"),
        ("", "invalid JSON"),
        ("{'a': 1}", "invalid JSON"),
        ("NaN", "NaN is not valid JSON"),
        ('{"a": NaN}', "NaN is not valid JSON"),
        ("[-Infinity]", "-Infinity is not valid JSON"),
        ('{"a": "x\\u0000y"}', "\\u0000 is not allowed"),
        (math.nan, ""),
        (b"{}", ""),
    ],
)
def test_json_refuses_with_a_reason(value: object, why: str) -> None:
    with pytest.raises(ConversionError) as error:
        to_json_text(value)
    assert "cannot become jsonb" in str(error.value) and why in str(error.value)


# --- describe ---------------------------------------------------------------------------------


def test_describe_shortens_long_values() -> None:
    text = describe("x" * 500)
    assert len(text) == 60 and text.endswith("...") and text.startswith("'xxx")
    assert describe("short") == "'short'"
    assert describe(12) == "12"
    assert describe(b"\x00" * 1000) == "BLOB of 1000 bytes"
    invalid = describe(InvalidText(b"\xff" * 100))
    assert invalid.startswith("invalid UTF-8 text b'") and invalid.count("\\xff") == 40


def test_error_messages_stay_short_for_long_values() -> None:
    with pytest.raises(ConversionError) as error:
        make_text(10)("y" * 10_000)
    assert len(str(error.value)) < 150
    assert "10000 characters, longer than 10" in str(error.value)


# --- report verdict ---------------------------------------------------------------------------


def check(name: str, passed: bool = True) -> CheckReport:
    return CheckReport(name, passed, f"{name} {'ok' if passed else 'differs | by 1'}")


def make_report(*tables: TableReport, allow_divergence: bool = False) -> MigrationReport:
    return MigrationReport(
        run_id="run-1",
        job="legacy_migration_job",
        started_at="2024-01-01T00:00:00",
        finished_at="2024-01-01T00:00:05",
        dry_run=False,
        allow_divergence=allow_divergence,
        mode="replace",
        source_path="data/x.sqlite",
        target="postgresql://u:***@h/db",
        target_schema="public",
        tables=list(tables),
    )


def table(name: str, *checks: CheckReport, quarantined: int = 0, error: str | None = None):
    return TableReport(
        table=name,
        target_table=name,
        source_rows=1000,
        loaded_rows=1000 - quarantined,
        quarantined_rows=quarantined,
        seconds=0.5,
        rows_per_second=2000.0,
        checks=list(checks),
        error=error,
    )


def test_decide_success() -> None:
    report = make_report(table("users", check("row_count")), table("roles", check("row_count")))
    decide(report)
    assert report.status == SUCCESS
    assert report.reasons == ["all checks passed, no row quarantined"]


@pytest.mark.parametrize("allow_divergence", [False, True])
def test_decide_failed_check(allow_divergence: bool) -> None:
    report = make_report(
        table("users", check("row_count"), check("checksum", passed=False)),
        allow_divergence=allow_divergence,
    )
    decide(report)
    assert report.status == (SUCCESS_WITH_DIVERGENCE if allow_divergence else FAILURE)
    assert any("users: check checksum failed" in r for r in report.reasons)


@pytest.mark.parametrize("allow_divergence", [False, True])
def test_decide_quarantine(allow_divergence: bool) -> None:
    report = make_report(
        table("users", check("row_count"), quarantined=3),
        table("roles", check("row_count")),
        allow_divergence=allow_divergence,
    )
    decide(report)
    assert report.status == (SUCCESS_WITH_QUARANTINE if allow_divergence else FAILURE)
    assert report.reasons == ["3 rows quarantined: users (3)"]


def test_decide_divergence_outranks_quarantine() -> None:
    report = make_report(
        table("users", check("fk", passed=False), quarantined=2), allow_divergence=True
    )
    decide(report)
    assert report.status == SUCCESS_WITH_DIVERGENCE


@pytest.mark.parametrize("allow_divergence", [False, True])
def test_decide_load_error_is_always_failure(allow_divergence: bool) -> None:
    report = make_report(
        table("users", check("row_count")),
        table("roles", error="COPY failed"),
        allow_divergence=allow_divergence,
    )
    decide(report)
    assert report.status == FAILURE
    assert report.reasons[0] == "roles: load failed: COPY failed"


def test_markdown_lists_tables_and_escapes_pipes() -> None:
    report = make_report(
        table("users", check("row_count"), check("checksum", passed=False)),
        table("odd|name", check("row_count"), quarantined=1),
    )
    decide(report)
    markdown = report.to_markdown()
    assert "**Status: FAILURE**" in markdown
    row = "| users | 1,000 | 1,000 | 0 | 0.50 | 2,000 | — | row_count ✅, checksum ❌ |"
    assert row in markdown
    assert "| odd\\|name | 1,000 | 999 | 1 |" in markdown
    assert "- **users** checksum: checksum differs \\| by 1" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 3  # header + one row per table
    assert all(row.replace("\\|", "").count("|") == 9 for row in rows)  # 8 cells each


@pytest.mark.parametrize(
    "name", ['<b>&"x', "*bold* _em_ ~~gone~~", "[link](http://x) `tick``s`", "a|b\\|c", "user_id"]
)
def test_markdown_shows_names_and_reasons_as_text_never_as_markup(name: str) -> None:
    """Rendered by a CommonMark + GFM-tables parser, a name from the source (in a cell, a
    failure, a quarantined row's key, a reason) is its own text and makes no element."""
    failing = table(name, quarantined=1, error=f"{name} refused")
    failing.quarantine_sample = [{"key": {"id": name}, "column": name, "reason": f"{name}!"}]
    report = make_report(failing)
    decide(report)

    html = MarkdownIt("commonmark").enable("table").render(report.to_markdown())

    tags = set(re.findall(r"<(\w+)", html))
    assert tags <= {"h1", "h2", "p", "strong", "ul", "li", "table", "thead", "tbody", "tr",
                    "th", "td", "code", "pre"}  # fmt: skip
    cells = re.findall(r"<tr>\s*<td>(.*?)</td>", html, flags=re.S)
    assert cells == [escapeHtml(name)] * 2  # the tables and the quarantined rows
    assert f"<code>{escapeHtml(json.dumps({'id': name}))}</code>" in html
    assert f"{escapeHtml(name)} refused" in html


def test_markdown_marks_dry_runs() -> None:
    report = make_report(table("users", check("row_count")))
    report.dry_run = True
    decide(report)
    assert report.to_markdown().startswith("# Migration report (DRY RUN)")
    assert "DRY RUN, target untouched" in report.to_markdown()


# --- DSN redaction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        (
            "postgresql://alice:s3cret@db.example:5432/app",
            "postgresql://alice:***@db.example:5432/app",
        ),
        ("postgres://:s3cret@db/app", "postgres://:***@db/app"),
        ("postgresql://alice:p%40ss:s3cret@db/app", "postgresql://alice:***@db/app"),
        (
            "host=db user=alice password=s3cret dbname=app",
            "host=db user=alice password=*** dbname=app",
        ),
        ("host=db password = 's3 cret' user=alice", "host=db password = *** user=alice"),
        ("PASSWORD=s3cret host=db", "PASSWORD=*** host=db"),
        ("password='it\\'s s3cret' host=db", "password=*** host=db"),
        (
            "cannot connect to postgresql://alice:s3cret@db/app: refused",
            "cannot connect to postgresql://alice:***@db/app: refused",
        ),
    ],
)
def test_redact_hides_passwords(dsn: str, expected: str) -> None:
    redacted = redact(dsn)
    assert redacted == expected
    assert "s3cret" not in redacted


@pytest.mark.parametrize(
    "dsn", ["postgresql://alice@db:5432/app", "host=db user=alice dbname=app", "postgresql:///app"]
)
def test_redact_leaves_dsns_without_password_alone(dsn: str) -> None:
    assert redact(dsn) == dsn


def test_redact_hides_password_query_parameter() -> None:
    assert "s3cret" not in redact("postgresql://alice@db/app?password=s3cret&sslmode=require")


def test_json_with_a_lone_surrogate_escape_is_refused() -> None:
    with pytest.raises(ConversionError, match="lone UTF-16 surrogate"):
        to_json_text('"\\ud800"')
    assert to_json_text('"\\ud83d\\ude00"') == '"😀"'  # a valid pair


def test_an_escaped_backslash_before_u0000_is_valid_json() -> None:
    text = '["\\\\u0000"]'  # JSON for the 6-character string \u0000, which jsonb accepts
    assert to_json_text(text) == text
    with pytest.raises(ConversionError, match="u0000"):
        to_json_text('{"k\\u0000": 1}')


@pytest.mark.parametrize(
    "text",
    ['{"ua": "console/2.3", "n": 5}', '{"b": 1, "a": {"d": 2, "cc": [3, 4]}}', '["x.y", 1e3]'],
)
def test_fast_and_exact_json_paths_print_the_same_jsonb_form(text: str) -> None:
    from consoleai_etl.core.encode.canonical import jsonb_text

    exact = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    assert to_json_text(text) == jsonb_text(exact)


def test_repeated_json_is_converted_once_and_refusals_are_never_cached() -> None:
    from consoleai_etl.core.encode.convert import JSON_CACHE_CHARS, cached_jsonb_form

    cached_jsonb_form.cache_clear()
    for _ in range(3):
        assert to_json_text('{"bb": 1, "a": 2}') == '{"a": 2, "bb": 1}'
    assert cached_jsonb_form.cache_info().hits == 2
    for _ in range(2):
        with pytest.raises(ConversionError, match="invalid JSON"):
            to_json_text('{"a": ')
    assert cached_jsonb_form.cache_info().currsize == 1  # the refusal was not kept
    long = '{"k": "' + "x" * JSON_CACHE_CHARS + '"}'
    assert to_json_text(long) == long  # converted, but too long to be held
    assert cached_jsonb_form.cache_info().currsize == 1
