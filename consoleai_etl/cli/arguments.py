"""The command line of ``consoleai-etl``: its parser, and how it spells a run option.

Nothing here imports Dagster (a second or two): ``--help``, ``--version`` and a command
line argparse refuses answer at once, before ``cli.main`` loads the job machinery.
"""

from __future__ import annotations

import argparse
from importlib.metadata import version
from pathlib import Path
from typing import NoReturn

from consoleai_etl.core.errors import Spelling, config_key
from consoleai_etl.core.plan.merge_plan import ON_CONFLICT
from consoleai_etl.core.plan.rules import ORPHAN_POLICIES
from consoleai_etl.core.run.pipeline import MODES
from consoleai_etl.core.run.report import CONSISTENCY_JOB, MIGRATION_JOB

PROG = "consoleai-etl"


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (its default prints the usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


JOBS = {"migrate": MIGRATION_JOB, "verify": CONSISTENCY_JOB}  # the job each command runs


class UsageError(Exception):
    """The command line cannot start a run (exit 2); the message is one line."""


PRECEDENCE = (
    "A flag wins over the same option in the --config file, which wins over the CONSOLEAI_* "
    "variables, which win over the defaults."
)


def parser() -> argparse.ArgumentParser:
    """The command line. A flag's destination is the name of the run option it sets."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("source", metavar="SOURCE.sqlite", type=Path, help="legacy SQLite file")
    common.add_argument(
        "dsn", metavar="POSTGRES_DSN", help="target, e.g. postgresql://user@host:5432/db"
    )
    common.add_argument(
        "--config",
        metavar="RUN.yaml",
        help="run options: a Dagster run config (resources: {settings: {config: {...}}}, as "
        "`dagster job execute -c` takes) or the bare mapping of those options; every option "
        "of the settings resource (mode, merge_tables, casting_rules, ...); the flags below "
        "win over it",
    )
    common.add_argument(
        "--schema",
        dest="target_schema",
        metavar="SCHEMA",
        help="target schema (default: $CONSOLEAI_TARGET_SCHEMA, else public)",
    )
    common.add_argument(
        "--mode",
        choices=MODES,
        help="replace: the tables this tool created; merge: into the application's existing "
        "tables (default: $CONSOLEAI_MODE, else replace)",
    )
    common.add_argument(
        "--orphans",
        choices=ORPHAN_POLICIES,
        help="rows whose foreign key points at no parent row (default: $CONSOLEAI_ORPHANS, "
        "else quarantine)",
    )
    common.add_argument("--rules", metavar="RULES.yaml", help="casting rules file")
    common.add_argument(
        "--skip-table",
        metavar="NAME",
        action="append",
        dest="skip_tables",
        help="leave source table NAME out: neither loaded nor checked nor merged, listed in "
        "the report with its row count (repeatable)",
    )
    common.add_argument(
        "--report-dir",
        dest="report_dir",
        metavar="DIR",
        help="where the report files go (default: $CONSOLEAI_REPORT_DIR, else reports/)",
    )
    top = _Parser(
        prog=PROG,
        description="Migrate a legacy SQLite database into PostgreSQL and prove it, with the "
        "Dagster jobs of consoleai_etl run in this process (recorded in $DAGSTER_HOME's "
        "instance when set). Exit 0: success; 1: the run failed; 2: bad command line.",
    )
    top.add_argument("--version", action="version", version=f"{PROG} {version(PROG)}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    migrate = commands.add_parser(
        "migrate",
        parents=[common],
        help=f"load, check, promote ({JOBS['migrate']})",
        description=f"Load every table into staging, check it, promote when clean, write the "
        f"report ({JOBS['migrate']}). {PRECEDENCE}",
    )
    migrate.add_argument(
        "--on-conflict",
        choices=ON_CONFLICT,
        help="merge mode: a source row whose key the target holds (default: "
        "$CONSOLEAI_ON_CONFLICT, else target: keep the application's changed rows)",
    )
    migrate.add_argument(
        "--replace-existing",
        action="store_true",
        default=None,
        help="replace tables and views of the source's names in the target schema that no "
        "earlier run created (default: refuse, naming them)",
    )
    migrate.add_argument(
        "--dry-run",
        action="store_true",
        default=None,
        help="load and check in staging, leave the target",
    )
    migrate.add_argument(
        "--allow-divergence",
        action="store_true",
        default=None,
        help="promote and exit 0 even when checks fail or rows are quarantined",
    )
    commands.add_parser(
        "verify",
        parents=[common],
        help=f"re-check what is in PostgreSQL against the source ({JOBS['verify']})",
        description=f"Re-run every table's checks against the target, load nothing "
        f"({JOBS['verify']}). {PRECEDENCE}",
    )
    return top


# The options given as arguments rather than flags.
POSITIONAL = {"sqlite_path": "SOURCE.sqlite", "pg_dsn": "POSTGRES_DSN"}


def spelling() -> Spelling:
    """How a message's option is set on this command line: its flag (``--replace-existing``,
    ``--mode merge``, ``--schema``), its argument, else its key in a ``--config`` file."""
    flags = {
        action.dest: action.option_strings[0]
        for command in ("migrate", "verify")
        for action in _subparser(command)._actions
        if action.option_strings
    }

    def spell(name: str, value: str | None) -> str:
        if name in POSITIONAL:
            return POSITIONAL[name]
        if name not in flags:
            return f"{config_key(name, value)} in a --config file"
        return flags[name] if value in (None, "true") else f"{flags[name]} {value}"

    return spell


def _subparser(command: str) -> argparse.ArgumentParser:
    [commands] = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return commands.choices[command]
