"""The ``consoleai-etl`` console script: Ctrl-C handled from the command's first instant.

Importing the command takes a second or two (Dagster), and a Ctrl-C meanwhile would print
Python's traceback of wherever the import had got to. This module imports nothing until
``command`` runs, so it can turn that interrupt into the command's one line and exit
status 130, like any other (``cli.interrupts``).
"""

import sys
from typing import NoReturn

INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def command() -> NoReturn:
    try:
        from consoleai_etl.cli.main import command as run
    except KeyboardInterrupt:
        print("consoleai-etl: interrupted, no run in progress", file=sys.stderr)
        sys.exit(INTERRUPTED)
    run()
