"""The ``migration_report`` asset and the report step of the consistency job.

The report gathers what this run's table steps recorded in the Dagster event log (their
materialization metadata and check evaluations), compares it with what the run planned, so
a check or table that never ran counts as a failure, then lets the core decide, promote,
record and write. It raises ``dagster.Failure`` only after the files are written.
"""

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from consoleai_etl.core.run.pipeline import MigrationConfig, finalize, now
from consoleai_etl.core.run.report import FAILURE, MigrationReport, TableReport
from consoleai_etl.core.source.catalog import Catalog, ForeignKey, Table
from consoleai_etl.core.target.postgres import redact
from consoleai_etl.core.target.promote import Promotion
from consoleai_etl.defs.checks import REPORT_NAME, asset_keys
from consoleai_etl.defs.metadata import TABLE_REPORT_KEY
from consoleai_etl.defs.settings import MigrationSettings
from consoleai_etl.defs.table_assets import PREFLIGHT_KEY

REPORT_KEY = dg.AssetKey(REPORT_NAME)


def _records(context: dg.OpExecutionContext, event_type: dg.DagsterEventType) -> list:
    return context.instance.get_records_for_run(context.run_id, of_type=event_type).records


def _run_tables(context: dg.OpExecutionContext, catalog: Catalog) -> list[TableReport]:
    """TableReports of the tables this run planned, with missing tables and checks failed."""
    keys = asset_keys(catalog.tables)
    by_key = {keys[t.name]: t for t in catalog.tables}
    planned = {
        r.event_log_entry.dagster_event.asset_key
        for r in _records(context, dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    }
    recorded: dict[dg.AssetKey, TableReport] = {}
    for record in _records(context, dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = record.event_log_entry.dagster_event.step_materialization_data
        entry = materialization.materialization.metadata.get(TABLE_REPORT_KEY)
        if entry is not None:
            recorded[materialization.materialization.asset_key] = TableReport.from_dict(entry.value)
    evaluated = {
        (e.asset_key, e.check_name): e
        for e in (
            r.event_log_entry.dagster_event.event_specific_data
            for r in _records(context, dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        )
    }
    tables = []
    for key in sorted(planned & by_key.keys(), key=lambda k: by_key[k].name):
        table = by_key[key]
        report = recorded.get(key) or TableReport(
            table.name, table.name, error="the table's step did not complete"
        )
        report.checks = [
            replace(c, passed=evaluated[(key, c.name)].passed)
            if (key, c.name) in evaluated
            else replace(c, passed=False, description="check evaluation not recorded in this run")
            for c in report.checks
        ]
        tables.append(report)
    return tables


def new_report(context: dg.OpExecutionContext, config: MigrationConfig) -> MigrationReport:
    run = context.instance.get_run_stats(context.run_id)
    started = run.start_time
    return MigrationReport(
        run_id=context.run_id,
        job=context.job_name,
        started_at=now() if started is None else _iso(started),
        finished_at=now(),
        dry_run=config.dry_run,
        allow_divergence=config.allow_divergence,
        mode=config.mode,
        source_path=config.sqlite_path,
        target=redact(config.pg_dsn),
        target_schema=config.target_schema,
        tables=[],
    )


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def publish(
    context: dg.OpExecutionContext, config: MigrationConfig, report: MigrationReport
) -> dg.MaterializeResult:
    """Log the verdict, return the report as metadata, or raise ``Failure`` when it failed."""
    metadata = {
        "status": report.status,
        "promoted": report.promoted,
        "dry_run": report.dry_run,
        "reasons": dg.MetadataValue.json(report.reasons),
        "report_json": dg.MetadataValue.path(
            str(Path(config.report_dir) / f"migration-report-{report.run_id}.json")
        ),
        "summary": dg.MetadataValue.md(report.to_markdown()),
    }
    summary = f"migration {report.status}" + (" (DRY RUN)" if report.dry_run else "")
    context.log.info(f"{summary}: {'; '.join(report.reasons)}")
    if report.status == FAILURE:
        raise dg.Failure(
            description=f"{summary}: {'; '.join(report.reasons)[:2000]}", metadata=metadata
        )
    return dg.MaterializeResult(metadata=metadata)


def make_report_asset(
    catalog: Catalog, deferred: tuple[tuple[Table, ForeignKey], ...]
) -> dg.AssetsDefinition:
    @dg.asset(
        key=REPORT_KEY,
        deps=[PREFLIGHT_KEY, *asset_keys(catalog.tables).values()],
        group_name="migration",
        kinds={"postgres"},
        description="Verdict of the run; promotes the staged tables when every check passed.",
    )
    def migration_report(context: dg.AssetExecutionContext, settings: MigrationSettings):
        config = settings.to_config()
        report = new_report(context.op_execution_context, config)
        report.tables = _run_tables(context.op_execution_context, catalog)
        report.schema_objects_skipped = [
            {"kind": o.kind, "name": o.name} for o in catalog.others if o.kind != "view"
        ]
        loaded = {t.table for t in report.tables}
        promotion = Promotion(
            catalog,
            tuple(t for t in catalog.tables if t.name in loaded),
            tuple((t, fk) for t, fk in deferred if t.name in loaded),
        )
        finalize(config, report, promotion, settings.snapshot)
        return publish(context.op_execution_context, config, report)

    return migration_report
