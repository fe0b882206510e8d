"""The ``consoleai-etl`` console script: the arguments read before Dagster is imported, and
Ctrl-C handled from the command's first instant.

Importing the command's job machinery takes a second or two (Dagster): ``--help``,
``--version`` and a command line argparse refuses are answered first, by ``cli.arguments``,
which imports no Dagster. A Ctrl-C during the import would print Python's traceback of
wherever it had got to; this module turns it into the command's one line and exit status
130, like any other (``cli.interrupts``).
"""

import sys
from typing import NoReturn

INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def command() -> NoReturn:
    try:
        from consoleai_etl.cli.arguments import parser

        args = parser().parse_args()
        from consoleai_etl.cli.main import command as run
    except KeyboardInterrupt:
        print("consoleai-etl: interrupted, no run in progress", file=sys.stderr)
        sys.exit(INTERRUPTED)
    run(args)
