"""Casting rules from run config and from a YAML file, through real runs."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from consoleai_etl.core.errors import MigrationError
from consoleai_etl.core.rules import CastingRule, parse_rules, rule_for
from consoleai_etl.definitions import build_definitions
from consoleai_etl.sample import generate
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
    rules = [MS, {"column": "ev.n", "on_error": "null"}, {"column": "ev.price", "on_error": "null"}]
    _result, report = migrate(tmp_path, pg_dsn, EVENTS, casting_rules=rules)

    assert report["status"] == "success"
    assert fetch(pg_dsn, "SELECT id, n, price::text FROM ev ORDER BY id") == [
        (1, 1, "1.50"), (2, None, "2.25"), (3, 3, None),
    ]  # fmt: skip
    warnings = table_report(report, "ev")["warnings"]
    assert "column n: 1 unconvertible values set to NULL (on_error: null)" in warnings
    assert "column price: 1 unconvertible values set to NULL (on_error: null)" in warnings


def test_on_error_widen_turns_the_column_into_text(tmp_path: Path, pg_dsn: str) -> None:
    rules = [
        MS,
        {"column": "ev.n", "on_error": "widen"},
        {"column": "ev.price", "on_error": "null"},
    ]
    _result, report = migrate(tmp_path, pg_dsn, EVENTS, casting_rules=rules)
    assert fetch(pg_dsn, "SELECT n FROM ev ORDER BY id") == [("1",), ("n/a",), ("3",)]
    plan = {c["name"]: c for c in table_report(report, "ev")["columns"]}
    assert plan["n"]["pg_type"] == "text"
    assert "widened to text: 1 values could not become bigint" in plan["n"]["reason"]


def test_on_error_fail_fails_the_table_naming_column_and_key(tmp_path: Path, pg_dsn: str) -> None:
    result, report = migrate(
        tmp_path, pg_dsn, EVENTS, casting_rules=[{"column": "ev.n", "on_error": "fail"}],
        allow_divergence=False,
    )  # fmt: skip
    assert not result.success and report["status"] == "failure"
    error = table_report(report, "ev")["error"]
    assert error == "ev.n at {'id': 2}: 'n/a' cannot become bigint (on_error: fail)"
    assert fetch(pg_dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_default_policy_is_quarantine(tmp_path: Path, pg_dsn: str) -> None:
    result, _report = migrate(tmp_path, pg_dsn, EVENTS)
    assert [(k, c) for _, k, c, _ in quarantine(pg_dsn, result.run_id)] == [
        ({"id": 1}, "at"),  # 1704164645123 seconds is past year 9999: not a plain epoch
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
    db = build(tmp_path / "src.sqlite", EVENTS)
    settings = {"sqlite_path": str(db), "pg_dsn": pg_dsn, "report_dir": str(tmp_path)}
    settings["casting_rules"] = [{"column": "ev.n", "on_error": "ignore"}]
    result = (
        build_definitions(db)
        .resolve_job_def("legacy_migration_job")
        .execute_in_process(
            run_config={"resources": {"settings": {"config": settings}}}, raise_on_error=False
        )
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "preflight"
    description = failure.event_specific_data.user_failure_data.description
    assert description.startswith("casting rule ev.n: on_error 'ignore' is not one of")
    assert not list(tmp_path.glob("*.json"))
    assert fetch(pg_dsn, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'consoleai%'") == [
        (0,)
    ]


def test_rule_dataclass_rejects_both_matchers() -> None:
    with pytest.raises(MigrationError):
        CastingRule(column="a.b", declared_type="TEXT")


def test_every_planted_anomaly_is_accounted_for(tmp_path: Path, pg_dsn: str) -> None:
    db = tmp_path / "anomalies.sqlite"
    generate(db, scale=0.02, anomalies=True)
    planted = json.loads(db.with_name(db.name + ".anomalies.json").read_text())

    result, report = run_job(db, pg_dsn, tmp_path / "reports", allow_divergence=True)

    assert report["status"] == "success_with_quarantine" and report["promoted"]
    for table, checks in checks_by_table(report).items():
        assert all(c["passed"] for c in checks.values()), table
    quarantined = {
        (table, json.dumps(key, sort_keys=True), column)
        for table, key, column, _ in quarantine(pg_dsn, result.run_id)
    }
    converted = {
        "unix_epoch_date": ("SELECT created_at FROM users WHERE id = %s", datetime(2020, 1, 1)),
        "julian_day_date": ("SELECT created_at FROM users WHERE id = %s", datetime(2020, 5, 31)),
    }
    keys = {"users": "id", "workflow_runs": "id", "audit_events": "id", "workflows": "id"}
    keys |= {"inventory_items": "sku", "ec2_instances": "instance_id"}
    for anomaly in planted:
        table, key, kind = anomaly["table"], anomaly["key"], anomaly["kind"]
        if kind in converted:
            query, expected = converted[kind]
            assert fetch(pg_dsn, query, (key,)) == [(expected,)], anomaly
        elif kind == "duplicate_email_case":  # not an error: both rows arrive unchanged
            assert fetch(pg_dsn, "SELECT count(*) FROM users WHERE id = %s", (key,)) == [(1,)]
        else:
            source_key = json.dumps({keys[table]: key}, sort_keys=True)
            assert (table, source_key, anomaly["column"]) in quarantined, anomaly
    markdown = (tmp_path / "reports" / "latest.md").read_text()
    assert "SUCCESS_WITH_QUARANTINE" in markdown and "## Quarantined rows" in markdown
