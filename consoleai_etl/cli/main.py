"""``consoleai-etl migrate|verify SOURCE.sqlite POSTGRES_DSN [options]``: arguments to exit code.

The command runs the very jobs of the code location (``job.run``), so every option is a
field of the ``settings`` resource put in the run's config, where the web UI shows it.

Options come from ``--config`` (a Dagster run config, or the bare mapping of the settings'
options: ``cli.options``) and from the flags, which win over the file; what neither sets
falls back to its CONSOLEAI_* variable.

Exit codes: 0 the job succeeded; 1 it ran and failed (the preflight refused, a check
failed, rows were quarantined); 2 the command line is wrong and no run was started: an
unknown option or choice, a missing argument (argparse), a SOURCE that is not a file, a
DSN that does not parse, a ``--skip-table`` SOURCE does not have, an unreadable or
invalid rules or config file (validated as the
run validates its config: the file and the key are named), a bad CONSOLEAI_* variable or
DAGSTER_HOME. Each of those is one line on stderr; whatever else is wrong with the source
or the server is the preflight's to find, in the run, with exit 1: an option naming a table
or column the source does not have among them, named by the file (and rule) it came from.
130: interrupted (Ctrl-C), one line saying what the run left behind (``cli.interrupts``).
"""

from __future__ import annotations

import argparse
import gc
import os
import sqlite3
import sys
from contextlib import closing
from importlib.metadata import version
from pathlib import Path
from typing import NoReturn

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from consoleai_etl.cli.entry import INTERRUPTED
from consoleai_etl.cli.job import JOBS, JobRequest, RunInterrupted, UsageError, run
from consoleai_etl.cli.options import Origins, config_file
from consoleai_etl.core.errors import MigrationError, OptionError, Spelling, config_key
from consoleai_etl.core.plan.merge_plan import ON_CONFLICT
from consoleai_etl.core.plan.rules import ORPHAN_POLICIES
from consoleai_etl.core.plan.skip import unknown_tables
from consoleai_etl.core.run.pipeline import MODES
from consoleai_etl.core.run.preflight import start_source_reads
from consoleai_etl.core.source.catalog import introspect
from consoleai_etl.core.source.connection import open_source
from consoleai_etl.core.target.postgres import redact
from consoleai_etl.definitions import build_job
from consoleai_etl.defs.settings import RULES_OPTION, RUN_OPTIONS, checked_settings, rules_file

PROG = "consoleai-etl"


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (its default prints the usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


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


def settings_config(args: argparse.Namespace) -> tuple[dict[str, object], Origins]:
    """The ``settings`` resource's run config: the ``--config`` file's options, overridden
    by what the flags set, and only those, so an option left out still falls back to its
    CONSOLEAI_* variable, as in any run; and where each came from. Raises ``UsageError``
    for a SOURCE, DSN, config or rules file that cannot be used."""
    if not args.source.is_file():
        what = "is a directory" if args.source.is_dir() else "does not exist"
        raise UsageError(f"SOURCE {args.source} {what}: name the legacy SQLite file")
    options, under = config_file(args.config) if args.config else ({}, ())
    flags = {
        name: value for name in RUN_OPTIONS if (value := getattr(args, name, None)) is not None
    }
    flags |= {"sqlite_path": str(args.source), "pg_dsn": without_password(args.dsn)}
    if args.skip_tables:
        check_skipped(args.source, args.skip_tables)
    if args.rules:
        try:
            rules = rules_file(args.rules)
        except MigrationError as exc:
            raise UsageError(str(exc)) from None
        flags[RULES_OPTION] = [rule.model_dump(exclude_defaults=True) for rule in rules]
    # A flag wins over the file: a problem with its option is not the file's.
    origins = Origins(args.config, under, frozenset(options) - set(flags), args.rules)
    return {**options, **flags}, origins


def check_skipped(source: Path, names: list[str]) -> None:
    """Every ``--skip-table`` is a table of SOURCE (the run's preflight would refuse it too,
    in the words of its config: ``skip_tables``). A SOURCE that cannot be read is left to
    the preflight, which says what is wrong with it."""
    try:
        with closing(open_source(source)) as src:
            tables = [t.name for t in introspect(src).tables]
    except (MigrationError, sqlite3.Error):
        return
    if problem := unknown_tables(tables, names, "--skip-table"):
        raise UsageError(problem)


# The URI schemes libpq takes; any other (mysql://, sqlite://) is some other database's.
PG_SCHEMES = ("postgresql", "postgres")


def without_password(dsn: str) -> str:
    """``dsn`` without its password, which goes to libpq as PGPASSWORD for this process:
    Dagster stores a run's config, and the password must not be in it."""
    scheme, uri, _ = dsn.partition("://")
    if uri and scheme.casefold() not in PG_SCHEMES:
        raise UsageError(
            f"POSTGRES_DSN {redact(dsn)}: {scheme}:// is not a PostgreSQL address: "
            "use postgresql://user@host:5432/dbname"
        )
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise UsageError(f"POSTGRES_DSN {redact(dsn)}: {redact(str(exc))}") from None
    password = params.pop("password", None)
    if password is not None:
        os.environ["PGPASSWORD"] = str(password)
    return make_conninfo(**params)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config, origins = settings_config(args)
        job = JOBS[args.command]
        try:  # as the run will check them; the resource then resolves the variables
            settings = checked_settings(build_job(str(args.source), job), config).to_config()
        except OptionError as exc:
            raise UsageError("; ".join(describe(origins, exc))) from None
        request = JobRequest(
            job, args.source, config, Path(settings.report_dir), origins.describe, spelling()
        )
        # On the idle core while Dagster starts the run.
        start_source_reads(args.source, merge=settings.mode == "merge")
        return run(request, interactive=sys.stdout.isatty())
    except (UsageError, MigrationError) as exc:
        print(f"{PROG} {args.command}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except RunInterrupted as exc:
        print(f"{PROG} {args.command}: interrupted: {exc}", file=sys.stderr)
        return INTERRUPTED
    except KeyboardInterrupt:  # outside the run: before Dagster started it, or after
        print(f"{PROG} {args.command}: interrupted, no run in progress", file=sys.stderr)
        return INTERRUPTED


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


def describe(origins: Origins, error: OptionError) -> list[str]:
    """Each problem of ``error`` named by the file its option came from, if any."""
    return [
        origins.describe(problem) or said
        for problem, said in zip(error.problems, error.said, strict=True)
    ]


def command() -> NoReturn:
    """The console script: ``main``, then exit without the interpreter's last garbage
    collections. Dagster leaves about a million objects behind, and traversing them at
    shutdown took 0.5 to 1 s after the summary was printed (measured; see docs/performance.md,
    "Start-up"). Everything the run opened is closed by then; ``gc.freeze`` only spares the
    collector a walk through objects the process is about to drop anyway."""
    try:
        code = main()
    except KeyboardInterrupt:  # while the arguments were read, before main's own handling
        print(f"{PROG}: interrupted, no run in progress", file=sys.stderr)
        code = INTERRUPTED
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    command()
