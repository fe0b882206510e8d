"""The ``migration_report`` asset and the report step of the consistency job.

The report asset takes the run from its record in ``consoleai_etl.runs``, which the table
assets' step wrote when it decided (and maybe promoted) the run: re-executed from a
failure, it reports the run it re-executes; a run that staged nothing has nothing to report
and fails. It writes the JSON, Markdown and HTML files, then raises ``dagster.Failure`` when the
migration failed, so the CLI exits non-zero.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from consoleai_etl.core.run.pipeline import MigrationConfig, now
from consoleai_etl.core.run.report import FAILURE, MigrationReport
from consoleai_etl.core.target import bookkeeping
from consoleai_etl.core.target.postgres import connect, redact
from consoleai_etl.defs.checks import REPORT_NAME, RUN_NAME, report_key, run_key
from consoleai_etl.defs.settings import MigrationSettings


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
    """Write the report files, log the verdict, return the report as metadata, or raise
    ``Failure`` (after the files are written) when it failed."""
    json_path, _md_path, html_path = report.write(Path(config.report_dir))
    metadata = {
        "status": report.status,
        "promoted": report.promoted,
        "dry_run": report.dry_run,
        "reasons": dg.MetadataValue.json(report.reasons),
        "report_json": dg.MetadataValue.path(str(json_path)),
        "report_html": dg.MetadataValue.path(str(html_path)),
        "summary": dg.MetadataValue.md(report.to_markdown()),
    }
    summary = f"{report.what} {report.status}" + (" (DRY RUN)" if report.dry_run else "")
    context.log.info(f"{summary}: {'; '.join(report.reasons)}")
    if report.status == FAILURE:
        raise dg.Failure(
            description=f"{summary}: {'; '.join(report.reasons)[:2000]}", metadata=metadata
        )
    return dg.MaterializeResult(metadata=metadata)


def _lineage(context: dg.OpExecutionContext) -> list[str]:
    """This run's id, then the ids of the runs it re-executes, nearest first."""
    run_ids, run = [context.run_id], context.run
    while run is not None and run.parent_run_id:
        run_ids.append(run.parent_run_id)
        run = context.instance.get_run_by_id(run.parent_run_id)
    return run_ids


def make_report_asset(
    prefix: Sequence[str] = (), partitions_def: dg.PartitionsDefinition | None = None
) -> dg.AssetsDefinition:
    """``migration_report``, keyed and partitioned as the table assets are (``prefix``,
    ``partitions_def``). A multi-asset of one asset only so that its step is named
    ``migration_report`` whatever the key's prefix (an asset's step takes its whole key)."""

    @dg.multi_asset(
        name=REPORT_NAME,
        specs=[
            dg.AssetSpec(
                report_key(prefix),
                deps=[run_key(prefix)],
                group_name="migration",
                kinds={"postgres"},
                description="The run's report (JSON, Markdown and HTML files, and this asset's "
                "metadata), from its record in consoleai_etl.runs; fails when the migration "
                "failed.",
            )
        ],
        partitions_def=partitions_def,
    )
    def migration_report(context: dg.AssetExecutionContext, settings: MigrationSettings):
        config = settings.to_config()
        lineage = _lineage(context.op_execution_context)
        with connect(config.pg_dsn) as pg:
            recorded = bookkeeping.recorded_report(pg, lineage)
        if recorded is None:
            raise dg.Failure(
                description=f"run {context.run.run_id} staged no table, so there is nothing to "
                f"report: materialize the table assets and {RUN_NAME} with it (or run "
                "legacy_migration_job)",
                allow_retries=False,
            )
        return publish(context.op_execution_context, config, MigrationReport.from_dict(recorded))

    return migration_report
