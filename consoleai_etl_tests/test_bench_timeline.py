"""`make bench`'s measurement of the job (benchmarks/bench.py ``product``, and the breakdown of
its wall time, benchmarks/timeline.py), on real runs through both commands the bench times:
the product's own ``consoleai-etl migrate`` and Dagster's CLI. The report's ``staged_at``
falls between the loads and the end, the phases read from Dagster's event log follow one
another in the order the bench prints them and add up to the wall time, and the load
phase's work is split into streaming, keys, foreign keys and checks."""

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
    first, again = bench.merges(sample_db, pg_dsn, home)

    assert first["exit_code"] == again["exit_code"] == 0, (first, again)
    assert first["command"] == again["command"] == "consoleai-etl migrate"
    assert first["merged"]["inserted"] > 0 and first["breakdown"]["promotion"] > 0, first
    assert again["merged"]["inserted"] == again["merged"]["updated"] == 0, again
    with psycopg.connect(pg_dsn) as conn:
        [(users,)] = conn.execute(f"SELECT count(*) FROM {bench.APP_SCHEMA}.users").fetchall()
    assert users > 0
