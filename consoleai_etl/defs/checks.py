"""Asset-check plumbing shared by the migration job and the consistency job.

The checks themselves, with what each proves and its severity, are ``core.verify.registry``;
this module turns them into Dagster check specs and a table's ``CheckReport`` list into
results of the check's severity, marking any check that did not run as failed (with the
table's load error), so nothing is silently missing from the UI.
"""

from collections.abc import Iterable, Sequence

import dagster as dg
from dagster._core.definitions.utils import DISALLOWED_NAMES

from consoleai_etl.core.plan.names import dagster_name, dagster_names
from consoleai_etl.core.run.report import ERROR, WARN, CheckReport, TableReport
from consoleai_etl.core.source.catalog import Table
from consoleai_etl.core.target.naming import TargetName
from consoleai_etl.core.verify.registry import applicable

SEVERITIES = {ERROR: dg.AssetCheckSeverity.ERROR, WARN: dg.AssetCheckSeverity.WARN}


TABLES_NAME = "legacy_tables"  # the table assets' multi-asset (its op)
RUN_NAME = "migration_run"
REPORT_NAME = "migration_report"
# Names no table asset may take: Dagster's own reserved words (every Python keyword,
# "context", "config", "input", "type"...) and the code location's own names.
RESERVED_NAMES = frozenset(DISALLOWED_NAMES) | {TABLES_NAME, RUN_NAME, REPORT_NAME}


def key_prefix(target: TargetName | None) -> tuple[str, ...]:
    """What every asset key of a graph migrating into ``target`` starts with: its database
    and schema, each a valid Dagster name (``names.dagster_name``), so that runs into two
    targets never write one asset's history. None (a graph of environments, each a
    partition with a target of its own): nothing."""
    if target is None:
        return ()
    return (dagster_name(target.database), dagster_name(target.schema))


def asset_keys(tables: Iterable[Table], prefix: Sequence[str] = ()) -> dict[str, dg.AssetKey]:
    """The asset key of every table, by table name: ``prefix`` (``key_prefix``), then a
    name valid in Dagster, unique in the catalog and the same for the same set of table
    names (``users`` stays ``users``, ``order-items`` becomes ``order_items__89455f5c``;
    see ``names.dagster_name``)."""
    names = dagster_names((t.name for t in tables), RESERVED_NAMES)
    return {table: dg.AssetKey([*prefix, name]) for table, name in names.items()}


def run_key(prefix: Sequence[str] = ()) -> dg.AssetKey:
    """``migration_run``'s key in a graph of ``prefix``."""
    return dg.AssetKey([*prefix, RUN_NAME])


def report_key(prefix: Sequence[str] = ()) -> dg.AssetKey:
    """``migration_report``'s key in a graph of ``prefix``."""
    return dg.AssetKey([*prefix, REPORT_NAME])


def check_specs(table: Table, key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The table's checks from the registry: what each proves, and its severity (known
    before any run, so the UI shows it on the check's page)."""
    return [
        dg.AssetCheckSpec(
            check.name,
            asset=key,
            description=check.proves,
            metadata={"severity": SEVERITIES[check.severity].value},
        )
        for check in applicable(table)
    ]


def complete_checks(table: Table, report: TableReport) -> list[CheckReport]:
    """One CheckReport per planned check; those that did not run fail with the reason."""
    ran = {c.name: c for c in report.checks}
    missing = f"did not run: {report.error}" if report.error else "did not run"
    return [
        ran.get(check.name)
        or CheckReport(check.name, False, missing, {"error": missing}, check.severity)
        for check in applicable(table)
    ]


def dagster_metadata(values: dict[str, object]) -> dict[str, object]:
    """Metadata Dagster accepts: lists and dicts as JSON, None as text."""
    return {
        key: dg.MetadataValue.json(value)
        if isinstance(value, list | dict)
        else ("" if value is None else value)
        for key, value in values.items()
    }


def check_events(table: Table, key: dg.AssetKey, report: TableReport) -> list:
    """The table's check evaluations, one per planned check, of the check's severity (the
    asset step logs them as events, not as ``AssetCheckResult``s: see
    ``table_assets._EvaluationsNotOutputs``)."""
    return [
        dg.AssetCheckEvaluation(
            asset_key=key,
            check_name=check.name,
            passed=check.passed,
            severity=SEVERITIES[check.severity],
            description=check.description,
            metadata=dagster_metadata(check.metadata),
        )
        for check in complete_checks(table, report)
    ]
