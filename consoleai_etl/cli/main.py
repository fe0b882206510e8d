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
from pathlib import Path
from typing import NoReturn

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from consoleai_etl.cli.arguments import JOBS, PROG, UsageError, spelling
from consoleai_etl.cli.entry import INTERRUPTED
from consoleai_etl.cli.job import JobRequest, RunInterrupted, run
from consoleai_etl.cli.options import Origins, config_file
from consoleai_etl.core.errors import MigrationError, OptionError
from consoleai_etl.core.plan.skip import unknown_tables
from consoleai_etl.core.run.preflight import start_source_reads
from consoleai_etl.core.source.catalog import introspect
from consoleai_etl.core.source.connection import open_source
from consoleai_etl.core.target.postgres import redact
from consoleai_etl.definitions import build_job
from consoleai_etl.defs.settings import (
    RULES_OPTION,
    RUN_OPTIONS,
    checked_settings,
    rules_file,
    target_of,
)


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


def main(args: argparse.Namespace) -> int:
    """Run the command ``args`` (``arguments.parser``'s) asks for; its exit code."""
    try:
        config, origins = settings_config(args)
        job = JOBS[args.command]
        target = target_of(config)
        graph = (str(args.source), job, target.database, target.schema)
        try:  # as the run will check them; the resource then resolves the variables
            settings = checked_settings(build_job(*graph), config).to_config()
        except OptionError as exc:
            raise UsageError("; ".join(describe(origins, exc))) from None
        request = JobRequest(graph, config, Path(settings.report_dir), origins.describe, spelling())
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


def describe(origins: Origins, error: OptionError) -> list[str]:
    """Each problem of ``error`` named by the file its option came from, if any."""
    return [
        origins.describe(problem) or said
        for problem, said in zip(error.problems, error.said, strict=True)
    ]


def command(args: argparse.Namespace) -> NoReturn:
    """The console script, once ``entry`` has read the arguments: ``main``, then exit
    without the interpreter's last garbage collections. Dagster leaves about a million
    objects behind, and traversing them at shutdown took 0.5 to 1 s after the summary was
    printed (measured; see docs/performance.md, "Start-up"). Everything the run opened is
    closed by then; ``gc.freeze`` only spares the collector a walk through objects the
    process is about to drop anyway."""
    try:
        code = main(args)
    except KeyboardInterrupt:  # before main's own handling
        print(f"{PROG}: interrupted, no run in progress", file=sys.stderr)
        code = INTERRUPTED
    gc.freeze()
    sys.exit(code)
