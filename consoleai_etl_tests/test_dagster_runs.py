"""However a Dagster user runs it: a materialization means "this data is in the target";
dry runs and failed verdicts say why nothing was materialized; checks run alone re-verify;
the report asset reports what was recorded, even when re-executed from a failure."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest

from consoleai_etl.definitions import build_definitions
from consoleai_etl.defs.settings import target_of
from consoleai_etl_tests.helpers import fetch, named, preflight_error, run_job, run_raw
from consoleai_etl_tests.test_migration_job import make_parent_child

TABLES = {"parent", "child"}


def materialized(result: dg.ExecuteInProcessResult | dg.ExecuteJobResult) -> set[str]:
    return {named(m.asset_key) for m in result.get_asset_materialization_events()}


def observations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {
        named(e.asset_observation_data.asset_observation.asset_key): (
            e.asset_observation_data.asset_observation.metadata
        )
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION
    }


def test_a_clean_run_materializes_every_table_and_the_run_record(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = tmp_path / "clean.sqlite"
    make_parent_child(db, [("a", 1)])
    result, report = run_job(db, pg_dsn, tmp_path / "reports")
    assert result.success and report["promoted"]
    assert materialized(result) == TABLES | {"migration_run", "migration_report"}
    assert observations(result) == {}


def test_a_dry_run_materializes_no_table_and_says_why(tmp_path: Path, pg_dsn: str) -> None:
    db = tmp_path / "dry.sqlite"
    make_parent_child(db, [("a", 1)])
    result, report = run_job(db, pg_dsn, tmp_path / "reports", dry_run=True)
    assert result.success and report["dry_run"] and not report["promoted"]
    assert materialized(result) == {"migration_run", "migration_report"}
    observed = observations(result)
    assert set(observed) == TABLES
    assert observed["child"]["not_promoted"].value.startswith("dry run: the tables were loaded")
    assert observed["child"]["dagster/row_count"].value == 1
    assert {named(c.asset_key) for c in result.get_asset_check_evaluations()} == TABLES


def test_a_failed_verdict_materializes_no_table(tmp_path: Path, pg_dsn: str) -> None:
    db = tmp_path / "orphan.sqlite"
    make_parent_child(db, [("a", 1), ("b", 99)])  # 99: an orphan, quarantined
    result, report = run_job(db, pg_dsn, tmp_path / "reports")
    assert not result.success and report["status"] == "failure" and not report["promoted"]
    assert materialized(result) == {"migration_run"}  # the report step raised after writing
    assert "not promoted (failure)" in observations(result)["child"]["not_promoted"].value
    assert fetch(pg_dsn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_a_check_run_alone_reverifies_the_target_and_loads_nothing(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = tmp_path / "checked.sqlite"
    make_parent_child(db, [("a", 1), ("b", 2)])
    run_job(db, pg_dsn, tmp_path / "reports")
    config = {"sqlite_path": str(db), "pg_dsn": pg_dsn, "report_dir": str(tmp_path / "r")}
    defs = build_definitions(db, target=target_of(config))
    [child] = [k for k in defs.resolve_asset_graph().get_all_asset_keys() if named(k) == "child"]

    def check_alone() -> dg.ExecuteInProcessResult:
        """As the Checks tab's "Execute" runs it: the check selected, no asset."""
        return dg.materialize(
            list(defs.assets or ()),
            selection=dg.AssetSelection.checks(dg.AssetCheckKey(child, "row_count")),
            resources=defs.resources,
            run_config={"resources": {"settings": {"config": config}}},
            raise_on_error=False,
        )

    result = check_alone()
    assert result.success and materialized(result) == set()
    [evaluation] = result.get_asset_check_evaluations()
    assert (evaluation.check_name, evaluation.passed) == ("row_count", True)
    runs = fetch(pg_dsn, "SELECT count(*) FROM consoleai_etl.runs")
    with_a_row_missing = fetch(pg_dsn, "DELETE FROM child WHERE code = 'b' RETURNING code")
    assert with_a_row_missing == [("b",)]
    [evaluation] = check_alone().get_asset_check_evaluations()
    assert not evaluation.passed and "2 source rows but 1 in target" in evaluation.description
    assert fetch(pg_dsn, "SELECT count(*) FROM consoleai_etl.runs") == runs  # nothing staged


def test_the_report_alone_has_nothing_to_report_and_says_so(tmp_path: Path, pg_dsn: str) -> None:
    db = tmp_path / "alone.sqlite"
    make_parent_child(db, [("a", 1)])
    result = run_raw(db, pg_dsn, tmp_path / "r", asset_selection=["migration_report"])
    assert not result.success
    assert "staged no table, so there is nothing to report" in preflight_error(
        result, step="migration_report"
    )
    assert not (tmp_path / "r").exists()


def test_migration_run_needs_its_tables(tmp_path: Path, pg_dsn: str) -> None:
    db = tmp_path / "run_alone.sqlite"
    make_parent_child(db, [("a", 1)])
    result = run_raw(db, pg_dsn, tmp_path / "r")  # the whole job migrates this file
    assert result.success
    refused = run_raw(db, pg_dsn, tmp_path / "r", asset_selection=["migration_run"])
    assert "select the tables to migrate with it" in preflight_error(refused)


def migration_job() -> dg.JobDefinition:
    """The migration job of the file named by CONSOLEAI_SQLITE_PATH (reconstructable, as
    re-execution needs)."""
    return build_definitions(os.environ["CONSOLEAI_SQLITE_PATH"]).resolve_job_def(
        "legacy_migration_job"
    )


def test_reexecution_from_failure_reports_the_run_it_reexecutes(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "reexecuted.sqlite"
    make_parent_child(db, [("a", 1), ("b", 2)])
    monkeypatch.setenv("CONSOLEAI_SQLITE_PATH", str(db))
    monkeypatch.setenv("CONSOLEAI_PG_DSN", pg_dsn)  # the code location's target
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("the report step cannot write its files under a file")
    reports = tmp_path / "reports"

    def run_config(report_dir: Path) -> dict:
        config = {"sqlite_path": str(db), "pg_dsn": pg_dsn, "report_dir": str(report_dir)}
        return {"resources": {"settings": {"config": config}}}

    job = dg.reconstructable(migration_job)
    with dg.instance_for_test() as instance:
        with dg.execute_job(job, instance, run_config=run_config(blocked)) as first:
            assert not first.success
            assert materialized(first) == TABLES | {"migration_run"}  # promoted, no report
        options = dg.ReexecutionOptions.from_failure(first.run_id, instance)
        with dg.execute_job(
            job, instance, run_config=run_config(reports), reexecution_options=options
        ) as again:
            assert again.success
            assert materialized(again) == {"migration_report"}  # nothing migrated again
    report = json.loads((reports / f"migration-report-{first.run_id}.json").read_text())
    assert report["status"] == "success" and report["promoted"]
    assert {t["table"]: t["loaded_rows"] for t in report["tables"]} == {"parent": 2, "child": 2}
    assert fetch(pg_dsn, "SELECT count(*) FROM consoleai_etl.runs") == [(1,)]
