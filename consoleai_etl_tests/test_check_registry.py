"""One registry of checks, and what their severities do.

The registry (``core/verify/registry.py``) is the only list: the pipeline runs it, the
assets declare it, the report lists it. An ERROR failure (loss, divergence) fails the run;
a WARN failure (a declaration the stored values overruled) is reported and never blocks."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from dagster import AssetCheckSeverity, ExecuteInProcessResult

from consoleai_etl.core.run.report import (
    ERROR,
    FAILURE,
    SUCCESS,
    WARN,
    CheckReport,
    MigrationReport,
    TableReport,
    decide,
)
from consoleai_etl.core.source.catalog import introspect
from consoleai_etl.core.target.naming import TargetName
from consoleai_etl.core.verify.registry import CHECKS, applicable
from consoleai_etl.definitions import build_definitions
from consoleai_etl.defs.checks import asset_keys, key_prefix
from consoleai_etl_tests.helpers import checks_by_table, execute, fetch, named, run_job
from consoleai_etl_tests.test_cli import dagster_cli, latest_report

PARENT_CHILD = """
CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id), note TEXT);
CREATE TABLE loose (a, b);
INSERT INTO parent VALUES (1, 'one'), (2, 'two');
INSERT INTO child VALUES (10, 1, 'x'), (11, 2, 'y'), (12, NULL, 'z');
INSERT INTO loose VALUES (1, 'a'), (2, 'b');
"""

# 'abcd' in a VARCHAR(3): SQLite keeps it, so the column is widened to text.
OVERLONG = """
CREATE TABLE codes (id INTEGER PRIMARY KEY, code VARCHAR(3) NOT NULL, label TEXT);
INSERT INTO codes VALUES (1, 'abc', 'fits'), (2, 'abcd', 'one character too long');
"""


def source(tmp_path: Path, script: str) -> Path:
    path = tmp_path / "src.sqlite"
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(script)
    return path


def evaluations(result: ExecuteInProcessResult) -> dict[tuple[str, str], object]:
    """The run's asset check evaluations by (asset, check)."""
    return {(named(e.asset_key), e.check_name): e for e in result.get_asset_check_evaluations()}


def test_check_names_are_an_interface() -> None:
    assert [c.name for c in CHECKS] == [
        "row_count", "checksum", "not_null", "primary_key", "foreign_keys", "declared_types",
    ]  # fmt: skip
    assert {c.name: c.severity for c in CHECKS if c.severity == WARN} == {"declared_types": WARN}


def test_the_pipeline_the_asset_specs_and_the_report_use_the_registry(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = source(tmp_path, PARENT_CHILD)
    with closing(sqlite3.connect(db)) as conn:
        catalog = introspect(conn)
    target = TargetName("legacy", "public")
    defs = build_definitions(db, target=target)
    keys = asset_keys(catalog.tables, key_prefix(target))

    result, report = run_job(db, pg_dsn, tmp_path / "reports")
    assert result.success and report["status"] == SUCCESS, report["reasons"]
    evaluated = evaluations(result)
    ran = {t["table"]: [c["name"] for c in t["checks"]] for t in report["tables"]}

    for table in catalog.tables:
        registry = applicable(table)
        names = [c.name for c in registry]
        specs = [
            spec
            for spec in defs.resolve_assets_def(keys[table.name]).check_specs
            if spec.asset_key == keys[table.name]
        ]
        assert [s.name for s in specs] == names
        assert [s.description for s in specs] == [c.proves for c in registry]
        assert [s.metadata["severity"] for s in specs] == [c.severity.upper() for c in registry]
        assert ran[table.name] == names  # the pipeline ran these, in this order
        assert sorted(name for (asset, name) in evaluated if asset == table.name) == sorted(names)
    assert ran["child"][-2:] == ["foreign_keys", "declared_types"]
    assert "primary_key" not in ran["loose"] and "foreign_keys" not in ran["parent"]

    verified, again = run_job(db, pg_dsn, tmp_path / "reports", job="consistency_check_job")
    assert verified.success and again["status"] == SUCCESS
    assert {t["table"]: [c["name"] for c in t["checks"]] for t in again["tables"]} == ran


def test_a_changed_value_fails_the_checksum_with_error_severity(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = source(tmp_path, PARENT_CHILD)
    migrated, _ = run_job(db, pg_dsn, tmp_path / "reports")
    assert migrated.success
    execute(pg_dsn, "UPDATE child SET note = 'edited' WHERE id = 11")

    result, report = run_job(db, pg_dsn, tmp_path / "reports", job="consistency_check_job")

    checksum = evaluations(result)[("child", "checksum")]
    assert not checksum.passed and checksum.severity == AssetCheckSeverity.ERROR
    assert not result.success and report["status"] == FAILURE
    assert checks_by_table(report)["child"]["checksum"]["severity"] == ERROR
    assert report["reasons"][0].startswith("child: check checksum failed: content differs")


def _assert_widening_warned(result: ExecuteInProcessResult, report: dict) -> None:
    """The declared_types check of ``codes`` failed as a WARN naming the column; every
    other check passed as an ERROR check; the run succeeded all the same."""
    by_check = evaluations(result)
    warned = by_check.pop(("codes", "declared_types"))
    assert not warned.passed and warned.severity == AssetCheckSeverity.WARN
    [widened] = warned.metadata["widened_columns"].value
    assert widened["column"] == "code"
    assert widened["declared_type"] == "VARCHAR(3)" and widened["chosen_type"] == "text"
    assert "'abcd' cannot become varchar(3)" in widened["why"]
    assert all(e.passed and e.severity == AssetCheckSeverity.ERROR for e in by_check.values())
    assert result.success and report["status"] == SUCCESS
    assert report["totals"]["failed_checks"] == 0 and report["totals"]["warned_checks"] == 1
    assert report["reasons"] == [
        "codes: check declared_types warns: 1 of 3 columns widened beyond their declared "
        "type: code VARCHAR(3) -> text"
    ]


def test_a_widened_declaration_warns_without_failing_or_blocking_the_run(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = source(tmp_path, OVERLONG)

    result, report = run_job(db, pg_dsn, tmp_path / "reports")

    _assert_widening_warned(result, report)
    assert report["promoted"] is True
    assert fetch(pg_dsn, "SELECT code FROM public.codes ORDER BY id") == [("abc",), ("abcd",)]
    assert fetch(pg_dsn, "SELECT status, promoted FROM consoleai_etl.runs") == [(SUCCESS, True)]
    markdown = (tmp_path / "reports" / "latest.md").read_text()
    assert "declared_types ⚠️" in markdown and "## Failures" not in markdown
    assert "- **codes** declared_types: 1 of 3 columns widened" in markdown

    # Verify-only re-plans from the source and reaches the same answer.
    verified, again = run_job(db, pg_dsn, tmp_path / "reports", job="consistency_check_job")
    _assert_widening_warned(verified, again)

    # Through the real CLI, the process exits 0.
    cli = dagster_cli(tmp_path, db, pg_dsn, "-j", "legacy_migration_job")
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert latest_report(tmp_path)["status"] == SUCCESS


def _table(*checks: CheckReport) -> TableReport:
    return TableReport("t", "t", source_rows=1, loaded_rows=1, checks=list(checks))


def _report(*tables: TableReport, allow_divergence: bool = False) -> MigrationReport:
    return MigrationReport(
        "run", "job", "start", "end", False, allow_divergence, "replace", "src", "dsn",
        "public", list(tables),
    )  # fmt: skip


WARNED = CheckReport("declared_types", False, "1 of 2 columns widened", severity=WARN)


def test_the_verdict_counts_error_failures_and_lists_warnings() -> None:
    only_warned = _report(_table(CheckReport("row_count", True, "ok"), WARNED))
    decide(only_warned)
    assert only_warned.status == SUCCESS
    assert only_warned.reasons == ["t: check declared_types warns: 1 of 2 columns widened"]

    both = _report(_table(CheckReport("checksum", False, "differs"), WARNED))
    decide(both)
    assert both.status == FAILURE
    assert both.reasons == [
        "t: check checksum failed: differs",
        "t: check declared_types warns: 1 of 2 columns widened",
    ]

    allowed = _report(_table(WARNED), allow_divergence=True)
    decide(allowed)
    assert allowed.status == SUCCESS  # not success_with_divergence: nothing diverged


def test_the_severity_survives_the_report_round_trip() -> None:
    table = TableReport.from_dict({"table": "t", "target_table": "t", "checks": [vars(WARNED)]})
    assert table.checks == [WARNED]
    old = TableReport.from_dict(
        {"table": "t", "target_table": "t", "checks": [{"name": "x", "passed": False,
                                                        "description": "d", "metadata": {}}]}
    )  # fmt: skip
    assert old.checks[0].severity == ERROR  # a report written before severities
