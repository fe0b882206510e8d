"""A real `dagster-webserver` started by a test, and its GraphQL API: shared by the web UI
tests (GraphQL only) and the browser test (what an operator clicks)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from consoleai_etl_tests.helpers import REPO

TERMINAL_STATUSES = ("SUCCESS", "FAILURE", "CANCELED")

# Why a run failed, as the UI's event log shows it: the run's and the steps' errors.
FAILURE_EVENTS_QUERY = """
query ($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection { events {
  ... on MessageEvent { message } ... on ErrorEvent { error { message } } } } } }
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
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


@contextmanager
def dagster_webserver(env: dict) -> Iterator[int]:
    """Run the project's webserver (workspace.yaml, the DAGSTER_HOME of ``env``) on a free
    port until the block ends; yields the port once the server answers."""
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
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def run_status(port: int, run_id: str) -> str:
    query = "query ($runId: ID!) { runOrError(runId: $runId) { ... on Run { status } } }"
    return graphql(port, query, {"runId": run_id})["runOrError"]["status"]


def wait_for_run(port: int, run_id: str, timeout: float = 240) -> str:
    """The run's final status (SUCCESS, FAILURE or CANCELED); fails the test past ``timeout``."""
    deadline = time.monotonic() + timeout
    while (status := run_status(port, run_id)) not in TERMINAL_STATUSES:
        assert time.monotonic() < deadline, f"run {run_id} still {status} after {timeout} s"
        time.sleep(0.5)
    return status


def failure_messages(port: int, run_id: str) -> str:
    """The failure lines of a run's event log, to say in an assertion why a run failed."""
    events = graphql(port, FAILURE_EVENTS_QUERY, {"runId": run_id})["logsForRun"]["events"]
    lines = [
        f"{event['message']} {error['message'].strip()}"
        for event in events
        if (error := event.get("error"))
    ]
    return "\n".join(lines) or f"run {run_id} failed without a failure event"
