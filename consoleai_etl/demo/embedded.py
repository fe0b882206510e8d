"""The embedded PostgreSQL that runs without ``CONSOLEAI_PG_DSN``: say that it is left
running after a demo, and stop it (``make stop``).

python -m consoleai_etl.demo.embedded notice|stop
"""

from __future__ import annotations

import os
import sys

from consoleai_etl.core.errors import TargetError
from consoleai_etl.core.target.postgres import embedded_pid, stop_embedded
from consoleai_etl.defs.settings import EMBEDDED_DATA_DIR


def notice() -> str | None:
    """One line for the end of a demo when the run used the embedded server, which stays
    up for the next run and ``make ui``; None when a real server was given."""
    if os.environ.get("CONSOLEAI_PG_DSN") or (pid := embedded_pid(EMBEDDED_DATA_DIR)) is None:
        return None
    return (
        f"the embedded PostgreSQL under {EMBEDDED_DATA_DIR} is still running (pid {pid}), "
        "for the next run and `make ui`: `make stop` stops it"
    )


def main(argv: list[str]) -> int:
    if argv == ["notice"]:
        if line := notice():
            print(line)
        return 0
    if argv == ["stop"]:
        try:
            pid = stop_embedded(EMBEDDED_DATA_DIR)
        except TargetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(
            f"stopped the embedded PostgreSQL under {EMBEDDED_DATA_DIR} (pid {pid})"
            if pid
            else f"no embedded PostgreSQL runs under {EMBEDDED_DATA_DIR}"
        )
        return 0
    print("usage: python -m consoleai_etl.demo.embedded notice|stop", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
