"""The table assets: one ``multi_asset`` over every table of the source, built the way
Dagster's own integrations build theirs (dagster-sling's ``sling_assets``, dagster-dlt's
``dlt_assets``): a subsettable step that migrates the tables a run selects.

The step stages the selected tables two at a time, checks them, decides the verdict,
promotes them in one transaction and records the run, and only then reports each table: a
``AssetMaterialization`` when its data is in the target, an ``AssetObservation`` when it is
not (a dry run, a failed verdict or promotion: the observation says why), and its
``AssetCheckEvaluation``s; a table the run skips (``skip_tables``, a migration-history table)
gets an ``AssetObservation`` saying so, with its source row count, and no check result.
Doing all of it in one step keeps the lock, the snapshot of the source and the two staging
threads together whatever executor runs it. The step also materializes ``migration_run``,
the run's record in ``consoleai_etl.runs``, which the report asset reads; a table never
materialized still lets the report run.

Run with checks selected and no table (an asset's Checks tab), the step re-verifies those
tables in the target schema and loads nothing.
"""

import functools
import logging
import traceback
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence, Set
from typing import Any

import dagster as dg
from dagster._utils.warnings import disable_dagster_warnings

from consoleai_etl.core.errors import MigrationError, OptionError, OptionProblem, in_words
from consoleai_etl.core.plan.names import pg_identifier
from consoleai_etl.core.run import progress
from consoleai_etl.core.run.interrupt import Interrupted, left_behind
from consoleai_etl.core.run.migration import MigrationPlan, TableToStage, migrate
from consoleai_etl.core.run.pipeline import MigrationConfig, verify_table
from consoleai_etl.core.run.report import MigrationReport, TableReport
from consoleai_etl.core.source.catalog import Table
from consoleai_etl.core.target.postgres import redact
from consoleai_etl.defs.checks import (
    RUN_NAME,
    TABLES_NAME,
    check_events,
    check_specs,
    dagster_metadata,
)
from consoleai_etl.defs.interrupts import stop_at_safe_points
from consoleai_etl.defs.metadata import definition_metadata, table_metadata
from consoleai_etl.defs.report_asset import new_report
from consoleai_etl.defs.settings import MigrationSettings, in_run_config

TABLE_GROUP = "legacy_tables"
PROGRESS_EVERY_SECONDS = 5.0


def guarded_step(
    context: dg.OpExecutionContext, table: Table, step: Callable[[], TableReport]
) -> TableReport:
    """Run a table step; an unexpected exception (a bug) becomes the table's load error, so
    the run still ends with a report instead of a skipped report step."""
    try:
        return step()
    except Exception as exc:
        context.log.error(f"{table.name}: unexpected error\n{traceback.format_exc()}")
        return TableReport(
            table.name,
            pg_identifier(table.name),
            error=f"unexpected {type(exc).__name__}: {redact(str(exc))}",
        )


def checked_config(
    context: dg.OpExecutionContext | dg.AssetExecutionContext,
    settings: MigrationSettings,
    *,
    lock: bool = False,
    verifying: bool = False,
    tables: Collection[str] | None = None,
) -> MigrationConfig:
    """``settings.preflight`` with its one-line error as the step's failure; options it
    refused are in the failure's metadata too (``failed_options``); ``tables``: the step's
    selection, the only tables a merge plans."""
    try:
        return settings.preflight(lock=lock, verifying=verifying, tables=tables)
    except OptionError as exc:
        problems = [
            {"key": list(problem.key), "problem": problem.problem, "said": said}
            for problem, said in zip(exc.problems, exc.said, strict=True)
        ]
        metadata = {OPTION_PROBLEMS: dg.MetadataValue.json(problems)}
        raise dg.Failure(description=str(exc), metadata=metadata, allow_retries=False) from None
    except MigrationError as exc:  # the options it names as run config spells them; the
        # command line spells them again from the template (``cli.job.why_failed``)
        raise dg.Failure(
            description=in_words(exc.template, in_run_config),
            metadata={MESSAGE_TEMPLATE: exc.template},
            allow_retries=False,
        ) from None


MESSAGE_TEMPLATE = "message_template"  # the failure's message, its options not yet spelled


OPTION_PROBLEMS = "option_problems"  # the preflight failure's metadata entry


def failed_options(metadata: Mapping[str, Any]) -> list[tuple[OptionProblem, str]]:
    """The options a preflight failure refused, from its ``metadata``, each with how the
    run said it: a caller who knows where the options came from (the command line: its
    files) can say it in its own words."""
    entry = metadata.get(OPTION_PROBLEMS)
    problems = entry.value if entry is not None else []
    return [(OptionProblem(tuple(p["key"]), p["problem"]), p["said"]) for p in problems]


def make_table_assets(
    plan: MigrationPlan,
    keys: Mapping[str, dg.AssetKey],
    record_key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.AssetsDefinition:
    """The ``legacy_tables`` multi-asset: an asset per table of ``plan`` (its deps follow
    the foreign keys), each with its checks, plus ``migration_run`` (``record_key``).
    ``keys`` are the tables' asset keys by table name (``checks.asset_keys``);
    ``partitions_def``: the environments, when each partition is one
    (``defs.environments``)."""
    specs = [
        dg.AssetSpec(
            keys[t.table.name],
            deps=[keys[parent] for parent in t.parents],
            group_name=TABLE_GROUP,
            kinds={"sqlite", "postgres"},
            description=f"Legacy table `{t.table.name}`, migrated into PostgreSQL and checked.",
            metadata=definition_metadata(t.table),
            skippable=True,
        )
        for t in plan.tables
    ]
    specs.append(
        dg.AssetSpec(
            record_key,
            deps=[keys[t.table.name] for t in plan.tables],
            group_name="migration",
            kinds={"postgres"},
            description="The run's record in consoleai_etl.runs: the tables it staged, their "
            "checks, the verdict and whether they were promoted.",
            skippable=True,
        )
    )

    @dg.multi_asset(
        name=TABLES_NAME,
        specs=specs,
        check_specs=[
            spec for t in plan.tables for spec in check_specs(t.table, keys[t.table.name])
        ],
        can_subset=True,
        partitions_def=partitions_def,
        description="Stage the selected legacy tables, check them, promote them in one "
        "transaction when the verdict allows, and record the run.",
    )
    def legacy_tables(context: dg.AssetExecutionContext, settings: MigrationSettings):
        context.log.addFilter(EVALUATIONS_NOT_OUTPUTS)
        if context.selected_asset_keys:
            yield from _migrate(context, settings, plan, keys, record_key)
        else:
            yield from _verify(context, settings, plan.tables, keys)

    with disable_dagster_warnings():  # as Dagster rebuilds its own (``with_resources``)
        return TableAssets(**legacy_tables.get_attributes_dict())


class TableAssets(dg.AssetsDefinition):
    """The multi-asset as ``dg.multi_asset`` builds it, but for one property, computed once
    per definition instead of at every call: the set of its assets and checks. Dagster asks
    for it once per step output as it plans a run (and once per asset as it builds the
    graph), each time building the set anew: at 1,500 tables (9,151 outputs) about 84
    million set insertions per plan, several seconds, and a run plans twice
    (docs/performance.md, "Many small tables"). The set cannot change: a subset is a new
    definition, which Dagster builds with ``self.__class__``, so of this class too."""

    @functools.cached_property
    def asset_and_check_keys(self) -> Set[dg.AssetKey | dg.AssetCheckKey]:
        return frozenset(super().asset_and_check_keys)


def _migrate(
    context: dg.AssetExecutionContext,
    settings: MigrationSettings,
    graph_plan: MigrationPlan,
    keys: Mapping[str, dg.AssetKey],
    record_key: dg.AssetKey,
) -> Iterator:
    chosen = context.selected_asset_keys
    names = [t.table.name for t in graph_plan.tables if keys[t.table.name] in chosen]
    config = checked_config(context, settings, lock=True, tables=names)
    # The preflight proved the run's file has the graph's tables; their columns, keys and
    # order are the file's own (an environment's file is not the graph's reference file).
    plan = MigrationPlan.of(settings.catalog)
    selected = [t for t in plan.tables if keys[t.table.name] in chosen]
    if not selected:
        raise dg.Failure(
            description=f"{RUN_NAME} records a run of the table assets: select the tables to "
            "migrate with it",
            allow_retries=False,
        )
    settings.hold_staging(config, context.run.run_id)
    report = new_report(context.op_execution_context, settings.to_config())  # the user's file
    try:
        with stop_at_safe_points():
            migrate(
                config, report, plan, selected, settings.snapshot,
                progress_every=PROGRESS_EVERY_SECONDS, log=context.log.info,
            )  # fmt: skip
    except Interrupted:
        raise dg.Failure(
            description=f"interrupted: {left_behind(report.run_id)}", allow_retries=False
        ) from None
    if not report.recorded:
        raise dg.Failure(description="; ".join(report.reasons), allow_retries=False)
    why_not = _not_promoted(report)
    # Events, unlike step outputs, carry no partition unless given (an environment's run).
    partition = context.partition_key if context.has_partition_key else None
    for skipped in report.skipped_tables:
        context.log.warning(str(skipped))
        yield dg.AssetObservation(
            asset_key=keys[skipped.table],
            partition=partition,
            metadata={"skipped": skipped.reason, "source_rows": skipped.source_rows},
        )
    context.log.info(staged_summary(report))
    progress.publish(progress.Recorded(0, len(report.tables)))
    by_name = {t.table.name: t.table for t in selected}
    wanted = context.selected_asset_check_keys
    for index, table_report in enumerate(report.tables, 1):
        table = by_name[table_report.table]
        key = keys[table.name]
        if table_report.error:
            context.log.error(f"{table_report.table}: load failed: {table_report.error}")
        metadata = table_metadata(table_report, table, config.target_schema)
        if why_not:
            yield dg.AssetObservation(
                asset_key=key, partition=partition, metadata={**metadata, "not_promoted": why_not}
            )
        else:
            yield dg.AssetMaterialization(asset_key=key, partition=partition, metadata=metadata)
        yield from _selected_checks(wanted, table, key, table_report)
        # Dagster wrote the table's events before asking for the next one.
        progress.publish(progress.Recorded(index, len(report.tables)))
    if why_not:
        context.log.warning(f"no table materialized: {why_not}")
    if record_key in context.selected_asset_keys:
        yield dg.MaterializeResult(asset_key=record_key, metadata=run_metadata(report))


def _not_promoted(report: MigrationReport) -> str | None:
    """Why the run's tables are not in the target, or None when they were promoted."""
    if report.promoted:
        return None
    if report.dry_run:
        return "dry run: the tables were loaded and checked in staging, the target is untouched"
    return f"not promoted ({report.status}): {'; '.join(report.reasons)}"


LISTED_TABLES = 20  # the staged summary names each table up to this many, then totals only


def staged_summary(report: MigrationReport) -> str:
    """The one log line of what the run staged: totals, and each table's rows, time and
    quarantine while there are few (a run of 1,500 tables says it in one line, not 1,500)."""
    tables = report.tables
    rows = sum(t.loaded_rows or 0 for t in tables)
    quarantined = sum(t.quarantined_rows for t in tables)
    failed = sum(1 for t in tables if t.error)
    line = f"{len(tables):,} tables staged: {rows:,} rows, {quarantined:,} quarantined"
    line += f", {failed:,} failed to load" if failed else ""
    if len(tables) <= LISTED_TABLES:
        line += "".join(f"; {_staged(t)}" for t in tables if not t.error)
    return line


def _staged(report: TableReport) -> str:
    return (
        f"{report.table}: {report.loaded_rows or 0:,} rows in {report.seconds or 0:.1f} s "
        f"({report.rows_per_second:,.0f} rows/s), {report.quarantined_rows} quarantined"
    )


def _selected_checks(
    wanted: Collection[dg.AssetCheckKey], table: Table, key: dg.AssetKey, report: TableReport
) -> list[dg.AssetCheckEvaluation]:
    """The table's check evaluations, those of the checks the run selected (``wanted``)."""
    return [e for e in check_events(table, key, report) if e.asset_check_key in wanted]


# How Dagster notes, as a step ends, the check outputs the step did not yield.
UNYIELDED_OUTPUTS = "did not yield or return expected outputs"


class _EvaluationsNotOutputs(logging.Filter):
    """The step logs each check as an ``AssetCheckEvaluation`` event, not as an
    ``AssetCheckResult``: Dagster makes two events of each result (a step output and the
    evaluation) and finds the result's check by scanning every check of the multi-asset, which
    at 1,500 tables (9,000 checks) cost more than the whole migration (docs/performance.md,
    "Many small tables"). The UI reads a check's status from its evaluations; only Dagster's
    closing note, one line naming every check output as missing, would then mislead: this
    filter drops that line from the step's log, nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return UNYIELDED_OUTPUTS not in record.getMessage()


EVALUATIONS_NOT_OUTPUTS = _EvaluationsNotOutputs()


def _verify(
    context: dg.AssetExecutionContext,
    settings: MigrationSettings,
    tables: Sequence[TableToStage],
    keys: Mapping[str, dg.AssetKey],
) -> Iterator[dg.AssetCheckEvaluation]:
    """Checks run on their own: re-verify their tables in the target schema, load nothing."""
    wanted = context.selected_asset_check_keys
    checked = {check.asset_key for check in wanted}
    names = [t.table.name for t in tables if keys[t.table.name] in checked]
    config = checked_config(context, settings, tables=names)
    for staged in tables:
        key = keys[staged.table.name]
        if key in checked and not config.skipping(staged.table.name):
            report = guarded_step(
                context.op_execution_context,
                staged.table,
                lambda t=staged.table: verify_table(config, t, context.run.run_id),
            )
            yield from _selected_checks(wanted, staged.table, key, report)


def run_metadata(report: MigrationReport) -> dict[str, object]:
    """``migration_run``'s metadata: the verdict the report step will publish."""
    return dagster_metadata(
        {
            "run_id": report.run_id,
            "status": report.status,
            "promoted": report.promoted,
            "dry_run": report.dry_run,
            "tables": [t.table for t in report.tables],
            "skipped_tables": [t.table for t in report.skipped_tables],
            "reasons": report.reasons,
        }
    )
