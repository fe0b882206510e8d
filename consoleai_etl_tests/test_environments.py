"""Many environments in one code location, the real way: a folder of SQLite files, a real
instance with the queued run coordinator (at most two runs at once), the real daemon (its
sensor adds a partition per file, its run queue starts the runs, each in a process of its
own), the real webserver (the backfill of ``environment_migration_job`` is launched through
its GraphQL API, as the job's **Backfill** dialog does, submitting a run per environment
into the queue at once; an asset-graph backfill would wait up to 30 s more for the
daemon's backfill loop) and, last, the UI in headless Chromium showing each partition's
status.

Three environments land in three schemas, each with its own report; a fourth, whose tables
differ from the reference file's, fails in one line naming it; a fifth is left pending.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Page, expect

from consoleai_etl.core.run.report import CONSISTENCY_JOB
from consoleai_etl.definitions import build_definitions
from consoleai_etl.defs.environments import ENVIRONMENT_JOB, ENVIRONMENTS
from consoleai_etl.defs.instance import write_queued
from consoleai_etl_tests.browser import open_asset, screenshot
from consoleai_etl_tests.conftest import fresh_database
from consoleai_etl_tests.helpers import REPO, fetch, preflight_error, run_raw
from consoleai_etl_tests.webserver import dagster_webserver, graphql

GOOD = {"alpha": 30, "beta": 60, "gamma": 90}  # environment: its accounts
BROKEN = "delta"  # an extra table: not the reference's tables
PENDING = "epsilon"  # found by the sensor, never launched
TIMEOUT = 90
BACKFILL_TAG, PARTITION_TAG = "dagster/backfill", "dagster/partition"

LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }
"""
PARTITION_STATS = """
{ assetNodes { assetKey { path } partitionStats {
  numMaterialized numFailed numPartitions numMaterializing } } }
"""


def legacy_file(path: Path, accounts: int, *, extra_table: bool = False) -> Path:
    """An environment's SQLite file: accounts and their orders (a foreign key)."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
            "CREATE TABLE orders (id INTEGER PRIMARY KEY,"
            " account_id INTEGER NOT NULL REFERENCES accounts(id), total NUMERIC(10,2));"
            + ("CREATE TABLE stray (id INTEGER PRIMARY KEY);" if extra_table else "")
        )
        conn.executemany(
            "INSERT INTO accounts VALUES (?, ?)", ((i, f"a{i}") for i in range(accounts))
        )
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)",
            ((i, i % accounts, f"{i}.25") for i in range(2 * accounts)),
        )
    return path


@contextmanager
def dagster_daemon(env: dict) -> Iterator[subprocess.Popen]:
    """The daemon of ``env``'s instance (sensors, backfills, the run queue) until the end."""
    command = [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"]
    daemon = subprocess.Popen(
        command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield daemon
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def wait_for(what: str, probe, timeout: float = TIMEOUT):
    """``probe()``'s first true value, polled; fails the test with ``what`` past ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.5)
    return value


@dataclass(frozen=True)
class Backfilled:
    port: int
    dsn: str
    root: Path
    instance: dg.DagsterInstance
    backfill_id: str


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory, server_dsn: str) -> Iterator[Backfilled]:
    root = tmp_path_factory.mktemp("environments")
    folder = root / "environments"
    folder.mkdir()
    for name, accounts in GOOD.items():
        legacy_file(folder / f"{name}.sqlite", accounts)
    legacy_file(folder / f"{BROKEN}.sqlite", 10, extra_table=True)
    legacy_file(folder / f"{PENDING}.sqlite", 10)
    home = root / "dagster_home"
    write_queued(REPO / "dagster.yaml", home / "dagster.yaml")
    with fresh_database(server_dsn) as dsn:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CONSOLEAI_")},
            "DAGSTER_HOME": str(home),
            "CONSOLEAI_ENVIRONMENTS_DIR": str(folder),
            "CONSOLEAI_PG_DSN": dsn,
            "CONSOLEAI_TARGET_SCHEMA": "env_{environment}",
            "CONSOLEAI_REPORT_DIR": str(root / "reports" / "{environment}"),
        }
        with (
            dg.DagsterInstance.from_config(str(home)) as instance,
            dagster_daemon(env),
            dagster_webserver(env) as port,
        ):
            everything = {*GOOD, BROKEN, PENDING}
            wait_for(
                "the sensor adds a partition per file",
                lambda: set(instance.get_dynamic_partitions("environments")) == everything,
            )
            params = {
                "selector": {
                    "partitionSetName": f"{ENVIRONMENT_JOB}_partition_set",
                    "repositorySelector": {
                        "repositoryName": "__repository__",
                        "repositoryLocationName": "consoleai_etl",
                    },
                },
                "partitionNames": [*GOOD, BROKEN],
                "forceSynchronousSubmission": True,
            }
            launched = graphql(port, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched
            backfill_id = launched["backfillId"]

            def finished() -> bool:
                runs = instance.get_runs(dg.RunsFilter(tags={BACKFILL_TAG: backfill_id}))
                return len(runs) == len(params["partitionNames"]) and all(
                    run.is_finished for run in runs
                )

            wait_for("the backfill's runs finish", finished)
            yield Backfilled(port, dsn, root, instance, backfill_id)


def test_a_backfill_migrates_each_environment_into_its_own_schema(backfilled: Backfilled) -> None:
    for name, accounts in GOOD.items():
        report = json.loads((backfilled.root / "reports" / name / "latest.json").read_text())
        assert report["status"] == "success" and report["target_schema"] == f"env_{name}"
        assert report["source_path"].endswith(f"{name}.sqlite")
        assert all(c["passed"] for t in report["tables"] for c in t["checks"])
        schema = f"env_{name}"
        counted = fetch(
            backfilled.dsn,
            f"SELECT (SELECT count(*) FROM {schema}.accounts),"
            f" (SELECT count(*) FROM {schema}.orders)",
        )
        assert counted == [(accounts, 2 * accounts)]


def test_the_runs_queued_and_ran_at_most_two_at_once(backfilled: Backfilled) -> None:
    instance = backfilled.instance
    runs = instance.get_run_records(dg.RunsFilter(tags={BACKFILL_TAG: backfilled.backfill_id}))
    by_partition = {r.dagster_run.tags[PARTITION_TAG]: r for r in runs}
    assert sorted(by_partition) == sorted([*GOOD, BROKEN])
    for record in runs:
        enqueued = instance.get_records_for_run(
            record.dagster_run.run_id, of_type=dg.DagsterEventType.PIPELINE_ENQUEUED
        ).records
        assert len(enqueued) == 1, "each run waited in the queue"
    spans = [(r.start_time, r.end_time) for r in runs]
    at_once = max(sum(s <= start < e for s, e in spans) for start, _ in spans)
    assert 1 <= at_once <= 2
    statuses = {p: r.dagster_run.status for p, r in by_partition.items()}
    assert statuses == {
        **{name: dg.DagsterRunStatus.SUCCESS for name in GOOD},
        BROKEN: dg.DagsterRunStatus.FAILURE,
    }


def test_an_environment_with_other_tables_fails_in_one_line_naming_it(
    backfilled: Backfilled,
) -> None:
    [run] = backfilled.instance.get_run_records(
        dg.RunsFilter(tags={BACKFILL_TAG: backfilled.backfill_id, PARTITION_TAG: BROKEN})
    )
    failures = backfilled.instance.get_records_for_run(
        run.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
    ).records
    [description] = [
        r.event_log_entry.dagster_event.step_failure_data.user_failure_data.description
        for r in failures
    ]
    assert description.startswith(f"environment {BROKEN} (")
    assert (
        "other tables than the reference environment alpha (not in the graph: 'stray')"
        in description
    )
    assert "\n" not in description
    schemas = fetch(backfilled.dsn, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'env_%'")
    assert sorted(s for (s,) in schemas) == [f"env_{name}" for name in GOOD]


def test_each_partitions_status_in_the_assets_stats(backfilled: Backfilled) -> None:
    nodes = graphql(backfilled.port, PARTITION_STATS)["assetNodes"]
    stats = {"/".join(n["assetKey"]["path"]): n["partitionStats"] for n in nodes}
    assert stats["accounts"] == {
        "numMaterialized": 3, "numFailed": 1, "numPartitions": 5, "numMaterializing": 0,
    }  # fmt: skip


def partitions_tab(page: Page, base: str, table: str) -> None:
    open_asset(page, base, table)
    page.get_by_role("tab", name="Partitions").click()


def test_the_ui_shows_each_environments_status(backfilled: Backfilled, page: Page) -> None:
    """A table's Partitions tab: three environments materialized, one failed, one missing.
    Each status's filter alone lists its environments; a materialized one shows the table
    its run wrote, in the environment's own schema."""
    base = f"http://127.0.0.1:{backfilled.port}"
    expected = {"Materialized": set(GOOD), "Failed": {BROKEN}, "Missing": {PENDING}}
    partitions_tab(page, base, "accounts")
    for status, names in expected.items():
        expect(page.get_by_text(f"{status} ({len(names)})", exact=True)).to_be_visible()
    screenshot(page, "environments-1-partitions")
    for status, names in expected.items():
        partitions_tab(page, base, "accounts")
        for other in expected.keys() - {status}:  # uncheck the other statuses' filters
            page.get_by_text(f"{other} ({len(expected[other])})", exact=True).click()
        for name in {*GOOD, BROKEN, PENDING}:
            expect(page.get_by_title(name, exact=True)).to_have_count(1 if name in names else 0)
    partitions_tab(page, base, "accounts")
    page.get_by_title("beta", exact=True).click()
    expect(page.get_by_text("env_beta.accounts").first).to_be_visible()
    screenshot(page, "environments-2-beta")


def test_the_sensor_adds_new_files_and_deletes_no_partition(tmp_path: Path) -> None:
    legacy_file(tmp_path / "alpha.sqlite", 1)
    legacy_file(tmp_path / "beta.sqlite", 1)
    (tmp_path / "not an environment.sqlite").write_bytes(b"")
    sensor = build_definitions(environments_dir=str(tmp_path)).resolve_sensor_def(
        "environment_sensor"
    )
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ENVIRONMENTS.name, ["alpha", "removed"])
        result = sensor(dg.build_sensor_context(instance=instance))
    [request] = result.dynamic_partitions_requests
    assert isinstance(request, dg.AddDynamicPartitionsRequest)
    assert request.partition_keys == ["beta"]


def test_each_environment_is_planned_from_its_own_file(tmp_path: Path, pg_dsn: str) -> None:
    """The graph comes from the reference file (alpha); omega has the same tables, one with
    a column more: its run migrates omega's columns, not the reference's, and the
    consistency job's run of the same partition re-verifies them."""
    legacy_file(tmp_path / "alpha.sqlite", 3)
    omega = legacy_file(tmp_path / "omega.sqlite", 5)
    with closing(sqlite3.connect(omega)) as conn, conn:
        conn.execute("ALTER TABLE accounts ADD COLUMN email TEXT")
        conn.execute("UPDATE accounts SET email = name || '@example.com'")
    assert run_environment(tmp_path, pg_dsn, "omega").success
    emails = fetch(pg_dsn, "SELECT count(email) FROM env_omega.accounts")
    assert emails == [(5,)]
    report = json.loads((tmp_path / "reports" / "omega" / "latest.json").read_text())
    assert report["status"] == "success" and report["target_schema"] == "env_omega"
    assert run_environment(tmp_path, pg_dsn, "omega", CONSISTENCY_JOB).success
    verified = json.loads((tmp_path / "reports" / "omega" / "latest.json").read_text())
    assert verified["job"] == CONSISTENCY_JOB and verified["status"] == "success"


def test_the_placeholder_without_an_environment_is_refused_in_one_line(
    tmp_path: Path, pg_dsn: str
) -> None:
    source = legacy_file(tmp_path / "one.sqlite", 3)
    result = run_raw(source, pg_dsn, tmp_path / "reports", target_schema="env_{environment}")
    assert preflight_error(result) == (
        "target_schema (or CONSOLEAI_TARGET_SCHEMA) holds {environment}, but this run "
        "migrates no environment: set CONSOLEAI_ENVIRONMENTS_DIR and launch a partition of "
        "the environments, or give target_schema (or CONSOLEAI_TARGET_SCHEMA) without "
        "{environment}"
    )
    assert fetch(pg_dsn, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'env%'") == [(0,)]


def run_environment(
    folder: Path, dsn: str, environment: str, job_name: str = ENVIRONMENT_JOB
) -> dg.ExecuteInProcessResult:
    """Run job ``job_name`` in process for the partition ``environment`` of the
    environments of ``folder``."""
    job = build_definitions(environments_dir=str(folder)).resolve_job_def(job_name)
    settings = {
        "pg_dsn": dsn,
        "target_schema": "env_{environment}",
        "report_dir": str(folder / "reports" / "{environment}"),
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ENVIRONMENTS.name, [environment])
        return job.execute_in_process(
            run_config={"resources": {"settings": {"config": settings}}},
            instance=instance,
            partition_key=environment,
            raise_on_error=False,
        )
