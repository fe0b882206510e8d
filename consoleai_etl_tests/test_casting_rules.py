"""Casting rules from run config and from a YAML file, through real runs."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from datetime import datetime
from pathlib import Path

import pytest
from dagster import DagsterInvalidConfigError
from psycopg import sql

from consoleai_etl.core.errors import MigrationError
from consoleai_etl.core.plan.rules import CastingRule, parse_rules, rule_for
from consoleai_etl.definitions import build_definitions
from consoleai_etl.demo.sample import generate
from consoleai_etl_tests.helpers import checks_by_table, fetch, run_job
from consoleai_etl_tests.test_dirty_data import build, migrate, quarantine, table_report

MS = {"column": "ev.at", "date_encoding": "unix_ms"}  # row 1 holds unix milliseconds
EVENTS = (
    "CREATE TABLE ev (id INTEGER PRIMARY KEY, at DATETIME, n INTEGER, price NUMERIC(6,2));"
    "INSERT INTO ev VALUES (1, 1704164645123, 1, 1.5), (2, '2024-01-02 03:04:05', 'n/a', 2.25),"
    " (3, NULL, 3, 1.005);"
)


def test_target_type_and_date_encoding_per_column(tmp_path: Path, pg_dsn: str) -> None:
    rules = [
        {"column": "ev.at", "date_encoding": "unix_ms"},
        {"column": "ev.n", "target_type": "text"},
        {"column": "ev.price", "target_type": "numeric(8,3)"},
    ]
    _result, report = migrate(tmp_path, pg_dsn, EVENTS, casting_rules=rules)

    assert report["status"] == "success"
    assert fetch(pg_dsn, "SELECT id, at, n, price::text FROM ev ORDER BY id") == [
        (1, datetime(2024, 1, 2, 3, 4, 5, 123000), "1", "1.500"),
        (2, datetime(2024, 1, 2, 3, 4, 5), "n/a", "2.250"),
        (3, None, "3", "1.005"),
    ]
    plan = {c["name"]: c for c in table_report(report, "ev")["columns"]}
    assert plan["n"]["reason"] == "rule ev.n: text" and plan["n"]["pg_type"] == "text"


def test_declared_type_rule_and_column_rule_merge(tmp_path: Path, pg_dsn: str) -> None:
    rules = [
        {"declared_type": "datetime", "date_encoding": "unix_ms", "on_error": "null"},
        {"column": "ev.at", "on_error": "quarantine"},
    ]
    merged = rule_for(parse_rules(rules), "ev", "at", "DATETIME")
    assert (merged.date_encoding, merged.on_error) == ("unix_ms", "quarantine")
    assert merged.source == "rule ev.at + type datetime"
    assert rule_for(parse_rules(rules), "ev", "n", "INTEGER").source == "default"


def test_on_error_null_sets_the_value_to_null_with_a_warning(tmp_path: Path, pg_dsn: str) -> None:
    rules = [
        MS,
        {"column": "ev.n", "target_type": "bigint", "on_error": "null"},
        {"column": "ev.price", "target_type": "numeric(6,2)", "on_error": "null"},
    ]
    _result, report = migrate(tmp_path, pg_dsn, EVENTS, casting_rules=rules)

    assert report["status"] == "success"
    assert fetch(pg_dsn, "SELECT id, n, price::text FROM ev ORDER BY id") == [
        (1, 1, "1.50"), (2, None, "2.25"), (3, 3, None),
    ]  # fmt: skip
    warnings = table_report(report, "ev")["warnings"]
    assert "column n: 1 unconvertible values set to NULL (on_error: null)" in warnings
    assert "column price: 1 unconvertible values set to NULL (on_error: null)" in warnings


def test_on_error_widen_is_the_default_and_can_be_written(tmp_path: Path, pg_dsn: str) -> None:
    rules = [MS, {"column": "ev.n", "on_error": "widen"}]
    _result, report = migrate(tmp_path, pg_dsn, EVENTS, casting_rules=rules)
    assert fetch(pg_dsn, "SELECT n FROM ev ORDER BY id") == [("1",), ("n/a",), ("3",)]
    plan = {c["name"]: c for c in table_report(report, "ev")["columns"]}
    assert plan["n"]["pg_type"] == "text"
    assert plan["n"]["reason"] == (
        "declared INTEGER; widened to text (e.g. 'n/a' cannot become bigint)"
    )


def test_on_error_fail_fails_the_table_naming_column_and_key(tmp_path: Path, pg_dsn: str) -> None:
    result, report = migrate(
        tmp_path, pg_dsn, EVENTS, casting_rules=[{"column": "ev.n", "on_error": "fail"}],
        allow_divergence=False,
    )  # fmt: skip
    assert not result.success and report["status"] == "failure"
    error = table_report(report, "ev")["error"]
    assert error == "ev.n at {'id': 2}: 'n/a' cannot become bigint (on_error: fail)"
    assert fetch(pg_dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_by_default_stored_values_widen_a_declared_type(tmp_path: Path, pg_dsn: str) -> None:
    """No rule: every value is loaded unchanged. 1704164645123 is the one number of a
    DATETIME column and a plausible unix_ms date; 'n/a' widens INTEGER to text; 1.005 has
    more decimals than NUMERIC(6,2) keeps, so the column becomes numeric."""
    result, report = migrate(tmp_path, pg_dsn, EVENTS)
    assert quarantine(pg_dsn, result.run_id) == []
    assert fetch(pg_dsn, "SELECT id, at, n, price::text FROM ev ORDER BY id") == [
        (1, datetime(2024, 1, 2, 3, 4, 5, 123000), "1", "1.5"),
        (2, datetime(2024, 1, 2, 3, 4, 5), "n/a", "2.25"),
        (3, None, "3", "1.005"),
    ]
    plan = {c["name"]: c["pg_type"] for c in table_report(report, "ev")["columns"]}
    assert plan == {"id": "bigint", "at": "timestamp", "n": "text", "price": "numeric"}


def test_a_type_the_user_chose_quarantines_what_it_refuses(tmp_path: Path, pg_dsn: str) -> None:
    rules = [
        {"column": "ev.at", "date_encoding": "unix_seconds"},
        {"column": "ev.n", "target_type": "bigint"},
        {"declared_type": "NUMERIC", "target_type": "numeric(6,2)"},
    ]
    result, _report = migrate(tmp_path, pg_dsn, EVENTS, casting_rules=rules)
    assert [(k, c) for _, k, c, _ in quarantine(pg_dsn, result.run_id)] == [
        ({"id": 1}, "at"),  # 1704164645123 seconds is past year 9999
        ({"id": 2}, "n"),
        ({"id": 3}, "price"),
    ]


def test_rules_from_a_yaml_file_named_by_the_environment(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text("casting_rules:\n  - column: ev.at\n    date_encoding: unix_ms\n")
    monkeypatch.setenv("CONSOLEAI_CASTING_RULES", str(rules_file))
    _result, _report = migrate(tmp_path, pg_dsn, EVENTS)
    assert fetch(pg_dsn, "SELECT at FROM ev WHERE id = 1") == [
        (datetime(2024, 1, 2, 3, 4, 5, 123000),)
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"column": "ev.at", "colour": "red"}], "casting rule #1: unknown key(s) colour"),
        ([{"column": "at", "on_error": "null"}], "`column` must be written table.column"),
        ([{"column": "ev.at", "on_error": "ignore"}], "on_error 'ignore' is not one of"),
        ([{"column": "ev.at", "target_type": "money"}], "unsupported target_type 'money'"),
        ([{"on_error": "null"}], "give exactly one of `column` or `declared_type`"),
    ],
)
def test_bad_rules_give_one_line_errors(raw: list[dict], message: str) -> None:
    with pytest.raises(MigrationError, match=re.escape(message)) as caught:
        parse_rules(raw)
    assert "\n" not in str(caught.value)


def test_a_bad_rule_stops_the_run_before_anything_is_written(tmp_path: Path, pg_dsn: str) -> None:
    """Refused by Dagster's config schema at launch (more cases in test_typed_config.py)."""
    db = build(tmp_path / "src.sqlite", EVENTS)
    settings = {"sqlite_path": str(db), "pg_dsn": pg_dsn, "report_dir": str(tmp_path)}
    settings["casting_rules"] = [{"column": "ev.n", "on_error": "ignore"}]
    with pytest.raises(DagsterInvalidConfigError, match="on_error not in enum type OnError"):
        build_definitions(db).resolve_job_def("legacy_migration_job").execute_in_process(
            run_config={"resources": {"settings": {"config": settings}}}, raise_on_error=False
        )
    assert not list(tmp_path.glob("*.json"))
    assert fetch(pg_dsn, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'consoleai%'") == [
        (0,)
    ]


def test_rule_dataclass_rejects_both_matchers() -> None:
    with pytest.raises(MigrationError):
        CastingRule(column="a.b", declared_type="TEXT")


# Anomalies whose value arrives unchanged: the type of its column in the target, and whether
# that type is a widening of the declared one (a warning names the column).
ARRIVES = {
    "text_in_integer": ("text", True),
    "garbage_date": ("text", True),
    "invalid_json": ("text", True),
    "varchar_overflow": ("text", True),
    "sub_microsecond": ("text", True),
    "blob_in_point": ("bytea", True),
    "blob_among_text": ("bytea", False),  # untyped: the values decide, no declaration to widen
    "char_zero": ("text", False),
    "core_data_timestamp": ("double precision", True),
    "yyyymmdd_integer": ("bigint", True),
    "duplicate_email_case": ("text", True),  # users.email, widened by varchar_overflow
}
DECODED = {  # numbers of a date column that one encoding explains
    "unix_epoch_date": datetime(2020, 1, 1),
    "julian_day_date": datetime(2020, 5, 31),
}
KEYS = {"users": "id", "workflow_runs": "id", "audit_events": "id", "workflows": "id",
        "inventory_items": "sku", "ec2_instances": "instance_id",
        "device_imports": "id"}  # fmt: skip


def _source_value(db: Path, anomaly: dict) -> object:
    with closing(sqlite3.connect(db)) as conn:
        table, column, key = anomaly["table"], anomaly["column"], KEYS[anomaly["table"]]
        return conn.execute(
            f"SELECT {column} FROM {table} WHERE {key} = ?", (anomaly["key"],)
        ).fetchone()[0]


def test_every_planted_anomaly_is_accounted_for(tmp_path: Path, pg_dsn: str) -> None:
    """Each planted value is in the target unchanged (its column widened where the
    declaration could not hold it, with a warning), read as a date (numbers one encoding
    explains), or in the quarantine with a reason (what no column type can hold, key and
    foreign key violations)."""
    db = tmp_path / "anomalies.sqlite"
    generate(db, scale=0.02, anomalies=True)
    planted = json.loads(db.with_name(db.name + ".anomalies.json").read_text())

    result, report = run_job(db, pg_dsn, tmp_path / "reports", allow_divergence=True)

    assert report["status"] == "success_with_quarantine" and report["promoted"]
    tables = {t["table"]: t for t in report["tables"]}
    for table, checks in checks_by_table(report).items():
        declared = checks.pop("declared_types")  # a WARN check: it lists the widened columns
        assert all(c["passed"] for c in checks.values()), table
        widened = [c["name"] for c in tables[table]["columns"] if c["widened"]]
        assert [w["column"] for w in declared["metadata"]["widened_columns"]] == widened
        assert declared["passed"] == (not widened) and declared["severity"] == "warn"
    quarantined = {
        (table, json.dumps(key, sort_keys=True), column)
        for table, key, column, _ in quarantine(pg_dsn, result.run_id)
    }
    for anomaly in planted:
        table, key, column, kind = (anomaly[k] for k in ("table", "key", "column", "kind"))
        select = sql.SQL("SELECT {} FROM {} WHERE {} = %s").format(
            sql.Identifier(column), sql.Identifier(table), sql.Identifier(KEYS[table])
        )
        if kind in ARRIVES:
            pg_type, widened = ARRIVES[kind]
            stored = fetch(pg_dsn, select, (key,))[0][0]
            stored = bytes(stored) if pg_type == "bytea" else stored
            assert stored == _source_value(db, anomaly), anomaly
            plan = {c["name"]: c for c in tables[table]["columns"]}
            assert plan[column]["pg_type"] == pg_type, anomaly
            warned = [w for w in tables[table]["warnings"] if w.startswith(f"column {column}:")]
            assert any("widened to" in w for w in warned) == widened, (anomaly, warned)
        elif kind in DECODED:
            assert fetch(pg_dsn, select, (key,)) == [(DECODED[kind],)], anomaly
        else:
            source_key = json.dumps({KEYS[table]: key}, sort_keys=True)
            assert (table, source_key, column) in quarantined, anomaly
    markdown = (tmp_path / "reports" / "latest.md").read_text()
    assert "SUCCESS_WITH_QUARANTINE" in markdown and "## Quarantined rows" in markdown
