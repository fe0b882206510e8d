"""The Dagster instance for a code location of environments: the project's dagster.yaml
with a run queue instead of its run-at-once coordinator.

A backfill of the environments creates a run per environment; the ``QueuedRunCoordinator``
starts at most ``max_concurrent_runs`` of them at once (the daemon dequeues them: ``dagster
dev`` runs it, with the sensor and the backfill daemon). The single-file path keeps
dagster.yaml's ``DefaultRunCoordinator``, so its runs start without a daemon.

    python -m consoleai_etl.defs.instance dagster.yaml .dagster-environments/dagster.yaml
"""

import argparse
from pathlib import Path

import yaml

MAX_CONCURRENT_RUNS = 2


def queued(base: dict, max_concurrent_runs: int = MAX_CONCURRENT_RUNS) -> dict:
    """Instance settings ``base`` (dagster.yaml's), their runs queued, ``max_concurrent_runs``
    at once."""
    coordinator = {
        "module": "dagster._core.run_coordinator",
        "class": "QueuedRunCoordinator",
        "config": {"max_concurrent_runs": max_concurrent_runs},
    }
    return {**base, "run_coordinator": coordinator}


def write_queued(base: Path, out: Path, max_concurrent_runs: int = MAX_CONCURRENT_RUNS) -> Path:
    """Write the queued instance settings derived from the file ``base`` to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = queued(yaml.safe_load(base.read_text()), max_concurrent_runs)
    header = f"# Written from {base.name} by consoleai_etl.defs.instance: its runs queued.\n"
    out.write_text(header + yaml.safe_dump(settings, sort_keys=False))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="the project's dagster.yaml")
    parser.add_argument("out", type=Path, help="the environments instance's dagster.yaml")
    parser.add_argument("--max-concurrent-runs", type=int, default=MAX_CONCURRENT_RUNS)
    args = parser.parse_args(argv)
    write_queued(args.base, args.out, args.max_concurrent_runs)


if __name__ == "__main__":
    main()
