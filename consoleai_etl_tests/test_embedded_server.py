"""The embedded PostgreSQL (no ``CONSOLEAI_PG_DSN``) is left running after a demo, which
says so, and ``make stop`` (``consoleai_etl.demo.embedded stop``) stops it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from consoleai_etl.core.target.postgres import embedded_dsn, embedded_pid


def embedded(tmp_path: Path, command: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CONSOLEAI_PG_DSN"}
    return subprocess.run(
        [sys.executable, "-m", "consoleai_etl.demo.embedded", command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_demo_says_the_server_still_runs_and_stop_stops_it(tmp_path: Path) -> None:
    data = tmp_path / ".data" / "postgres"
    dsn = embedded_dsn(data)
    pid = embedded_pid(data)
    assert pid is not None

    said = embedded(tmp_path, "notice")
    assert said.returncode == 0
    assert f"still running (pid {pid})" in said.stdout and "`make stop`" in said.stdout

    stopped = embedded(tmp_path, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert (
        stopped.stdout.strip()
        == f"stopped the embedded PostgreSQL under .data/postgres (pid {pid})"
    )
    assert embedded_pid(data) is None
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=3).close()

    again = embedded(tmp_path, "stop")
    assert again.stdout.strip() == "no embedded PostgreSQL runs under .data/postgres"
    assert embedded(tmp_path, "notice").stdout == ""


def test_a_stale_pid_file_is_not_a_running_server(tmp_path: Path) -> None:
    """A pid file left by a crash names a pid that may since be another process (here this
    test's own): never signalled."""
    data = tmp_path / ".data" / "postgres"
    data.mkdir(parents=True)
    (data / "postmaster.pid").write_text(f"{os.getpid()}\n{data}\n")

    assert embedded_pid(data) is None
    assert embedded(tmp_path, "stop").stdout.strip().startswith("no embedded PostgreSQL")
