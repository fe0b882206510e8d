"""Column defaults planned with their column (issue 23): every default form SQLite accepts,
crossed with every way the plan gives a column another type than its declaration suggests,
on real SQLite files migrated into a real PostgreSQL.

The meaning of a default is the value SQLite stores when it applies. A default PostgreSQL
keeps must store that value (as the load converts a stored value; for a clock, the current
time in SQLite's own form); any other is dropped, with a warning naming the column. A
default never fails its table.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from consoleai_etl.core.plan.defaults import SqlDefault
from consoleai_etl.core.plan.table_plan import plan_table
from consoleai_etl.core.source.catalog import introspect
from consoleai_etl.core.target import constraints, ddl
from consoleai_etl_tests.conftest import fresh_database
from consoleai_etl_tests.helpers import fetch, run_job
from consoleai_etl_tests.test_console_script import consoleai_etl

# Every form of default SQLite accepts, as written in CREATE TABLE: (SQL, read from the clock).
DEFAULTS = {
    "zero": ("0", False),
    "negative": ("-7", False),
    "real": ("1.5", False),
    "text": ("'abc'", False),
    "timestamp_text": ("'2020-01-02 03:04:05'", False),
    "blob": ("X'00FF'", False),
    "null_constant": ("NULL", False),
    "true_constant": ("TRUE", False),
    "current_timestamp": ("CURRENT_TIMESTAMP", True),
    "current_date": ("CURRENT_DATE", True),
    "current_time": ("CURRENT_TIME", True),
    "datetime_now": ("(datetime('now'))", True),
    "datetime_localtime": ("(DATETIME('now','localtime'))", True),
    "strftime_epoch": ("(strftime('%s','now'))", True),
    "strftime_datetime": ("(strftime('%Y-%m-%d %H:%M:%S','now'))", True),
    "sum": ("(1 + 1)", False),
    "concatenation": ("('a' || 'b')", False),
    "quoted_quotes": ("'\"0\"'", False),
    "empty_identifier": ('""', False),
}
CLOCKS = {"current_timestamp", "current_date", "current_time", "datetime_now",
          "datetime_localtime", "strftime_epoch", "strftime_datetime"}  # fmt: skip
TEXTS = {"text", "timestamp_text", "concatenation", "quoted_quotes", "empty_identifier"}
NUMBERS = {"zero", "negative", "true_constant", "sum"}  # integers once SQLite has stored them


@dataclass(frozen=True)
class Change:
    """A way the plan gives a column its type: the declaration and the stored values (a
    casting rule's target type), the type PostgreSQL gets, and the defaults that cannot
    keep their meaning in it."""

    declared: str
    values: tuple[object, ...]
    target: str
    dropped: frozenset[str]
    rule: str | None = None
    changed: bool = True  # not the type the declaration suggests


def dropped(*names: str | set[str]) -> frozenset[str]:
    return frozenset().union(*({n} if isinstance(n, str) else n for n in names))


CHANGES = {
    # The type the declaration suggests: the baseline (a number is no ISO date here).
    "as_declared": Change(
        "DATETIME", ("2020-01-01 00:00:00",), "timestamp without time zone",
        dropped(NUMBERS, TEXTS - {"timestamp_text"}, "real", "blob", "current_time",
                "datetime_localtime", "strftime_epoch"),
        changed=False,
    ),
    # The issue's table: numbers no date encoding explains, widened to bigint.
    "widened_to_bigint": Change(
        "DATETIME", (99_999_999_999_999, -5), "bigint",
        dropped(TEXTS, CLOCKS - {"strftime_epoch"}, "real", "blob"),
    ),
    "widened_to_double": Change(
        "DATETIME", (1e300, 0.5), "double precision",
        dropped(TEXTS, CLOCKS - {"strftime_epoch"}, "blob"),
    ),
    "widened_to_numeric": Change(
        "DATETIME", (9_007_199_254_740_993, 0.5), "numeric", dropped(TEXTS, CLOCKS, "blob")
    ),
    "widened_to_text": Change(
        "DATETIME", ("later", 5), "text", dropped("blob", "datetime_localtime")
    ),
    "text_for_sub_microseconds": Change(
        "DATETIME", ("2020-01-01 00:00:00.1234567",), "text", dropped("blob", "datetime_localtime")
    ),
    "integer_widened_to_double": Change(
        "INTEGER", (1, 2.5), "double precision",
        dropped(TEXTS, CLOCKS - {"strftime_epoch"}, "blob"),
    ),
    "integer_widened_to_text": Change(
        "INTEGER", (1, "abc"), "text", dropped("blob", "datetime_localtime")
    ),
    "widened_to_bytea": Change("INTEGER", (b"\x01",), "bytea", dropped(CLOCKS)),
    "rule_to_text": Change(
        "DATETIME", ("2020-01-01 00:00:00",), "text", dropped("blob", "datetime_localtime"),
        rule="text",
    ),
    "rule_to_smallint": Change(
        "INTEGER", (1,), "smallint", dropped(TEXTS, CLOCKS, "real", "blob"), rule="smallint"
    ),
    # No declaration: the stored integers decide (the digits strftime stores stay text).
    "untyped": Change("", (1,), "bigint", dropped(TEXTS, CLOCKS, "real", "blob"), changed=False),
}  # fmt: skip


def create_table(name: str, declared: str) -> str:
    columns = ", ".join(f"{d} {declared} DEFAULT {DEFAULTS[d][0]}" for d in DEFAULTS)
    return f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, {columns})"


@pytest.fixture(scope="module")
def database(server_dsn: str) -> Iterator[str]:
    """One fresh database for the module's one run (every table of the cross product)."""
    with fresh_database(server_dsn) as dsn:
        yield dsn


@pytest.fixture(scope="module")
def migrated(database: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every change's table, with one column per default form, migrated in one run."""
    path = tmp_path_factory.mktemp("defaults") / "zoo.sqlite"
    with sqlite3.connect(path) as conn:
        for name, change in CHANGES.items():
            conn.execute(create_table(name, change.declared))
            columns = ", ".join(DEFAULTS)
            marks = ", ".join("?" * len(DEFAULTS))
            conn.executemany(
                f"INSERT INTO {name} ({columns}) VALUES ({marks})",
                [(v,) * len(DEFAULTS) for v in change.values],
            )
    conn.close()
    rules = [
        {"column": f"{name}.{d}", "target_type": change.rule}
        for name, change in CHANGES.items()
        if change.rule
        for d in DEFAULTS
    ]
    result, report = run_job(path, database, path.parent / "reports", casting_rules=rules)
    assert result.success, report["reasons"]
    return report


def sqlite_default(declared: str, default: str) -> object:
    """The value SQLite stores for the default (its clock read now)."""
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE t (id INTEGER PRIMARY KEY, v {declared} DEFAULT {default})")
    conn.execute("INSERT INTO t DEFAULT VALUES")
    (value,) = conn.execute("SELECT v FROM t").fetchone()
    conn.close()
    return value


def postgres_default(dsn: str, table: str, column: str) -> tuple[str | None, object]:
    """(the column's default expression, the value it stores in a new row: rolled back)."""
    with psycopg.connect(dsn) as conn:
        [(expression,)] = conn.execute(
            "SELECT column_default FROM information_schema.columns "
            "WHERE table_name = %s AND column_name = %s",
            (table, column),
        ).fetchall()
        query = sql.SQL("INSERT INTO {} DEFAULT VALUES RETURNING {}")
        (value,) = conn.execute(
            query.format(sql.Identifier(table), sql.Identifier(column))
        ).fetchone()
        conn.rollback()
    return expression, value


def as_loaded(value: object, like: object) -> object:
    """A constant SQLite stores, as the load gives it to a column of ``like``'s type."""
    if isinstance(like, str):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(like, bytes):
        return value if isinstance(value, bytes) else as_loaded(value, "").encode()
    if isinstance(like, float):
        return float(value)
    if isinstance(like, Decimal):
        return Decimal(repr(value))
    if isinstance(like, datetime):
        return datetime.fromisoformat(value)
    return value


def the_same_moment(stored: object, sqlite_value: object) -> bool:
    """Whether a clock's value in PostgreSQL reads the same clock as SQLite's, in the same
    form (text: the same shape, digit for digit), within a few seconds (a date: a day)."""
    day = re.fullmatch(r"\d{4}-\d\d-\d\d", str(sqlite_value)) is not None
    if isinstance(stored, str):
        assert re.sub(r"\d", "0", stored) == re.sub(r"\d", "0", str(sqlite_value))
        stored, sqlite_value = _moment(stored), _moment(str(sqlite_value))
    elif isinstance(stored, datetime):
        sqlite_value = datetime.fromisoformat(str(sqlite_value))
    else:  # seconds since the epoch
        assert isinstance(stored, int | float)
        sqlite_value = float(sqlite_value)
    if isinstance(stored, datetime):
        return abs(stored - sqlite_value) <= timedelta(days=1 if day else 0, seconds=5)
    return abs(stored - sqlite_value) <= 5


def _moment(text: str) -> object:
    """SQLite's text of a clock: seconds since the epoch, a time of day (today), a date
    or a timestamp."""
    if re.fullmatch(r"\d+", text):
        return int(text)
    if re.fullmatch(r"\d\d:\d\d:\d\d", text):
        return datetime.combine(datetime.now(UTC).date(), time.fromisoformat(text))
    return datetime.fromisoformat(text)


def as_written(default_sql: str) -> str:
    """The default as SQLite reports it (``PRAGMA table_info``: without its parentheses)."""
    return default_sql[1:-1] if default_sql.startswith("(") else default_sql


@pytest.mark.parametrize("default", DEFAULTS)
@pytest.mark.parametrize("change", CHANGES)
def test_a_default_keeps_its_meaning_or_is_dropped_with_a_warning(
    migrated: dict, database: str, change: str, default: str
) -> None:
    plan = CHANGES[change]
    default_sql, clock = DEFAULTS[default]
    [table] = [t for t in migrated["tables"] if t["table"] == change]
    assert table["loaded_rows"] == table["source_rows"] == len(plan.values)
    assert fetch(database, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(change))) == [
        (len(plan.values),)
    ]
    [column] = [c for c in table["columns"] if c["name"] == default]
    pg_type = fetch(
        database,
        "SELECT data_type FROM information_schema.columns WHERE table_name = %s "
        "AND column_name = %s",
        (change, default),
    )
    assert pg_type == [(plan.target,)]

    expression, stored = postgres_default(database, change, default)
    sqlite_value = sqlite_default(plan.declared, default_sql)
    noted = [w for w in table["warnings"] if w.startswith(f"column {default}: default ")]
    if sqlite_value is None:  # DEFAULT NULL: nothing to keep, nothing to say
        assert (expression, stored, noted) == (None, None, [])
        return
    if default in plan.dropped:
        assert expression is None and stored is None
        assert noted == [f"column {default}: {column['default']}"]
        assert column["default"].startswith(f"default {as_written(default_sql)} dropped: ")
        return
    assert expression is not None, noted
    if clock:
        assert the_same_moment(stored, sqlite_value), (stored, sqlite_value)
    else:
        assert stored == as_loaded(sqlite_value, stored), (stored, sqlite_value)
        assert type(stored) is type(as_loaded(sqlite_value, stored))
    if plan.changed:  # the plan changed the type: the kept default is named too
        assert noted == [f"column {default}: {column['default']}"]
        assert column["default"].startswith(f"default {as_written(default_sql)} translated to ")
    else:
        assert noted == []
        assert column["default"].startswith(f"default {as_written(default_sql)} as ")


def test_a_default_postgresql_refuses_is_dropped_with_a_warning_and_the_table_loads(
    pg_dsn: str,
) -> None:
    """A default the plan got wrong (none is known: this one is put in by hand) costs only
    itself: the other defaults are set."""
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER DEFAULT 1, m INTEGER DEFAULT 2)"
    )
    plan = plan_table(introspect(conn).table("t"), {"n": {"integer": 1}, "m": {"integer": 1}}, 1)
    conn.close()
    wrong = replace(plan.column("n"), default=SqlDefault("'x'::text"))
    plan = replace(plan, columns=tuple(wrong if c.source == "n" else c for c in plan.columns))
    with psycopg.connect(pg_dsn) as pg:
        pg.execute(ddl.create_table(plan, "public"))
        pg.execute("INSERT INTO t (n, m) VALUES (5, 6)")
        warnings = constraints.set_defaults(pg, plan, "public")
        pg.commit()
    [warning] = warnings
    assert warning.startswith("column n: default 1 dropped: PostgreSQL refused it for bigint (")
    assert "default expression is of type text" in warning
    assert fetch(pg_dsn, "SELECT column_name, column_default FROM information_schema.columns "
                 "WHERE table_name = 't' ORDER BY column_name") == [
        ("id", None), ("m", "2"), ("n", None)
    ]  # fmt: skip
    assert fetch(pg_dsn, "SELECT n, m FROM t") == [(5, 6)]


def test_the_issue_table_migrates_through_the_command(tmp_path: Path, pg_dsn: str) -> None:
    """The issue's table, through ``consoleai-etl migrate FILE DSN``: a DATETIME column of
    integers and text whose default reads the local clock, beside one of integers only
    whose default is CURRENT_TIMESTAMP. Both load; neither default survives its widening."""
    path = tmp_path / "zoo.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE Sessions (
                id INTEGER PRIMARY KEY,
                EndTime DATETIME DEFAULT (DATETIME('now','localtime')),
                StartTime DATETIME DEFAULT CURRENT_TIMESTAMP,
                Day DATETIME DEFAULT current_date
            );
            INSERT INTO Sessions VALUES (1, 1700000000, 99999999999999, 'someday'),
                                        (2, 'later', -5, 3);
            """
        )
    conn.close()
    done = consoleai_etl(tmp_path, "migrate", str(path), pg_dsn)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "reports" / "latest.json").read_text())
    [table] = report["tables"]
    assert table["loaded_rows"] == 2 and report["promoted"]
    defaults = dict(
        fetch(
            pg_dsn,
            "SELECT column_name, data_type || ' ' || coalesce(column_default, '-') "
            "FROM information_schema.columns WHERE table_name = 'Sessions'",
        )
    )
    assert defaults["EndTime"] == "text -"
    assert defaults["StartTime"] == "bigint -"
    assert defaults["Day"].startswith("text to_char(")  # SQLite's own 'YYYY-MM-DD' text
    plan = {c["name"]: c["default"] for c in table["columns"]}
    assert plan["EndTime"] == (
        "default DATETIME('now','localtime') dropped: it reads the clock in the local time "
        "zone of the machine that writes the row, which PostgreSQL does not know"
    )
    assert plan["StartTime"].startswith("default CURRENT_TIMESTAMP dropped: no PostgreSQL ")
    assert plan["Day"].startswith("default current_date translated to to_char(")
    warnings = "\n".join(table["warnings"])
    assert all(f"column {c}: {plan[c]}" in warnings for c in ("EndTime", "StartTime", "Day"))
    html = next((tmp_path / "reports").glob("migration-report-*.html")).read_text()
    assert "which PostgreSQL does not know" in html


def test_merge_mode_keeps_the_application_defaults_and_reports_none_of_the_source(
    tmp_path: Path, pg_dsn: str
) -> None:
    """In merge mode the rows go into the application's table, whose defaults stay its own:
    the source's are neither set on the staged table nor named in the report."""
    path = tmp_path / "legacy.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, seen DATETIME DEFAULT CURRENT_TIMESTAMP,"
            " tries INTEGER DEFAULT (abs(random())), note TEXT DEFAULT 'x');"
            "INSERT INTO events VALUES (1, '2020-01-01 00:00:00', 3, 'a');"
        )
    conn.close()
    with psycopg.connect(pg_dsn) as pg:
        pg.execute(
            "CREATE TABLE events (id bigint PRIMARY KEY, seen timestamptz DEFAULT now(), "
            "tries integer DEFAULT 0, note text)"
        )
    result, report = run_job(path, pg_dsn, tmp_path / "r", mode="merge")
    assert result.success, report["reasons"]
    [table] = report["tables"]
    assert [w for w in table["warnings"] if "default" in w] == []
    assert all(c.get("default") is None for c in table["columns"])
    assert fetch(
        pg_dsn,
        "SELECT column_name, column_default FROM information_schema.columns "
        "WHERE table_name = 'events' ORDER BY column_name",
    ) == [("id", None), ("note", None), ("seen", "now()"), ("tries", "0")]
    assert fetch(pg_dsn, "SELECT id, tries, note FROM events") == [(1, 3, "a")]
