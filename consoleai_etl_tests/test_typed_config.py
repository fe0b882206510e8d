"""Typed run options: Dagster refuses a bad choice at launch, environment values and rule
files are validated by the same schema, and a run must read the file its graph was built
from (or one with the same tables)."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInvalidConfigError, ExecuteInProcessResult

from consoleai_etl.core.errors import MigrationError, SourceError
from consoleai_etl.core.plan.merge_plan import ON_CONFLICT
from consoleai_etl.core.plan.rules import DATE_ENCODINGS, ON_ERROR, ORPHAN_POLICIES, TEXT_REPAIRS
from consoleai_etl.core.run.pipeline import MODES
from consoleai_etl.core.run.preflight import check_graph
from consoleai_etl.core.source.catalog import introspect
from consoleai_etl.definitions import build_definitions
from consoleai_etl.defs.settings import MigrationSettings
from consoleai_etl_tests.helpers import checks_by_table, fetch, preflight_error, run_job, run_raw
from consoleai_etl_tests.test_cli import dagster_cli
from consoleai_etl_tests.test_dirty_data import build
from consoleai_etl_tests.test_safety import assert_nothing_written

NOTES = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, at DATETIME);"
PARENT_CHILD = (
    "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
    "CREATE TABLE child (code TEXT PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));"
    "INSERT INTO parent VALUES (1); INSERT INTO child VALUES ('a', 1), ('c', 99);"
)


def notes_db(path: Path, body: str = "hello") -> Path:
    return build(path, NOTES, {"notes": [(1, body, "2024-01-02 03:04:05")]})


def settings_schema(job_name: str = "legacy_migration_job") -> dict:
    job = build_definitions(Path("/nonexistent.sqlite")).resolve_job_def(job_name)
    resources = job.run_config_schema.config_type.fields["resources"].config_type
    return resources.fields["settings"].config_type.fields["config"].config_type.fields


def enum_values(config_type) -> tuple[str, ...]:
    while not hasattr(config_type, "enum_values"):  # Noneable / Array around the Enum
        config_type = config_type.inner_type
    return tuple(value.config_value for value in config_type.enum_values)


def test_the_config_schema_lists_the_cores_choices() -> None:
    """One list per choice: the Dagster schema is built from the core's Literal types."""
    fields = settings_schema()
    rule = fields["casting_rules"].config_type.inner_type.inner_type.fields
    assert enum_values(fields["mode"].config_type) == MODES
    assert enum_values(fields["orphans"].config_type) == ORPHAN_POLICIES
    assert enum_values(fields["on_conflict"].config_type) == ON_CONFLICT
    assert enum_values(rule["date_encoding"].config_type) == DATE_ENCODINGS
    assert enum_values(rule["on_error"].config_type) == ON_ERROR
    assert enum_values(rule["text_repair"].config_type) == TEXT_REPAIRS
    assert "asset_graph" not in fields  # set by the code location, not by a run


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "upsert"}, "config:mode not in enum type Mode got upsert"),
        ({"orphans": "drop"}, "config:orphans not in enum type OrphanPolicy got drop"),
        ({"on_conflict": "update"}, "config:on_conflict not in enum type OnConflict got update"),
        (
            {"casting_rules": [{"column": "notes.at", "date_encoding": "unix_days"}]},
            "casting_rules[0]:date_encoding not in enum type DateEncoding got unix_days",
        ),
        (
            {"casting_rules": [{"column": "notes.at", "on_error": "ignore"}]},
            "casting_rules[0]:on_error not in enum type OnError got ignore",
        ),
        (
            {"casting_rules": [{"column": "notes.body", "text_repair": ["latin1", "utf16"]}]},
            "casting_rules[0]:text_repair[1] not in enum type TextRepair got utf16",
        ),
        (
            {"casting_rules": [{"column": "notes.at", "colour": "red"}]},
            'unexpected config entry "colour" at path root:resources:settings:config:'
            "casting_rules[0]",
        ),
    ],
)
def test_a_bad_choice_in_run_config_is_refused_at_launch(
    tmp_path: Path, pg_dsn: str, options: dict, message: str
) -> None:
    """Dagster validates run config against the schema before it creates the run, so no
    step (not even the preflight) runs."""
    db = notes_db(tmp_path / "src.sqlite")
    with pytest.raises(DagsterInvalidConfigError, match=re.escape(message)):
        run_raw(db, pg_dsn, tmp_path / "reports", **options)
    assert_nothing_written(pg_dsn, tmp_path / "reports")


def _started_steps(result: ExecuteInProcessResult) -> list[str]:
    return [e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_START]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"column": "notes.at", "target_type": "money"}, "unsupported target_type 'money'"),
        # A PostgreSQL type's name, not a SQLite declaration's affinity ("INT" in it).
        ({"column": "notes.at", "target_type": "integr"}, "unsupported target_type 'integr'"),
        ({"column": "at", "on_error": "null"}, "`column` must be written table.column"),
        (
            {"column": "notes.at", "declared_type": "TEXT"},
            "give exactly one of `column` or `declared_type`",
        ),
    ],
)
def test_a_bad_target_type_or_matcher_fails_before_any_step(
    tmp_path: Path, pg_dsn: str, rule: dict, message: str
) -> None:
    """No enum can list numeric(p,s) or varchar(n): the model's validator (the core's own
    check) refuses the rule when Dagster builds the resource, before the first step."""
    db = notes_db(tmp_path / "src.sqlite")
    result = run_raw(db, pg_dsn, tmp_path / "reports", casting_rules=[rule])
    assert not result.success and _started_steps(result) == []
    [failure] = [
        e for e in result.all_events if e.event_type == DagsterEventType.RESOURCE_INIT_FAILURE
    ]
    assert message in failure.event_specific_data.error.to_string()
    assert_nothing_written(pg_dsn, tmp_path / "reports")


def test_cli_refuses_a_bad_run_config_file_before_the_run(tmp_path: Path, pg_dsn: str) -> None:
    db = notes_db(tmp_path / "src.sqlite")
    bad = tmp_path / "bad.yaml"
    bad.write_text("resources:\n  settings:\n    config:\n      orphans: ignore\n")

    done = dagster_cli(tmp_path, db, pg_dsn, "-j", "legacy_migration_job", "-c", str(bad))

    assert done.returncode != 0
    assert "config:orphans not in enum type OrphanPolicy got ignore" in done.stderr
    assert "STEP_START" not in done.stderr and "RUN_START" not in done.stderr
    assert_nothing_written(pg_dsn, tmp_path / "reports")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "CONSOLEAI_MODE",
            "upsert",
            "CONSOLEAI_MODE: Input should be 'replace' or 'merge' (got 'upsert')",
        ),
        (
            "CONSOLEAI_ORPHANS",
            "drop",
            "CONSOLEAI_ORPHANS: Input should be 'quarantine', 'keep' or 'fail' (got 'drop')",
        ),
        ("CONSOLEAI_DRY_RUN", "maybe", "CONSOLEAI_DRY_RUN: Input should be a valid boolean"),
    ],
)
def test_a_bad_environment_value_stops_the_preflight_with_one_line(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, variable, value, message
) -> None:
    monkeypatch.setenv(variable, value)
    db = notes_db(tmp_path / "src.sqlite")
    error = preflight_error(run_raw(db, pg_dsn, tmp_path / "reports"))
    assert error.startswith(message) and "\n" not in error
    assert error.endswith(": correct or unset it")
    assert_nothing_written(pg_dsn, tmp_path / "reports")


def test_environment_values_are_typed_and_run_config_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONSOLEAI_DRY_RUN", "yes")
    monkeypatch.setenv("CONSOLEAI_ORPHANS", "keep")
    monkeypatch.setenv("CONSOLEAI_TARGET_SCHEMA", "legacy")
    monkeypatch.setenv("CONSOLEAI_ALLOW_DIVERGENCE", "")  # empty = unset
    monkeypatch.delenv("CONSOLEAI_MODE", raising=False)

    config = MigrationSettings(pg_dsn="postgresql://x@h/db", orphans="fail").to_config()

    assert (config.dry_run, config.target_schema, config.orphans) == (True, "legacy", "fail")
    assert (config.mode, config.allow_divergence, config.report_dir) == (
        "replace",
        False,
        "reports",
    )
    assert type(config.orphans) is str and type(config.mode) is str  # plain JSON in reports


def test_an_option_set_only_in_the_environment_applies(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSOLEAI_ORPHANS", "keep")
    db = build(tmp_path / "orphans.sqlite", PARENT_CHILD)
    result, report = run_job(db, pg_dsn, tmp_path / "reports")
    assert result.success and report["promoted"]
    assert "1 orphans kept" in checks_by_table(report)["child"]["foreign_keys"]["description"]


RULE_FILE_CASES = [
    ("- {column: notes.at, on_error: ignore}", "#2: on_error: Input should be 'quarantine'"),
    ("- {column: notes.at, target_type: money}", "#2: target_type: unsupported target_type"),
    ("- {column: notes.at, colour: red}", "#2: colour: unknown field (allowed: column, "),
    ("- {column: notes.at, text_repair: [utf16]}", "#2: text_repair[0]: Input should be"),
    ("- {on_error: null}", "#2: give exactly one of `column` or `declared_type`"),
    ("- notes.at", "#2: Input should be a valid dictionary"),
]


@pytest.mark.parametrize(("second_rule", "message"), RULE_FILE_CASES)
def test_a_bad_rules_file_names_the_file_the_rule_and_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, second_rule: str, message: str
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"- {{declared_type: DATETIME, date_encoding: unix_ms}}\n{second_rule}\n")
    monkeypatch.setenv("CONSOLEAI_CASTING_RULES", str(rules))
    with pytest.raises(MigrationError) as caught:
        MigrationSettings(pg_dsn="postgresql://x@h/db").to_config()
    assert str(caught.value).startswith(f"{rules}: casting rule {message}")
    assert "\n" not in str(caught.value)


def test_a_bad_rules_file_stops_the_run_before_anything_is_written(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("casting_rules:\n  - {column: notes.at, date_encoding: unix_days}\n")
    monkeypatch.setenv("CONSOLEAI_CASTING_RULES", str(rules))
    db = notes_db(tmp_path / "src.sqlite")
    error = preflight_error(run_raw(db, pg_dsn, tmp_path / "reports"))
    assert error.startswith(f"{rules}: casting rule #1: date_encoding: Input should be 'auto'")
    assert "(got 'unix_days')" in error
    assert_nothing_written(pg_dsn, tmp_path / "reports")


@pytest.mark.parametrize(
    ("job", "step"),
    [("legacy_migration_job", "legacy_tables"), ("consistency_check_job", "consistency_preflight")],
)
def test_a_run_against_a_file_with_other_tables_is_refused(
    tmp_path: Path, pg_dsn: str, job: str, step: str
) -> None:
    """The graph was loaded from one file; the run names another whose tables differ: a
    table the graph lacks would silently not migrate, so the run is refused."""
    loaded = notes_db(tmp_path / "loaded.sqlite")
    other = build(tmp_path / "other.sqlite", PARENT_CHILD)

    result = run_raw(other, pg_dsn, tmp_path / "reports", job, graph_from=loaded)
    error = preflight_error(result, step)

    assert error == (
        f"source {other} has other tables than the asset graph loaded from {loaded} "
        "(not in the graph: 'child', 'parent'; missing: 'notes'): set CONSOLEAI_SQLITE_PATH "
        f"to {other} and reload the code location, or run against the file the graph was "
        "loaded from"
    )
    assert_nothing_written(pg_dsn, tmp_path / "reports")


def test_a_file_with_the_same_tables_runs(tmp_path: Path, pg_dsn: str) -> None:
    """Agreement is on table names: a copy (here with other rows) migrates its own rows."""
    loaded = notes_db(tmp_path / "loaded.sqlite")
    copy = shutil.copy(loaded, tmp_path / "copy.sqlite")
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE notes SET body = 'from the copy'")

    result = run_raw(Path(copy), pg_dsn, tmp_path / "reports", graph_from=loaded)

    assert result.success
    assert fetch(pg_dsn, "SELECT body FROM notes") == [("from the copy",)]


def test_the_graph_check_lists_at_most_five_names_per_side(tmp_path: Path) -> None:
    db = build(tmp_path / "wide.sqlite", "".join(f"CREATE TABLE t{i} (x);" for i in range(8)))
    with sqlite3.connect(db) as conn:
        catalog = introspect(conn)
    with pytest.raises(SourceError) as caught:
        check_graph(db, catalog, ["t0", "gone"], "loaded.sqlite")
    assert "(not in the graph: 't1', 't2', 't3', 't4', 't5' and 2 more; missing: 'gone')" in str(
        caught.value
    )
    check_graph(db, catalog, [f"t{i}" for i in reversed(range(8))], "loaded.sqlite")  # agrees
