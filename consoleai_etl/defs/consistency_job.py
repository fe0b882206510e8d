"""``consistency_check_job``: re-verify what is in PostgreSQL against the source, load nothing.

It is an op job, not an asset selection: Dagster does not order a report asset after
check-only steps, so one op per table logs the table's asset-check evaluations (they show on
the assets' check pages) and hands its TableReport to a report op that runs last; a table
the run skips hands None, and the report lists it with its row count.
"""

from collections.abc import Mapping

import dagster as dg

from consoleai_etl.core.run.pipeline import finalize, prepare_staging, verify_table
from consoleai_etl.core.run.report import CONSISTENCY_JOB, TableReport
from consoleai_etl.core.source.catalog import Catalog, Table
from consoleai_etl.defs.checks import check_events
from consoleai_etl.defs.console_log import CONCISE_CONSOLE
from consoleai_etl.defs.report_asset import new_report, publish
from consoleai_etl.defs.settings import MigrationSettings
from consoleai_etl.defs.table_assets import checked_config, guarded_step


@dg.op(out=dg.Out(dg.Nothing))
def consistency_preflight(context: dg.OpExecutionContext, settings: MigrationSettings) -> None:
    """Source and target checks before any table is read (no lock: nothing is loaded). In
    merge mode, which stages the source to verify it, the staged tables of dead runs are
    dropped first, as a migration's start does; replace mode stages nothing, so drops nothing
    (a verifying role need not own other runs' staged tables)."""
    config = checked_config(context, settings, verifying=True)
    if config.mode == "merge":
        prepare_staging(config, context.run_id)


def make_verify_op(table: Table, key: dg.AssetKey) -> dg.OpDefinition:
    @dg.op(
        name=f"verify_{key.path[-1]}",  # the table's name in Dagster, without the prefix
        ins={"after": dg.In(dg.Nothing)},
        out=dg.Out(TableReport | None),  # None: a table the run skips
    )
    def _verify(context: dg.OpExecutionContext, settings: MigrationSettings):
        config = checked_config(context, settings)  # the run's snapshot of the source
        if config.skipping(table.name):  # listed by the report step, not checked
            yield dg.Output(None)
            return
        settings.hold_staging(config, context.run_id)  # merge mode stages the source
        report = guarded_step(context, table, lambda: verify_table(config, table, context.run_id))
        yield from check_events(table, key, report)
        yield dg.Output(report)

    return _verify


@dg.op
def consistency_report(
    context: dg.OpExecutionContext,
    settings: MigrationSettings,
    tables: list[TableReport | None],
):
    config = settings.to_config()
    report = new_report(context, config)
    report.tables = sorted((t for t in tables if t is not None), key=lambda t: t.table)
    report.skipped_tables = list(checked_config(context, settings).skipped)
    finalize(config, report, snapshot=settings.snapshot)
    result = publish(context, config, report)
    yield dg.Output(None, metadata=result.metadata)


def make_consistency_job(
    catalog: Catalog,
    keys: Mapping[str, dg.AssetKey],
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.JobDefinition:
    """The job over ``catalog``'s tables, whose asset keys are ``keys`` (by table name);
    ``partitions_def``: the environments, when each partition is one (a run re-verifies
    its environment)."""
    verify_ops = [make_verify_op(t, keys[t.name]) for t in catalog.tables]

    @dg.job(
        name=CONSISTENCY_JOB,
        executor_def=dg.in_process_executor,
        config=CONCISE_CONSOLE,
        partitions_def=partitions_def,
        description="Re-run every table's checks against the target schema; loads nothing.",
    )
    def consistency_check_job():
        ready = consistency_preflight()
        consistency_report([verify(ready) for verify in verify_ops])

    return consistency_check_job
