"""`make bench`'s breakdown of a job's wall time (benchmarks/timeline.py), on a real run of the
CLI: the report's ``staged_at`` falls between the loads and the end, the phases read
from Dagster's event log follow one another in the order the bench prints them, and the
load phase's work is split into streaming, keys, foreign keys and checks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.timeline import LOAD_WORK, PHASES, breakdown, events, load_work
from consoleai_etl_tests.helpers import dagster_env


def test_the_phases_of_a_real_run_follow_one_another_and_add_up(
    sample_db: Path, pg_dsn: str, tmp_path: Path
) -> None:
    env = dagster_env(tmp_path, sample_db, pg_dsn)
    command = [sys.executable, "-m", "dagster", "job", "execute", "-m", "consoleai_etl"]
    started = time.time()
    subprocess.run([*command, "-j", "legacy_migration_job"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    ended = time.time()
    report = json.loads((tmp_path / "reports" / "latest.json").read_text())
    last_load = max(t["load_window"][1] for t in report["tables"])
    assert last_load <= report["staged_at"] <= ended

    spent = breakdown(started, ended, report, events(Path(env["DAGSTER_HOME"]), report["run_id"]))

    assert list(spent) == [key for key, _ in PHASES]
    assert all(seconds >= 0 for seconds in spent.values()), spent
    assert spent["load"] > 0 and spent["promotion"] > 0 and spent["startup"] > 0, spent
    assert sum(spent.values()) == pytest.approx(ended - started, abs=0.06)

    # The load phase's work, summed over the tables: every kind timed, keys and foreign
    # keys apart from the stream, and together the tables' load and check seconds.
    work = load_work(report)
    assert list(work) == [key for key, _ in LOAD_WORK]
    assert all(seconds >= 0 for seconds in work.values()), work
    assert work["stream"] > 0 and work["keys"] > 0 and work["foreign_keys"] > 0, work
    assert work["checks"] > 0, work
    tables = sum(t["seconds"] + t["check_seconds"] for t in report["tables"])
    assert sum(work.values()) == pytest.approx(tables, abs=0.03)
