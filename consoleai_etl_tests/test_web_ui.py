"""The web UI path: the real `dagster-webserver` with the project's dagster.yaml, a run
launched through its GraphQL API (what the Materialize button does) executes without a
daemon, and its asset checks are recorded for the UI's check pages."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance
from dagster_graphql import DagsterGraphQLClient

from consoleai_etl_tests.helpers import REPO, dagster_env

ASSET_CHECKS_QUERY = """
{ assetNodes { assetKey { path }
    assetChecksOrError { ... on AssetChecks { checks { name } } } } }
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def wait_until_up(port: int, server: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "dagster-webserver exited early"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"dagster-webserver did not answer on port {port} within {timeout} s")


@pytest.fixture
def webserver(sample_db: Path, pg_dsn: str, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    env = dagster_env(tmp_path, sample_db, pg_dsn)
    home = Path(env["DAGSTER_HOME"])
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("dagster-webserver")),
        "-h", "127.0.0.1", "-p", str(port), "-w", str(REPO / "workspace.yaml"),
    ]  # fmt: skip
    server = subprocess.Popen(
        command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until_up(port, server)
        yield port, home
    finally:
        server.terminate()
        server.wait(timeout=30)


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
    deadline = time.monotonic() + 240
    while (status := client.get_run_status(run_id).value) not in ("SUCCESS", "FAILURE"):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(1)

    assert status == "SUCCESS"
    report = json.loads((tmp_path / "reports" / "latest.json").read_text())
    assert report["run_id"] == run_id and report["status"] == "success"
    with DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_records_for_run(
            run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
    evaluations = [r.event_log_entry.dagster_event.event_specific_data for r in records]
    assert len(evaluations) == report["totals"]["checks"] == sum(map(len, checks.values()))
    assert all(e.passed for e in evaluations)
