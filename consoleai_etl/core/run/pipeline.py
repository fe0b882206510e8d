"""The migration's steps as plain functions: stage a table, verify a table, finalize the run.

The Dagster layer calls these (one asset step per table, one report step); they are also
usable without Dagster. Every expected failure ends up in the returned reports, never as an
exception, so the final report is always written.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, closing, nullcontext
from copy import deepcopy
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal, get_args

import psycopg
from psycopg import sql

from consoleai_etl.core.encode.tuples import MOD
from consoleai_etl.core.errors import MigrationError
from consoleai_etl.core.plan.merge_order import deferred_keys, write_order
from consoleai_etl.core.plan.merge_plan import MergeOptions, MergePlan, TableMerge
from consoleai_etl.core.plan.names import pg_identifier
from consoleai_etl.core.plan.planner import plan_source
from consoleai_etl.core.plan.rules import ORPHAN_POLICIES, CastingRule, OrphanPolicy
from consoleai_etl.core.plan.table_plan import TablePlan
from consoleai_etl.core.run import interrupt
from consoleai_etl.core.run.load import LoadOptions, load_table
from consoleai_etl.core.run.progress import (
    CHECKS,
    MERGE,
    PROMOTION,
    TableFinished,
    phase,
    publish,
    waiting,
)
from consoleai_etl.core.run.report import (
    FAILURE,
    CheckReport,
    MigrationReport,
    SkippedTable,
    TableReport,
    decide,
    divergences,
)
from consoleai_etl.core.run.sessions import Pair, Sessions, connections
from consoleai_etl.core.source.catalog import ForeignKey, Table, introspect
from consoleai_etl.core.source.connection import open_source
from consoleai_etl.core.source.snapshot import Snapshot, SourceChanged
from consoleai_etl.core.target import bookkeeping, seeded
from consoleai_etl.core.target.constraints import Link, settle_cycle
from consoleai_etl.core.target.ddl import qualified
from consoleai_etl.core.target.locks import LockPolicy, lock_tables, waiting_for_locks
from consoleai_etl.core.target.merge import (
    differences,
    merge_table,
    merged_orphans,
    move_sequences,
    prove_merged,
    recorded_unchanged,
)
from consoleai_etl.core.target.postgres import CannotConnect, connect, connection_lost, redact
from consoleai_etl.core.target.promote import Promotion, promote
from consoleai_etl.core.target.staging import Staging
from consoleai_etl.core.verify.checksum import Checksum, quarantined_keys
from consoleai_etl.core.verify.registry import CheckContext, run_checks

# The one list of modes: the Dagster config schema is built from it.
Mode = Literal["replace", "merge"]
MODES: tuple[Mode, ...] = get_args(Mode)


@dataclass(frozen=True)
class MigrationConfig:
    sqlite_path: str
    pg_dsn: str
    target_schema: str = "public"
    report_dir: str = "reports"
    dry_run: bool = False
    allow_divergence: bool = False
    mode: Mode = "replace"
    orphans: OrphanPolicy = "quarantine"
    casting_rules: tuple[CastingRule, ...] = ()
    replace_existing: bool = False  # may drop same-named relations no earlier run promoted
    merge: MergeOptions = field(default_factory=MergeOptions)
    merge_plan: MergePlan | None = None  # merge mode: set by the preflight, from the target
    # Both modes (so not in MergeOptions): source tables left out, and the migration-history
    # tables migrated anyway (``core.plan.skip``).
    skip_tables: tuple[str, ...] = ()
    migrate_history_tables: tuple[str, ...] = ()
    skipped: tuple[SkippedTable, ...] = ()  # set by the preflight: what the run leaves out
    # Waiting for the application (docs/reliability.md): one lock wait, all of a
    # transaction's lock waits, and the window for reconnecting after a lost connection.
    lock_timeout_seconds: float = 3.0
    lock_wait_seconds: float = 120.0
    retry_seconds: float = 30.0

    def __post_init__(self) -> None:
        for name in ("lock_timeout_seconds", "lock_wait_seconds", "retry_seconds"):
            if not getattr(self, name) > 0:
                raise MigrationError(
                    f"{name} must be a positive number of seconds (got {getattr(self, name)!r})"
                )
        if self.mode not in MODES:
            raise MigrationError(f"unknown mode {self.mode!r}: use one of {', '.join(MODES)}")
        if self.orphans not in ORPHAN_POLICIES:
            raise MigrationError(
                f"unknown orphans policy {self.orphans!r}: use one of {', '.join(ORPHAN_POLICIES)}"
            )

    def skipping(self, table: str) -> SkippedTable | None:
        """How the run leaves source table ``table`` out, or None when it migrates it."""
        return next((s for s in self.skipped if s.table == table), None)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _connections(
    config: MigrationConfig, sessions: Sessions | None = None
) -> AbstractContextManager[Pair]:
    """The staging thread's kept connections (``sessions``), else new ones for this use."""
    return sessions.use() if sessions else connections(config.sqlite_path, config.pg_dsn)


def prepare_staging(config: MigrationConfig, run_id: str) -> None:
    """Once per run, before its first table is staged: the bookkeeping schema exists and
    the staged tables of dead runs are gone (``Staging.drop_stale``; once, not per table:
    it lists every staged table, so per table it grew with the number of tables)."""
    with connect(config.pg_dsn) as pg:
        bookkeeping.ensure_bookkeeping(pg)
        with pg.transaction():
            Staging(run_id).drop_stale(pg)


def _one_line(exc: BaseException) -> str:
    return redact(" ".join(str(exc).split())) or type(exc).__name__


def _source_table(src: sqlite3.Connection, table: Table) -> None:
    found = src.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table.name,)
    ).fetchone()
    if not found:
        raise MigrationError(
            f"table {table.name} is not in the source any more: reload the code location "
            "so the asset graph matches the SQLite file"
        )


def _merged(config: MigrationConfig, table: Table) -> TableMerge | None:
    """How ``table`` merges into the application's table, or None (replace mode, or a
    table the merge leaves out)."""
    return config.merge_plan.tables.get(table.name) if config.merge_plan else None


def _load_options(config: MigrationConfig, table: Table) -> LoadOptions:
    """The table's load options. In merge mode: a casting rule per column choosing the
    target's type, ahead of the user's rules; no non-unique index and no default on a
    table only merged from, and no column computed by PostgreSQL (``target.generated``)."""
    merge = _merged(config, table)
    if merge is None:
        return LoadOptions(config.casting_rules, config.orphans)
    return LoadOptions(
        (*merge.rules(), *config.casting_rules),
        config.orphans,
        indexes=False,
        defaults=False,
        generated=False,
    )


# Seconds before each new attempt after a lost connection: doubling, then every 8 s, for as
# long as the run's ``retry_seconds`` allow (counted from the first loss).
RETRY_BACKOFF = (1.0, 2.0, 4.0, 8.0)

_FAILURES = (MigrationError, psycopg.Error, sqlite3.Error, OSError)


def stage_table(
    config: MigrationConfig,
    table: Table,
    run_id: str,
    *,
    deferred: tuple[ForeignKey, ...] = (),
    progress: Callable[[int, int], None] | None = None,
    before_foreign_keys: Callable[[], object] | None = None,
    streaming: AbstractContextManager | None = None,
    sessions: Sessions | None = None,
) -> TableReport:
    """Load ``table`` into the run's staging and check it there. In merge mode its
    columns are staged as the target's types (``_merge_options``). ``sessions``: the
    staging thread's connections (else the table opens its own)."""
    loading = Loading(deferred, progress, before_foreign_keys, streaming, sessions)
    report, plan = _load(config, table, run_id, loading)
    if plan is not None:
        _check(config, report, plan, run_id, sessions)
    return report


def stage_cycle(
    config: MigrationConfig,
    tables: Sequence[Table],
    run_id: str,
    *,
    progress: Callable[[str], Callable[[int, int], None]] | None = None,
    before_foreign_keys: Callable[[], object] | None = None,
    streaming: AbstractContextManager | None = None,
    sessions: Sessions | None = None,
) -> list[TableReport]:
    """Merge mode: stage the tables of one foreign-key cycle (or one table referencing
    itself) as one unit, in load order. Each is loaded without the keys between them; once
    all are staged, those keys are settled together against the staged rows and the
    application's (``constraints.settle_cycle``: a quarantined orphan takes the rows
    depending on it along), and only then is each table checked. So the key that closes
    the cycle is asked once both of its tables are staged, never of half of it."""
    names = {t.name for t in tables}
    loaded = []
    for table in tables:
        within = tuple(fk for fk in table.foreign_keys if fk.ref_table in names)
        each = progress and progress(table.name)
        loading = Loading(within, each, before_foreign_keys, streaming, sessions)
        loaded.append(_load(config, table, run_id, loading))
    reports = [report for report, _ in loaded]
    plans = {report.table: plan for report, plan in loaded if plan is not None}
    if len(plans) == len(tables):
        failed = _settle(config, run_id, plans, reports)
        if failed:
            for report in reports:
                report.error = (
                    f"foreign keys of cycle {', '.join(sorted(names))} not settled: {failed}"
                )
            plans = {}
    elif plans:
        for report in reports:
            report.error = report.error or "not checked: another table of its cycle failed"
        plans = {}
    for report in reports:
        if report.table in plans:
            _check(config, report, plans[report.table], run_id, sessions)
    return reports


def _settle(
    config: MigrationConfig,
    run_id: str,
    plans: dict[str, TablePlan],
    reports: list[TableReport],
) -> str | None:
    """The cycle's keys, settled in staging; each table's counts and streamed checksum
    less the rows it quarantined. Returns the failure, None when settled."""
    assert config.merge_plan is not None
    links = [Link(plan, fk) for plan in plans.values() for fk in plan.table.foreign_keys]
    links = [link for link in links if link.fk.ref_table in plans]
    try:
        with connect(config.pg_dsn) as pg, pg.transaction():
            warnings, removed = settle_cycle(
                pg, links, Staging(run_id), config.merge_plan,
                orphans=config.orphans, run_id=run_id,
            )  # fmt: skip
    except (MigrationError, psycopg.Error) as exc:
        return _one_line(exc)
    for report in reports:
        gone = removed.get(report.table)
        report.warnings += [w for w in warnings if w.startswith(f"foreign key {report.table}(")]
        if gone and gone.rows:
            report.loaded_rows = (report.loaded_rows or 0) - gone.rows
            report.quarantined_rows = (report.quarantined_rows or 0) + gone.rows
            report.checksum = f"{(int(report.checksum, 16) - gone.hash_sum) % MOD:016x}"
    return None


def _retried(
    config: MigrationConfig,
    table: str | None,
    attempt: Callable[[], None],
    retries: list[str],
) -> str | None:
    """Run ``attempt`` for ``table`` (None: the run's own work); None when it succeeded,
    else why not, in one line. A lost connection rolls its transaction back on the
    server, so it simply runs again, after a pause (``RETRY_BACKOFF``), as long as the next
    attempt starts within ``config.retry_seconds`` of the first loss of the series (an
    attempt that worked longer than that before it lost its connection starts a new
    series); each loss is noted in ``retries`` and said on screen (``waiting``). A server
    restarting refuses new connections meanwhile (``CannotConnect``): a loss too. Any
    other error is not retried: it would fail the same way again."""
    first_loss, losses = 0.0, 0  # of the current series of losses
    while True:
        started = time.monotonic()
        try:
            attempt()
            return None
        except _FAILURES as exc:
            if not connection_lost(exc):
                return _one_line(exc)
            reason = exc.reason if isinstance(exc, CannotConnect) else _one_line(exc)
            now = time.monotonic()
            if not losses or now - started > config.retry_seconds:  # a new series
                first_loss, losses = now, 0
            pause = RETRY_BACKOFF[min(losses, len(RETRY_BACKOFF) - 1)]
            losses += 1
            if now - first_loss + pause > config.retry_seconds:
                return (
                    f"lost the connection to PostgreSQL {losses} times in "
                    f"{now - first_loss:.0f} s (retry_seconds: {config.retry_seconds:g}), "
                    f"last: {reason}"
                )
            retries.append(f"attempt {len(retries) + 1} lost its connection ({reason})")
            waiting(table, f"lost the connection ({reason}): trying again in {pause:g} s")
            interrupt.pause(pause)


@dataclass(frozen=True)
class Loading:
    """How a stager loads one table: without the foreign keys in ``deferred``; ``progress``
    of its rows; ``before_foreign_keys`` waits for its parents' keys; ``streaming`` is the
    turn to stream its rows (``stager.Turn``); ``sessions`` the thread's connections."""

    deferred: tuple[ForeignKey, ...] = ()
    progress: Callable[[int, int], None] | None = None
    before_foreign_keys: Callable[[], object] | None = None
    streaming: AbstractContextManager | None = None
    sessions: Sessions | None = None


def _load(
    config: MigrationConfig, table: Table, run_id: str, loading: Loading
) -> tuple[TableReport, TablePlan | None]:
    """Load ``table`` into staging (its report: counts, columns, warnings, the streamed
    checksum); the plan it was loaded with, None when it failed."""
    options = replace(
        _load_options(config, table),
        deferred=loading.deferred,
        before_foreign_keys=loading.before_foreign_keys,
        streaming=loading.streaming or nullcontext(),
    )
    report = TableReport(table=table.name, target_table=pg_identifier(table.name))
    plans: list[TablePlan] = []
    retries: list[str] = []
    report.error = _retried(
        config, table.name,
        lambda: plans.append(_load_once(config, table, run_id, options, loading, report)),
        retries,
    )  # fmt: skip
    report.warnings = [f"loaded again: {r}" for r in retries] + report.warnings
    return report, None if report.error else plans[-1]


def _load_once(
    config: MigrationConfig,
    table: Table,
    run_id: str,
    options: LoadOptions,
    loading: Loading,
    report: TableReport,
) -> TablePlan:
    with _connections(config, loading.sessions) as (src, pg):
        _source_table(src, table)
        plan, result = load_table(
            src,
            pg,
            table,
            schema=Staging(run_id),
            target_schema=config.target_schema,
            run_id=run_id,
            options=options,
            progress=loading.progress,
        )
    report.source_rows = result.source_rows
    report.loaded_rows = result.loaded_rows
    report.quarantined_rows = result.quarantined_rows
    report.seconds = round(result.seconds, 3)
    report.keys_seconds = round(result.keys_seconds, 3)
    report.foreign_keys_seconds = round(result.foreign_keys_seconds, 3)
    report.load_window = [round(t, 3) for t in result.window]
    report.rows_per_second = round(result.rows_per_second, 1)
    report.warnings = result.warnings
    report.columns = [
        {
            "name": c.source,
            "target_name": c.name,
            "declared_type": c.declared_type,
            "observed": c.observed,
            "pg_type": c.pg_type.sql,
            "not_null": c.not_null,
            "reason": c.reason,
            "widened": c.widened,
            "default": c.default_plan,
        }
        for c in plan.columns
    ]
    report.checksum = f"{result.checksum:016x}"
    report.checksum_seconds = round(result.checksum_seconds, 3)
    return plan


def _check(
    config: MigrationConfig,
    report: TableReport,
    plan: TablePlan,
    run_id: str,
    sessions: Sessions | None = None,
) -> None:
    """The staged table's quarantine summary and checks, against the streamed counts and
    checksum its report holds."""
    staging = Staging(run_id)
    table = plan.table

    def attempt() -> None:
        with _connections(config, sessions) as (src, pg):
            report.quarantine_sample = bookkeeping.quarantine_sample(pg, run_id, table.name)
            report.quarantine_reasons = bookkeeping.quarantine_reasons(pg, run_id, table.name)
            context = CheckContext(
                src,
                pg,
                plan,
                config.orphans,
                schema=staging,
                parent_schemas=(staging, config.target_schema),
                source_rows=report.source_rows or 0,
                quarantined=report.quarantined_rows or 0,
                expected=Checksum(report.loaded_rows or 0, int(report.checksum, 16)),
                exclude=quarantined_keys(pg, plan, run_id),
                merge=config.merge_plan,
            )
            phase(table.name, CHECKS)
            started = time.perf_counter()
            report.checks = run_checks(context)
            report.check_seconds = round(time.perf_counter() - started, 3)

    retries: list[str] = []
    report.error = _retried(config, table.name, attempt, retries)
    report.warnings += [f"checked again: {r}" for r in retries]


def verify_table(config: MigrationConfig, table: Table, run_id: str) -> TableReport:
    """Check the target schema's copy of ``table`` against the source; loads nothing into
    the target (in merge mode, see ``_verify_merged``). Its report is published too."""
    if _merged(config, table) is not None:
        report = _verify_merged(config, table, run_id)
    else:
        phase(table.name, CHECKS)
        report = _verify_in_place(config, table)
    publish(TableFinished(report))
    return report


def _verify_in_place(config: MigrationConfig, table: Table) -> TableReport:
    """Replace mode's re-verification: the checks, run on the target schema's table."""
    report = TableReport(table=table.name, target_table=pg_identifier(table.name))
    try:
        with _connections(config) as (src, pg):
            _source_table(src, table)
            last_run = bookkeeping.last_promoted_run(pg, config.target_schema)
            report.quarantine_reasons = (
                bookkeeping.quarantine_reasons(pg, last_run, table.name) if last_run else []
            )
            report.quarantined_rows = sum(int(r["rows"]) for r in report.quarantine_reasons)
            # The load's own planner, so declared_types gives the answer the load gave.
            plan = plan_source(src, table, config.casting_rules)
            report.source_rows = plan.source_rows
            context = CheckContext(
                src,
                pg,
                plan,
                config.orphans,
                schema=config.target_schema,
                parent_schemas=(config.target_schema,),
                source_rows=plan.source_rows,
                quarantined=report.quarantined_rows,
                expected=None,
                exclude=quarantined_keys(pg, plan, last_run),
            )
            started = time.perf_counter()
            report.checks = run_checks(context)
            report.check_seconds = round(time.perf_counter() - started, 3)
    except (MigrationError, psycopg.Error, sqlite3.Error, OSError) as exc:
        report.error = _one_line(exc)
    return report


def _verify_merged(config: MigrationConfig, table: Table, run_id: str) -> TableReport:
    """Merge mode's re-verification, which follows the merge's mapping: the source is staged
    as a merge stages it (its checks prove staging = source), then the application's table
    must hold every staged row with equal values (its ``checksum`` check, naming the first
    keys it does not hold and how they differ, as replace mode's does) and the source's
    foreign keys must hold there for those rows (its ``foreign_keys`` check); the
    application's own rows are counted, never a failure, and so are the rows it changed since
    the last merge while the source did not (the staged row is the one that merge recorded):
    a merge keeps them. The staged table is dropped."""
    assert config.merge_plan is not None
    merge = config.merge_plan.tables[table.name]
    # Orphans kept in staging: whether the foreign keys hold is asked of the target.
    verifying = replace(config, orphans="keep")
    staging = Staging(run_id)
    try:
        refs, parents = _stage_seeded_parents(verifying, table, run_id)
    except (MigrationError, psycopg.Error, sqlite3.Error) as exc:
        return TableReport(table.name, pg_identifier(table.name), error=_one_line(exc))
    report = stage_table(verifying, table, run_id)
    if report.error:
        return report
    try:
        with connect(config.pg_dsn) as pg:
            seeded.translate(pg, config.merge_plan, staging, refs, [*parents, table.name])
            for parent in parents:
                staged = config.merge_plan.tables[parent].staged
                pg.execute(sql.SQL("DROP TABLE {}").format(qualified(staging, staged)))
            kept = recorded_unchanged(pg, merge)
            proof = prove_merged(pg, merge, staging, kept)
            found = differences(pg, merge, staging, kept) if proof.not_held else []
            orphans = merged_orphans(pg, config.merge_plan, merge, table.foreign_keys, staging)
            pg.execute(sql.SQL("DROP TABLE {}").format(qualified(staging, merge.staged)))
    except (MigrationError, psycopg.Error) as exc:
        report.error = _one_line(exc)
        return report
    target = f"{merge.target.schema}.{merge.target.name}"
    kept = kept_rows({"kept_application_changes": proof.kept, "conflicts": 0})
    proof_check = CheckReport(
        "checksum",
        not proof.not_held,
        f"every source row is in {target} with equal values{kept} ({proof.extra} rows of the "
        "target are not in the source)"
        if not proof.not_held
        else f"{proof.not_held} source rows are not in {target} with equal values: "
        f"{divergences(found)}",
        {
            "not_in_target": proof.not_held,
            "kept_application_changes": proof.kept,
            "extra_in_target": proof.extra,
            **({"divergent_keys": found} if found else {}),
        },
    )
    missing = sum(orphans.values())
    links = CheckReport(
        "foreign_keys",
        not missing,
        f"every foreign key of the source's rows holds in {target}"
        if not missing
        else f"{missing} of the source's rows in {target} point at no parent row: "
        + ", ".join(f"{fk}: {n}" for fk, n in orphans.items() if n),
        {"orphans": orphans},
    )
    merged = {"checksum": proof_check, "foreign_keys": links}
    report.checks = [merged.get(c.name, c) for c in report.checks]
    return report


def _stage_seeded_parents(
    config: MigrationConfig, table: Table, run_id: str
) -> tuple[list[seeded.Reference], list[str]]:
    """Verifying a table that is seeded or holds a seeded table's ids follows the merge's
    mapping, which is made from the seeded tables' source rows: those ``table`` needs
    (``seeded.needed``), other than itself, are staged first. Returns the references to
    seeded tables and those staged tables."""
    plan = config.merge_plan
    assert plan is not None
    if not any(m.surrogate for m in plan.tables.values()):
        return [], []
    with closing(open_source(config.sqlite_path)) as src:
        catalog = introspect(src)
    with connect(config.pg_dsn) as pg:
        refs = seeded.references(pg, plan, catalog.tables)
    parents = [name for name in seeded.needed(plan, refs, table.name) if name != table.name]
    for parent in parents:
        staged = stage_table(config, catalog.table(parent), run_id)
        if staged.error:
            raise MigrationError(
                f"seeded table {parent}, staged to map the ids {table.name} holds: {staged.error}"
            )
    return refs, parents


NO_SNAPSHOT = "no run-wide snapshot: each table was read when its step ran (separate processes)"


def finalize(
    config: MigrationConfig,
    report: MigrationReport,
    promotion: Promotion | None = None,
    snapshot: Snapshot | None = None,
) -> MigrationReport:
    """Decide the verdict, promote (when a promotion is given and allowed) and record the
    run in ``consoleai_etl.runs``, where the report step reads it to write the files. The
    consistency job passes no promotion: it only verifies. A source
    that ``snapshot`` finds written to since the run started fails the run right before
    the promotion, when every table has been read. A lost connection (a server restart)
    is retried as a table's is (``_retried``): the report as it was before, unless the
    lost attempt's COMMIT had reached the server, as its recorded run says."""
    decide(report)
    report.source_snapshot = snapshot.method if snapshot else NO_SNAPSHOT
    if snapshot:
        try:
            snapshot.check_unchanged()
        except SourceChanged as exc:
            report.fail(str(exc))
    staging = Staging(report.run_id)
    before = deepcopy(report)
    retries: list[str] = []

    def attempt() -> None:
        with connect(config.pg_dsn) as pg:
            bookkeeping.ensure_bookkeeping(pg)
            if retries and bookkeeping.recorded_report(pg, [report.run_id]) is None:
                vars(report).update(vars(deepcopy(before)))  # the lost attempt rolled back
                report.warnings += [f"promotion and record tried again: {r}" for r in retries]
            elif retries:  # its COMMIT reached the server before the connection went
                _drop_staging(pg, staging, report, config, promotion)
                return
            if promotion:
                report.compare_with(
                    bookkeeping.previous_report(pg, config.target_schema, report.run_id)
                )
            if promotion and report.status != FAILURE and config.mode == "merge":
                phase(None, MERGE)
                _merge(pg, config, report, promotion)
            elif promotion and report.status != FAILURE and not config.dry_run:
                phase(None, PROMOTION)
                _promote(pg, config, report, promotion)
            if not report.promoted:
                with pg.transaction():
                    _record(pg, report)
            _drop_staging(pg, staging, report, config, promotion)

    if error := _retried(config, None, attempt, retries):
        report.recorded = report.recorded and report.promoted  # a promotion committed it
        report.fail(f"could not record the run: {error}")
    return report


def _drop_staging(
    pg: psycopg.Connection,
    staging: Staging,
    report: MigrationReport,
    config: MigrationConfig,
    promotion: Promotion | None,
) -> None:
    """The run's staged tables, dropped once they are of no more use: promoted or merged,
    a dry run, a verification (no promotion). A failed run keeps them for inspection,
    until the next run."""
    if report.promoted or config.dry_run or promotion is None:
        with pg.transaction():
            staging.drop(pg)


def _waiting_for_locks(
    pg: psycopg.Connection,
    config: MigrationConfig,
    attempt: Callable[[LockPolicy], None],
    what: str,
) -> None:
    """``attempt`` (the promotion's or the merge's transaction) with ``locks``' bounded
    waits; each wait said on screen, a stop request honoured between attempts."""
    policy = LockPolicy(config.lock_timeout_seconds, config.lock_wait_seconds)
    waiting_for_locks(
        pg, config.pg_dsn, policy, attempt,
        lambda reason: waiting(None, reason), what, pause=interrupt.pause,
    )  # fmt: skip


def _promote(
    pg: psycopg.Connection, config: MigrationConfig, report: MigrationReport, promotion: Promotion
) -> None:
    """Replace mode: the staged tables swapped into the target and the views proven, in
    ONE transaction with the run's record; it first takes the tables it replaces, with
    bounded waits (``locks``). A stop request before its COMMIT rolls it back."""
    warnings = list(report.warnings)

    def attempt(locks: LockPolicy) -> None:
        with pg.transaction(), closing(open_source(config.sqlite_path)) as src:
            report.promoted = True
            promoted, views = promote(
                pg, src, report.run_id, config.target_schema, promotion,
                replace_existing=config.replace_existing, locks=locks,
            )  # fmt: skip
            report.warnings = warnings + promoted
            report.views = [asdict(v) for v in views]
            decide(report)  # again, now that the views are known
            _record(pg, report)
            interrupt.check()

    try:
        _waiting_for_locks(pg, config, attempt, PROMOTION)
    except (MigrationError, psycopg.Error) as exc:
        if connection_lost(exc):  # finalize reconnects: rolled back, or committed
            raise
        report.promoted = report.recorded = False
        report.views = []
        report.warnings = warnings
        report.fail(f"promotion failed, target unchanged: {_one_line(exc)}")


def _merge(
    pg: psycopg.Connection, config: MigrationConfig, report: MigrationReport, promotion: Promotion
) -> None:
    """Merge mode's place of the promotion: every staged table merged into its existing
    target table, in the order the application's foreign keys need (``merge_order``: its
    DEFERRABLE keys between them deferred and checked once all are written), in ONE
    transaction with the run's record; a failure
    anywhere rolls all of it back. A dry run rehearses the same transaction, counts
    included, and rolls it back."""
    plan = config.merge_plan
    if plan is None:
        raise MigrationError("merge mode without a merge plan: the preflight makes one")
    staging = Staging(report.run_id)
    by_name = {t.table: t for t in report.tables}
    order = write_order(plan.tables, [t.name for t in promotion.tables])
    tables = sorted(promotion.tables, key=lambda t: order.index(t.name))
    deferred = deferred_keys(plan.tables)
    targets = [plan.tables[t.name].target for t in tables]
    locked = [sql.Identifier(target.schema, target.name) for target in targets]

    def attempt(locks: LockPolicy) -> None:
        with pg.transaction(force_rollback=config.dry_run):
            # Writing takes ROW EXCLUSIVE; waiting for it (a session holding SHARE or more)
            # would queue the application's next writers behind this transaction.
            lock_tables(pg, locked, "ROW EXCLUSIVE", locks)
            refs = seeded.references(pg, plan, promotion.catalog.tables)
            names = [t.name for t in promotion.tables]
            translated = seeded.translate(pg, plan, staging, refs, names)
            if deferred is not None:  # checked once every table is written, below
                pg.execute(sql.SQL("SET CONSTRAINTS {} DEFERRED").format(deferred))
            for table in tables:
                merged = by_name[table.name]
                merged.merge = merge_table(
                    pg,
                    plan.tables[table.name],
                    staging,
                    plan.on_conflict,
                    merged.loaded_rows or 0,
                    report.run_id,
                    record=not config.dry_run,
                )
                if table.name in translated:
                    merged.merge["seeded"] = translated[table.name]
                if not config.dry_run:
                    _proven_in_target(merged, plan.tables[table.name])
            if deferred is not None:  # a key still unmet fails here, naming itself
                pg.execute(sql.SQL("SET CONSTRAINTS {} IMMEDIATE").format(deferred))
            interrupt.check()
            for table in tables:  # last: a rollback does not undo setval
                moved = move_sequences(pg, plan.tables[table.name], apply=not config.dry_run)
                if moved:
                    by_name[table.name].merge["sequences_moved"] = moved  # type: ignore[index]
            decide(report)  # again, now that the conflicts are known
            if not config.dry_run:
                report.promoted = True
                _record(pg, report)

    try:
        _waiting_for_locks(pg, config, attempt, MERGE)
    except (MigrationError, psycopg.Error) as exc:
        if connection_lost(exc):  # finalize reconnects: rolled back, or committed
            raise
        report.promoted = report.recorded = False
        for table_report in report.tables:
            table_report.merge = None
        report.fail(f"merge failed, target unchanged: {_one_line(exc)}")


def _proven_in_target(report: TableReport, merge: TableMerge) -> None:
    """The table's checksum check, after ``merge_table`` proved the target holds every staged
    row with equal values, but those it kept on purpose (it raises otherwise): its
    description says so, and how many rows were kept and why; its metadata carries those
    counts and the rows the target has beyond the source's."""
    if report.merge is None:
        return
    target = f"{merge.target.schema}.{merge.target.name}"
    counts = report.merge
    for check in report.checks:
        if check.name == "checksum" and check.passed:
            check.description += f"; merged: every one of them is in {target} with equal values"
            check.description += kept_rows(counts)
            for name in ("extra_in_target", "kept_application_changes", "conflicts"):
                check.metadata[name] = counts[name]


def kept_rows(counts: dict[str, object]) -> str:
    """ ", except N kept ..." naming the rows a merge's ``counts`` say the target kept as the
    application wrote them, and why; "" when it kept none."""
    application = int(counts["kept_application_changes"])  # type: ignore[call-overload]
    conflicts = 0 if counts.get("on_conflict") == "source" else int(counts["conflicts"])  # type: ignore[call-overload]
    why = []
    if application:
        why.append(f"{application:,} the application changed since the last merge")
    if conflicts:
        why.append(f"{conflicts:,} both sides changed (conflicts, on_conflict: target)")
    if not why:
        return ""
    kept = application + conflicts
    return f", except {kept:,} kept as the application wrote them: {'; '.join(why)}"


def _record(pg: psycopg.Connection, report: MigrationReport) -> None:
    report.finished_at = now()
    report.recorded = True  # as the recorded report says; undone if its transaction fails
    bookkeeping.record_run(pg, report)
