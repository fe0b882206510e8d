"""`make bench`'s measurement of the job (benchmarks/bench.py ``product``, and the breakdown of
its wall time, benchmarks/timeline.py), on real runs through both commands the bench times:
the product's own ``consoleai-etl migrate`` and Dagster's CLI. The report's ``staged_at``
falls between the loads and the end, the phases read from Dagster's event log follow one
another in the order the bench prints them and add up to the wall time, and the load
phase's work is split into streaming, keys, foreign keys and checks. The first merge's floor
copies what the merge wrote, and each of issue 22's goals is judged from its measures."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path
from types import ModuleType

import psycopg
import pytest

from benchmarks.timeline import LOAD_WORK, PHASES

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """benchmarks/bench.py, imported as the script runs (its own folder on the path)."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    return importlib.import_module("bench")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME, as the bench makes one."""
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    return tmp_path


@pytest.mark.parametrize("dagster_cli", [False, True], ids=["consoleai-etl", "dagster-cli"])
def test_a_measured_run_splits_into_phases_that_add_up_and_its_load_work(
    bench: ModuleType, home: Path, sample_db: Path, pg_dsn: str, dagster_cli: bool
) -> None:
    run = bench.product(sample_db, pg_dsn, home, dagster_cli=dagster_cli)

    assert run["exit_code"] == 0 and run["status"] == "success", run
    assert run["command"] == ("dagster job execute" if dagster_cli else "consoleai-etl migrate")
    [written] = home.glob("*/latest.json")  # the run's report directory, in the home
    report = json.loads(written.read_text())
    assert max(t["load_window"][1] for t in report["tables"]) <= report["staged_at"]

    spent = run["breakdown"]
    assert list(spent) == [key for key, _ in PHASES]
    assert all(seconds >= 0 for seconds in spent.values()), spent
    assert spent["load"] > 0 and spent["promotion"] > 0 and spent["startup"] > 0, spent
    assert sum(spent.values()) == pytest.approx(run["seconds"], abs=0.06)

    # The load phase's work, summed over the tables: every kind timed, keys and foreign
    # keys apart from the stream, and together the tables' load and check seconds.
    work = run["load_work"]
    assert list(work) == [key for key, _ in LOAD_WORK]
    assert all(seconds >= 0 for seconds in work.values()), work
    assert work["stream"] > 0 and work["keys"] > 0 and work["foreign_keys"] > 0, work
    assert work["checks"] > 0, work
    tables = sum(t["seconds"] + t["check_seconds"] for t in report["tables"])
    assert sum(work.values()) == pytest.approx(tables, abs=0.03)


def test_the_merges_run_the_product_command_in_merge_mode_into_the_app_schema(
    bench: ModuleType, home: Path, sample_db: Path, pg_dsn: str
) -> None:
    first, again, floor = bench.merges(sample_db, pg_dsn, home)

    assert first["exit_code"] == again["exit_code"] == 0, (first, again)
    assert first["command"] == again["command"] == "consoleai-etl migrate"
    assert first["merged"]["inserted"] > 0 and first["breakdown"]["promotion"] > 0, first
    assert again["merged"]["inserted"] == again["merged"]["updated"] == 0, again
    with psycopg.connect(pg_dsn) as conn:
        [(users,)] = conn.execute(f"SELECT count(*) FROM {bench.APP_SCHEMA}.users").fetchall()
        # The floor copied every row the merge wrote into the same tables, created empty.
        for table in bench.APP_TABLES:
            [(merged, copied)] = conn.execute(
                f"SELECT (SELECT count(*) FROM {bench.APP_SCHEMA}.{table}),"
                f" (SELECT count(*) FROM insert_select.{table})"
            ).fetchall()
            assert merged == copied > 0, table
    assert users > 0 and floor["seconds"] > 0, floor


def _results(**changes: object) -> dict:
    """A bench result as ``main`` assembles it, every goal's measure given."""
    run = {"seconds": 10.0, "exit_code": 0, "peak_rss_mb": 140.0}
    results = {
        "product_vs_pgloader_wall": 0.45, "product_vs_duckdb_wall": 3.4, "peak_rss_mb": 150.0,
        "merge_first": {**run, "seconds": 26.0, "breakdown": {"promotion": 12.0}},
        "insert_select": {"seconds": 10.0},
        "linearity": {"factor": 10, "wall_ratio": 9.5,
                      "runs": {"20": run, "200": {**run, "peak_rss_mb": 180.0}}},
        "many_tables": {"tables": 1500, "product": {**run, "seconds": 50.0},
                        "pgloader": {**run, "seconds": 40.0}},
    }  # fmt: skip
    return {**results, **changes}


def test_each_goal_of_the_issue_is_met_or_not_from_the_measures(bench: ModuleType) -> None:
    verdicts = {g["ratio"]: (g["value"], g["met"]) for g in bench.goals(_results())}

    assert verdicts == {
        "full job / pgloader (wall)": (0.45, True),
        "full job / DuckDB (wall)": (3.4, False),
        "10x rows: wall / 1x": (9.5, True),
        "10x rows: peak RSS / 1x": (round(180 / 140, 3), False),
        "full job's peak RSS, MB, every scale": (150.0, True),
        "first merge / INSERT ... SELECT": (2.6, False),
        "first merge's transaction / INSERT ... SELECT": (1.2, True),
        "1,500 tables: wall s": (50.0, True),
        "1,500 tables / pgloader": (1.25, False),
    }


def test_a_goal_not_measured_says_so_and_a_failed_run_cannot_meet_one(bench: ModuleType) -> None:
    failed = {"seconds": 3.0, "exit_code": 1, "peak_rss_mb": 90.0}
    results = _results(linearity=None, product_vs_pgloader_wall=None)
    results["many_tables"] = {"tables": 1500, "product": failed, "pgloader": None}

    verdicts = {g["ratio"]: g["met"] for g in bench.goals(results)}

    assert verdicts["full job / pgloader (wall)"] is None
    assert verdicts["10x rows: wall / 1x"] is None
    assert verdicts["10x rows: peak RSS / 1x"] is None
    assert verdicts["1,500 tables: wall s"] is False
    assert verdicts["1,500 tables / pgloader"] is None
