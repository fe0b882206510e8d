"""Issue 22's scale case, small: a source of 150 tables of 3 rows through a real Dagster
run. Every table's materialization and every one of its checks' evaluations must be in the
instance's event log (the web UI shows what is there), the report must list every table, and
the run's log must say it in a summary, not a line per table."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from consoleai_etl.defs.table_assets import UNYIELDED_OUTPUTS
from consoleai_etl.demo.many_tables import generate, table_name
from consoleai_etl_tests.helpers import named, run_raw

TABLES = 150

EVENTS = dg.DagsterEventType


@pytest.fixture(scope="module")
def many_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("many") / "many.sqlite", TABLES, 3)


def test_every_table_is_materialized_with_its_checks_in_the_event_log(
    many_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_raw(many_db, pg_dsn, tmp_path / "reports", instance=instance)
        assert result.success
        run_id = result.run_id

        def logged(event_type: dg.DagsterEventType) -> list[dg.EventLogEntry]:
            return instance.all_logs(run_id, of_type=event_type)

        materialized = Counter(
            named(e.dagster_event.asset_key) for e in logged(EVENTS.ASSET_MATERIALIZATION)
        )
        planned = {
            (d.asset_key, d.check_name)
            for e in logged(EVENTS.ASSET_CHECK_EVALUATION_PLANNED)
            if (d := e.dagster_event.event_specific_data)
        }
        evaluated = Counter(
            (d.asset_key, d.check_name)
            for e in logged(EVENTS.ASSET_CHECK_EVALUATION)
            if (d := e.dagster_event.event_specific_data) and d.passed
        )
        messages = [e.user_message for e in instance.all_logs(run_id) if not e.is_dagster_event]
        # What the UI shows of each check: its latest execution, of this run, succeeded.
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(asset, name) for asset, name in planned]
        )
        statuses = Counter((r.run_id, r.status.value) for r in latest.values())

    tables = [table_name(i) for i in range(1, TABLES + 1)]
    # Each table materialized once, and the run's record and report.
    assert materialized == Counter([*tables, "migration_run", "migration_report"])
    # Every check the run planned (at least the five of each table) ran once, and passed.
    assert {named(asset) for asset, _ in planned} == set(tables)
    assert len(planned) >= 5 * TABLES
    assert evaluated == Counter(planned)
    assert statuses == {(run_id, "SUCCEEDED"): len(planned)}

    [report_file] = (tmp_path / "reports").glob("migration-report-*.json")
    report = json.loads(report_file.read_text())
    assert report["status"] == "success" and report["promoted"]
    assert sorted(t["table"] for t in report["tables"]) == tables
    assert all(len(t["checks"]) >= 5 and t["loaded_rows"] == 3 for t in report["tables"])

    # One summary line for the tables staged, not a line per table.
    assert [m for m in messages if " tables staged: " in m] == [
        f"{TABLES} tables staged: {3 * TABLES} rows, 0 quarantined"
    ]
    assert not [m for m in messages if m.startswith(tables[0])]
    # The checks are logged as evaluations, not step outputs: Dagster's note naming every
    # check output as missing is not in the run's log (``_EvaluationsNotOutputs``).
    assert not [m for m in messages if UNYIELDED_OUTPUTS in m]
