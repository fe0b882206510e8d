"""The one registry of checks: every check's name, what it proves, its severity, the tables
it applies to and how it runs.

The pipeline runs exactly these (``run_checks``), the Dagster layer builds its asset check
specs and results from them, and the report lists their outcomes, so a check added here is
run, shown and judged everywhere at once. The names are an interface (reports, tests and
other tools read them): never rename one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import psycopg

from consoleai_etl.core.plan.merge_plan import MergePlan
from consoleai_etl.core.plan.table_plan import TablePlan
from consoleai_etl.core.run.report import ERROR, WARN, CheckReport
from consoleai_etl.core.source.catalog import Table
from consoleai_etl.core.target.ddl import Place
from consoleai_etl.core.verify import checks
from consoleai_etl.core.verify.checksum import Checksum, Key, check_checksum, target_checksum


@dataclass
class CheckContext:
    """Everything the checks of one table compare: the two databases, the plan the table
    was (or would have been) loaded with, and where and what to compare."""

    src: sqlite3.Connection
    pg: psycopg.Connection
    plan: TablePlan
    orphans: str  # the run's orphan policy (``keep`` lists orphans without failing)
    schema: Place  # where the table is checked: the run's staging, or the target
    parent_schemas: tuple[Place, ...]  # where FK parents are looked up, in order
    source_rows: int
    quarantined: int
    expected: Checksum | None  # the load's streamed checksum; None = recompute from source
    exclude: set[Key]  # keys quarantined after conversion (duplicates, orphans)
    merge: MergePlan | None = None  # merge mode: a parent may be in the application's table
    _stored: Checksum | None = field(default=None, init=False, repr=False)

    @property
    def table(self) -> Table:
        return self.plan.table

    def stored(self) -> Checksum:
        """The target's row count and checksum, in one scan shared by ``row_count`` and
        ``checksum`` (a table's largest cost among its checks: counting apart was a second
        scan of every table)."""
        if self._stored is None:
            self._stored = target_checksum(self.pg, self.plan, self.schema)
        return self._stored


@dataclass(frozen=True)
class Check:
    name: str
    proves: str  # what a pass proves: the check's description in the UI and docs/checks.md
    severity: str  # ERROR: loss or divergence, fails the run; WARN: listed, never blocks
    applies: Callable[[Table], bool]
    run: Callable[[CheckContext], CheckReport]


def _always(_table: Table) -> bool:
    return True


def _row_count(c: CheckContext) -> CheckReport:
    """From the shared scan; a plain ``count(*)`` if hashing the rows fails, so that the
    count still stands beside a failed checksum."""
    try:
        with c.pg.transaction():
            target_rows = c.stored().rows
    except psycopg.Error:
        target_rows = checks.target_row_count(c.pg, c.schema, c.table)
    return checks.check_row_count(c.source_rows, target_rows, c.quarantined)


CHECKS: tuple[Check, ...] = (
    Check(
        "row_count",
        "no row was lost or invented: source rows = rows in the target + rows quarantined "
        "for the table (each kept in consoleai_etl.quarantine with its key and reason)",
        ERROR,
        _always,
        _row_count,
    ),
    Check(
        "checksum",
        "every loaded value equals its source value: a 64-bit hash of each row's binary "
        "record (each column cast to its planned type), summed, equals the sum PostgreSQL "
        "computes over the stored rows; on a difference the columns and keys are located",
        ERROR,
        _always,
        lambda c: check_checksum(c.src, c.pg, c.plan, c.schema, c.expected, c.exclude, c.stored()),
    ),
    Check(
        "not_null",
        "every column NOT NULL (or in the primary key) in the source is NOT NULL in the "
        "target, so PostgreSQL refuses a NULL there as SQLite did",
        ERROR,
        _always,
        lambda c: checks.check_not_null(c.pg, c.schema, c.table),
    ),
    Check(
        "primary_key",
        "the primary key holds in the target: its columns are non-NULL and unique (cited "
        "from a validated PRIMARY KEY constraint, else scanned)",
        ERROR,
        lambda table: bool(table.primary_key),
        lambda c: checks.check_primary_key(c.pg, c.schema, c.table),
    ),
    Check(
        "foreign_keys",
        "every foreign key holds in the target: no row points at a missing parent (cited "
        "from a validated constraint, else searched); the source's own orphans are listed "
        "beside the target's",
        ERROR,
        lambda table: bool(table.foreign_keys),
        lambda c: checks.check_foreign_keys(
            c.src, c.pg, c.table, c.schema, c.parent_schemas, c.orphans, c.quarantined, c.merge
        ),
    ),
    Check(
        "declared_types",
        "every column has the PostgreSQL type its SQLite declaration suggests; a failure is "
        "a warning (the values arrived unchanged) listing each column whose stored values "
        "overruled its declaration: declared type, chosen type and why",
        WARN,
        _always,
        lambda c: checks.check_declared_types(c.plan),
    ),
)


def applicable(table: Table) -> tuple[Check, ...]:
    """The checks that apply to ``table``, in the order they run."""
    return tuple(check for check in CHECKS if check.applies(table))


def run_checks(context: CheckContext) -> list[CheckReport]:
    """Run every check that applies to the table, each in its own transaction (rolled back
    before ``guarded`` turns an error into a failed result, so one broken check never
    hides the others); each result carries its check's name and severity."""

    def run(check: Check) -> CheckReport:
        with context.pg.transaction():
            return check.run(context)

    return [
        replace(
            checks.guarded(check.name, lambda check=check: run(check)),
            name=check.name,
            severity=check.severity,
        )
        for check in applicable(context.table)
    ]
