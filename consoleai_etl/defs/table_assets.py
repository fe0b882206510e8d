"""One Dagster asset per source table: stage it, check it, report numbers as metadata.

The checks run inside the table's own step (``check_specs``), so they are done before the
report asset starts; a load error is caught and shown as failed checks instead of failing
the step, because a failed step would skip the report.
"""

import traceback
from collections.abc import Callable, Mapping, Sequence

import dagster as dg

from consoleai_etl.core.errors import MigrationError
from consoleai_etl.core.plan.names import pg_identifier
from consoleai_etl.core.run.pipeline import MigrationConfig, stage_table
from consoleai_etl.core.run.report import TableReport
from consoleai_etl.core.run.stager import Progress, StagedTable, Stager
from consoleai_etl.core.source.catalog import Table
from consoleai_etl.core.target.postgres import redact
from consoleai_etl.defs.checks import PREFLIGHT_NAME, check_events, check_specs
from consoleai_etl.defs.metadata import definition_metadata, table_metadata
from consoleai_etl.defs.settings import MigrationSettings

TABLE_GROUP = "legacy_tables"
PROGRESS_EVERY_SECONDS = 5.0
MIGRATION_JOB = "legacy_migration_job"


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


PREFLIGHT_KEY = dg.AssetKey(PREFLIGHT_NAME)


@dg.asset(
    key=PREFLIGHT_KEY,
    group_name="migration",
    description="Source sanity (SQLite header, quick_check, lock, tables), target access, and "
    "the per-schema lock that keeps a second migration out; nothing is written before it.",
)
def preflight(
    context: dg.AssetExecutionContext, settings: MigrationSettings
) -> dg.MaterializeResult:
    config = checked_config(context, settings)
    snapshot = settings.snapshot
    context.log.info(f"source {snapshot.source}: {snapshot.method}")
    return dg.MaterializeResult(
        metadata={
            "source": str(snapshot.source),
            "source_snapshot": snapshot.method,
            "target_schema": config.target_schema,
        }
    )


def checked_config(
    context: dg.OpExecutionContext | dg.AssetExecutionContext, settings: MigrationSettings
) -> MigrationConfig:
    """``settings.preflight`` with its one-line error as the step's failure."""
    try:
        return settings.preflight(lock=context.run.job_name == MIGRATION_JOB)
    except MigrationError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def _run_tables(
    context: dg.AssetExecutionContext,
    tables: Sequence[StagedTable],
    keys: Mapping[str, dg.AssetKey],
) -> list[StagedTable]:
    """The tables this run materializes, in foreign-key order."""
    selection = context.run.asset_selection
    steps = context.run.step_keys_to_execute
    return [
        staged
        for staged in tables
        if (selection is None or keys[staged.table.name] in selection)
        and (steps is None or keys[staged.table.name].to_python_identifier() in steps)
    ]


def _stage(
    context: dg.AssetExecutionContext,
    settings: MigrationSettings,
    config: MigrationConfig,
    staged: StagedTable,
    tables: Sequence[StagedTable],
    keys: Mapping[str, dg.AssetKey],
) -> TableReport:
    """The table's report: from the run's ``Stager`` in the migration job (whose in-process
    executor shares it between steps), else staged right here in the step."""
    log = context.log.info
    settings.hold_staging(config, context.run.run_id)
    if context.run.job_name == MIGRATION_JOB:
        stager = settings.stager(
            lambda: Stager(
                config,
                context.run.run_id,
                _run_tables(context, tables, keys),
                PROGRESS_EVERY_SECONDS,
            )
        )
        if staged.table.name in stager:
            return stager.report(staged.table.name, log)
    return stage_table(
        config,
        staged.table,
        context.run.run_id,
        deferred=staged.deferred,
        progress=Progress(staged.table.name, PROGRESS_EVERY_SECONDS, log),
    )


def make_table_asset(
    staged: StagedTable,
    tables: Sequence[StagedTable],
    keys: Mapping[str, dg.AssetKey],
    priority: int = 0,
) -> dg.AssetsDefinition:
    """The asset for ``staged.table``; it waits for the tables its foreign keys point at.
    ``tables`` are all tables of the code location, in foreign-key order, and ``keys``
    their asset keys by table name (``checks.asset_keys``).

    ``priority`` orders the steps that are ready at once (Dagster's ``dagster/priority``
    tag), in the order the ``Stager`` is expected to finish the tables: each step then
    waits for the next table to finish and hands its results to Dagster while later tables
    are still being staged. Otherwise a step whose table finishes last would hold back the
    others' Dagster work (events and check results: ~80 ms a step) until the very end."""
    table = staged.table
    key = keys[table.name]
    upstream = [t.table for t in tables if t.table.name in staged.parents]

    @dg.asset(
        key=key,
        deps=[PREFLIGHT_KEY, *(keys[parent.name] for parent in upstream)],
        check_specs=check_specs(table, key),
        group_name=TABLE_GROUP,
        kinds={"sqlite", "postgres"},
        op_tags={"dagster/priority": str(priority)},
        description=f"Legacy table `{table.name}` staged, checked and (by the report) promoted.",
        metadata=definition_metadata(table),
    )
    def _table(context: dg.AssetExecutionContext, settings: MigrationSettings):
        config = checked_config(context, settings)  # no-op after the preflight asset ran
        report = guarded_step(
            context.op_execution_context,
            table,
            lambda: _stage(context, settings, config, staged, tables, keys),
        )
        if report.error:
            context.log.error(f"{table.name}: load failed: {report.error}")
        else:
            context.log.info(
                f"{table.name}: {report.loaded_rows:,} rows in {report.seconds:.1f} s "
                f"({report.rows_per_second:,.0f} rows/s), {report.quarantined_rows} quarantined"
            )
        return dg.MaterializeResult(
            metadata=table_metadata(report, table, config.target_schema),
            check_results=check_events(table, key, report),
        )

    return _table
