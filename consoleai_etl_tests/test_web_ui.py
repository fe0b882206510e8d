"""The web UI path: the real `dagster-webserver` with the project's dagster.yaml, a run
launched through its GraphQL API (what the Materialize button does) executes without a
daemon, and its asset checks are recorded for the UI's check pages; a run the command
started is listed under its job."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from consoleai_etl_tests.helpers import dagster_env
from consoleai_etl_tests.test_console_script import consoleai_etl
from consoleai_etl_tests.webserver import dagster_webserver, failure_messages, graphql, wait_for_run

JOB_RUNS_QUERY = """
{ pipelineOrError(params: {pipelineName: "legacy_migration_job", repositoryName: "__repository__",
    repositoryLocationName: "consoleai_etl"}) { ... on Pipeline { runs { runId } } } }
"""
ASSET_CHECKS_QUERY = """
{ assetNodes { assetKey { path }
    assetChecksOrError { ... on AssetChecks { checks { name } } } } }
"""


@pytest.fixture
def webserver(sample_db: Path, pg_dsn: str, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    env = dagster_env(tmp_path, sample_db, pg_dsn)
    with dagster_webserver(env) as port:
        yield port, Path(env["DAGSTER_HOME"])


def test_run_launched_from_the_ui_executes_and_records_checks(
    webserver: tuple[int, Path], tmp_path: Path
) -> None:
    port, home = webserver
    nodes = graphql(port, ASSET_CHECKS_QUERY)["assetNodes"]
    checks = {
        node["assetKey"]["path"][-1]: {c["name"] for c in node["assetChecksOrError"]["checks"]}
        for node in nodes
    }
    assert checks["user_roles"] == {
        "row_count", "checksum", "not_null", "primary_key", "foreign_keys", "declared_types",
    }  # fmt: skip
    assert "migration_report" in checks

    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution("legacy_migration_job")
    assert wait_for_run(port, run_id) == "SUCCESS", failure_messages(port, run_id)
    report = json.loads((tmp_path / "reports" / "latest.json").read_text())
    assert report["run_id"] == run_id and report["status"] == "success"
    with DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_records_for_run(
            run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
    evaluations = [r.event_log_entry.dagster_event.event_specific_data for r in records]
    assert len(evaluations) == report["totals"]["checks"] == sum(map(len, checks.values()))
    assert all(e.passed for e in evaluations)


def test_the_launchpad_refuses_a_bad_choice_before_a_run_exists(
    webserver: tuple[int, Path],
) -> None:
    """The launchpad submits through the same GraphQL mutation: a value outside an option's
    choices is refused by the config schema, and no run is created."""
    port, home = webserver
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    bad = {"resources": {"settings": {"config": {"mode": "upsert"}}}}
    with pytest.raises(DagsterGraphQLClientError) as caught:
        client.submit_job_execution("legacy_migration_job", run_config=bad)
    kind, errors = caught.value.args
    assert kind == "RunConfigValidationInvalid"
    assert [e["message"] for e in errors] == [
        "Value at path root:resources:settings:config:mode not in enum type Mode got upsert"
    ]
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_runs() == []


def test_a_run_of_the_command_is_listed_under_its_job(
    webserver: tuple[int, Path], sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    """The job page's Runs tab lists the runs labelled with its code location: the
    command's run carries that label, though the command, not the location, started it."""
    port, _home = webserver
    env = dagster_env(tmp_path, sample_db, pg_dsn)
    done = consoleai_etl(tmp_path, "migrate", str(sample_db), pg_dsn, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    run_id = json.loads((tmp_path / "reports" / "latest.json").read_text())["run_id"]
    runs = graphql(port, JOB_RUNS_QUERY)["pipelineOrError"]["runs"]
    assert [run["runId"] for run in runs] == [run_id]
