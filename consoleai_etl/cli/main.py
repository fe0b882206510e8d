"""``consoleai-etl migrate|verify SOURCE.sqlite POSTGRES_DSN [options]``: arguments to exit code.

The command runs the very jobs of the code location (``job.run``), so every option is a
field of the ``settings`` resource put in the run's config, where the web UI shows it.

Exit codes: 0 the job succeeded; 1 it ran and failed (the preflight refused, a check
failed, rows were quarantined); 2 the command line is wrong and no run was started: an
unknown option or choice, a missing argument (argparse), a SOURCE that is not a file, a
DSN that does not parse, an unreadable or invalid rules file, a ``--skip-table`` SOURCE
does not have, a bad CONSOLEAI_* variable or DAGSTER_HOME. Each of those is one line on
stderr; whatever else is wrong with the source or the server is the preflight's to find,
in the run, with exit 1.
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

from consoleai_etl.cli.job import JOBS, JobRequest, UsageError, run
from consoleai_etl.core.errors import MigrationError
from consoleai_etl.core.plan.skip import unknown_tables
from consoleai_etl.core.run.pipeline import MODES
from consoleai_etl.core.run.preflight import start_source_reads
from consoleai_etl.core.source.catalog import introspect
from consoleai_etl.core.source.connection import open_source
from consoleai_etl.core.target.postgres import redact
from consoleai_etl.defs.settings import MigrationSettings, rules_file

PROG = "consoleai-etl"


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (its default prints the usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("source", metavar="SOURCE.sqlite", type=Path, help="legacy SQLite file")
    common.add_argument(
        "dsn", metavar="POSTGRES_DSN", help="target, e.g. postgresql://user@host:5432/db"
    )
    common.add_argument(
        "--schema", help="target schema (default: $CONSOLEAI_TARGET_SCHEMA, else public)"
    )
    common.add_argument(
        "--mode",
        choices=MODES,
        help="replace: the tables this tool created; merge: into the application's existing "
        "tables (default: $CONSOLEAI_MODE, else replace)",
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
        metavar="DIR",
        help="where the report files go (default: $CONSOLEAI_REPORT_DIR, else reports/)",
    )
    top = _Parser(
        prog=PROG,
        description="Migrate a legacy SQLite database into PostgreSQL and prove it, with the "
        "Dagster jobs of consoleai_etl run in this process (recorded in $DAGSTER_HOME's "
        "instance when set). Exit 0: success; 1: the run failed; 2: bad command line.",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    migrate = commands.add_parser(
        "migrate",
        parents=[common],
        help=f"load, check, promote ({JOBS['migrate']})",
        description=f"Load every table into staging, check it, promote when clean, write the "
        f"report ({JOBS['migrate']}).",
    )
    migrate.add_argument(
        "--dry-run", action="store_true", help="load and check in staging, leave the target"
    )
    migrate.add_argument(
        "--allow-divergence",
        action="store_true",
        help="promote and exit 0 even when checks fail or rows are quarantined",
    )
    commands.add_parser(
        "verify",
        parents=[common],
        help=f"re-check what is in PostgreSQL against the source ({JOBS['verify']})",
        description=f"Re-run every table's checks against the target, load nothing "
        f"({JOBS['verify']}).",
    )
    return top


def settings_config(args: argparse.Namespace) -> dict[str, object]:
    """The ``settings`` resource's run config: only what the command line sets, so an
    option left out still falls back to its CONSOLEAI_* variable, as in any run. Raises
    ``UsageError`` for a SOURCE, DSN or rules file that cannot be used."""
    if not args.source.is_file():
        what = "is a directory" if args.source.is_dir() else "does not exist"
        raise UsageError(f"SOURCE {args.source} {what}: name the legacy SQLite file")
    config: dict[str, object] = {
        "sqlite_path": str(args.source),
        "pg_dsn": without_password(args.dsn),
        "target_schema": args.schema,
        "mode": args.mode,
        "report_dir": args.report_dir,
        "dry_run": getattr(args, "dry_run", False) or None,
        "allow_divergence": getattr(args, "allow_divergence", False) or None,
        "skip_tables": args.skip_tables,
    }
    if args.skip_tables:
        check_skipped(args.source, args.skip_tables)
    if args.rules:
        try:
            rules = rules_file(args.rules)
        except MigrationError as exc:
            raise UsageError(str(exc)) from None
        config["casting_rules"] = [rule.model_dump(exclude_defaults=True) for rule in rules]
    return {name: value for name, value in config.items() if value is not None}


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


def without_password(dsn: str) -> str:
    """``dsn`` without its password, which goes to libpq as PGPASSWORD for this process:
    Dagster stores a run's config, and the password must not be in it."""
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
        config = settings_config(args)
        # The resource resolves and checks the variables the options leave to them.
        settings = MigrationSettings(**config).to_config()
        request = JobRequest(JOBS[args.command], args.source, config, Path(settings.report_dir))
        # On the idle core while Dagster starts the run.
        start_source_reads(args.source, merge=settings.mode == "merge")
        return run(request, interactive=sys.stdout.isatty())
    except (UsageError, MigrationError) as exc:
        print(f"{PROG} {args.command}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


def command() -> NoReturn:
    """The console script: ``main``, then exit without the interpreter's last garbage
    collections. Dagster leaves about a million objects behind, and traversing them at
    shutdown took 0.5 to 1 s after the summary was printed (measured; see the README's
    "Start-up"). Everything the run opened is closed by then; ``gc.freeze`` only spares the
    collector a walk through objects the process is about to drop anyway."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    command()
